"""Evaluate a model on labelled media with the scanner's own pipeline, or on a prepared crop dataset.

    python -m training.evaluate --manifest ../shared/data/labeled/labels.csv --out runs/eval
    python app.py --evaluate ../shared/data/labeled/labels.csv --output runs/eval      (the same)
    python -m training.evaluate --data data_cache/labeled --model runs/lite0/best.keras --out runs/eval_cached

Frame- and video-level accuracy, precision, recall, F1, ROC-AUC (with a bootstrap interval: labelled sets are small),
average precision, EER, log loss and the confusion matrix; ROC and confusion plots; metrics.json + metrics.md. Videos
and still images are reported apart and together. Scanning, the reports and their rule are
:mod:`detector.evaluate.evaluation`'s; this module adds prepared crop datasets (:mod:`training.prepare`), scored
without running ingestion and MTCNN again.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from detector import config
from detector.scan.aggregate import tracks_from_rows
from detector.errors import DetectorError
from detector.evaluate.evaluation import LabelledItem, evaluate_manifest, report_sections
from detector.ingest.inputs import IMAGE_SUFFIXES
from detector.models.scoring import Scorer
from detector.scan.options import ScanOptions

log = logging.getLogger(__name__)


def evaluate_prepared(data_dir: Path, out_dir: Path, detector: Scorer) -> dict:
    """Score a prepared crop dataset (``training.prepare``) without re-running ingestion and MTCNN."""
    from training.data.crops import load_index, read_crop

    rows = load_index(data_dir)
    probs = detector.predict(np.stack([read_crop(r["crop"], detector.image_size) for r in rows]))
    first_row = {}
    for row in rows:
        first_row.setdefault(row["item"], row)
    items = [LabelledItem(item, int(first_row[item]["label"]),
                          "image" if Path(first_row[item]["path"]).suffix.lower() in IMAGE_SUFFIXES else "video",
                          tracks)
             for item, tracks in tracks_from_rows(rows, probs).items()]
    extra = {"model": detector.source, "data": str(data_dir)}
    return report_sections(items, detector.card.threshold, out_dir, extra)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", type=Path, help="CSV path,label[,group] of videos/images")
    src.add_argument("--data", type=Path, help="a prepared crop dataset (training.prepare output)")
    p.add_argument("--model", type=Path, help="model root, SavedModel or .keras (default: the shipped model)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--frames", type=int, default=config.FRAMES_PER_VIDEO)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    from detector.models.model import load_detector

    try:
        detector = load_detector(args.model)
        if args.manifest:
            return evaluate_manifest(args.manifest, args.out, detector, ScanOptions(frames=args.frames))
        print(json.dumps(evaluate_prepared(args.data, args.out, detector), indent=2))
    except DetectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
