"""The task model: uint8-valued RGB face crops -> preprocessor -> backbone -> head (pooling, dropout, sigmoid).

The class builds one of three heads. The classic one pools the backbone's last feature map. The statistics head
(``taps``) pools the mean and standard deviation of each channel of a few intermediate feature maps instead (texture
statistics at several scales), and the backbone stops at the deepest of them. Evidence of manipulation is local
(blending seams, generator texture, resampling), while the last map mostly encodes what the picture shows, and a
head on content learns the training set's footage rather than its fakes (see :mod:`training.stats_head`). With
``keep_top`` both heads run on one backbone pass and the output adds them. With ``stats_heads`` above one, the
statistics head is that many linear units, one per kind of fake, and the most suspicious of them speaks for it.

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
from keras import ops

from detector.models import backbones
from detector import config
from detector.models.preprocessing import FacePreprocessor
from detector.models.scoring import INPUT_NAME, OUTPUT_NAME


@keras.saving.register_keras_serializable(package="detector")
class ChannelStatistics(keras.layers.Layer):
    """(N, H, W, C) -> (N, 2C): each channel's mean over the map, then its standard deviation.

    The spread is sqrt(E[x^2] - E[x]^2 + 1e-6): one pass over the map, clamped against rounding below zero, and the
    small constant keeps the gradient finite for a channel that is constant (ReLU6 maps often are), which Grad-CAM's
    gradients pass through."""

    def call(self, x):
        mean = ops.mean(x, axis=(1, 2))
        std = ops.sqrt(ops.maximum(ops.mean(ops.square(x), axis=(1, 2)) - ops.square(mean), 0.0) + 1e-6)
        return ops.concatenate([mean, std], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * input_shape[-1])


@keras.saving.register_keras_serializable(package="detector")
class MostSuspicious(keras.layers.Layer):
    """(N, K) -> (N, 1): the largest of K logits. Each unit before it is a statistics head fitted on one kind of fake
    (face swaps, generated faces) and standardised on real crops, so the largest is the kind of evidence this crop
    shows most: one linear head fitted on every kind at once has to settle on one direction between them (see
    :mod:`training.stats_head`)."""

    def call(self, x):
        return ops.max(x, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)


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
    file, see :mod:`detector.models.backbones`) only initialises the backbone and is not part of the saved config: a
    saved model brings its own weights.

    The head, by ``taps`` and ``keep_top``:

    - no taps: the classic head, average pooling of the last feature map (``pool``) and a sigmoid unit;
    - taps: the statistics head, :class:`ChannelStatistics` of each tapped layer concatenated (``stats_pool``) and a
      sigmoid unit; the backbone ends at the deepest tap;
    - taps and ``keep_top``: both, each a linear unit (``top_head``, ``stats_head``), and a sigmoid unit
      (the output) that weighs their two logits: an ensemble of two heads on one backbone pass;
    - ``stats_heads`` K > 1 (with taps and ``keep_top``): ``stats_head`` has K linear units, one per kind of fake,
      and :class:`MostSuspicious` (``stats_max``) passes the largest on as the statistics head's logit.
    """

    def __init__(self, backbone: str = config.DEFAULT_BACKBONE, image_size: int = config.IMAGE_SIZE,
                 dropout: float = 0.2, weights: str | None = None, taps: tuple[str, ...] | list[str] = (),
                 keep_top: bool = False, stats_heads: int = 1, **kwargs):
        spec = backbones.get(backbone)
        taps = tuple(taps)
        if keep_top and not taps:
            raise ValueError("keep_top combines the classic head with a statistics head: give taps")
        if stats_heads < 1:
            raise ValueError(f"stats_heads is a count of statistics heads, at least 1, not {stats_heads}")
        if stats_heads > 1 and not keep_top:
            raise ValueError("stats_heads above 1 needs taps and keep_top (the kinds' heads feed the output unit)")
        inputs = keras.Input((image_size, image_size, 3), dtype="float32", name=INPUT_NAME)
        preprocessor = FacePreprocessor(spec.preprocessing, name="preprocess")
        features = spec.build(preprocessor(inputs), weights)
        own: list[keras.layers.Layer] = [preprocessor]
        head_dropout = keras.layers.Dropout(dropout, name="head_dropout")
        logits = []
        if not taps or keep_top:
            pooler = keras.layers.GlobalAveragePooling2D(name="pool")
            top = keras.layers.Dense(1, activation=None if taps else "sigmoid",
                                     name="top_head" if taps else OUTPUT_NAME)
            logits.append(top(head_dropout(pooler(features))))
            own += [pooler, top]
        if taps:
            whole = keras.Model(inputs, features)  # only to find the tapped layers' outputs in this graph
            names = {layer.name for layer in whole.layers}
            missing = [t for t in taps if t not in names]
            if missing:
                raise ValueError(f"{backbone} has no layer {', '.join(missing)} to tap")
            statistics = [ChannelStatistics(name=f"{t}_stats") for t in taps]
            stats_pooler = keras.layers.Concatenate(name="stats_pool")
            pooled = stats_pooler([stat(whole.get_layer(t).output) for stat, t in zip(statistics, taps)])
            stats = keras.layers.Dense(stats_heads, activation=None if keep_top else "sigmoid",
                                       name="stats_head" if keep_top else OUTPUT_NAME)
            logit = stats(pooled if keep_top else head_dropout(pooled))
            own += [*statistics, stats_pooler, stats]
            if stats_heads > 1:
                most = MostSuspicious(name="stats_max")
                logit = most(logit)
                own.append(most)
            logits.append(logit)
            if not keep_top:
                pooler = stats_pooler
        if keep_top:
            joined = keras.layers.Concatenate(name="head_logits")
            mix = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_NAME)
            outputs = mix(joined(logits))
            own += [joined, mix]
        else:
            outputs = logits[0]
        kwargs.setdefault("name", f"deepfake_{backbone.replace('-', '_')}")
        super().__init__(inputs, outputs, **kwargs)
        self.image_size = image_size
        self.dropout_rate = dropout
        self.taps = taps
        self.keep_top = keep_top
        self.stats_heads = stats_heads
        self.preprocessor = preprocessor
        self.pooler = pooler
        self.head_dropout = head_dropout
        self.head = self.get_layer(OUTPUT_NAME)
        ids = {id(layer) for layer in [*own, head_dropout]}
        self.backbone = BackboneLayers(spec, tuple(
            layer for layer in self.layers if id(layer) not in ids and not isinstance(layer, keras.layers.InputLayer)))

    @property
    def cam_layer(self) -> str | None:
        """Where Grad-CAM looks (the last convolution at or before this layer), when not simply at the last
        convolution: with two heads, at the deepest tap, the last layer both heads' evidence flows through."""
        return self.taps[-1] if self.keep_top else None

    def freeze_backbone(self, frozen: bool = True) -> None:
        """Fix (or free again) the preprocessor and backbone weights, BatchNorm statistics included: only the head
        learns, e.g. a linear probe on pretrained features before fine-tuning everything."""
        for layer in (self.preprocessor, *self.backbone.layers):
            layer.trainable = not frozen

    def embedder(self) -> keras.Model:
        """Crops -> pooled backbone features (what the head sees), sharing this model's layers and weights."""
        return keras.Model(self.input, self.pooler.output, name=f"{self.name}_features")

    def get_config(self) -> dict:
        config_ = {"backbone": self.backbone.name, "image_size": self.image_size, "dropout": self.dropout_rate,
                   "name": self.name, "trainable": self.trainable}
        if self.taps:
            config_["taps"] = list(self.taps)
        if self.keep_top:
            config_["keep_top"] = True
        if self.stats_heads > 1:
            config_["stats_heads"] = self.stats_heads
        return config_


def build_classifier(backbone: str = config.DEFAULT_BACKBONE, weights: str | None = None,
                     image_size: int = config.IMAGE_SIZE, dropout: float = 0.2,
                     taps: tuple[str, ...] = (), keep_top: bool = False,
                     stats_heads: int = 1) -> DeepfakeClassifier:
    """The task model with the backbone's weights initialised from ``weights`` (see :class:`DeepfakeClassifier`)."""
    return DeepfakeClassifier(backbone, image_size=image_size, dropout=dropout, weights=weights, taps=taps,
                              keep_top=keep_top, stats_heads=stats_heads)
