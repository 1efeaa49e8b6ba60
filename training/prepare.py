"""Turn labelled media into a face-crop dataset with the scanner's own ingestion and MTCNN code.

    python -m training.prepare --real-dir ../shared/data/real_videos --out data_cache/train
    python -m training.prepare --manifest labels.csv --out data_cache/eval

Sources (any mix): a CSV manifest (``path,label[,group]``), a ``real/`` + ``fake/`` folder layout, a DFDC-style
``metadata.json``, a FaceForensics++-style tree, or plain folders of real media (for self-blended training).
Output: ``crops/<item>/f<frame>_t<track>.png`` plus ``index.jsonl`` (one line per crop: label, group, split, frame,
time, track, box, 5 keypoints in crop pixels). Items already in the index are skipped, so an interrupted run resumes.
Splits are assigned per *group* (identity or source video), so no person's frames land in two splits.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import re
import sys
from pathlib import Path

import cv2
from tqdm import tqdm

from detector import config
from detector.errors import DetectorError
from detector.face.faces import FaceDetector
from detector.ingest.inputs import IMAGE_SUFFIXES, find_media
from detector.ingest.manifest import LABELS, MediaItem, parse_label, read_manifest  # noqa: F401  (this module's API too)
from detector.scan.pipeline import extract_faces
from training.data.crops import load_index, read_crop  # noqa: F401  (this module's API too)

log = logging.getLogger(__name__)


def _media_files(folder: Path) -> list[Path]:
    """Media under ``folder`` by the scanner's own walk (a folder that is missing gives none)."""
    return find_media(folder) if folder.is_dir() else []


def read_real_fake_folders(root: Path) -> list[MediaItem]:
    """``root/real/**`` and ``root/fake/**``; each file is its own group unless named ``<group>__<rest>``."""
    items = []
    for name, label in (("real", 0), ("fake", 1)):
        folder = root / name
        if not folder.is_dir():
            continue
        for path in _media_files(folder):
            group = path.stem.split("__")[0]
            items.append(MediaItem(path, label, group, "folders"))
    if not items:
        raise ValueError(f"{root}: expected real/ and fake/ subfolders with media")
    return items


def read_dfdc(metadata: Path) -> list[MediaItem]:
    """DFDC ``metadata.json``: ``{"x.mp4": {"label": "FAKE", "original": "y.mp4"}}``; a fake is grouped with its
    original so a real video and the fakes made from it share a split."""
    data = json.loads(metadata.read_text())
    items = []
    for name, meta in sorted(data.items()):
        label = parse_label(meta.get("label", ""))
        original = meta.get("original") or name
        items.append(MediaItem(metadata.parent / name, label, Path(original).stem, "dfdc"))
    return items


def read_faceforensics(root: Path) -> list[MediaItem]:
    """FaceForensics++ tree: ``original_sequences/<src>/<c>/videos/033.mp4`` (real) and
    ``manipulated_sequences/<method>/<c>/videos/033_097.mp4`` (fake, grouped with target 033)."""
    items = []
    for path in _media_files(root / "original_sequences"):
        items.append(MediaItem(path, 0, path.stem.split("_")[0], "ff++ original"))
    manipulated = root / "manipulated_sequences"
    for path in _media_files(manipulated):
        method = path.relative_to(manipulated).parts[0]
        items.append(MediaItem(path, 1, path.stem.split("_")[0], f"ff++ {method}"))
    if not items:
        raise ValueError(f"{root}: no original_sequences/ or manipulated_sequences/ media found")
    return items


def read_real_dir(root: Path) -> list[MediaItem]:
    """Every media file under ``root`` as real. The group is the video, or for stills the person: LFW names files
    ``First_Last_0003.jpg``, so the trailing number is dropped and one person's photos stay in one split."""
    items = []
    for path in _media_files(root):
        rel = path.relative_to(root)
        group = re.sub(r"_\d+$", "", path.stem) if path.suffix.lower() in IMAGE_SUFFIXES else path.stem
        items.append(MediaItem(path, 0, f"{rel.parent}:{group}", "real"))
    return items


def split_of(group: str, val_fraction: float, seed: int = 0) -> str:
    """Deterministic split by hashing the group name: stable across runs and machines."""
    digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
    return "val" if int.from_bytes(digest[:8], "big") / 2 ** 64 < val_fraction else "train"


#: Hex digits of the path digest that :func:`_item_key` appends to an item's file name.
KEY_DIGEST_LENGTH = 8


def _item_key(item: MediaItem) -> str:
    digest = hashlib.sha1(str(item.path).encode()).hexdigest()[:KEY_DIGEST_LENGTH]
    return re.sub(r"[^A-Za-z0-9._-]", "_", item.path.stem)[:60] + "_" + digest


