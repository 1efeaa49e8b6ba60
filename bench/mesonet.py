"""MesoNet (Afchar et al., WIFS 2018) with its published recipe, as a peer to measure against.

The published Keras weights (``../shared/peers/mesonet/``, Apache-2.0) are loaded into the Meso4 network rebuilt here;
faces are found and aligned as the authors' pipeline does: dlib's frontal face detector on the frame at half size,
68 landmarks, a square crop centred on the nose whose side is the larger of the eye distance and the eyes-to-mouth
distance times 2.2 x 1.3, turned so the eyes-mouth axis is upright, resized to 256 x 256 and scaled to [0, 1].
The network outputs the probability of *real*; a frame's fake score is one minus it, a video's the mean over 32
evenly spaced frames.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import keras
import numpy as np

from detector.ingest import video
from detector.temporal.landmarks import ShapePredictor

SIZE = 256
FRAMES = 32


def build_meso4() -> keras.Model:
    """Meso4: four convolution blocks (8, 8, 16, 16 filters) and a 16-unit dense layer, sigmoid output."""
    x = inputs = keras.Input((SIZE, SIZE, 3))
    for filters, kernel, pool in ((8, 3, 2), (8, 5, 2), (16, 5, 2), (16, 5, 4)):
        x = keras.layers.Conv2D(filters, kernel, padding="same", activation="relu")(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.MaxPooling2D(pool, padding="same")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.5)(x)
    x = keras.layers.Dense(16)(x)
    x = keras.layers.LeakyReLU(negative_slope=0.1)(x)
    x = keras.layers.Dropout(0.5)(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x), name="meso4")


class MesoNet:
    """Meso4 with published weights (default ``Meso4_DF.h5``) and the published face alignment."""

    def __init__(self, weights: str | os.PathLike, predictor: ShapePredictor | None = None):
        import dlib

        self.model = build_meso4()
        self.model.load_weights(str(weights))
        self.predictor = predictor or ShapePredictor()
        self.detector = dlib.get_frontal_face_detector()
        self.name = Path(weights).stem

    def face(self, image: np.ndarray) -> np.ndarray | None:
        """The aligned 256 x 256 crop of the largest face dlib finds, or None."""
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        half = cv2.resize(grey, (grey.shape[1] // 2, grey.shape[0] // 2), interpolation=cv2.INTER_AREA)
        rects = self.detector(half, 0)
        if not rects:
            return None
        rect = max(rects, key=lambda r: r.width() * r.height())
        box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], np.float64) * 2
        points = self.predictor.predict(grey, box)
        eyes = (points[36:42].mean(axis=0) + points[42:48].mean(axis=0)) / 2
        mouth = points[48:68].mean(axis=0)
        nose = points[30]
        eye_distance = float(np.linalg.norm(points[36:42].mean(axis=0) - points[42:48].mean(axis=0)))
        side = max(eye_distance, float(np.linalg.norm(mouth - eyes))) * 2.2 * 1.3
        axis = mouth - eyes
        angle = np.degrees(np.arctan2(axis[0], axis[1]))  # 0 when the mouth is straight below the eyes
        turn = cv2.getRotationMatrix2D((float(nose[0]), float(nose[1])), -angle, SIZE / side)
        turn[:, 2] += np.array([SIZE / 2, SIZE / 2]) - nose
        return cv2.warpAffine(image, turn, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def score_file(self, path: str | os.PathLike, frames: int = FRAMES) -> float | None:
        """Mean fake score over ``frames`` evenly spaced frames with a face (a still is one frame); None when dlib
        finds no face in any."""
        info = video.probe(path)
        crops = [c for c in (self.face(f.image) for f in video.iter_frames(info, frames)) if c is not None]
        if not crops:
            return None
        real = self.model.predict(np.stack(crops).astype(np.float32) / 255.0, verbose=0).reshape(-1)
        return float(np.mean(1.0 - real))
