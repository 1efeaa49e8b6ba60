"""Aggregation: frame probabilities -> a track's score -> the video's score. The rules live here and only here."""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: Ways to pool a track's per-frame probabilities.
RULES = ("mean", "median", "max", "top_quartile")


def pool(probabilities: Sequence[float], rule: str = "mean") -> float:
    """Pool one face track's per-frame fake probabilities into its score.

    ``mean`` is the default: deepfake artefacts come and go between frames, and the mean is the most stable estimate
    on short clips. ``top_quartile`` (mean of the highest 25 %) suits fakes that are only partly manipulated.
    """
    values = np.asarray(probabilities, np.float64)
    if values.size == 0:
        raise ValueError("cannot pool an empty list of probabilities")
    if rule == "mean":
        return float(values.mean())
    if rule == "median":
        return float(np.median(values))
    if rule == "max":
        return float(values.max())
    if rule == "top_quartile":
        k = max(1, int(np.ceil(values.size / 4)))
        return float(np.sort(values)[-k:].mean())
    raise ValueError(f"unknown aggregation rule {rule!r}; known: {', '.join(RULES)}")


def video_score(track_scores: Sequence[float]) -> float | None:
    """The video's score is its most suspicious track's, so one swapped face among several real ones is caught."""
    return float(max(track_scores)) if len(track_scores) else None


def verdict(score: float | None, threshold: float) -> str:
    """``fake`` at or above the threshold, ``real`` below it, ``no_face`` when no face was scored."""
    if score is None:
        return "no_face"
    return "fake" if score >= threshold else "real"
