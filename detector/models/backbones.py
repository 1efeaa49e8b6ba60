"""A small registry of image backbones, each one clear interface (timm-style).

A backbone is a function that takes an already *preprocessed* float image tensor and returns a 4-D feature map.
It is built into the caller's graph (not nested as a sub-model) so Grad-CAM can reach its last convolution.
Each entry also names the input scaling it expects; :mod:`detector.models.preprocessing` implements those scalings so
the task model carries its own preprocessing and takes plain uint8 face crops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import keras

from detector.models import nets

#: Builder signature: (preprocessed input tensor, weights) -> feature map tensor. ``weights`` is ``None``
#: (random init), ``"imagenet"`` (the entry's ImageNet weights, offline where a package ships them) or a file path.
BuilderFn = Callable[[keras.KerasTensor, "str | None"], keras.KerasTensor]


@dataclass(frozen=True)
class BackboneSpec:
    """What the registry knows about one backbone family member."""

    name: str
    build: BuilderFn
    #: One of :data:`detector.models.preprocessing.MODES`.
    preprocessing: str
    #: Where ``weights="imagenet"`` comes from, for the model card and error messages.
    imagenet_source: str
    #: Whether ImageNet weights load without a network.
    imagenet_offline: bool
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    #: Layers whose channel statistics the statistics head pools, shallow to deep (see
    #: :class:`detector.models.classifier.DeepfakeClassifier`); empty where none were chosen.
    stat_taps: tuple[str, ...] = field(default_factory=tuple)


_REGISTRY: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    """Add a backbone to the registry (names are unique)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"backbone {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get(name: str) -> BackboneSpec:
    """Look a backbone up by name, with the list of known names in the error."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(available())}") from None


def available() -> list[str]:
    """Names of all registered backbones."""
    return sorted(_REGISTRY)


def _efficientnetv2_b0(x: keras.KerasTensor, weights: str | None) -> keras.KerasTensor:
    """Keras' EfficientNetV2-B0; ImageNet weights need a network (keras downloads them)."""
    net = keras.applications.EfficientNetV2B0(
        include_top=False,
        weights=weights,
        input_tensor=x,
        include_preprocessing=False,
    )
    return net.output


register(
    BackboneSpec(
        name="efficientnetv2-b0",
        build=_efficientnetv2_b0,
        preprocessing="minus1_1",
        imagenet_source="keras.applications download (needs a network)",
        imagenet_offline=False,
        description="EfficientNetV2-B0 (the design card's model), 5.9M parameters",
    )
)


register(
    BackboneSpec(
        name="efficientnet-lite0",
        build=nets.efficientnet_lite0,
        preprocessing=nets.preprocessing("efficientnet-lite0"),
        imagenet_source=f"PyTorch checkpoint in the {nets.LITE0_WEIGHTS.pip_name} package "
                        f"({nets.LITE0_WEIGHTS.install_hint}), read without torch",
        imagenet_offline=True,
        description="EfficientNet-Lite0 (ReLU6, no squeeze-excite), 4.7M parameters, ImageNet top-1 75.1%",
        tags=("mobile", "offline-imagenet"),
        # the last residual output of each stage at strides 4, 8 and 16 (twice), as for MobileNetV2 below
        stat_taps=("lite0_block02_add", "lite0_block04_add", "lite0_block07_add", "lite0_block10_add"),
    )
)

register(
    BackboneSpec(
        name="mobilenetv2",
        build=nets.mobilenet_v2,
        preprocessing=nets.preprocessing("mobilenetv2"),
        imagenet_source=f"torchvision checkpoint in the {nets.MOBILENETV2_WEIGHTS.pip_name} package "
                        f"({nets.MOBILENETV2_WEIGHTS.install_hint}), read without torch",
        imagenet_offline=True,
        description="MobileNetV2 1.0 (torchvision layout), 3.5M parameters, ImageNet top-1 71.9%",
        tags=("mobile", "offline-imagenet"),
        # the outputs of four residual stages at strides 4, 8, 16 and 16 (the last one before the 7x7 stage)
        stat_taps=("mbv2_block03_add", "mbv2_block06_add", "mbv2_block10_add", "mbv2_block13_add"),
    )
)
