"""The task model: uint8-valued RGB face crops -> preprocessor -> backbone -> head (pooling, dropout, sigmoid).

An object in the spirit of keras-hub's ``ImageClassifier``: a :class:`keras.Model` whose parts are attributes
(``preprocessor``, ``backbone``, ``pooler``, ``head_dropout``, ``head``), so training says ``freeze_backbone()``
instead of freezing layers by name. Unlike keras-hub the backbone is not a nested sub-model: its layers sit in one
flat functional graph, because tf-keras-vis finds the last convolution for Grad-CAM only there. The saved weights are
laid out exactly as those of the plain functional model this class replaced, so models exported before it load
into it and the other way round.

Free of TensorFlow imports (only Keras, its registered layers and the backbone registry), so the same builder trains
under any Keras backend: TensorFlow here, JAX on a GPU machine that has no TensorFlow (see
:mod:`training.recipe`), and a model trained there loads here for export. Importing this module registers the class,
which loading a saved task model needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from . import backbones, config
from .preprocessing import FacePreprocessor
from .scoring import INPUT_NAME, OUTPUT_NAME


@dataclass(frozen=True)
class BackboneLayers:
    """The backbone's share of the flat graph: its registry entry and its layers in graph order."""

    spec: backbones.BackboneSpec
    layers: tuple[keras.layers.Layer, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def output(self) -> keras.KerasTensor:
        """The feature map the head pools."""
        return self.layers[-1].output


@keras.saving.register_keras_serializable(package="detector")
class DeepfakeClassifier(keras.Model):
    """The task model: 0-255 RGB crops -> preprocessing -> backbone -> pooling -> dropout -> sigmoid.

    The Keras input is float32 holding 0-255 values (a uint8 cast inside the graph would stop gradients, and Grad-CAM
    needs them); the exported SavedModel signatures take uint8 and cast. ``weights`` (``None``, ``"imagenet"`` or a
    file, see :mod:`detector.backbones`) only initialises the backbone and is not part of the saved config: a saved
    model brings its own weights.
    """

    def __init__(self, backbone: str = config.DEFAULT_BACKBONE, image_size: int = config.IMAGE_SIZE,
                 dropout: float = 0.2, weights: str | None = None, **kwargs):
        spec = backbones.get(backbone)
        inputs = keras.Input((image_size, image_size, 3), dtype="float32", name=INPUT_NAME)
        preprocessor = FacePreprocessor(spec.preprocessing, name="preprocess")
        features = spec.build(preprocessor(inputs), weights)
        pooler = keras.layers.GlobalAveragePooling2D(name="pool")
        head_dropout = keras.layers.Dropout(dropout, name="head_dropout")
        head = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_NAME)
        outputs = head(head_dropout(pooler(features)))
        kwargs.setdefault("name", f"deepfake_{backbone.replace('-', '_')}")
        super().__init__(inputs, outputs, **kwargs)
        self.image_size = image_size
        self.dropout_rate = dropout
        self.preprocessor = preprocessor
        self.pooler = pooler
        self.head_dropout = head_dropout
        self.head = head
        own = {id(preprocessor), id(pooler), id(head_dropout), id(head)}
        self.backbone = BackboneLayers(spec, tuple(
            layer for layer in self.layers if id(layer) not in own and not isinstance(layer, keras.layers.InputLayer)))

    def freeze_backbone(self, frozen: bool = True) -> None:
        """Fix (or free again) the preprocessor and backbone weights, BatchNorm statistics included: only the head
        learns, e.g. a linear probe on pretrained features before fine-tuning everything."""
        for layer in (self.preprocessor, *self.backbone.layers):
            layer.trainable = not frozen

    def embedder(self) -> keras.Model:
        """Crops -> pooled backbone features (what the head sees), sharing this model's layers and weights."""
        return keras.Model(self.input, self.pooler.output, name=f"{self.name}_features")

    def get_config(self) -> dict:
        return {"backbone": self.backbone.name, "image_size": self.image_size, "dropout": self.dropout_rate,
                "name": self.name, "trainable": self.trainable}


def build_classifier(backbone: str = config.DEFAULT_BACKBONE, weights: str | None = None,
                     image_size: int = config.IMAGE_SIZE, dropout: float = 0.2) -> DeepfakeClassifier:
    """The task model with the backbone's weights initialised from ``weights`` (see :class:`DeepfakeClassifier`)."""
    return DeepfakeClassifier(backbone, image_size=image_size, dropout=dropout, weights=weights)
