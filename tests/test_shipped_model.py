"""The model in saved_model/ is what its card says: TF Serving layout and signatures, a trained card with a threshold
and measured metrics, and the same scores from its Keras copy (Grad-CAM) and its SavedModel (TF Serving)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from detector import config
from detector.models import model as model_mod
from detector.demo import astronaut
from detector.models.model import load_detector

ROOT = config.DEFAULT_MODEL_DIR
pytestmark = pytest.mark.slow  # loads the shipped model (and exports it once more)
if not (ROOT / "card.json").is_file():
    pytest.skip(f"no model is installed in {ROOT}", allow_module_level=True)


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads((ROOT / "card.json").read_text())


def test_layout_is_what_tf_serving_loads(card: dict) -> None:
    versions = [p for p in ROOT.iterdir() if p.is_dir() and p.name.isdigit()]
    assert [int(p.name) for p in versions] == [card["version"]]
    assert (versions[0] / "saved_model.pb").is_file() and (ROOT / "model.keras").is_file()
    assert sum(f.stat().st_size for f in ROOT.rglob("*") if f.is_file()) < 50e6


def test_card_records_training_and_measured_metrics(card: dict) -> None:
    assert card["trained"] is True and 0.0 < card["threshold"] < 1.0 and card["threshold_source"]
    assert card["training"]["command"].startswith("python -m training.")
    video = card["metrics"]["sections"]["video"]
    low, high = video["roc_auc_ci"]
    assert low <= video["roc_auc"] <= high and video["items"] > 0
    assert card["metrics"]["model"] == "saved_model/deepfake/model.keras"  # not the building machine's path
    # the reals the threshold was chosen on: it calls at most 5 % of them fake, and a hair lower it would call more
    reals = np.asarray(card["reference_real_scores"])
    assert len(reals) >= 20
    assert np.mean(reals >= card["threshold"]) <= 0.05 < np.mean(reals >= card["threshold"] - 1e-3)


def test_signatures_and_keras_copy_agree(card: dict) -> None:
    saved = tf.saved_model.load(str(ROOT / str(card["version"])))
    size = card["image_size"]
    spec = saved.signatures["serving_default"].structured_input_signature[1][model_mod.INPUT_NAME]
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, size, size, 3]
    assert "serving_jpeg" in saved.signatures
    face = tf.image.resize(astronaut()[30:230, 150:350], (size, size)).numpy().astype(np.uint8)[None]
    served = saved.signatures["serving_default"](faces=tf.constant(face))[model_mod.OUTPUT_NAME].numpy()
    detector = load_detector(ROOT)
    assert detector.card.trained and detector.keras_model is not None
    np.testing.assert_allclose(detector.predict(face), served, atol=1e-5)


def signature_shapes(saved) -> dict:
    """Every signature's inputs and outputs as (name, dtype, shape), the contract TF Serving clients rely on."""
    return {name: ({k: (v.dtype.name, v.shape.as_list()) for k, v in fn.structured_input_signature[1].items()},
                   {k: (v.dtype.name, v.shape.as_list()) for k, v in fn.structured_outputs.items()})
            for name, fn in saved.signatures.items()}


#: What TF Serving clients of every release rely on: uint8 crops or JPEG bytes in, one probability per crop out.
SIGNATURES = {
    "serving_default": ({"faces": ("uint8", [None, 224, 224, 3])}, {"fake_probability": ("float32", [None])}),
    "serving_jpeg": ({"image_bytes": ("string", [None])}, {"fake_probability": ("float32", [None])}),
}


def test_the_task_model_reexports_with_the_same_signatures(card: dict, tmp_path: Path) -> None:
    """model.keras loads as the task model object (the card's backbone and size), and exporting it again gives the
    shipped SavedModel's signatures, which are the ones every release has served."""
    import keras

    from detector.models.classifier import DeepfakeClassifier
    from detector.models.scoring import ModelCard

    net = keras.models.load_model(ROOT / "model.keras", compile=False)
    assert isinstance(net, DeepfakeClassifier)
    assert (net.backbone.name, net.image_size) == (card["backbone"], card["image_size"])
    model_mod.export_model(net, ModelCard.from_dict(card), tmp_path / "deepfake")
    fresh = tf.saved_model.load(str(tmp_path / "deepfake" / str(card["version"])))
    assert signature_shapes(fresh) == signature_shapes(tf.saved_model.load(str(ROOT / str(card["version"])))) \
        == SIGNATURES
