"""Faces: MTCNN detection on downscaled frames, margin crops for the model, and IoU tracks across frames.

MTCNN costs about 0.3 s on a 640x480 frame and twice that on 720p on a laptop-class CPU, and its ``min_face_size``
option is broken in mtcnn 1.0.0, so frames are shrunk here before detection and boxes are mapped back.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from . import config

log = logging.getLogger(__name__)

#: Order of MTCNN's five keypoints in :attr:`Detection.keypoints`.
KEYPOINT_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass
class Detection:
    """One face in one frame. ``box`` is (x1, y1, x2, y2) and ``keypoints`` (5, 2), both in frame pixels."""

    box: np.ndarray
    confidence: float
    keypoints: np.ndarray

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])


@dataclass
class FaceCrop:
    """A square crop around a face, resized for the model, with the keypoints moved into crop pixels."""

    image: np.ndarray
    crop_box: np.ndarray
    keypoints: np.ndarray


@dataclass
class Observation:
    """A face in one sampled frame, as it enters a track."""

    frame_index: int
    time: float
    detection: Detection
    crop: np.ndarray
    crop_keypoints: np.ndarray
    probability: float | None = None


@dataclass
class FaceTrack:
    """The same face followed across sampled frames."""

    track_id: int
    observations: list[Observation] = field(default_factory=list)

    @property
    def last_box(self) -> np.ndarray:
        return self.observations[-1].detection.box

    @property
    def mean_area(self) -> float:
        return float(np.mean([o.detection.width * o.detection.height for o in self.observations]))


class FaceDetector:
    """MTCNN on frames shrunk to ``max_side``; keeps faces at least ``min_face`` pixels and ``min_confidence``."""

    def __init__(self, max_side: int = config.DETECT_MAX_SIDE, min_face: int = config.MIN_FACE_SIZE,
                 min_confidence: float = config.MIN_FACE_CONFIDENCE):
        self.max_side = max_side
        self.min_face = min_face
        self.min_confidence = min_confidence
        self._mtcnn = None

    def _model(self):
        if self._mtcnn is None:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            from mtcnn import MTCNN

            self._mtcnn = MTCNN()
        return self._mtcnn

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 frame, largest first, in the frame's own pixel coordinates."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError("FaceDetector.detect expects an RGB image of shape (H, W, 3)")
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = image if scale == 1.0 else cv2.resize(
            image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        try:
            raw = self._model().detect_faces(np.ascontiguousarray(small))
        except Exception as exc:  # mtcnn raises bare TF errors on degenerate inputs (e.g. tiny frames)
            log.debug("MTCNN failed on a %dx%d frame: %s", w, h, exc)
            return []
        found = []
        for item in raw:
            x, y, bw, bh = (float(v) / scale for v in item["box"])
            conf = float(item["confidence"])
            if conf < self.min_confidence or min(bw, bh) < self.min_face:
                continue
            kps = np.array([item["keypoints"][name] for name in KEYPOINT_NAMES], np.float32) / scale
            box = np.array([max(0.0, x), max(0.0, y), min(float(w), x + bw), min(float(h), y + bh)], np.float32)
            found.append(Detection(box=box, confidence=conf, keypoints=kps))
        found.sort(key=lambda d: d.width * d.height, reverse=True)
        return found


def crop_face(image: np.ndarray, box: np.ndarray, keypoints: np.ndarray | None = None,
              margin: float = config.CROP_MARGIN, size: int = config.IMAGE_SIZE) -> FaceCrop:
    """Square crop centred on the box, ``margin`` times its longer side, zero-padded at frame edges, resized.

    The margin keeps the face outline and some background in view: blending boundaries are where manipulations
    leave traces.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(x2 - x1, y2 - y1) * margin
    side = max(side, 2.0)
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    side_i = int(round(side))
    h, w = image.shape[:2]
    pad = max(0, -left, -top, left + side_i - w, top + side_i - h)
    src = image
    if pad:
        src = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    patch = src[top + pad: top + pad + side_i, left + pad: left + pad + side_i]
    interp = cv2.INTER_AREA if side_i > size else cv2.INTER_LINEAR
    crop = cv2.resize(patch, (size, size), interpolation=interp)
    factor = size / side_i
    kps = np.zeros((0, 2), np.float32) if keypoints is None else (
        (np.asarray(keypoints, np.float32) - [left, top]) * factor).astype(np.float32)
    return FaceCrop(image=crop, crop_box=np.array([left, top, left + side_i, top + side_i], np.int32),
                    keypoints=kps)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


class FaceTracker:
    """Greedy IoU tracker over sampled frames.

    Sampled frames can be a second apart, so a face may move a lot: matching uses IoU first and falls back to the
    nearest box centre within one box size. A track that misses ``max_gap`` sampled frames is closed, so a person who
    leaves and another who enters the same spot later are not merged.
    """

    def __init__(self, iou_threshold: float = config.TRACK_IOU, max_gap: int = 4):
        self.iou_threshold = iou_threshold
        self.max_gap = max_gap
        self.tracks: list[FaceTrack] = []
        self._last_seen: dict[int, int] = {}
        self._step = 0

    def update(self, observations: list[Observation]) -> None:
        """Add the faces of the next sampled frame."""
        self._step += 1
        active = [t for t in self.tracks if self._step - self._last_seen[t.track_id] <= self.max_gap]
        pairs = []
        for ti, track in enumerate(active):
            for oi, obs in enumerate(observations):
                score = iou(track.last_box, obs.detection.box)
                if score < self.iou_threshold:
                    score = self._centre_score(track.last_box, obs.detection.box)
                if score > 0:
                    pairs.append((score, ti, oi))
        pairs.sort(reverse=True)
        used_t, used_o = set(), set()
        for _, ti, oi in pairs:
            if ti in used_t or oi in used_o:
                continue
            used_t.add(ti)
            used_o.add(oi)
            active[ti].observations.append(observations[oi])
            self._last_seen[active[ti].track_id] = self._step
        for oi, obs in enumerate(observations):
            if oi not in used_o:
                track = FaceTrack(track_id=len(self.tracks), observations=[obs])
                self.tracks.append(track)
                self._last_seen[track.track_id] = self._step

    def _centre_score(self, a: np.ndarray, b: np.ndarray) -> float:
        """A weak match score (below any IoU match) when centres are within one box size and sizes agree."""
        size_a, size_b = max(a[2] - a[0], a[3] - a[1]), max(b[2] - b[0], b[3] - b[1])
        if not 0.5 <= size_a / max(size_b, 1e-6) <= 2.0:
            return 0.0
        dist = np.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2)
        return 0.0 if dist > size_a else float(self.iou_threshold * 0.5 * (1 - dist / size_a))

    def result(self, max_faces: int = config.MAX_FACES) -> list[FaceTrack]:
        """The ``max_faces`` most prominent tracks (seen most often, then largest), renumbered 0..n-1."""
        ranked = sorted(self.tracks, key=lambda t: (len(t.observations), t.mean_area), reverse=True)[:max_faces]
        ranked.sort(key=lambda t: (t.observations[0].frame_index, -t.mean_area))
        for new_id, track in enumerate(ranked):
            track.track_id = new_id
        return ranked
