"""Aggregation: frame probabilities -> a track's score -> the video's score. The rules live here and only here.

The scanner, training's checkpoint selection and evaluation all call :func:`select_tracks` and :func:`decide` (the
last two through :class:`ScoredTracks`), so a number reported anywhere is the number a user's scan would give.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from detector import config

#: Ways to pool a track's per-frame probabilities.
RULES = ("mean", "median", "max", "top_quartile")


def pool(probabilities: Sequence[float], rule: str = config.AGGREGATION) -> float:
    """Pool one face track's per-frame fake probabilities into its score.

    ``mean`` is the default (:data:`detector.config.AGGREGATION`): deepfake artefacts come and go between frames, and
    the mean is the most stable estimate on short clips. ``top_quartile`` (mean of the highest 25 %) suits fakes that
    are only partly manipulated.
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
    """The video's score is its most suspicious *counted* track's, so one swapped face among several real ones is
    caught. Pass only the scores of counted tracks (see :func:`select_tracks`)."""
    return float(max(track_scores)) if len(track_scores) else None


@dataclass
class TrackFacts:
    """What the track rule needs to know about one face track: plain numbers, so prepared datasets can use it too.

    ``frames`` is how many sampled frames the track was seen in; ``median_side`` its median box side in pixels;
    ``geometry_ok`` the share of its observations whose five landmarks sit where a face's do (see
    :func:`plausible_landmarks`).
    """

    frames: int
    median_side: float
    geometry_ok: float = 1.0


@dataclass
class TrackDecision:
    counted: bool
    reason: str | None = None


def plausible_landmarks(keypoints: np.ndarray, crop_size: int) -> bool:
    """Whether five aligned-crop keypoints look like a face: eyes level and apart, nose between and below them,
    mouth below the nose. MTCNN's one-frame false detections (background blobs) usually fail this."""
    kps = np.asarray(keypoints, np.float64).reshape(-1, 2)
    if kps.shape[0] < 5 or not np.all(np.isfinite(kps)):
        return True  # nothing to judge by: do not reject
    left, right, nose, mouth_l, mouth_r = kps[:5]
    eye_dist = float(np.hypot(*(right - left)))
    eyes_y = (left[1] + right[1]) / 2
    mouth_y = (mouth_l[1] + mouth_r[1]) / 2
    return bool(0.12 * crop_size <= eye_dist <= 0.75 * crop_size
                and abs(right[1] - left[1]) <= 0.25 * eye_dist
                and min(left[0], right[0]) - 0.25 * eye_dist <= nose[0] <= max(left[0], right[0]) + 0.25 * eye_dist
                and eyes_y < nose[1] < mouth_y + 0.1 * eye_dist
                and mouth_y - eyes_y >= 0.3 * eye_dist)


def select_tracks(tracks: Sequence[TrackFacts], frames_sampled: int, is_image: bool = False,
                  min_share: float = config.MIN_TRACK_SHARE,
                  min_relative_size: float = config.MIN_TRACK_RELATIVE_SIZE) -> list[TrackDecision]:
    """Which face tracks decide the verdict.

    A track counts when it is a real, persistent face: seen in at least ``min_share`` of the sampled frames (and in
    more than one, in a video) or the only face; with landmarks where a face's are in most of its frames; and not
    tiny beside the main face. A still image is one frame, so every face in it counts if its landmarks are
    plausible. If nothing qualifies in a video that has faces, the most persistent track decides, so a short clip
    or a fleeting face still gets a verdict (the caller warns). Tracks that do not count stay in the results with
    the reason.
    """
    n = len(tracks)
    if n == 0:
        return []
    decisions = [TrackDecision(True) for _ in tracks]
    needed = 1 if is_image else max(2, int(np.ceil(min_share * max(frames_sampled, 1))))
    for d, t in zip(decisions, tracks):
        if t.geometry_ok < 0.5:
            d.counted, d.reason = False, "landmarks do not look like a face in most frames"
        elif n > 1 and t.frames < needed:
            d.counted, d.reason = False, (f"seen in {t.frames} of {frames_sampled} sampled frames "
                                          f"(a face must be seen in at least {needed} to count)")
    persistent = [t.median_side for d, t in zip(decisions, tracks) if d.counted]
    if persistent:
        main_side = max(persistent)
        for d, t in zip(decisions, tracks):
            if d.counted and t.median_side < min_relative_size * main_side:
                d.counted, d.reason = False, (f"too small beside the main face ({t.median_side:.0f} px against "
                                              f"{main_side:.0f} px)")
    if not any(d.counted for d in decisions):
        best = max(range(n), key=lambda i: (tracks[i].frames, tracks[i].geometry_ok, tracks[i].median_side))
        decisions[best] = TrackDecision(True, "no face persisted: the verdict rests on the most persistent track")
    return decisions


def decisive_track(track_scores: Sequence[float], decisions: Sequence[TrackDecision]) -> int | None:
    """Index of the track whose score is the video's (the most suspicious counted one), or None."""
    counted = [i for i, d in enumerate(decisions) if d.counted]
    return max(counted, key=lambda i: track_scores[i]) if counted else None


def decide(track_probabilities: Sequence[Sequence[float]], decisions: Sequence[TrackDecision],
           rule: str = config.AGGREGATION) -> tuple[list[float], float | None]:
    """Per-track scores (every track, counted or not) and the video's score (from the counted tracks only)."""
    scores = [pool(p, rule) for p in track_probabilities]
    counted = [s for s, d in zip(scores, decisions) if d.counted]
    return scores, video_score(counted)


@dataclass
class ScoredTracks:
    """One scanned item's face tracks as the rule sees them: each track's per-frame fake probabilities and whether it
    counts for the verdict. What evaluation and training keep of a scan, or rebuild from a prepared dataset."""

    probabilities: list[list[float]] = field(default_factory=list)
    counted: list[bool] = field(default_factory=list)

    @property
    def decisions(self) -> list[TrackDecision]:
        return [TrackDecision(c) for c in self.counted]

    def score(self, rule: str = config.AGGREGATION) -> float | None:
        """The item's score: exactly what a scan reports for it."""
        return decide(self.probabilities, self.decisions, rule)[1]

    def decisive_frames(self, rule: str = config.AGGREGATION) -> list[float]:
        """The per-frame probabilities of the track whose score is the item's (empty when no face was scored)."""
        track_scores, _ = decide(self.probabilities, self.decisions, rule)
        best = decisive_track(track_scores, self.decisions)
        return [] if best is None else list(self.probabilities[best])


def tracks_from_rows(rows: Iterable[Mapping], probabilities: Iterable[float]) -> dict[str, ScoredTracks]:
    """Per item, in order of first appearance: its tracks rebuilt from the crop rows of a prepared dataset (keys
    ``item``, ``track`` and ``counted``, as :mod:`training.prepare` writes them) and one probability per row."""
    grouped: dict[str, dict[int, tuple[list[float], bool]]] = {}
    for row, p in zip(rows, probabilities):
        track = grouped.setdefault(row["item"], {}).setdefault(row["track"], ([], bool(row.get("counted", True))))
        track[0].append(float(p))
    return {item: ScoredTracks([probs for probs, _ in tracks.values()], [c for _, c in tracks.values()])
            for item, tracks in grouped.items()}


def verdict(score: float | None, threshold: float) -> str:
    """``fake`` at or above the threshold, ``real`` below it, ``no_face`` when no face was scored."""
    if score is None:
        return "no_face"
    return "fake" if score >= threshold else "real"
