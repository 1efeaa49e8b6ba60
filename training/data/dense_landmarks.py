"""Dense face landmarks for the self-blend mask: dlib's 68-point shape predictor, or MTCNN's five points as fallback.

68 points follow the real jaw line, so the blend boundary sits where a face swap's would; five points only allow an
ellipse. The predictor is dlib's (``dlib-bin`` wheel) with the model file Debian's ``libdlib-data`` or PyPI's
``face-recognition-models`` ships; nothing is downloaded at run time.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from detector.temporal.landmarks import DEBIAN_PREDICTOR, PREDICTOR_NAME, find_predictor  # noqa: F401  (one home)

log = logging.getLogger(__name__)

class FivePointLandmarks:
    """MTCNN's five keypoints, returned as they are (the blend code fits an ellipse around them)."""

    name = "five"

    def predict(self, image: np.ndarray, box: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        return np.asarray(keypoints, np.float32).reshape(-1, 2)


class DlibLandmarks:
    """dlib's 68-point predictor, seeded with the face box we already have (dlib's own detector is not run)."""

    name = "dlib68"

    def __init__(self, predictor_path: str | os.PathLike | None = None):
        import dlib

        path = find_predictor(predictor_path)
        if path is None:
            raise FileNotFoundError(f"{PREDICTOR_NAME} not found (apt-get install libdlib-data, or set "
                                    "DETECTOR_DLIB_PREDICTOR)")
        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(path))

    def predict(self, image: np.ndarray, box: np.ndarray, keypoints: np.ndarray | None = None) -> np.ndarray:
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        shape = self._predictor(np.ascontiguousarray(image), self._dlib.rectangle(x1, y1, x2, y2))
        return np.array([(p.x, p.y) for p in shape.parts()], np.float32)


def load_landmark_model(prefer: str = "dlib"):
    """dlib's 68 points when available, else five points with a warning (training still works, masks are coarser)."""
    if prefer == "dlib":
        try:
            return DlibLandmarks()
        except (ImportError, FileNotFoundError) as exc:
            log.warning("dense landmarks unavailable (%s); falling back to MTCNN's five points", exc)
    return FivePointLandmarks()
