"""Pack prepared crop datasets into one compact, portable training set: JPEG crops plus a meta.json.

    python -m training.pack --pool data_cache/pool --pool-manifest ../shared/data/labeled_pool/labels.csv \\
        --real data_cache/videos --real data_cache/lfw --eval data_cache/labeled --out packs/main

A pack is what travels to a GPU machine (which has neither the shared data, TensorFlow nor MTCNN): the aligned crops
the scanner's own ingestion produced, each item's label, generation method and group, the track rule's verdict on
each crop's track, and dlib's 68 landmarks of every real crop (computed here, where dlib is installed) for the
self-blends. JPEG quality 92 keeps a crop near 12 KB; the training recipe re-damages crops with real codecs anyway.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from training.data.crops import face_box_in_crop, load_index


def _subsample(rows: list[dict], per_track: int) -> list[dict]:
    """At most ``per_track`` crops per (item, track), evenly spread over the track's frames."""
    by_track: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        by_track.setdefault((row["item"], row["track"]), []).append(row)
    kept = []
    for track_rows in by_track.values():
        track_rows.sort(key=lambda r: r["frame_index"])
        idx = np.unique(np.linspace(0, len(track_rows) - 1, min(per_track, len(track_rows))).round().astype(int))
        kept += [track_rows[i] for i in idx]
    return kept


def build_pack(sources: list[tuple[Path, str, int]], out: Path, methods: dict[str, tuple[str, str]],
               quality: int = 92, landmark_model=None, max_items: int | None = None) -> dict:
    """Write ``out/crops/*.jpg`` and ``out/meta.json``. ``sources`` are (prepared dir, role, crops per track) with
    role ``pool`` (labelled fakes and reals with methods), ``real`` (self-blend sources) or ``eval`` (curves only)."""

    (out / "crops").mkdir(parents=True, exist_ok=True)
    entries = []
    for data_dir, role, per_track in sources:
        rows = _subsample(load_index(data_dir), per_track)
        items = sorted({r["item"] for r in rows})
        if max_items and role == "real" and len(items) > max_items:
            keep = set(items[:: int(np.ceil(len(items) / max_items))])
            rows = [r for r in rows if r["item"] in keep]
        for row in tqdm(rows, desc=f"pack {data_dir.name}", unit="crop"):
            image = cv2.imread(row["crop"], cv2.IMREAD_COLOR)
            if image is None:
                continue
            name = f"{len(entries):06d}.jpg"
            cv2.imwrite(str(out / "crops" / name), image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            method, group = methods.get(str(Path(row["path"]).resolve()), ("", row["group"]))
            entry = {"file": name, "role": role, "dataset": data_dir.name, "item": row["item"],
                     "label": int(row["label"]), "method": method if int(row["label"]) else "", "group": group,
                     "track": int(row["track"]), "counted": bool(row.get("counted", True))}
            if landmark_model is not None and int(row["label"]) == 0 and role != "eval":
                rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
                kps = np.asarray(row["keypoints"], np.float32).reshape(-1, 2)
                lm = landmark_model.predict(rgb, face_box_in_crop(rgb.shape[0]), kps)
                entry["landmarks"] = np.round(np.asarray(lm, np.float32), 1).tolist()
            entries.append(entry)
    (out / "meta.json").write_text(json.dumps({"image_size": 224, "crops": entries}))
    counts: dict[str, int] = {}
    for e in entries:
        key = f"{e['role']}:{'fake' if e['label'] else 'real'}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def read_methods(manifest: Path) -> dict[str, tuple[str, str]]:
    """Resolved media path -> (method, group) from a labelled pool's labels.csv."""
    found = {}
    with manifest.open(newline="") as fh:
        for row in csv.DictReader(fh):
            path = (manifest.parent / row["path"]).resolve()
            found[str(path)] = ((row.get("method") or "").strip(), (row.get("group") or path.stem).strip())
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pool", type=Path, action="append", default=[], help="prepared labelled pool (real fakes)")
    p.add_argument("--pool-manifest", type=Path, help="the pool's labels.csv (methods and groups)")
    p.add_argument("--real", type=Path, action="append", default=[], help="prepared real-only dataset")
    p.add_argument("--eval", type=Path, action="append", default=[], help="prepared set for training curves only")
    p.add_argument("--per-track", type=int, default=8, help="crops kept per face track (videos)")
    p.add_argument("--max-real-items", type=int, help="at most this many items (videos, stills) per --real dataset")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    from training.data.dense_landmarks import load_landmark_model

    methods = read_methods(args.pool_manifest) if args.pool_manifest else {}
    sources = ([(d, "pool", args.per_track) for d in args.pool] + [(d, "real", args.per_track) for d in args.real]
               + [(d, "eval", args.per_track) for d in args.eval])
    if not sources:
        print("error: give at least one --pool, --real or --eval dataset", file=sys.stderr)
        return 2
    counts = build_pack(sources, args.out, methods, landmark_model=load_landmark_model(),
                        max_items=args.max_real_items)
    size = sum(f.stat().st_size for f in (args.out / "crops").iterdir())
    print(json.dumps({"counts": counts, "megabytes": round(size / 2 ** 20, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
