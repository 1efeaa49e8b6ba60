"""Checks for detector.models.model: the task network, export in TF Serving layout, every way of loading it back, the
card.

Building and exporting EfficientNetV2-B0 takes tens of seconds on a small CPU, so one network is built and exported
per module and every test reads from that.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import sample_faces, spread_head
from PIL import Image

from detector import config
from detector.models import model as model_mod
from detector.errors import ModelError
from detector.models.model import Detector, DeepfakeClassifier, ModelCard, build_classifier, export_model, load_detector

SIZE = config.IMAGE_SIZE

pytestmark = pytest.mark.slow  # builds and exports the network once (seconds), then reads it back every way


@dataclass
class Exported:
    model: keras.Model
    root: Path
    card: ModelCard
    faces: np.ndarray
    reference: np.ndarray


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """The network, exported once, and its in-memory probabilities on the sample faces (its head spread so different
    pictures get clearly different scores)."""
    keras.utils.set_random_seed(0)
    net = build_classifier()
    faces = sample_faces()
    spread_head(net, faces)
    card = ModelCard(version=2, trained=True, threshold=0.42, threshold_source="test: EER on nothing",
                     metrics={"roc_auc": 0.5}, training={"epochs": 0})
    root = export_model(net, card, tmp_path_factory.mktemp("models") / "deepfake")
    reference = Detector(card, keras_model=net).predict(faces)
    return Exported(model=net, root=root, card=card, faces=faces, reference=reference)


@pytest.fixture(scope="module")
def saved(exported: Exported) -> Any:
    """The exported SavedModel loaded as TF Serving would load it (plain TensorFlow, no Keras objects)."""
    return tf.saved_model.load(str(exported.root / "2"))


def jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    """What a browser or phone upload sends: lossy, so scores may move a little."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png(image: np.ndarray) -> bytes:
    """Lossless bytes: isolates in-graph decoding from JPEG loss."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


def test_network_is_flat_and_takes_face_crops(exported: Exported) -> None:
    net = exported.model
    assert net.input_shape == (None, SIZE, SIZE, 3)
    assert net.output_shape == (None, 1)
    # tf-keras-vis cannot reach the last convolution of a nested sub-model, so Grad-CAM needs a flat graph
    assert not any(isinstance(layer, keras.Model) for layer in net.layers)
    assert any(isinstance(layer, keras.layers.Conv2D) for layer in net.layers)


def test_predict_gives_one_probability_per_face(exported: Exported) -> None:
    probs = exported.reference
    assert probs.shape == (len(exported.faces),) and probs.dtype == np.float32
    assert np.all((probs >= 0) & (probs <= 1))
    assert probs.max() - probs.min() > 0.1  # different pictures, different scores
    detector = Detector(exported.card, keras_model=exported.model)
    np.testing.assert_allclose(detector.predict(exported.faces, batch_size=2), probs, atol=1e-5)
    np.testing.assert_allclose(detector.predict(exported.faces[::-1]), probs[::-1], atol=1e-5)
    assert detector.predict(np.zeros((0, SIZE, SIZE, 3), np.uint8)).shape == (0,)
    with pytest.raises(ValueError, match="expected crops of shape"):
        detector.predict(np.zeros((2, 100, 100, 3), np.uint8))


def test_export_writes_tf_serving_layout(exported: Exported) -> None:
    root = exported.root
    assert (root / "2" / "saved_model.pb").is_file()
    assert (root / "2" / "variables").is_dir()
    assert (root / "model.keras").is_file()
    assert json.loads((root / "card.json").read_text())["threshold"] == 0.42


@pytest.mark.parametrize("kind", ["root", "version", "keras_file"])
def test_every_path_kind_loads_the_same_model(exported: Exported, kind: str) -> None:
    path = {"root": exported.root, "version": exported.root / "2", "keras_file": exported.root / "model.keras"}[kind]
    detector = load_detector(path)
    np.testing.assert_allclose(detector.predict(exported.faces), exported.reference, atol=1e-5)
    assert detector.card == exported.card
    assert detector.card.trained and detector.card.threshold == 0.42
    # Grad-CAM needs the Keras model; the bare SavedModel folder only gives the serving signature
    assert (detector.keras_model is None) == (kind == "version")


def test_both_signatures_are_exported(saved: Any) -> None:
    assert {"serving_default", "serving_jpeg"} <= set(saved.signatures)
    default_in = saved.signatures["serving_default"].structured_input_signature[1]
    jpeg_in = saved.signatures["serving_jpeg"].structured_input_signature[1]
    assert default_in[model_mod.INPUT_NAME].dtype == tf.uint8
    assert default_in[model_mod.INPUT_NAME].shape.as_list() == [None, SIZE, SIZE, 3]
    assert jpeg_in[model_mod.JPEG_INPUT_NAME].dtype == tf.string
    assert list(saved.signatures["serving_default"].structured_outputs) == [model_mod.OUTPUT_NAME]


def test_serving_jpeg_agrees_with_serving_default(exported: Exported, saved: Any) -> None:
    serve_jpeg = saved.signatures["serving_jpeg"]
    default = saved.signatures["serving_default"](faces=tf.constant(exported.faces))
    default = default[model_mod.OUTPUT_NAME].numpy()
    np.testing.assert_allclose(default, exported.reference, atol=1e-5)

    lossless = serve_jpeg(image_bytes=tf.constant([png(f) for f in exported.faces]))[model_mod.OUTPUT_NAME].numpy()
    np.testing.assert_allclose(lossless, default, atol=1e-5)  # decoding in the graph changes nothing by itself
    lossy = serve_jpeg(image_bytes=tf.constant([jpeg(f) for f in exported.faces]))[model_mod.OUTPUT_NAME].numpy()
    assert np.abs(lossy - default).max() < 0.03
    # a bigger upload is resized in the graph and still scores like the crop it shows
    bigger = [jpeg(cv2.resize(f, (2 * SIZE, 2 * SIZE), interpolation=cv2.INTER_CUBIC)) for f in exported.faces]
    resized = serve_jpeg(image_bytes=tf.constant(bigger))[model_mod.OUTPUT_NAME].numpy()
    assert resized.shape == default.shape and np.abs(resized - default).max() < 0.05


def test_newest_version_folder_is_loaded(exported: Exported, tmp_path: Path) -> None:
    """Versions compare as numbers (10 > 9), as TF Serving does."""
    for version in ("9", "10"):
        (tmp_path / version).symlink_to(exported.root / "2", target_is_directory=True)
    detector = load_detector(tmp_path)
    assert Path(detector.source).name == "10"
    # no card beside a bare SavedModel: the card says so and the input size comes from the signature
    assert detector.card.backbone == "unknown" and detector.card.image_size == SIZE
    np.testing.assert_allclose(detector.predict(exported.faces), exported.reference, atol=1e-5)


def test_default_model_is_untrained_when_none_is_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "DEFAULT_MODEL_DIR", tmp_path / "not_installed")
    detector = load_detector(None)
    assert detector.card.trained is False
    assert "untrained" in detector.source
    assert detector.keras_model is not None
    probs = detector.predict(sample_faces()[:2])
    assert probs.shape == (2,) and np.all((probs >= 0) & (probs <= 1))


def test_default_model_is_the_installed_one(exported: Exported, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "DEFAULT_MODEL_DIR", exported.root)
    detector = load_detector(None)
    assert detector.card.trained and detector.source.endswith("model.keras")


def _bad_model(tmp: Path, kind: str) -> Path:
    """Lay out one kind of broken model under ``tmp`` and return the path a user would pass."""
    if kind == "missing":
        return tmp / "nothing_here"
    if kind == "not_keras_suffix":
        (tmp / "weights.h5").write_bytes(b"\x00" * 64)
        return tmp / "weights.h5"
    if kind == "empty_folder":
        (tmp / "empty").mkdir()
        return tmp / "empty"
    if kind == "garbage_keras":
        (tmp / "model.keras").write_text("not a zip archive")
        return tmp / "model.keras"
    if kind == "garbage_saved_model":
        (tmp / "1").mkdir()
        (tmp / "1" / "saved_model.pb").write_bytes(b"garbage")
        return tmp / "1"
    if kind == "bad_card":
        (tmp / "root").mkdir()
        (tmp / "root" / "model.keras").write_text("x")
        (tmp / "root" / "card.json").write_text("[")
        return tmp / "root"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "not_keras_suffix", "empty_folder", "garbage_keras",
                                  "garbage_saved_model", "bad_card"])
def test_bad_model_paths_raise_model_error(tmp_path: Path, kind: str) -> None:
    path = _bad_model(tmp_path, kind)
    with pytest.raises(ModelError) as err:
        load_detector(path)
    assert str(path.name) in str(err.value)


def test_task_model_parts_and_freezing(exported: Exported) -> None:
    """The parts are attributes: freezing the backbone leaves only the head to learn, the embedder is the head's
    input, and a saved task model loads back as the same kind of object."""
    net = exported.model
    assert isinstance(net, DeepfakeClassifier) and net.backbone.name == config.DEFAULT_BACKBONE
    assert net.head.name == model_mod.OUTPUT_NAME and net.preprocessor.mode == "torch_imagenet"
    assert len(net.backbone.layers) > 100 and net.head not in net.backbone.layers
    everything = len(net.trainable_weights)
    net.freeze_backbone()
    try:
        assert [w.path for w in net.trainable_weights] == [w.path for w in net.head.trainable_weights]
    finally:
        net.freeze_backbone(False)
    assert len(net.trainable_weights) == everything
    features = np.asarray(net.embedder()(exported.faces.astype("float32")))
    assert features.shape == (len(exported.faces), net.backbone.output.shape[-1])
    np.testing.assert_allclose(np.asarray(net.head(features)).reshape(-1), exported.reference, atol=1e-5)
    loaded = keras.models.load_model(exported.root / "model.keras")
    assert isinstance(loaded, DeepfakeClassifier) and loaded.backbone.name == net.backbone.name
    assert len(loaded.backbone.layers) == len(net.backbone.layers)


def test_fingerprint_follows_the_weights_not_the_path(exported: Exported, tmp_path: Path) -> None:
    """Stored results are keyed by the fingerprint: a moved copy of a model is the same model, other weights are not;
    and a model inside the project is recorded by its project-relative path."""
    import shutil

    here = load_detector(exported.root)
    moved = load_detector(shutil.copytree(exported.root, tmp_path / "moved"))
    assert here.fingerprint == moved.fingerprint and here.fingerprint.startswith("sha256:")
    assert load_detector(exported.root / "2").fingerprint != here.fingerprint  # the SavedModel is other files
    in_memory = Detector(exported.card, keras_model=exported.model)
    before = in_memory.fingerprint
    kernel, bias = exported.model.head.get_weights()
    try:
        exported.model.head.set_weights([kernel, bias + 1.0])
        assert Detector(exported.card, keras_model=exported.model).fingerprint != before
    finally:
        exported.model.head.set_weights([kernel, bias])
    assert Detector(exported.card, keras_model=exported.model).fingerprint == before
    if (config.DEFAULT_MODEL_DIR / "model.keras").is_file():
        assert load_detector().source == "saved_model/deepfake/model.keras"
