"""The loaded task model (:class:`Detector`), export in TF Serving's layout, and loading every form back.

The network itself is :class:`detector.models.classifier.DeepfakeClassifier` (preprocessor, backbone and head as
attributes); its card is :class:`detector.models.scoring.ModelCard`. The model takes uint8 RGB face crops ``[N, 224,
224, 3]`` and returns fake probabilities, so the scanner, TF Serving and any other client send the same thing.

On disk a model is a folder in TF Serving's layout::

    saved_model/deepfake/<version>/  SavedModel (signatures serving_default and serving_jpeg)
    saved_model/deepfake/model.keras the same weights for Keras (Grad-CAM needs a Keras model)
    saved_model/deepfake/card.json   the model card: backbone, threshold, training recipe, measured metrics
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from detector import config
from detector.models.classifier import DeepfakeClassifier, build_classifier  # noqa: F401  (re-exported; registers the class)
from detector.errors import ModelError
from detector.models.preprocessing import FacePreprocessor  # noqa: F401  (registers the layer for loading)
from detector.models.scoring import INPUT_NAME, JPEG_INPUT_NAME, OUTPUT_NAME, ModelCard


def fingerprint_files(path: Path) -> str:
    """sha256 of a model file, or of a SavedModel folder's files (their relative names and contents, in name order).

    What a stored result is keyed by: a model retrained in place is never taken for the old one, and a checkout that
    moved, or another machine, still finds its results."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode() if file != path else b"")
        with file.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()[:16]}"


class Detector:
    """A loaded model (a :class:`detector.models.scoring.Scorer`): scores crops in batches, and exposes the Keras model
    for Grad-CAM when there is one. ``origin`` is the file or folder it was loaded from, if any."""

    def __init__(self, card: ModelCard, keras_model: keras.Model | None = None, signature=None,
                 source: str = "in-memory", origin: Path | None = None):
        if keras_model is None and signature is None:
            raise ValueError("a Detector needs a Keras model or a SavedModel signature")
        self.card = card
        self.keras_model = keras_model
        self._signature = signature
        self.source = source
        self.origin = origin
        self._predict_fn = None
        self._fingerprint: str | None = None

    @property
    def image_size(self) -> int:
        return self.card.image_size

    @property
    def fingerprint(self) -> str:
        """Hash of the files the model was loaded from, or of its weights when it was built in memory."""
        if self._fingerprint is None:
            if self.origin is not None:
                self._fingerprint = fingerprint_files(self.origin)
            else:
                digest = hashlib.sha256()
                for weights in self.keras_model.get_weights():
                    digest.update(np.ascontiguousarray(weights).tobytes())
                self._fingerprint = f"sha256:{digest.hexdigest()[:16]}"
        return self._fingerprint

    def predict(self, crops: np.ndarray, batch_size: int = config.BATCH_SIZE) -> np.ndarray:
        """Fake probabilities (N,) for uint8 crops (N, S, S, 3)."""
        crops = np.asarray(crops, np.uint8)
        if crops.ndim != 4 or crops.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(f"expected crops of shape (N, {self.image_size}, {self.image_size}, 3), "
                             f"got {crops.shape}")
        if len(crops) == 0:
            return np.zeros((0,), np.float32)
        out = []
        for start in range(0, len(crops), batch_size):
            batch = tf.constant(crops[start:start + batch_size])
            if self.keras_model is not None:
                batch = tf.cast(batch, tf.float32)
            out.append(self._run(batch))
        return np.concatenate(out).astype(np.float32)

    def _run(self, batch: tf.Tensor) -> np.ndarray:
        if self.keras_model is not None:
            if self._predict_fn is None:
                model = self.keras_model
                # one graph for every batch size: traced once, where a shape-keyed function traced the first batch
                # (say 8 crops), then again for the next size (the last, smaller batch), about 0.5 s each
                size = self.image_size
                self._predict_fn = tf.function(lambda x: model(x, training=False), input_signature=[
                    tf.TensorSpec((None, size, size, 3), tf.float32)])
            return np.asarray(self._predict_fn(batch)).reshape(-1)
        result = self._signature(**{INPUT_NAME: batch})
        return np.asarray(result[OUTPUT_NAME]).reshape(-1)


#: The SavedModel signature for landmark sequences, its input's name and width (68 points x (x, y)).
TEMPORAL_SIGNATURE = "temporal"
TEMPORAL_INPUT_NAME = "landmarks"
TEMPORAL_FEATURES = 136
#: The temporal model's Keras file beside ``model.keras`` (the scanner loads it from the model folder).
TEMPORAL_FILE = "temporal.keras"


