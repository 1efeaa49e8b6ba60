"""A labelled manifest's media, damaged the way sharing damages them: for the robustness figures on the labelled set.

    python -m training.degrade --manifest ../shared/data/labeled/labels.csv --out runs/labeled_crf35 --crf 35
    python -m training.degrade --manifest ../shared/data/labeled/labels.csv --out runs/labeled_360p --height 360
    python app.py --evaluate runs/labeled_crf35/labels.csv --output runs/eval_crf35

Videos are re-encoded with H.264 (libx264) at ``--crf``, after scaling down to ``--height`` lines where they are
taller (the width follows, even); the audio is dropped (the detector never reads it). Stills go through the same
codec as one intra-coded frame (``training.data.codec.h264_roundtrip``) and, where taller, the same downscale, and are
written as PNG so nothing else damages them. The copy keeps the manifest's rows and columns, with each path
pointing at its damaged copy (relative to the new manifest), so ``app.py --evaluate`` reads it as it reads the
original. One bad file is reported and left out; the rest carry on.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from detector.ingest.inputs import IMAGE_SUFFIXES
from training.data.codec import h264_roundtrip

#: H.264 quality of the default re-encode: 35 is visibly blocky, what a heavily re-shared clip carries.
DEFAULT_CRF = 35


def _even(n: float) -> int:
    return max(2, int(round(n / 2)) * 2)


def degrade_video(source: Path, target: Path, crf: int, height: int | None) -> None:
    """Re-encode ``source`` as H.264 at ``crf`` into ``target`` (mp4), shrunk to ``height`` lines if taller."""
    scale = f"scale=-2:'min({height},ih)'" if height else "scale=trunc(iw/2)*2:trunc(ih/2)*2"
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", f"file:{source.resolve()}", "-map", "0:v:0", "-vf", scale,
           "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p", "-an",
           f"file:{target.resolve()}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ValueError((done.stderr.strip().splitlines() or ["ffmpeg failed"])[-1])


def degrade_image(source: Path, target: Path, crf: int, height: int | None) -> None:
    """The still through one intra-coded H.264 frame at ``crf`` (shrunk to ``height`` lines if taller), as PNG."""
    image = cv2.imread(str(source), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a readable image")
    h, w = image.shape[:2]
    if height and h > height:
        image = cv2.resize(image, (_even(w * height / h), _even(height)), interpolation=cv2.INTER_AREA)
    h, w = image.shape[:2]
    padded = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    rgb = cv2.cvtColor(padded, cv2.COLOR_BGR2RGB)
    out = h264_roundtrip(rgb[None], crf)[0][:h, :w]
    cv2.imwrite(str(target), cv2.cvtColor(out, cv2.COLOR_RGB2BGR))


def degrade_manifest(manifest: Path, out: Path, crf: int = DEFAULT_CRF, height: int | None = None,
                     log=print) -> tuple[int, list[str]]:
    """Write damaged copies of the manifest's media under ``out`` and ``out/<manifest name>``; returns how many
    rows were written and the one-line reasons of those left out."""
    with manifest.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames or [], list(reader)
    if "path" not in fields:
        raise ValueError(f"{manifest}: no 'path' column")
    out.mkdir(parents=True, exist_ok=True)
    written, failed = [], []
    for n, row in enumerate(rows, 1):
        source = Path(row["path"])
        source = source if source.is_absolute() else manifest.parent / source
        still = source.suffix.lower() in IMAGE_SUFFIXES
        relative = Path(row["path"]).with_suffix(".png" if still else ".mp4")
        target = out / (relative.relative_to(relative.anchor) if relative.is_absolute() else relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            (degrade_image if still else degrade_video)(source, target, crf, height)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            failed.append(f"{row['path']}: {exc}")
            log(f"[{n}/{len(rows)}] {row['path']}: left out ({exc})")
            continue
        written.append({**row, "path": target.relative_to(out).as_posix()})
        log(f"[{n}/{len(rows)}] {row['path']}")
    with (out / manifest.name).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(written)
    return len(written), failed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", type=Path, required=True, help="CSV with a path column (e.g. labeled/labels.csv)")
    p.add_argument("--out", type=Path, required=True, help="folder for the damaged copies and their manifest")
    p.add_argument("--crf", type=int, default=DEFAULT_CRF, help="H.264 CRF (18 near-transparent, 40 heavy)")
    p.add_argument("--height", type=int, help="shrink taller media to this many lines (e.g. 360)")
    args = p.parse_args(argv)
    if not 0 <= args.crf <= 51:
        p.error("--crf must lie in 0-51")
    if args.height is not None and args.height < 16:
        p.error("--height must be at least 16")
    try:
        count, failed = degrade_manifest(args.manifest, args.out, args.crf, args.height)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {count} damaged copies and {args.out / args.manifest.name}"
          + (f"; left out {len(failed)}" if failed else ""))
    return 0 if count else 2


if __name__ == "__main__":
    sys.exit(main())
