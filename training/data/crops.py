"""A prepared crop dataset (training.prepare's output: ``crops/`` plus ``index.jsonl``) read back, and where the face
sits inside a crop."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from detector import config


def face_box_in_crop(size: int, margin: float = config.CROP_MARGIN) -> np.ndarray:
    """The face box inside a prepared crop: crops are centred on the MTCNN box and ``margin`` times its longer side."""
    half = size / (2 * margin)
    c = size / 2
    return np.array([c - half, c - half, c + half, c + half], np.float32)


def read_crop(path: str | Path, size: int) -> np.ndarray:
    """A prepared crop back as RGB uint8 at ``size`` x ``size`` (crops are written at the model's size already)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read {path}")
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image if image.shape[:2] == (size, size) else cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def load_index(out_dir: Path) -> list[dict]:
    """The rows of a prepared dataset's index, with crop paths made absolute."""
    rows = []
    with (out_dir / "index.jsonl").open() as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                row["crop"] = str(out_dir / row["crop"])
                rows.append(row)
    return rows