def export_model(model: keras.Model, card: ModelCard, root: str | os.PathLike,
                 temporal: keras.Model | None = None) -> Path:
    """Write the TF Serving layout under ``root``: ``<version>/`` SavedModel, ``model.keras`` and ``card.json``.

    ``serving_default`` takes uint8 crops; ``serving_jpeg`` takes JPEG-encoded crops as strings (its input name ends in
    ``_bytes`` so TF Serving's REST API accepts ``{"b64": ...}`` values) and resizes them in the graph. With a
    ``temporal`` model (:mod:`detector.temporal.model`), the same SavedModel also gets a ``temporal`` signature:
    ``landmarks`` (float32, clips x frames x 136, normalised as the scanner reads them) to each clip's
    ``fake_probability``, so one TF Serving model serves both evidences; it is saved beside as ``temporal.keras``.
    """
    root = Path(root)
    version_dir = root / str(card.version)
    root.mkdir(parents=True, exist_ok=True)
    size = card.image_size

    def score(faces):
        return {OUTPUT_NAME: tf.reshape(model(tf.cast(faces, tf.float32), training=False), [-1])}

    def score_jpeg(image_bytes):
        def decode(data):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            image = tf.image.resize(image, (size, size), method="bilinear", antialias=True)
            return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)

        faces = tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec((size, size, 3), tf.uint8))
        return score(faces)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", score,
                         input_signature=[tf.TensorSpec((None, size, size, 3), tf.uint8, name=INPUT_NAME)])
    archive.add_endpoint("serving_jpeg", score_jpeg,
                         input_signature=[tf.TensorSpec((None,), tf.string, name=JPEG_INPUT_NAME)])
    if temporal is not None:
        archive.track(temporal)
        archive.add_endpoint(
            TEMPORAL_SIGNATURE,
            lambda landmarks: {OUTPUT_NAME: tf.reshape(temporal(landmarks, training=False), [-1])},
            input_signature=[tf.TensorSpec((None, None, TEMPORAL_FEATURES), tf.float32, name=TEMPORAL_INPUT_NAME)])
    archive.write_out(str(version_dir), verbose=False)
    if temporal is not None:
        temporal.save(root / TEMPORAL_FILE)
    model.save(root / "model.keras")
    card.save(root / "card.json")
    return root


def _find_card(path: Path) -> ModelCard | None:
    for candidate in (path / "card.json", path.parent / "card.json"):
        if candidate.is_file():
            return ModelCard.load(candidate)
    return None


def _load_keras(path: Path, card: ModelCard | None) -> Detector:
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise ModelError(f"{path}: not a Keras model exported by this project ({exc})") from None
    if card is None:
        card = ModelCard(trained=True, description=f"loaded from {path.name} without a model card",
                         image_size=int(model.input_shape[1]), backbone="unknown",
                         threshold_source="default 0.5 (no model card)")
    return Detector(card, keras_model=model, source=config.project_relative(path), origin=path)


def _load_saved_model(path: Path, card: ModelCard | None) -> Detector:
    try:
        loaded = tf.saved_model.load(str(path))
        signature = loaded.signatures["serving_default"]
    except Exception as exc:
        raise ModelError(f"{path}: not a SavedModel with a serving_default signature ({exc})") from None
    if card is None:
        shape = signature.structured_input_signature[1][INPUT_NAME].shape
        card = ModelCard(trained=True,
                         description=f"SavedModel {config.project_relative(path)} without a model card",
                         image_size=int(shape[1]), backbone="unknown",
                         threshold_source="default 0.5 (no model card)")
    detector = Detector(card, signature=signature, source=config.project_relative(path), origin=path)
    detector._saved_model = loaded  # keep the object alive: the signature holds only weak references to it
    return detector


def _has_model(root: Path) -> bool:
    return (root / "model.keras").is_file() or any(
        (d / "saved_model.pb").is_file() for d in root.iterdir() if d.is_dir()) if root.is_dir() else False


def untrained_detector(backbone: str = config.DEFAULT_BACKBONE) -> Detector:
    """The network with random weights, for when no trained model is installed; its card says so."""
    keras.utils.set_random_seed(0)
    model = build_classifier(backbone, weights=None)
    return Detector(ModelCard(backbone=backbone, trained=False), keras_model=model, source="untrained (in memory)")


def load_detector(path: str | os.PathLike | None = None) -> Detector:
    """Load a model: a model root (TF Serving layout), a ``.keras`` file or a SavedModel folder.

    With no path the shipped model in ``saved_model/deepfake`` is used; when none is installed there, the untrained
    network is built in memory and its card says ``trained: false`` so every output can say verdicts are provisional.
    """
    if path is None:
        root = config.DEFAULT_MODEL_DIR
        if not _has_model(root):
            return untrained_detector()
        path = root
    p = Path(path)
    if not p.exists():
        raise ModelError(f"{p}: no such model file or folder")
    if p.is_file():
        if p.suffix != ".keras":
            raise ModelError(f"{p}: expected a .keras file or a SavedModel folder")
        return _load_keras(p, _find_card(p.parent))
    if (p / "saved_model.pb").is_file():
        return _load_saved_model(p, _find_card(p))
    if (p / "model.keras").is_file():
        return _load_keras(p / "model.keras", _find_card(p))
    versions = sorted((d for d in p.iterdir() if d.is_dir() and d.name.isdigit() and (d / "saved_model.pb").is_file()),
                      key=lambda d: int(d.name))
    if versions:
        return _load_saved_model(versions[-1], _find_card(p))
    raise ModelError(f"{p}: holds no model (expected model.keras or <version>/saved_model.pb)")
