"""Where MTCNN looks in each sampled frame: the whole frame only where needed, elsewhere a window around each face
already followed.

Whole-frame MTCNN on every sampled frame was three quarters of a scan's time. A face seen in one sampled frame is, a
fraction of a second later, near where it was and of about the same size: MTCNN restricted to a window twice its
size, in the pyramid levels made for faces of its size (:mod:`detector.face.mtcnn_region`), finds it again at a fraction
of the cost, with the box and landmarks a whole-frame search gives, so the model's crops do not change. The whole
frame is still searched on the first sampled frame, on every ``full_every``-th (so faces that enter are found) and
whenever a followed face is not found in its window (it moved far, turned away or left), so the face tracks are the
ones whole-frame detection finds. While faces are followed, those whole-frame searches skip the pyramid levels for
faces too small to count beside the largest one (:data:`config.MIN_TRACK_RELATIVE_SIZE`): the detection resolution
follows the face size already found. ``full_every=1`` searches every frame whole, as the previous release did.
``refine`` (:data:`config.REFINE_FOLLOWED`, off) skips the window search too and hands each followed face's predicted
box to MTCNN's last network alone: cheaper, but with its own boxes rather than the search's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from detector import config
from detector.face.faces import Detection, FaceDetector, iou
from detector.face.mtcnn_region import Region


@dataclass
class SearchSettings:
    """How faces are searched between whole-frame detections; the defaults live in :mod:`detector.config`."""

    full_every: int = config.FULL_DETECT_EVERY
    region_margin: float = config.REGION_MARGIN
    level_range: float = config.LEVEL_RANGE
    keep_missing: int = config.REGION_KEEP_MISSING
    #: a window's detection is the followed face when its box overlaps the predicted one at least this much
    min_iou: float = config.TRACK_IOU
    #: whole-frame searches while faces are followed look for faces down to this share of the largest one
    smallest_share: float = config.MIN_TRACK_RELATIVE_SIZE
    #: between whole-frame searches, hand each followed face's predicted box to MTCNN's last network instead of
    #: searching its window
    refine: bool = config.REFINE_FOLLOWED


@dataclass
class Followed:
    """A face being followed: its last box (frame pixels), its centre's motion per sampled frame, the frame turn
    MTCNN found it in, how often it was seen and how many frames in a row it was missed."""

    box: np.ndarray
    rotation: int = 0
    motion: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))
    hits: int = 1
    missed: int = 0

    @property
    def side(self) -> float:
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    def predicted(self) -> np.ndarray:
        """Where the face should be in the next sampled frame: moved on at its last speed."""
        dx, dy = self.motion * (self.missed + 1)
        return self.box + np.array([dx, dy, dx, dy], np.float32)


class FaceSearch:
    """Finds the faces of one video's sampled frames, in order; one instance per video (it follows faces).

    :meth:`detect` returns what :meth:`FaceDetector.detect` would, in frame pixels. ``counts`` says how many
    whole-frame and window searches ran.
    """

    def __init__(self, detector: FaceDetector, settings: SearchSettings | None = None):
        self.detector = detector
        self.settings = settings or SearchSettings()
        self.followed: list[Followed] = []
        self.counts = {"full": 0, "window": 0}
        self._since_full = 0

    def detect(self, image: np.ndarray, rotations: tuple[int, ...] = (0,)) -> list[Detection]:
        """The faces in the next sampled frame. ``rotations`` are the frame turns to try, in order (see
        :meth:`FaceDetector.detect`), in a window as on the whole frame."""
        s = self.settings
        if s.full_every > 1 and self.followed and self._since_full < s.full_every - 1:
            found = self._search_windows(image, rotations)
            if found is not None:
                self._since_full += 1
                return found
        return self._search_full(image, rotations)

    def full_region(self) -> Region | None:
        """What a whole-frame search looks for: any face at first; while faces are followed, faces no smaller than
        ``smallest_share`` of the largest (the smaller ones cannot count), so the finest pyramid levels are skipped."""
        if not self.followed or self.settings.full_every <= 1:
            return None
        largest = max(f.side for f in self.followed)
        return Region(None, largest * self.settings.smallest_share / self.settings.level_range)

    def _search_full(self, image: np.ndarray, rotations: tuple[int, ...]) -> list[Detection]:
        found = self.detector.detect(image, rotations, region=self.full_region())
        self.counts["full"] += 1
        self._since_full = 0
        self._follow(found)
        return found

    def _search_windows(self, image: np.ndarray, rotations: tuple[int, ...]) -> list[Detection] | None:
        """Each followed face found again in its window, or None when one is not (then the caller searches the whole
        frame instead)."""
        found: list[Detection] = []
        with self.detector.same_frame(image):  # one shrunk frame and pyramid for all its faces' windows
            for face in self.followed:
                self.counts["window"] += 1
                det = self._search_window(image, face, rotations)
                if det is None or any(iou(det.box, other.box) > 0.5 for other in found):
                    return None  # lost, or two followed faces converged on one: only the whole frame can tell
                found.append(det)
        self._follow(found)
        found.sort(key=lambda d: d.width * d.height, reverse=True)
        return found

    def _search_window(self, image: np.ndarray, face: Followed, rotations: tuple[int, ...]) -> Detection | None:
        s = self.settings
        predicted = face.predicted()
        h, w = image.shape[:2]
        cx, cy = (predicted[0] + predicted[2]) / 2, (predicted[1] + predicted[3]) / 2
        half = face.side * s.region_margin / 2
        window = np.array([max(0.0, cx - half), max(0.0, cy - half), min(float(w), cx + half),
                           min(float(h), cy + half)], np.float32)
        if window[2] - window[0] < 2 or window[3] - window[1] < 2:
            return None
        region = Region(window, face.side / s.level_range, face.side * s.level_range,
                        seed=predicted if s.refine else None)
        # the whole-frame search's turns, in its order, so a face too unsure upright is judged as it would be there;
        # a refined face only in the turn it was found in (ONet on a handed box is often below the sure confidence,
        # and would send every frame through every turn)
        turns = (face.rotation,) if s.refine else \
            rotations if face.rotation in rotations else (face.rotation, *rotations)
        candidates = self.detector.detect(image, turns, region=region)
        best = max(candidates, key=lambda d: iou(d.box, predicted), default=None)
        if best is None or iou(best.box, predicted) < s.min_iou:
            return None
        # a face reaching out of the window may have proposals outside it that a whole-frame search would weigh
        if np.any(best.box[:2] < window[:2] - 1) or np.any(best.box[2:] > window[2:] + 1):
            return None
        return best

    def _follow(self, found: list[Detection]) -> None:
        """Update the followed faces with a frame's detections (greedy by overlap, as the tracker matches)."""
        pairs = sorted(((max(iou(f.box, d.box), iou(f.predicted(), d.box)), fi, di)
                        for fi, f in enumerate(self.followed) for di, d in enumerate(found)), reverse=True)
        used_f: set[int] = set()
        used_d: set[int] = set()
        for score, fi, di in pairs:
            if score < self.settings.min_iou or fi in used_f or di in used_d:
                continue
            used_f.add(fi)
            used_d.add(di)
            face, det = self.followed[fi], found[di]
            new_centre = (det.box[:2] + det.box[2:]) / 2
            old_centre = (face.box[:2] + face.box[2:]) / 2
            face.motion = ((new_centre - old_centre) / (face.missed + 1)).astype(np.float32)
            face.box, face.rotation = det.box.astype(np.float32).copy(), det.frame_rotation
            face.hits, face.missed = face.hits + 1, 0
        kept = []
        for fi, face in enumerate(self.followed):
            if fi in used_f:
                kept.append(face)
            elif face.hits >= 2 and face.missed < self.settings.keep_missing:
                face.missed += 1  # an established face MTCNN missed once: look for it near where it should be
                kept.append(face)
        kept += [Followed(box=d.box.astype(np.float32).copy(), rotation=d.frame_rotation)
                 for di, d in enumerate(found) if di not in used_d]
        self.followed = kept