def source_name(key: str) -> str:
    """An item key without the digest of its path that :func:`_item_key` appends: a copy of a file (re-encoded by
    ``training.degrade``) keeps the name and lives at another path, so this is what it shares with its original."""
    return re.sub(rf"_[0-9a-f]{{{KEY_DIGEST_LENGTH}}}$", "", key)


def prepare(items: list[MediaItem], out_dir: Path, frames: int = config.FRAMES_PER_VIDEO,
            max_faces: int = 2, val_fraction: float = 0.15, seed: int = 0, show_progress: bool = True) -> dict:
    """Extract crops for every item not yet in ``out_dir/index.jsonl``; return counts.

    Bad files are logged and listed in ``errors.jsonl``; they never stop the run.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    index_path = out_dir / "index.jsonl"
    done = set()
    if index_path.exists():
        with index_path.open() as fh:
            done = {json.loads(line)["item"] for line in fh if line.strip()}
    errors_path = out_dir / "errors.jsonl"
    if errors_path.exists():
        with errors_path.open() as fh:
            done |= {json.loads(line)["item"] for line in fh if line.strip()}
    detector = FaceDetector()
    counts = {"items": len(items), "skipped": 0, "crops": 0, "errors": 0, "no_face": 0}
    with index_path.open("a") as index, errors_path.open("a") as errors:
        for item in tqdm(items, desc="prepare", unit="file", disable=not show_progress):
            key = _item_key(item)
            if key in done:
                counts["skipped"] += 1
                continue
            try:
                faces = extract_faces(item.path, detector, frames=frames, max_faces=max_faces)
            except DetectorError as exc:
                errors.write(json.dumps({"item": key, "path": str(item.path), "error": str(exc)}) + "\n")
                errors.flush()
                counts["errors"] += 1
                continue
            folder = out_dir / "crops" / key
            folder.mkdir(parents=True, exist_ok=True)
            split = split_of(item.group, val_fraction, seed)
            lines = []
            for track in faces.tracks:
                for obs in track.observations:
                    name = f"f{obs.frame_index:06d}_t{track.track_id}.png"
                    cv2.imwrite(str(folder / name), cv2.cvtColor(obs.crop, cv2.COLOR_RGB2BGR))
                    lines.append({
                        "item": key, "crop": f"crops/{key}/{name}", "path": str(item.path), "label": item.label,
                        "group": item.group, "split": split, "source": item.source,
                        "frame_index": obs.frame_index, "time": obs.time, "track": track.track_id,
                        "counted": track.counted, "frames_sampled": len(faces.frames),
                        "angle": round(float(obs.angle), 1),
                        "confidence": round(obs.detection.confidence, 4),
                        "keypoints": [round(float(v), 2) for v in obs.crop_keypoints.reshape(-1)],
                    })
            if not lines:
                counts["no_face"] += 1
                errors.write(json.dumps({"item": key, "path": str(item.path), "error": "no face found"}) + "\n")
                errors.flush()
                continue
            index.write("".join(json.dumps(line) + "\n" for line in lines))
            index.flush()
            counts["crops"] += len(lines)
    return counts


def collect(args: argparse.Namespace) -> list[MediaItem]:
    items: list[MediaItem] = []
    for path in args.manifest or []:
        items += read_manifest(path)
    for path in args.folders or []:
        items += read_real_fake_folders(path)
    for path in args.dfdc or []:
        items += read_dfdc(path)
    for path in args.faceforensics or []:
        items += read_faceforensics(path)
    for path in args.real_dir or []:
        found = read_real_dir(path)
        if args.limit_per_dir and len(found) > args.limit_per_dir:
            rng = random.Random(args.seed)
            found = sorted(rng.sample(found, args.limit_per_dir), key=lambda item: str(item.path))
        items += found
    return items


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", type=Path, action="append", help="CSV with path,label[,group]")
    p.add_argument("--folders", type=Path, action="append", help="a folder with real/ and fake/ subfolders")
    p.add_argument("--dfdc", type=Path, action="append", help="a DFDC metadata.json")
    p.add_argument("--faceforensics", type=Path, action="append", help="a FaceForensics++ root")
    p.add_argument("--real-dir", type=Path, action="append", help="a folder of real media (self-blended training)")
    p.add_argument("--limit-per-dir", type=int, help="take at most this many files from each --real-dir")
    p.add_argument("--out", type=Path, required=True, help="dataset folder (index.jsonl + crops/)")
    p.add_argument("--frames", type=int, default=config.FRAMES_PER_VIDEO, help="frames per video, evenly spaced")
    p.add_argument("--max-faces", type=int, default=2, help="face tracks kept per video")
    p.add_argument("--val-fraction", type=float, default=0.15, help="share of groups in the validation split")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        items = collect(args)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not items:
        print("error: no inputs; give --manifest, --folders, --dfdc, --faceforensics or --real-dir", file=sys.stderr)
        return 2
    counts = prepare(items, args.out, args.frames, args.max_faces, args.val_fraction, args.seed)
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
