"""Read every video of a labelled set once, the way the scanner does, and keep what the temporal work needs.

    python -m training.temporal_data --manifest ../shared/data/labeled_pool/labels.csv --out data_cache/temporal/pool
    python -m training.temporal_data --real-dir ../shared/data/real_videos --out data_cache/temporal/real_videos

For each video (resumable: items already in ``index.jsonl`` are skipped): the face tracks MTCNN follows over the
sampled frames, the frame model's two head logits for every crop (version 3 adds a blending head and a statistics
head: keeping them apart lets each evidence be judged alone), and the landmark sequences of the counted faces in

* the scanner's own windows (:func:`detector.temporal.windows.plan_windows`), which evaluation scores, and
* with ``--dense`` every whole 30-frame block of the first ``--dense-frames`` frames (LRNet's published clips),
  which training reads.

Output: ``<key>.npz`` per video plus ``index.jsonl`` (label, dataset, method, group, source path relative to the
manifest's folder, counts, or the error).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path

import keras
import numpy as np
from tqdm import tqdm

from detector import config
from detector.ingest import video
from detector.errors import DetectorError
from detector.face.faces import FaceDetector
from detector.ingest.inputs import find_media
from detector.models.model import load_detector
from detector.scan.pipeline import extract_faces
from detector.temporal.branch import read_video, read_windows
from detector.temporal.landmarks import ShapePredictor
from detector.temporal.windows import Window

log = logging.getLogger(__name__)


def read_labels(manifest: Path) -> list[dict]:
    """Rows of a labels.csv (path,label[,dataset,method,group]) with paths relative to its folder kept as written."""
    import csv

    with manifest.open(newline="") as fh:
        return [dict(row) for row in csv.DictReader(fh)]


def real_folder_rows(root: Path) -> list[dict]:
    """Every video under ``root`` as a real item, grouped and sourced by its first sub-folder (one dataset each)."""
    rows = []
    for path in find_media(root):
        if path.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp", ".bmp"}:
            continue
        rel = path.relative_to(root)
        dataset = rel.parts[0] if len(rel.parts) > 1 else root.name
        rows.append({"path": rel.as_posix(), "label": "real", "dataset": dataset, "method": "",
                     "group": f"{dataset}/{path.stem}"})
    return rows


def item_key(rel: str) -> str:
    """A file name for an item: its stem and a short digest of its relative path (stems repeat across folders)."""
    return f"{Path(rel).stem[:60]}-{hashlib.sha1(rel.encode()).hexdigest()[:8]}"


def head_logits_model(detector) -> keras.Model:
    """The frame model cut at its per-head logits (one column per head), so each head can be scored alone."""
    model = detector.keras_model
    return keras.Model(model.inputs, model.get_layer("head_logits").output)


def dense_windows(info: video.VideoInfo, frames: int, length: int = config.WINDOW_FRAMES) -> list[Window]:
    """LRNet's published clips: consecutive, non-overlapping blocks of ``length`` frames from the first frame."""
    total = min(info.frame_count, frames)
    fps = info.fps or 1.0
    return [Window(start, length, round(start / fps, 6)) for start in range(0, total - length + 1, length)]


def process(path: Path, faces_detector: FaceDetector, logits_model: keras.Model, predictor: ShapePredictor,
            dense: int) -> dict[str, np.ndarray]:
    """One video -> arrays: per crop (track, frame, head logits), plan and dense sequences with track and start."""
    faces = extract_faces(path, faces_detector, frames=config.FRAMES_PER_VIDEO)
    obs = [(t.track_id, int(t.counted), o) for t in faces.tracks for o in t.observations]
    crops = np.stack([o.crop for _, _, o in obs]) if obs else np.zeros((0, 224, 224, 3), np.uint8)
    logits = (np.asarray(logits_model.predict(crops.astype(np.float32), batch_size=32, verbose=0))
              if len(crops) else np.zeros((0, 2), np.float32))
    out: dict[str, np.ndarray] = {
        "crop_track": np.array([t for t, _, _ in obs], np.int32),
        "crop_counted": np.array([c for _, c, _ in obs], np.int8),
        "crop_frame": np.array([o.frame_index for _, _, o in obs], np.int32),
        "crop_logits": logits.astype(np.float32),
        "fps": np.float32(faces.info.fps), "frame_count": np.int32(faces.info.frame_count),
        "is_image": np.int8(faces.info.is_image),
    }
    if faces.info.is_image:
        return out
    reading = read_video(faces.info, faces.tracks, predictor)
    out["plan_reason"] = np.array(reading.plan.reason or "")
    for name, seqs in (("plan", reading.sequences),
                       ("dense", read_windows(faces.info, dense_windows(faces.info, dense), faces.tracks, predictor)
                        if dense else [])):
        out[f"{name}_seq"] = (np.stack([s.sequence for s in seqs]).astype(np.float16) if seqs
                              else np.zeros((0, config.WINDOW_FRAMES, 136), np.float16))
        out[f"{name}_track"] = np.array([s.track_id for s in seqs], np.int32)
        out[f"{name}_start"] = np.array([s.window.start for s in seqs], np.int32)
        out[f"{name}_side"] = np.array([s.face_side for s in seqs], np.float32)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", type=Path, help="labels.csv (path,label,dataset,method,group)")
    source.add_argument("--real-dir", type=Path, help="a folder of real videos (one dataset per sub-folder)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dense", type=int, default=0, metavar="FRAMES",
                        help="also read every 30-frame block of the first FRAMES frames (training data)")
    parser.add_argument("--model", type=Path, default=None, help="frame model (default: the shipped one)")
    args = parser.parse_args(argv)
    root = args.manifest.parent if args.manifest else args.real_dir
    rows = read_labels(args.manifest) if args.manifest else real_folder_rows(args.real_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    index_path = args.out / "index.jsonl"
    done = set()
    if index_path.exists():
        done = {json.loads(line)["key"] for line in index_path.read_text().splitlines() if line.strip()}
    detector = load_detector(args.model)
    logits_model = head_logits_model(detector)
    faces_detector = FaceDetector()
    predictor = ShapePredictor()
    with index_path.open("a") as index:
        for row in tqdm(rows, desc=args.out.name):
            key = item_key(row["path"])
            if key in done:
                continue
            record = {"key": key, "path": row["path"], "label": row["label"], "dataset": row.get("dataset", ""),
                      "method": row.get("method", ""), "group": row.get("group") or Path(row["path"]).stem}
            try:
                arrays = process(root / row["path"], faces_detector, logits_model, predictor, args.dense)
                np.savez_compressed(args.out / f"{key}.npz", **arrays)
                record.update(crops=int(len(arrays["crop_track"])), plan=int(len(arrays.get("plan_seq", []))),
                              dense=int(len(arrays.get("dense_seq", []))))
            except DetectorError as exc:
                record["error"] = str(exc)
            index.write(json.dumps(record) + "\n")
            index.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
