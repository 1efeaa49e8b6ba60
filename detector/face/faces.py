"""Faces: MTCNN detection on downscaled frames, crops aligned by the eye line, and IoU tracks across frames.

MTCNN costs about 0.3 s on a 640x480 frame and twice that on 720p on a laptop-class CPU, and its ``min_face_size``
option is broken in mtcnn 1.0.0, so frames are shrunk here before detection and boxes are mapped back.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import cv2
import numpy as np

from detector import config
from detector.face import mtcnn_region
from detector.face.mtcnn_region import Region

log = logging.getLogger(__name__)

#: Order of MTCNN's five keypoints in :attr:`Detection.keypoints`.
KEYPOINT_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass
class Detection:
    """One face in one frame. ``box`` is (x1, y1, x2, y2) and ``keypoints`` (5, 2), both in frame pixels."""

    box: np.ndarray
    confidence: float
    keypoints: np.ndarray
    #: Clockwise quarter turn (0, 90, 180, 270) of the frame in which MTCNN found this face; box and keypoints are
    #: always in the unturned frame's pixels.
    frame_rotation: int = 0

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])


@dataclass
class FaceCrop:
    """A square crop around a face, turned so the eye line is level, resized for the model, with the keypoints
    moved into crop pixels. ``angle`` is the roll that was removed, in degrees (positive: the face was turned
    clockwise in the frame); ``crop_box`` is the unturned square the crop was taken from, in frame pixels."""

    image: np.ndarray
    crop_box: np.ndarray
    keypoints: np.ndarray
    angle: float = 0.0


@dataclass
class Observation:
    """A face in one sampled frame, as it enters a track."""

    frame_index: int
    time: float
    detection: Detection
    crop: np.ndarray
    crop_keypoints: np.ndarray
    probability: float | None = None
    #: Roll removed by alignment (degrees), see :class:`FaceCrop`.
    angle: float = 0.0


@dataclass
class FaceTrack:
    """The same face followed across sampled frames.

    ``counted`` says whether the track takes part in the verdict (see :func:`detector.scan.aggregate.select_tracks`);
    ``reason`` says why not when it does not.
    """

    track_id: int
    observations: list[Observation] = field(default_factory=list)
    counted: bool = True
    reason: str | None = None

    @property
    def last_box(self) -> np.ndarray:
        return self.observations[-1].detection.box

    @property
    def mean_area(self) -> float:
        return float(np.mean([o.detection.width * o.detection.height for o in self.observations]))


class FaceDetector:
    """MTCNN on frames shrunk to ``max_side``; keeps faces at least ``min_face`` pixels and ``min_confidence``.

    ``compiled`` runs MTCNN's three networks as TensorFlow graphs instead of layer by layer in eager mode: the same
    kernels and the same detections (tested), 2-3x faster, since eager dispatch dominates on frames this small.
    """

    def __init__(self, max_side: int = config.DETECT_MAX_SIDE, min_face: int = config.MIN_FACE_SIZE,
                 min_confidence: float = config.MIN_FACE_CONFIDENCE, compiled: bool = True):
        self.max_side = max_side
        self.min_face = min_face
        self.min_confidence = min_confidence
        self.compiled = compiled
        self._mtcnn = None
        self._frame = threading.local()  # see same_frame

    def _model(self):
        if self._mtcnn is None:
            from mtcnn import MTCNN

            mtcnn = MTCNN()
            if self.compiled:
                import keras
                import tensorflow as tf

                for stage in mtcnn.stages:
                    # each stage calls its Keras network as self._model(x); reduce_retracing makes the graph take
                    # any image or batch size after the first few, so pyramid levels and frame sizes reuse it
                    if isinstance(getattr(stage, "_model", None), keras.Model):
                        stage._model = tf.function(stage._model, reduce_retracing=True)
            self._mtcnn = mtcnn
        return self._mtcnn

    @contextmanager
    def same_frame(self, image: np.ndarray) -> Iterator[None]:
        """Searches of ``image`` inside this block share its shrunk, scaled copy and pyramid levels
        (:class:`detector.face.mtcnn_region.Prepared`): a frame with several followed faces is searched once per face,
        and each search made them again. Per thread, so one detector can serve several scans at once; the image
        must not change inside the block."""
        self._frame.source, self._frame.prepared = image, {}
        try:
            yield
        finally:
            self._frame.source, self._frame.prepared = None, {}

    def _prepare(self, image: np.ndarray, rotation: int) -> tuple[mtcnn_region.Prepared, float, tuple[int, int]]:
        """``image`` turned clockwise by ``rotation``, shrunk to at most ``max_side`` and made ready for MTCNN, with
        the shrink factor and the turned frame's height and width; inside :meth:`same_frame` made once per turn."""
        shared = getattr(self._frame, "source", None) is image
        if shared and rotation in self._frame.prepared:
            return self._frame.prepared[rotation]
        turned = np.ascontiguousarray(np.rot90(image, k=-(rotation // 90))) if rotation else image
        h, w = turned.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = turned if scale == 1.0 else cv2.resize(
            turned, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        prepared = (mtcnn_region.Prepared(np.ascontiguousarray(small)), scale, (h, w))
        if shared:
            self._frame.prepared[rotation] = prepared
        return prepared

    def detect(self, image: np.ndarray, rotations: tuple[int, ...] = (0,),
               sure: float = config.SURE_FACE_CONFIDENCE, region: Region | None = None) -> list[Detection]:
        """Faces in an RGB uint8 frame, largest first, in the frame's own pixel coordinates.

        ``rotations`` are clockwise quarter turns of the frame to try, in order: MTCNN misses faces lying on their
        side or upside down (a phone video without rotation metadata) and may instead report a weak false face, so
        the first turn whose best face reaches ``sure`` confidence wins, else the turn with the most confident face.
        Boxes and keypoints are mapped back into the unturned frame, so alignment then levels the eye line.
        ``region`` (in frame pixels) limits the search to a window and to faces of a size range, at a fraction of the
        cost, with the detections a whole-frame search makes there (see :mod:`detector.face.mtcnn_region`).
        """
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError("FaceDetector.detect expects an RGB image of shape (H, W, 3)")
        best: list[Detection] = []
        for rotation in rotations:
            if rotation not in (0, 90, 180, 270):
                raise ValueError(f"rotation must be 0, 90, 180 or 270, got {rotation}")
            found = self._detect_upright(*self._prepare(image, rotation),
                                         _turn_region(region, rotation, image.shape[:2]))
            if rotation:
                for det in found:
                    corners = np.array([[det.box[0], det.box[1]], [det.box[2], det.box[1]],
                                        [det.box[0], det.box[3]], [det.box[2], det.box[3]]], np.float32)
                    back = unrotate_points(corners, rotation, image.shape[:2])
                    det.box = np.concatenate([back.min(axis=0), back.max(axis=0)]).astype(np.float32)
                    det.keypoints = unrotate_points(det.keypoints, rotation, image.shape[:2])
                    det.frame_rotation = rotation
            top = max((d.confidence for d in found), default=0.0)
            if top >= sure:
                return found
            if top > max((d.confidence for d in best), default=0.0):
                best = found
        return best

    def _detect_upright(self, prepared: mtcnn_region.Prepared, scale: float, shape: tuple[int, int],
                        region: Region | None = None) -> list[Detection]:
        """MTCNN on a frame of ``shape`` shrunk by ``scale`` (``prepared``), its detections in that frame's pixels."""
        h, w = shape
        try:
            if region is None:
                raw = self._model().detect_faces(prepared.image)
            else:
                raw = mtcnn_region.detect_faces(self._model(), prepared, region.scaled(scale))
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


def _turn_region(region: Region | None, rotation: int, shape: tuple[int, int]) -> Region | None:
    """``region`` (in a frame of ``shape``) in that frame turned clockwise by ``rotation`` degrees."""
    if region is None or region.window is None or not rotation:
        return region
    x1, y1, x2, y2 = region.window
    turned_shape = shape if rotation == 180 else (shape[1], shape[0])
    corners = unrotate_points(np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2]], np.float32), (360 - rotation) % 360,
                              turned_shape)
    seed = None
    if region.seed is not None:
        s1, s2 = unrotate_points(np.asarray(region.seed, np.float32).reshape(2, 2), (360 - rotation) % 360,
                                 turned_shape)
        seed = np.concatenate([np.minimum(s1, s2), np.maximum(s1, s2)])
    return Region(np.concatenate([corners.min(axis=0), corners.max(axis=0)]), region.min_face, region.max_face, seed)


def unrotate_points(points: np.ndarray, rotation: int, shape: tuple[int, int]) -> np.ndarray:
    """Map (x, y) points found in a frame turned clockwise by ``rotation`` degrees back into the original frame of
    ``shape`` (H, W). Pixel centres map to pixel centres, so a round trip with :func:`numpy.rot90` is exact."""
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    h, w = shape
    x, y = pts[:, 0], pts[:, 1]
    if rotation == 0:
        out = np.stack([x, y], axis=1)
    elif rotation == 90:  # turned clockwise: original (x, y) is at (h - y, x)
        out = np.stack([y, h - x], axis=1)
    elif rotation == 180:
        out = np.stack([w - x, h - y], axis=1)
    elif rotation == 270:  # turned anticlockwise: original (x, y) is at (y, w - x)
        out = np.stack([w - y, x], axis=1)
    else:
        raise ValueError(f"rotation must be 0, 90, 180 or 270, got {rotation}")
    return out.astype(np.float32)


def eye_roll(keypoints: np.ndarray | None) -> float:
    """Roll of the face in degrees: the angle of the line from its left eye to its right eye (MTCNN's order, the
    image-left eye first when upright). 0 for an upright face, about 90 for one lying on its side, 180 upside down."""
    if keypoints is None or len(keypoints) < 2:
        return 0.0
    (lx, ly), (rx, ry) = np.asarray(keypoints[:2], np.float64)
    if not np.all(np.isfinite([lx, ly, rx, ry])) or (lx == rx and ly == ry):
        return 0.0
    return float(np.degrees(np.arctan2(ry - ly, rx - lx)))


def crop_face(image: np.ndarray, box: np.ndarray, keypoints: np.ndarray | None = None,
              margin: float = config.CROP_MARGIN, size: int = config.IMAGE_SIZE, align: bool = True) -> FaceCrop:
    """Square crop centred on the box, ``margin`` times its longer side, turned so the eyes are level, zero-padded
    beyond the frame, resized to ``size``.

    The margin keeps the face outline and some background in view: blending boundaries are where manipulations
    leave traces. Alignment (roll only; no scaling by landmarks, so the face keeps its proportions) means the model
    always sees an upright face, whatever the head tilt or the orientation the video was filmed in.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(max(x2 - x1, y2 - y1) * margin, 2.0)
    angle = eye_roll(keypoints) if align else 0.0
    # cut a square that holds the turned crop (its diagonal), shrink it first when the face is large so the
    # final warp never decimates (warpAffine has no area filter), then turn and cut in one affine warp
    reach = side * 0.75
    left, top = int(np.floor(cx - reach)), int(np.floor(cy - reach))
    extent = int(np.ceil(2 * reach)) + 1
    h, w = image.shape[:2]
    pad = max(0, -left, -top, left + extent - w, top + extent - h)
    src = image
    if pad:
        src = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    patch = src[top + pad: top + pad + extent, left + pad: left + pad + extent]
    pre = min(1.0, 1.6 * size / side)
    if pre < 1.0:
        patch = cv2.resize(patch, (max(1, round(extent * pre)), max(1, round(extent * pre))),
                           interpolation=cv2.INTER_AREA)
        pre = patch.shape[1] / extent
    factor = size / side
    # frame -> patch: (p - [left, top]) * pre; patch -> crop: rotate by angle about the centre, scale, recentre
    centre_patch = ((cx - left) * pre, (cy - top) * pre)
    rot = cv2.getRotationMatrix2D(centre_patch, angle, factor / pre)
    rot[:, 2] += np.array([size / 2, size / 2]) - np.asarray(centre_patch)
    crop = cv2.warpAffine(patch, rot, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0))
    if keypoints is None:
        kps = np.zeros((0, 2), np.float32)
    else:
        in_patch = (np.asarray(keypoints, np.float32).reshape(-1, 2) - [left, top]) * pre
        kps = (in_patch @ rot[:, :2].T + rot[:, 2]).astype(np.float32)
    half = side / 2
    crop_box = np.array([round(cx - half), round(cy - half), round(cx + half), round(cy + half)], np.int32)
    return FaceCrop(image=crop, crop_box=crop_box, keypoints=kps, angle=round(angle, 2))


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
