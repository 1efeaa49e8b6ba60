"""The temporal model ships inside the exported model: a ``temporal`` SavedModel signature beside the face
signatures, answering what the Keras model answers, and the scanner's branch loads it from the model folder."""

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parent / "fixtures" / "lrnet_parity.npz"


def test_export_adds_a_temporal_signature(tmp_path):
    import tensorflow as tf

    from detector.models.model import TEMPORAL_SIGNATURE, ModelCard, build_classifier, export_model
    from detector.temporal.model import TemporalModel, published_model

    frame = build_classifier("mobilenetv2", weights=None, image_size=96)
    temporal = published_model()
    root = export_model(frame, ModelCard(trained=True, image_size=96, version=4), tmp_path / "deepfake",
                        temporal=temporal)
    clips = np.load(FIXTURE)["clips"]
    expected = TemporalModel(temporal).predict(clips)
    served = tf.saved_model.load(str(root / "4"))
    assert {"serving_default", "serving_jpeg", TEMPORAL_SIGNATURE} <= set(served.signatures)
    out = served.signatures[TEMPORAL_SIGNATURE](landmarks=tf.constant(clips))["fake_probability"].numpy()
    assert np.allclose(out, expected, atol=1e-5)
    assert expected.min() < 0.3 and expected.max() > 0.7  # the clips tell real from fake: not a constant
    # a different clip length is served too (the published recipe's clips are 30 frames; nothing fixes it)
    assert served.signatures[TEMPORAL_SIGNATURE](landmarks=tf.constant(clips[:, :20]))["fake_probability"].shape[0] == 8
    reloaded = TemporalModel.load(root)
    assert reloaded is not None and np.allclose(reloaded.predict(clips), expected, atol=1e-5)
