"""LRNet (Sun et al., CVPR 2021) in Keras: a bidirectional GRU over a clip's landmark vectors, a residual MLP and a
two-way softmax (index 1 = fake).

Why our own port: the published model is PyTorch, which this project does not depend on; the network is tiny, so
it is rebuilt here layer for layer and its ``.pth`` state dicts are read with :mod:`detector.models.torch_weights`
(no torch, no pickle code run). The port is checked against the published recipe's own scores on fixture clips
(``tests/test_temporal_lrnet.py``).

Two details matter for parity with PyTorch: the GRU's gate order (PyTorch r, z, n; Keras z, r, h) and its reset gate
applied after the recurrent matmul (Keras ``reset_after=True``, PyTorch's only form); and the learnt initial state of
both directions, which :class:`LearnedInitialState` holds as weights and tiles over the batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import keras
import numpy as np

from detector.models.model import TEMPORAL_FEATURES
from detector.models.torch_weights import load_state_dict

#: 68 (x, y) landmarks per frame (the exported signature's width, defined with it).
FEATURES = TEMPORAL_FEATURES


@dataclass(frozen=True)
class LRNetConfig:
    """The published architecture's sizes (their ``args_model.yaml``); dropouts only act in training."""

    features: int = FEATURES
    units: int = 32
    hidden: int = 64
    landmark_dropout: float = 0.1
    dropout: float = 0.5


@keras.saving.register_keras_serializable(package="detector")
class LearnedInitialState(keras.layers.Layer):
    """The GRU's starting state for each direction as trainable weights, repeated for every clip of a batch (PyTorch
    LRNet's ``hidden_state`` parameter); Keras GRUs otherwise start from zeros."""

    def __init__(self, units: int, directions: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.units, self.directions = units, directions

    def build(self, input_shape):
        self.state = self.add_weight(shape=(self.directions, self.units), initializer="random_normal", name="state")

    def call(self, inputs):
        batch = keras.ops.shape(inputs)[0]
        return [keras.ops.broadcast_to(self.state[d][None, :], (batch, self.units)) for d in range(self.directions)]

    def get_config(self):
        return {**super().get_config(), "units": self.units, "directions": self.directions}


@keras.saving.register_keras_serializable(package="detector")
class LandmarkDropout(keras.layers.Layer):
    """Training-time dropout of whole landmarks (both coordinates of a point, the same points in every frame of a
    clip), as LRNet trains; the identity at inference."""

    def __init__(self, rate: float, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.seed = keras.random.SeedGenerator(1)

    def call(self, inputs, training=None):
        if not training or self.rate <= 0:
            return inputs
        points = keras.ops.shape(inputs)[-1] // 2
        keep = keras.random.uniform((keras.ops.shape(inputs)[0], 1, points), seed=self.seed) >= self.rate
        keep = keras.ops.repeat(keras.ops.cast(keep, inputs.dtype), 2, axis=-1)
        return inputs * keep / (1.0 - self.rate)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


def build_lrnet(frames: int | None = None, config: LRNetConfig = LRNetConfig(), name: str = "lrnet") -> keras.Model:
    """One LRNet network: (batch, frames, 136) -> (batch, 2) softmax; ``frames`` None accepts any clip length."""
    inputs = keras.Input((frames, config.features), name="landmarks")
    x = LandmarkDropout(config.landmark_dropout, name="landmark_dropout")(inputs)
    initial = LearnedInitialState(config.units, name="initial_state")(inputs)
    gru = keras.layers.Bidirectional(keras.layers.GRU(config.units, reset_after=True), name="gru")
    x = gru(x, initial_state=initial)
    x = keras.layers.Dropout(config.dropout)(x)
    h = keras.layers.Dense(config.hidden, activation="relu", name="res_in")(x)
    h = keras.layers.Dropout(config.dropout)(h)
    h = keras.layers.Dense(2 * config.units, name="res_out")(h)
    x = keras.layers.Add(name="residual")([x, h])
    x = keras.layers.Dropout(config.dropout)(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name=name)


def _gru_weights(state: dict[str, np.ndarray], suffix: str) -> list[np.ndarray]:
    """PyTorch GRU tensors of one direction -> Keras GRU weights [kernel, recurrent_kernel, bias(2, 3H)]."""

    def reorder(w: np.ndarray) -> np.ndarray:  # rows r, z, n (PyTorch) -> z, r, n (Keras)
        r, z, n = np.split(w, 3, axis=0)
        return np.concatenate([z, r, n], axis=0)

    kernel = reorder(state[f"gru.weight_ih_l0{suffix}"]).T
    recurrent = reorder(state[f"gru.weight_hh_l0{suffix}"]).T
    bias = np.stack([reorder(state[f"gru.bias_ih_l0{suffix}"]), reorder(state[f"gru.bias_hh_l0{suffix}"])])
    return [kernel, recurrent, bias]


def load_published_weights(model: keras.Model, path: str | os.PathLike) -> keras.Model:
    """Set ``model`` (from :func:`build_lrnet`) to a published LRNet ``.pth`` state dict (``g1.pth`` or ``g2.pth``).

    Raises ValueError when the file is not an LRNet state dict of this size."""
    state = load_state_dict(path)
    expected = {"hidden_state", "gru.weight_ih_l0", "dense.1.fn.net.0.weight", "dense.3.weight"}
    if not expected <= set(state):
        raise ValueError(f"{path}: not an LRNet state dict (missing {sorted(expected - set(state))})")
    gru = model.get_layer("gru")
    gru.forward_layer.set_weights(_gru_weights(state, ""))
    gru.backward_layer.set_weights(_gru_weights(state, "_reverse"))
    model.get_layer("initial_state").set_weights([state["hidden_state"][:, 0, :]])
    model.get_layer("res_in").set_weights([state["dense.1.fn.net.0.weight"].T, state["dense.1.fn.net.0.bias"]])
    model.get_layer("res_out").set_weights([state["dense.1.fn.net.3.weight"].T, state["dense.1.fn.net.3.bias"]])
    model.get_layer("head").set_weights([state["dense.3.weight"].T, state["dense.3.bias"]])
    return model
