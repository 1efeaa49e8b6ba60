"""Load what ``training.temporal_data`` read from a labelled set, and turn it into per-video evidence.

One :class:`Reading` per video: its label, source (dataset) and group, the frame model's per-crop head logits by
face track, and the landmark sequences of the scanner's windows (``plan``) and of the dense training blocks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.scan import aggregate


@dataclass
class Reading:
    key: str
    label: int
    source: str
    group: str
    method: str
    is_image: bool
    crop_track: np.ndarray
    crop_counted: np.ndarray
    crop_logits: np.ndarray
    plan_seq: np.ndarray
    plan_track: np.ndarray
    dense_seq: np.ndarray
    dense_track: np.ndarray

    def counted_tracks(self) -> set[int]:
        return {int(t) for t, c in zip(self.crop_track, self.crop_counted) if c}


def load_readings(folder: str | Path, source_prefix: str = "") -> list[Reading]:
    """Every video of a ``training.temporal_data`` folder that was read without error."""
    folder = Path(folder)
    out = []
    for line in (folder / "index.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "error" in row or not (folder / f"{row['key']}.npz").is_file():
            continue
        data = np.load(folder / f"{row['key']}.npz")
        empty = np.zeros((0, 30, 136), np.float32)
        get = (lambda name, default: data[name] if name in data.files else default)  # noqa: E731
        out.append(Reading(
            key=row["key"], label=1 if row["label"] in ("fake", "1") else 0,
            source=source_prefix + (row.get("dataset") or folder.name), group=row.get("group") or row["key"],
            method=row.get("method") or "", is_image=bool(data["is_image"]),
            crop_track=data["crop_track"], crop_counted=data["crop_counted"], crop_logits=data["crop_logits"],
            plan_seq=get("plan_seq", empty).astype(np.float32), plan_track=get("plan_track", np.zeros(0, int)),
            dense_seq=get("dense_seq", empty).astype(np.float32), dense_track=get("dense_track", np.zeros(0, int))))
    return out


def video_score(tracks: np.ndarray, scores: np.ndarray, counted: set[int]) -> float | None:
    """The scanner's rule on any per-item scores: each counted track's mean, the most suspicious track's."""
    per_track = [aggregate.pool(scores[tracks == t], "mean") for t in sorted(counted) if np.any(tracks == t)]
    return aggregate.video_score(per_track)
