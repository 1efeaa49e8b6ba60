"""Grad-CAM explanations: where the model looked when it scored a face crop.

A base class does the plumbing (batching, normalising, overlays, running the library's computation as a
TensorFlow graph where it can); each method is a short subclass around tf-keras-vis, so the variants are
interchangeable and tested together.
"""

from __future__ import annotations

import cv2
import numpy as np

import keras

from detector import config


class CamExplainer:
    """Base class: heatmaps in [0, 1] of shape (N, S, S) for uint8 crops (N, S, S, 3) of a sigmoid model.

    tf-keras-vis runs the model eagerly, layer by layer, forward and back: about 0.6 s for a scan's 4 crops on two
    cores, a fifth of a warm scan. Where a method's computation is all TensorFlow up to the coarse map
    (``compilable``), calls after the first ``eager_calls`` run the library's own call traced once into a graph
    (``tf.function``): the same maps (to 1e-5), about 0.1 s per call, for a trace of about 1.7 s paid once. One file
    never pays the trace; a folder pays it on its second file and gains from its fifth. Each chunk of crops is padded
    to ``batch_size`` so one graph serves every call (a crop's map depends on that crop alone), and the coarse map is
    enlarged to the crop's size as the library enlarges it (``scipy.ndimage.zoom``, linear).
    """

    name = "base"
    #: whether the library's call up to the coarse map is TensorFlow throughout, so it can run as a graph
    compilable = True

    def __init__(self, model: keras.Model, eager_calls: int = config.CAM_EAGER_CALLS):
        self.model = model
        # the model may name the layer to explain from (see DeepfakeClassifier.cam_layer); else the last convolution
        self.layer = getattr(model, "cam_layer", None) or -1
        self.eager_calls = eager_calls
        self.calls = 0
        self._cam = self._make(model)
        self._graph = None

    def _make(self, model: keras.Model):
        raise NotImplementedError

    @staticmethod
    def _score(output):
        """The fake probability is the quantity explained."""
        return output[:, 0]

    @property
    def compiled(self) -> bool:
        """Whether calls now run as a graph."""
        return self._graph is not None

    def heatmaps(self, crops: np.ndarray, batch_size: int = config.GRADCAM_FRAMES) -> np.ndarray:
        crops = np.asarray(crops)
        if self._graph is None and self.compilable and self.calls >= self.eager_calls:
            import tensorflow as tf

            # autograph off: the library's call has no data-dependent Python control flow, and converting it and
            # every Keras layer doubles the trace
            self._graph = tf.function(self._coarse, autograph=False)
        self.calls += 1
        maps = []
        for start in range(0, len(crops), batch_size):
            batch = crops[start:start + batch_size].astype(np.float32)
            if self._graph is None:
                cam = self._library(batch)
            else:
                cam = self._graph_cam(batch, batch_size)
            maps.append(np.asarray(cam, np.float32).reshape(len(batch), *crops.shape[1:3]))
        result = np.concatenate(maps) if maps else np.zeros((0, *crops.shape[1:3]), np.float32)
        return np.stack([_normalise(m) for m in result]) if len(result) else result

    def _library(self, batch, expand_cam: bool = True):
        """The library's own call: the map enlarged to the crop's size, or with ``expand_cam=False`` at the explained
        layer's resolution (what the graph runs)."""
        return self._cam(self._score, batch, penultimate_layer=self.layer, seek_penultimate_conv_layer=True,
                         expand_cam=expand_cam, normalize_cam=False)

    def _coarse(self, batch):
        """The library's map at the explained layer's resolution (traced into the graph)."""
        return self._library(batch, expand_cam=False)

    def _graph_cam(self, batch: np.ndarray, size: int) -> np.ndarray:
        from scipy.ndimage import zoom
        from tf_keras_vis.utils import zoom_factor

        padded = np.zeros((size, *batch.shape[1:]), np.float32)
        padded[:len(batch)] = batch
        cam = np.asarray(self._graph(padded))[:len(batch)]
        return zoom(cam, zoom_factor(cam.shape, batch.shape), order=1)


class GradCam(CamExplainer):
    """Grad-CAM (Selvaraju et al. 2017): last conv activations weighted by their pooled gradients.

    Always eager: the library weighs the activations with numpy, which a graph cannot trace."""

    name = "gradcam"
    compilable = False

    def _make(self, model):
        from tf_keras_vis.gradcam import Gradcam

        return Gradcam(model, clone=False)


class GradCamPlusPlus(CamExplainer):
    """Grad-CAM++ (Chattopadhay et al. 2018): higher-order gradient weights, better with several salient regions."""

    name = "gradcam++"

    def _make(self, model):
        from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus

        return GradcamPlusPlus(model, clone=False)


EXPLAINERS: dict[str, type[CamExplainer]] = {cls.name: cls for cls in (GradCam, GradCamPlusPlus)}


def make_explainer(method: str, model: keras.Model, eager_calls: int = config.CAM_EAGER_CALLS) -> CamExplainer:
    try:
        return EXPLAINERS[method](model, eager_calls=eager_calls)
    except KeyError:
        raise ValueError(f"unknown explanation method {method!r}; known: {', '.join(EXPLAINERS)}") from None


def _normalise(cam: np.ndarray) -> np.ndarray:
    """Scale one map to [0, 1]; an all-flat map (no gradient signal) stays all zeros rather than dividing by 0."""
    cam = np.nan_to_num(cam.astype(np.float32))
    low, high = float(cam.min()), float(cam.max())
    return (cam - low) / (high - low) if high - low > 1e-12 else np.zeros_like(cam)


def overlay(crop: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Jet-coloured heatmap blended over the RGB crop (uint8)."""
    colour = cv2.applyColorMap((np.clip(heatmap, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(crop.astype(np.uint8), 1 - alpha, colour, alpha, 0)


def montage(images: list[np.ndarray], columns: int = 4, pad: int = 4) -> np.ndarray:
    """Tile same-sized RGB images into one grid image (white gaps), for a single-glance summary PNG."""
    if not images:
        raise ValueError("montage needs at least one image")
    h, w = images[0].shape[:2]
    columns = max(1, min(columns, len(images)))
    rows = (len(images) + columns - 1) // columns
    sheet = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 255, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        sheet[y:y + h, x:x + w] = cv2.resize(image, (w, h)) if image.shape[:2] != (h, w) else image
    return sheet
