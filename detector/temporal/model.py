"""The temporal task model: one Keras model from a window's landmark sequence to its fake probability.

It joins LRNet's two networks the way the published recipe scores a clip: ``g1`` reads the positions, ``g2`` the
frame-to-frame differences (computed inside the model, so a server is sent positions only), and the clip's score is
the mean of their two fake probabilities. This joined model is what is saved beside the frame model
(``temporal.keras``) and exported as the SavedModel's ``temporal`` signature.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np

from detector.models.model import TEMPORAL_FILE as FILE_NAME
from detector.temporal.lrnet import FEATURES, build_lrnet, load_published_weights

#: The published LRNet weights (FaceForensics++, MIT licence beside them) that ship with the package.
PUBLISHED_DIR = Path(__file__).resolve().parent / "published"


@keras.saving.register_keras_serializable(package="detector")
class FrameDifferences(keras.layers.Layer):
    """(batch, T, F) positions -> (batch, T-1, F) frame-to-frame differences (LRNet's ``g2`` input)."""

    def call(self, inputs):
        return inputs[:, 1:] - inputs[:, :-1]


def join(g1: keras.Model, g2: keras.Model, name: str = "temporal") -> keras.Model:
    """(batch, T, 136) landmark sequences -> (batch,) fake probability: the mean of g1 on positions and g2 on
    differences."""
    inputs = keras.Input((None, FEATURES), name="landmarks")
    p1 = g1(inputs)[:, 1]
    p2 = g2(FrameDifferences(name="differences")(inputs))[:, 1]
    return keras.Model(inputs, (p1 + p2) / 2.0, name=name)


def published_model(folder: str | os.PathLike = PUBLISHED_DIR) -> keras.Model:
    """The joined model with the published FaceForensics++ weights (``lrnet_ffpp_g1.pth`` / ``_g2.pth``)."""
    folder = Path(folder)
    g1 = load_published_weights(build_lrnet(name="g1"), folder / "lrnet_ffpp_g1.pth")
    g2 = load_published_weights(build_lrnet(name="g2"), folder / "lrnet_ffpp_g2.pth")
    return join(g1, g2)


class TemporalModel:
    """A loaded temporal model: scores landmark sequences in one batch."""

    def __init__(self, model: keras.Model, source: str = "in-memory"):
        self.model = model
        self.source = source

    def predict(self, sequences: np.ndarray) -> np.ndarray:
        """(N, T, 136) float sequences -> (N,) fake probabilities."""
        sequences = np.asarray(sequences, np.float32)
        if sequences.ndim != 3 or sequences.shape[-1] != FEATURES:
            raise ValueError(f"expected landmark sequences (N, T, {FEATURES}), got {sequences.shape}")
        if len(sequences) == 0:
            return np.zeros((0,), np.float32)
        return np.asarray(self.model(sequences, training=False), np.float32).reshape(-1)

    def save(self, folder: str | os.PathLike) -> Path:
        path = Path(folder) / FILE_NAME
        self.model.save(path)
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "TemporalModel | None":
        """The model saved in ``folder`` (``temporal.keras``), or None when the folder has none."""
        path = Path(folder) / FILE_NAME
        if not path.is_file():
            return None
        return cls(keras.saving.load_model(path, compile=False), source=str(path))
