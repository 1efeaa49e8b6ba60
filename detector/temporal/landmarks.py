"""68 facial landmarks on every frame of a window, smoothed over time and normalised per face: LRNet's input.

The points come from dlib's 68-point shape predictor placed on the face box the scanner already follows (no face
search per frame: the box of a frame between two sampled frames is interpolated, then each frame's box is taken from
the previous frame's points). The predictor's file ships in Debian's ``libdlib-data`` or PyPI's
``face-recognition-models``; nothing is downloaded at run time.

Landmarks detected frame by frame jitter by a pixel or two, which a motion model reads as motion. So they are
smoothed the way the published LRNet recipe does ("calibration"): each face is cut out square at a size fixed for the
window and resized to 400 x 400; each point is followed from frame to frame by pyramidal Lucas-Kanade optical flow,
checked by tracking it back, and merged with its detection by a per-point Kalman filter. The result is normalised to
[-1, 1] around the crop's centre: 136 numbers per frame.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import cv2
import numpy as np

from detector.errors import DetectorError

PREDICTOR_NAME = "shape_predictor_68_face_landmarks.dat"
#: Where Debian's libdlib-data installs the predictor.
DEBIAN_PREDICTOR = Path("/usr/share/dlib") / PREDICTOR_NAME
#: Side of the normalised face the points are tracked and expressed in (LRNet's recipe).
NORMALISED_SIDE = 400
#: The square face cut-out is this many times the landmarks' extent.
FACE_SCALE = 1.2
#: The crop's centre stays put while the face centre moves less than this many pixels (stops a one-pixel jitter).
CENTRE_HOLD_PX = 1.42
#: A frame's points are replaced by the previous frame's when the face jumps this far (share of its size) or its
#: size changes by more than this factor (a landmark fit that slipped to the background or another face).
MAX_JUMP = 0.5
MAX_RESIZE = 1.3
#: Lucas-Kanade settings of the recipe, and the largest forward-backward disagreement (pixels) a tracked point may
#: have to be merged with its detection.
LK_PARAMS = dict(winSize=(15, 15), maxLevel=3, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03))
MAX_FEEDBACK_PX = 2.0
#: Process variance of the per-point Kalman filter.
KALMAN_Q = 0.3


class LandmarksUnavailable(DetectorError):
    """No landmark model is installed: the temporal evidence is off (the frame evidence still runs)."""


def find_predictor(explicit: str | os.PathLike | None = None) -> Path | None:
    """The 68-point model file: an explicit path, $DETECTOR_DLIB_PREDICTOR, Debian's copy, or the PyPI package's."""
    candidates = [explicit, os.environ.get("DETECTOR_DLIB_PREDICTOR"), DEBIAN_PREDICTOR]
    spec = importlib.util.find_spec("face_recognition_models")  # its import needs pkg_resources: only locate it
    if spec and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "models" / PREDICTOR_NAME)
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


class ShapePredictor:
    """dlib's 68-point predictor, placed on a face box we already have (dlib's own detector is not run)."""

    def __init__(self, path: str | os.PathLike | None = None):
        try:
            import dlib
        except ImportError:
            raise LandmarksUnavailable("dlib is not installed (pip install dlib-bin): no temporal evidence") from None
        found = find_predictor(path)
        if found is None:
            raise LandmarksUnavailable(f"{PREDICTOR_NAME} not found (apt-get install libdlib-data, or set "
                                       "DETECTOR_DLIB_PREDICTOR): no temporal evidence")
        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(found))
        self.path = found

    def predict(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """68 (x, y) points for the face in ``box`` (x1, y1, x2, y2) of ``image`` (grey or RGB uint8)."""
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        shape = self._predictor(np.ascontiguousarray(image), self._dlib.rectangle(x1, y1, x2, y2))
        return np.array([(p.x, p.y) for p in shape.parts()], np.float32)

    def fit(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Points for a box of another detector's convention: fitted once on it, then again on the square box around
        the first fit's points, the framing dlib's predictor was trained on."""
        return self.predict(image, points_box(self.predict(image, box)))


def points_box(points: np.ndarray) -> np.ndarray:
    """dlib's face-box framing of a set of 68 points: the square around their extent, centred on it."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre, side = (lo + hi) / 2, float(max(hi - lo)) * 1.05
    return np.array([centre[0] - side / 2, centre[1] - side / 2, centre[0] + side / 2, centre[1] + side / 2])


def follow(predictor: ShapePredictor, frames: list[np.ndarray], boxes: np.ndarray) -> np.ndarray:
    """(T, 68, 2) points for a face seen in ``frames`` (grey) with interpolated ``boxes`` (T, 4). The first frame is
    fitted on its box; each later one on the previous frame's points moved as the box moved. A fit that jumps away or
    changes size abruptly is replaced by the previous frame's points."""
    shapes: list[np.ndarray] = []
    for k, frame in enumerate(frames):
        if not shapes:
            shape = predictor.fit(frame, boxes[k])
        else:
            shift = (boxes[k, :2] + boxes[k, 2:]) / 2 - (boxes[k - 1, :2] + boxes[k - 1, 2:]) / 2
            shape = predictor.predict(frame, points_box(shapes[-1] + shift))
            prev_size, size = _extent(shapes[-1]), _extent(shape)
            jump = float(np.linalg.norm(shape.mean(axis=0) - shapes[-1].mean(axis=0)))
            if jump > MAX_JUMP * prev_size or not prev_size / MAX_RESIZE <= size <= prev_size * MAX_RESIZE:
                shape = shapes[-1]
        shapes.append(shape)
    return np.stack(shapes)


