"""The task model's builder: uint8-valued RGB face crops -> preprocessing -> backbone -> pooling -> sigmoid.

Free of TensorFlow imports (only Keras, its registered layers and the backbone registry), so the same builder trains
under any Keras backend: TensorFlow here, JAX on a GPU machine that has no TensorFlow (see
:mod:`training.recipe`), and a model trained there loads here for export.
"""

from __future__ import annotations

import keras

from . import backbones, config
from .preprocessing import FacePreprocessor

OUTPUT_NAME = "fake_probability"
INPUT_NAME = "faces"


def build_classifier(backbone: str = config.DEFAULT_BACKBONE, weights: str | None = None,
                     image_size: int = config.IMAGE_SIZE, dropout: float = 0.2) -> keras.Model:
    """The task model: 0-255 RGB crops -> preprocessing -> backbone -> pooling -> dropout -> sigmoid.

    The Keras input is float32 holding 0-255 values (a uint8 cast inside the graph would stop gradients, and Grad-CAM
    needs them); the exported SavedModel signatures take uint8 and cast. Built as one flat functional graph (the
    backbone's layers are not a nested sub-model) so tf-keras-vis can find the last convolution for Grad-CAM.
    """
    spec = backbones.get(backbone)
    inputs = keras.Input((image_size, image_size, 3), dtype="float32", name=INPUT_NAME)
    x = FacePreprocessor(spec.preprocessing, name="preprocess")(inputs)
    features = spec.build(x, weights)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name=f"deepfake_{backbone.replace('-', '_')}")
