"""The preprocessing layer that sits inside the task model.

Keeping the scaling inside the exported graph means every client (the scanner, TF Serving, a browser upload) sends
the same thing: uint8 RGB face crops. Nobody has to remember which backbone wants which normalisation.
"""

from __future__ import annotations

import keras
from keras import ops

_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)

#: Scalings a backbone can ask for.
MODES = ("minus1_1", "torch_imagenet", "raw255")


@keras.saving.register_keras_serializable(package="detector")
class FacePreprocessor(keras.layers.Layer):
    """Casts uint8 (or 0-255 float) RGB crops to float32 and scales them as the backbone expects.

    ``minus1_1``: x / 127.5 - 1 (EfficientNet-Lite, EfficientNetV2 without its own rescaling).
    ``torch_imagenet``: (x / 255 - mean) / std with ImageNet statistics (torchvision MobileNetV2).
    ``raw255``: float 0-255 unchanged (backbones that rescale internally).
    """

    def __init__(self, mode: str = "minus1_1", **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"unknown preprocessing mode {mode!r}; known: {', '.join(MODES)}")
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        if self.mode == "minus1_1":
            return x / 127.5 - 1.0
        if self.mode == "torch_imagenet":
            mean = ops.convert_to_tensor(_TORCH_MEAN, "float32")
            std = ops.convert_to_tensor(_TORCH_STD, "float32")
            return (x / 255.0 - mean) / std
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