def _extent(points: np.ndarray) -> float:
    return float(max(points.max(axis=0) - points.min(axis=0)))


def normalised_faces(frames: list[np.ndarray], shapes: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Cut each frame's face out square, at one size for the whole window (the mean landmark extent times
    ``FACE_SCALE``), centred on its points unless the centre moved less than ``CENTRE_HOLD_PX``; resize to
    ``NORMALISED_SIDE``. Returns the grey faces and the points in their pixels (rounded, as the recipe does)."""
    height, width = frames[0].shape[:2]
    stable = int(np.rint(np.mean([_extent(s) for s in shapes])))
    faces, points = [], []
    centre_prev = None
    for frame, shape in zip(frames, shapes):
        lo, hi = shape.min(axis=0), shape.max(axis=0)
        centre = np.floor((lo + hi) / 2)
        if centre_prev is not None and np.linalg.norm(centre - centre_prev) < CENTRE_HOLD_PX:
            centre = centre_prev
        centre_prev = centre
        side = int(stable * FACE_SCALE) // 2 * 2
        side = max(2, min(side, width, height))
        # inside the frame even when the face runs off its edge (the points may then lie outside the crop)
        x1 = min(max(int(centre[0]) - side // 2, 0), width - side)
        y1 = min(max(int(centre[1]) - side // 2, 0), height - side)
        face = frame[y1:y1 + side, x1:x1 + side]
        interpolation = cv2.INTER_CUBIC if side < NORMALISED_SIDE else cv2.INTER_AREA
        faces.append(cv2.resize(face, (NORMALISED_SIDE, NORMALISED_SIDE), interpolation=interpolation))
        points.append(np.rint((shape - [x1, y1]) * (NORMALISED_SIDE / side)))
    return faces, np.stack(points).astype(np.float32)


def calibrate(faces: list[np.ndarray], points: np.ndarray) -> np.ndarray:
    """Smooth detected points over time: track each point forward by Lucas-Kanade (seeded with its next detection),
    track it back, and where both directions agree within ``MAX_FEEDBACK_PX`` merge track and detection by a
    per-point Kalman gain (the detection counts for less when it moved much more than the tracked point did)."""
    tracked = [points[0].copy()]
    variance = np.zeros(len(points[0]), np.float64)
    for k in range(len(faces) - 1):
        start = tracked[k].astype(np.float32)
        target = points[k + 1].astype(np.float32)
        forward, ok_fw, _ = cv2.calcOpticalFlowPyrLK(faces[k], faces[k + 1], start, target.copy(), **LK_PARAMS,
                                                     flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
        back, ok_fb, _ = cv2.calcOpticalFlowPyrLK(faces[k + 1], faces[k], forward, start.copy(), **LK_PARAMS,
                                                  flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
        forward, back, base = np.rint(forward), np.rint(back), np.rint(start)
        good = ((np.linalg.norm(back - base, axis=1) <= MAX_FEEDBACK_PX)
                & (ok_fw.ravel() == 1) & (ok_fb.ravel() == 1))
        detect_step = np.linalg.norm(points[k + 1] - points[k], axis=1)
        track_step = np.linalg.norm(forward - base, axis=1)
        track_step[track_step == 0] = 1.0
        detect_variance = detect_step / track_step
        merged = target.copy()
        variance = np.where(good, variance + KALMAN_Q, variance)
        gain = np.where(good, variance / np.maximum(variance + detect_variance, 1e-12), 0.0)
        merged[good] = forward[good] + gain[good, None] * (target[good] - forward[good])
        variance = np.where(good, (1 - gain) * variance, variance)
        tracked.append(merged)
    return np.stack(tracked)


def normalise(points: np.ndarray) -> np.ndarray:
    """(T, 68, 2) points in normalised-face pixels -> (T, 136) in [-1, 1] around the face's centre."""
    half = NORMALISED_SIDE // 2
    return ((points - half) / half).reshape(len(points), -1).astype(np.float32)


def window_sequence(predictor: ShapePredictor, frames: list[np.ndarray], boxes: np.ndarray) -> np.ndarray:
    """The whole recipe for one window: grey frames and interpolated face boxes -> (T, 136) LRNet input."""
    shapes = follow(predictor, frames, boxes)
    faces, points = normalised_faces(frames, shapes)
    return normalise(calibrate(faces, points))
