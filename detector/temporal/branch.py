"""The scanner's temporal stage: a video's windows, its followed faces' landmarks in them, and their sequences.

It runs after the face search, on the face tracks the frame evidence already found: the box of each frame of a
window is interpolated between the track's sampled observations, so no face search runs per frame (the cost is the
window's decoding, one landmark fit and one optical-flow step per frame).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from detector import config
from detector.ingest import video
from detector.face.faces import FaceTrack
from detector.temporal.landmarks import ShapePredictor, window_sequence
from detector.temporal.windows import Window, WindowPlan, plan_windows, runs


@dataclass
class WindowSequence:
    """One face's landmark sequence over one window: (frames, 136), LRNet's normalised input."""

    track_id: int
    window: Window
    end_time: float
    sequence: np.ndarray
    face_side: float
    probability: float | None = None


@dataclass
class TemporalReading:
    """What the temporal stage read from one video: the sequences, or why there are none, and its seconds."""

    plan: WindowPlan
    sequences: list[WindowSequence] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)


def track_boxes(track: FaceTrack, times: np.ndarray,
                max_gap: float = config.WINDOW_TRACK_GAP_S) -> np.ndarray | None:
    """The track's face box (x1, y1, x2, y2, displayed pixels) at each of ``times``, interpolated linearly between
    its observations; None when the track was not seen within ``max_gap`` seconds of the first and last time."""
    seen = np.array([o.time for o in track.observations], np.float64)
    if seen.size == 0:
        return None
    order = np.argsort(seen)
    seen = seen[order]
    boxes = np.stack([np.asarray(track.observations[i].detection.box, np.float64) for i in order])
    if not all(_covered(seen, float(t), max_gap) for t in (times[0], times[-1])):
        return None
    return np.stack([np.interp(times, seen, boxes[:, c]) for c in range(4)], axis=1)


def _covered(seen: np.ndarray, t: float, max_gap: float) -> bool:
    """Whether the track's box at ``t`` can be trusted: an observation within ``max_gap`` of it, or ``t`` between two
    observations at most four times that apart (a face followed across the gap)."""
    if t < seen[0] - max_gap or t > seen[-1] + max_gap:
        return False
    j = int(np.searchsorted(seen, t))
    lo, hi = seen[max(j - 1, 0)], seen[min(j, len(seen) - 1)]
    return min(abs(t - lo), abs(t - hi)) <= max_gap or hi - lo <= 4 * max_gap


def read_windows(info: video.VideoInfo, windows: tuple[Window, ...] | list[Window], tracks: list[FaceTrack],
                 predictor: ShapePredictor, max_side: int = config.WINDOW_MAX_SIDE) -> list[WindowSequence]:
    """Decode each run of windows once and read every counted track's landmark sequence in each window it covers."""
    counted = [t for t in tracks if t.counted and t.observations]
    out: list[WindowSequence] = []
    if not counted:
        return out
    for group in runs(windows):
        first, last = group[0], group[-1]
        frames = video.decode_run(info, first.start, last.stop - first.start, max_side, grey=True)
        by_index = {f.index: f for f in frames}
        for window in group:
            chunk = [by_index.get(i) for i in range(window.start, window.stop)]
            if any(f is None for f in chunk):
                continue  # the file ended or broke off inside this window
            grey = [f.image for f in chunk]
            times = np.array([f.time for f in chunk])
            scale = chunk[0].scale
            for track in counted:
                boxes = track_boxes(track, times)
                if boxes is None:
                    continue
                sequence = window_sequence(predictor, grey, boxes * scale)
                side = float(np.median(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])))
                out.append(WindowSequence(track.track_id, window, float(times[-1]), sequence, side))
    return out


def read_video(info: video.VideoInfo, tracks: list[FaceTrack], predictor: ShapePredictor,
               windows: int = config.TEMPORAL_WINDOWS, length: int = config.WINDOW_FRAMES) -> TemporalReading:
    """The scanner's temporal reading of one input: plan its windows (at keyframes), read them, say what is weak."""
    t = time.perf_counter()
    plan = plan_windows(info, windows, length, keyframes=lambda times: video.keyframes_before(info, times))
    reading = TemporalReading(plan)
    if plan.reason:
        reading.warnings.append(plan.reason)
    elif plan.windows:
        reading.sequences = read_windows(info, plan.windows, tracks, predictor)
        if not reading.sequences and any(t.counted for t in tracks):
            reading.warnings.append("no window could follow a counted face (it is not on screen long enough): no "
                                    "temporal evidence")
        small = sorted({s.track_id for s in reading.sequences if s.face_side < config.MIN_LANDMARK_FACE})
        if small:
            reading.warnings.append(f"face {', '.join(map(str, small))}: under {config.MIN_LANDMARK_FACE} px, too "
                                    "small for reliable landmarks, so its temporal evidence is weak")
    reading.seconds["temporal"] = round(time.perf_counter() - t, 3)
    return reading


@dataclass
class WindowScore:
    """One face's temporal score over one window, as result.json, the timeline and the report show it."""

    track_id: int
    start_frame: int
    frames: int
    start_time: float
    end_time: float
    probability: float


@dataclass
class TemporalEvidence:
    """The temporal evidence of one input: every window's score, the video's (set by the scanner with the
    aggregation rule of :mod:`detector.scan.aggregate`), or why there is none."""

    windows: list[WindowScore] = field(default_factory=list)
    score: float | None = None
    reason: str | None = None
    model: str = ""

    def to_dict(self) -> dict:
        return {"fake_probability": None if self.score is None else round(self.score, 4), "reason": self.reason,
                "model": self.model,
                "windows": [{"track_id": w.track_id, "start_frame": w.start_frame, "frames": w.frames,
                             "start_time": round(w.start_time, 3), "end_time": round(w.end_time, 3),
                             "fake_probability": round(w.probability, 4)} for w in self.windows]}


_PREDICTOR: list = []


def shared_predictor() -> ShapePredictor:
    """The process's landmark model, loaded once (scanner, batch workers and Ray workers alike). Raises
    :class:`detector.temporal.landmarks.LandmarksUnavailable` when dlib or its model file is missing."""
    if not _PREDICTOR:
        _PREDICTOR.append(ShapePredictor())
    return _PREDICTOR[0]


class TemporalScorer:
    """The temporal model that scores landmark windows, loaded once per scanner."""

    def __init__(self, model, name: str):
        self.model = model
        self.name = name

    @classmethod
    def load(cls, model_dir: str | None = None) -> "TemporalScorer":
        """The model folder's ``temporal.keras`` when it has one, else the published LRNet weights that ship with
        the package."""
        from detector.temporal.model import TemporalModel, published_model

        model = TemporalModel.load(model_dir) if model_dir else None
        if model is None:
            return cls(TemporalModel(published_model(), source="published"), "LRNet, published FaceForensics++ weights")
        return cls(model, f"temporal model of {model_dir}")

    def evidence(self, reading: TemporalReading, info: video.VideoInfo) -> TemporalEvidence:
        """Every window's score (the video's is left to the scanner's aggregation rule)."""
        found = TemporalEvidence(reason=reading.plan.reason, model=self.name)
        if reading.sequences:
            probs = self.model.predict(np.stack([s.sequence for s in reading.sequences]))
            fps = info.fps or 1.0
            for seq, p in zip(reading.sequences, probs):
                found.windows.append(WindowScore(seq.track_id, seq.window.start, seq.window.length,
                                                 seq.window.start_time, seq.end_time + 1.0 / fps, float(p)))
        elif not found.reason:
            found.reason = "no window could follow a counted face"
        return found
