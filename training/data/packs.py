"""A crop pack (training.pack's output: JPEG crops plus meta.json) read back, its pool items, and crop scores
turned into video scores by the scanner's own rule."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from detector.scan import aggregate
from training.data.folds import PoolItem


def load_pack(pack: Path) -> tuple[list[dict], np.ndarray]:
    """A pack's crop entries (meta.json) and its crops as one uint8 RGB array, in the same order."""
    meta = json.loads((pack / "meta.json").read_text())
    crops = meta["crops"]
    images = np.empty((len(crops), meta["image_size"], meta["image_size"], 3), np.uint8)
    for i, entry in enumerate(crops):
        images[i] = cv2.cvtColor(cv2.imread(str(pack / "crops" / entry["file"]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return crops, images


def pool_items(crops: list[dict]) -> list[PoolItem]:
    """One :class:`PoolItem` per video of the pack's pool (the crops whose role is ``pool``)."""
    seen: dict[str, PoolItem] = {}
    for c in crops:
        if c["role"] == "pool":
            seen.setdefault(c["item"], PoolItem(c["item"], c["label"], c["method"], c["group"]))
    return list(seen.values())


def video_scores(crops: list[dict], probs: np.ndarray, items: set[str]) -> dict[str, float]:
    """Scanner's rule per item (counted tracks, mean per track, most suspicious track)."""
    tracks: dict[str, dict[int, list[float]]] = {}
    counted: dict[str, dict[int, bool]] = {}
    for c, p in zip(crops, probs):
        if c["item"] in items:
            tracks.setdefault(c["item"], {}).setdefault(c["track"], []).append(float(p))
            counted.setdefault(c["item"], {})[c["track"]] = bool(c["counted"])
    out = {}
    for item, per in tracks.items():
        decisions = [aggregate.TrackDecision(counted[item][t]) for t in per]
        out[item] = aggregate.decide(list(per.values()), decisions)[1]
    return out
