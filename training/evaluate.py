"""Evaluate a model on labelled media with the scanner's own pipeline, or on a prepared crop dataset.

    python -m training.evaluate --manifest ../shared/data/labeled/labels.csv --out runs/eval
    python app.py --evaluate ../shared/data/labeled/labels.csv --output runs/eval      (the same)
    python -m training.evaluate --data data_cache/labeled --model runs/lite0/best.keras --out runs/eval_cached

Frame- and video-level accuracy, precision, recall, F1, ROC-AUC (with a bootstrap interval: labelled sets are small),
average precision, EER, log loss and the confusion matrix; ROC and confusion plots; metrics.json + metrics.md. Videos
and still images are reported apart (a still is one frame, so it says little about video-level performance) and
together. Video scores follow the scanner's rule exactly: mean over each face track, then the most suspicious track.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from detector import aggregate, metrics  # noqa: E402
from detector.errors import DetectorError  # noqa: E402
from detector.model import Detector, load_detector  # noqa: E402
from detector.pipeline import ScanOptions, Scanner  # noqa: E402

log = logging.getLogger(__name__)


def frame_table_from_scans(records: list[dict], rule: str = "mean") -> list[dict]:
    """Rows (item, label, kind, score) for the frames of each item's decisive track.

    The decisive track is chosen by the scanner's own rule (:func:`detector.aggregate.decide`: only counted tracks,
    the most suspicious wins), so pooling these rows by ``rule`` reproduces the scanner's video score exactly.
    """
    rows = []
    for rec in records:
        if not rec["track_probs"]:
            continue
        decisions = [aggregate.TrackDecision(bool(c)) for c in rec.get("counted", [True] * len(rec["track_probs"]))]
        scores, _ = aggregate.decide(rec["track_probs"], decisions, rule)
        best = rec["track_probs"][aggregate.decisive_track(scores, decisions)]
        rows += [{"item": rec["item"], "label": rec["label"], "kind": rec["kind"], "score": p} for p in best]
    return rows


def report_sections(rows: list[dict], threshold: float, out_dir: Path, extra: dict) -> dict:
    """Write one report per kind present (videos, images) and one over everything; return the headline numbers."""
    out_dir.mkdir(parents=True, exist_ok=True)
    headline = {}
    kinds = sorted({r["kind"] for r in rows})
    sections = [(k, [r for r in rows if r["kind"] == k]) for k in kinds]
    if len(kinds) > 1:
        sections.append(("all", rows))
    for name, part in sections:
        labels = [r["label"] for r in part]
        if len(set(labels)) < 2:
            headline[name] = {"note": "only one class present; no AUC"}
            continue
        rep = metrics.evaluation_report([r["item"] for r in part], labels, [r["score"] for r in part], threshold)
        rep.update(extra)
        metrics.write_report(rep, out_dir / name)
        video = rep["video"]
        headline[name] = {"items": video["n"], "roc_auc": video["roc_auc"], "roc_auc_ci": video["roc_auc_ci"],
                          "eer": video["eer"], "accuracy": video["accuracy"],
                          "confusion_matrix": video["confusion_matrix"], "frame_roc_auc": rep["frame"]["roc_auc"]}
    (out_dir / "summary.json").write_text(json.dumps({"threshold": threshold, **extra, "sections": headline},
                                                     indent=2) + "\n")
    return headline


def read_labelled(manifest: Path) -> list[tuple[Path, int]]:
    from training.prepare import read_manifest

    return [(item.path, item.label) for item in read_manifest(manifest)]


def evaluate_manifest(manifest: Path, out_dir: Path, detector: Detector, frames: int = 32,
                      show_progress: bool = True) -> int:
    """Scan every labelled file with the full pipeline (no Grad-CAM) and write the evaluation report."""
    try:
        items = read_labelled(manifest)
    except (OSError, ValueError) as exc:
        raise DetectorError(f"{manifest}: {exc}") from None
    scanner = Scanner(detector, ScanOptions(frames=frames, gradcam=False))
    records, skipped = [], []
    for path, label in tqdm(items, desc="evaluate", unit="file", disable=not show_progress):
        result = scanner.scan(path)
        if result.verdict in ("error", "no_face"):
            skipped.append({"input": str(path), "verdict": result.verdict, "error": result.error})
            continue
        records.append({"item": str(path), "label": label, "kind": "image" if result.info.is_image else "video",
                        "track_probs": [[o.probability for o in t.observations] for t in result.tracks],
                        "counted": [t.counted for t in result.tracks]})
    threshold = detector.card.threshold
    extra = {"model": detector.source, "model_card": {"backbone": detector.card.backbone,
                                                      "trained": detector.card.trained},
             "manifest": str(manifest), "frames_per_video": frames, "skipped": skipped}
    headline = report_sections(frame_table_from_scans(records), threshold, out_dir, extra)
    print(json.dumps(headline, indent=2))
    for s in skipped:
        print(f"skipped {s['input']}: {s['verdict']} {s['error'] or ''}", file=sys.stderr)
    print(f"report: {out_dir}")
    return 0


def evaluate_prepared(data_dir: Path, out_dir: Path, detector: Detector) -> dict:
    """Score a prepared crop dataset (``training.prepare``) without re-running ingestion and MTCNN."""
    from training.prepare import load_index
    from training.train import _read_rgb

    rows = load_index(data_dir)
    images = np.stack([_read_rgb(r["crop"], detector.image_size) for r in rows])
    probs = detector.predict(images)
    by_item: dict[str, dict] = {}
    for row, p in zip(rows, probs):
        rec = by_item.setdefault(row["item"], {"item": row["item"], "label": int(row["label"]),
                                               "kind": "image" if Path(row["path"]).suffix.lower()
                                               in (".jpg", ".jpeg", ".png") else "video", "tracks": {}})
        rec["tracks"].setdefault(row["track"], []).append(float(p))
        rec.setdefault("track_counted", {})[row["track"]] = bool(row.get("counted", True))
    records = []
    for r in by_item.values():
        counted = r.pop("track_counted")
        tracks = r.pop("tracks")
        records.append({**r, "track_probs": list(tracks.values()), "counted": [counted[t] for t in tracks]})
    extra = {"model": detector.source, "data": str(data_dir)}
    return report_sections(frame_table_from_scans(records), detector.card.threshold, out_dir, extra)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", type=Path, help="CSV path,label[,group] of videos/images")
    src.add_argument("--data", type=Path, help="a prepared crop dataset (training.prepare output)")
    p.add_argument("--model", type=Path, help="model root, SavedModel or .keras (default: the shipped model)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--frames", type=int, default=32)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        detector = load_detector(args.model)
        if args.manifest:
            return evaluate_manifest(args.manifest, args.out, detector, args.frames)
        print(json.dumps(evaluate_prepared(args.data, args.out, detector), indent=2))
    except DetectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
