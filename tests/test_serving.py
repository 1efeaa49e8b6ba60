"""TF Serving deployment: the exported signatures, and the REST client end to end.

The TF Serving binary (tensorflow_model_server) is not installable on these machines, so the client is tested against
a small stand-in HTTP server that serves the *real exported SavedModel* with TF Serving's documented REST API
(https://www.tensorflow.org/tfx/serving/api_rest): model status, ``/metadata`` and ``:predict`` in the row
("instances") format with ``{"b64": ...}`` for ``*_bytes`` inputs. The client uses nothing beyond that API, so it
works against the real server.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_app, sample_faces, spread_head

from detector.models import backbones
from detector.errors import ModelError
from detector.models.model import ModelCard, build_classifier, export_model, load_detector
from detector.models.scoring import Scorer
from detector.models.serving import RestDetector

pytestmark = pytest.mark.slow  # exports a network and serves it

MODEL_NAME = "deepfake"
SIZE = 224


def _small_backbone() -> str:
    return "mobilenetv2" if "mobilenetv2" in backbones.available() else "efficientnetv2-b0"


@pytest.fixture(scope="module")
def model_root(tmp_path_factory) -> Path:
    """A real exported model whose scores vary between images (an untrained head gives 0.5 everywhere)."""
    import keras

    keras.utils.set_random_seed(1)
    model = build_classifier(_small_backbone(), weights=None, image_size=SIZE)
    spread_head(model, sample_faces(SIZE))
    root = tmp_path_factory.mktemp("models") / MODEL_NAME
    export_model(model, ModelCard(backbone=_small_backbone(), trained=True, threshold=0.42, version=3), root)
    return root


class _TFServingStandIn(BaseHTTPRequestHandler):
    """Implements the documented TF Serving REST endpoints over a loaded SavedModel."""

    loaded = None
    version = "3"

    def log_message(self, *args) -> None:
        pass

    def _send(self, code: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _base(self) -> str:
        return f"/v1/models/{MODEL_NAME}"

    def do_GET(self) -> None:
        if self.path == self._base():
            self._send(200, {"model_version_status": [{"version": self.version, "state": "AVAILABLE",
                                                       "status": {"error_code": "OK", "error_message": ""}}]})
        elif self.path == self._base() + "/metadata":
            sigs = {}
            for name, fn in self.loaded.signatures.items():
                inputs = {k: {"dtype": f"DT_{v.dtype.name.upper()}", "name": k,
                              "tensor_shape": {"dim": [{"size": str(d if d is not None else -1), "name": ""}
                                                       for d in v.shape]}}
                          for k, v in fn.structured_input_signature[1].items()}
                sigs[name] = {"inputs": inputs, "outputs": {}, "method_name": "tensorflow/serving/predict"}
            self._send(200, {"model_spec": {"name": MODEL_NAME, "signature_name": "", "version": self.version},
                             "metadata": {"signature_def": {"signature_def": sigs}}})
        else:
            self._send(404, {"error": "Servable not found"})

    def do_POST(self) -> None:
        if self.path != self._base() + ":predict":
            self._send(404, {"error": "Servable not found"})
            return
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        name = request.get("signature_name", "serving_default")
        if name not in self.loaded.signatures:
            self._send(400, {"error": f"Serving signature name: \"{name}\" not found in signature def"})
            return
        fn = self.loaded.signatures[name]
        (input_name, spec), = fn.structured_input_signature[1].items()
        instances = request["instances"]
        if spec.dtype == tf.string:
            values = tf.constant([base64.b64decode(i["b64"]) for i in instances])
        else:
            values = tf.constant(np.asarray(instances), dtype=spec.dtype)
        outputs = fn(**{input_name: values})
        (_, tensor), = outputs.items()
        self._send(200, {"predictions": tensor.numpy().tolist()})


@pytest.fixture(scope="module")
def server(model_root: Path):
    handler = type("Handler", (_TFServingStandIn,), {"loaded": tf.saved_model.load(str(model_root / "3"))})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1/models/{MODEL_NAME}"
    httpd.shutdown()


def test_exported_signatures_match_what_tf_serving_calls(model_root: Path) -> None:
    """What `saved_model_cli show --all` would list: names, dtypes and shapes of both signatures."""
    loaded = tf.saved_model.load(str(model_root / "3"))
    assert set(loaded.signatures) == {"serving_default", "serving_jpeg"}
    default = loaded.signatures["serving_default"]
    spec = default.structured_input_signature[1]["faces"]
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, SIZE, SIZE, 3]
    assert set(default.structured_outputs) == {"fake_probability"}
    jpeg = loaded.signatures["serving_jpeg"]
    spec = jpeg.structured_input_signature[1]["image_bytes"]
    assert spec.dtype == tf.string and spec.shape.as_list() == [None]
    assert (model_root / "3" / "saved_model.pb").is_file() and (model_root / "3" / "variables").is_dir()


def test_rest_client_scores_like_the_local_model(model_root: Path, server: str) -> None:
    local = load_detector(model_root)
    crops = np.random.default_rng(0).integers(0, 256, (5, SIZE, SIZE, 3), dtype=np.uint8)
    remote = RestDetector(server)
    assert remote.card.version == 3 and remote.image_size == SIZE
    assert isinstance(remote, Scorer) and isinstance(local, Scorer)  # the scanner takes either
    assert remote.keras_model is None and remote.fingerprint.endswith("version 3")
    expected = local.predict(crops)
    assert expected.std() > 0.01, "fixture model should give varied scores"
    np.testing.assert_allclose(remote.predict(crops, batch_size=2), expected, atol=1e-5)


def test_rest_client_errors_are_one_line(server: str) -> None:
    with pytest.raises(ModelError, match="cannot reach TF Serving"):
        RestDetector("http://127.0.0.1:9/v1/models/deepfake", timeout=2)
    with pytest.raises(ModelError, match="404"):
        RestDetector(server.replace(MODEL_NAME, "nope"))


@pytest.mark.e2e
def test_app_scans_through_tf_serving(model_root: Path, server: str, tmp_path: Path) -> None:
    """app.py --serving-url gives the same verdicts and scores as the in-process model on the demo clip."""
    from detector.demo import main as make_demo

    demo = tmp_path / "demo"
    make_demo([str(demo)])
    clip = next(demo.glob("*.mp4"))
    common = ["--input", str(clip), "--frames", "4", "--no-gradcam", "--quiet", "--json"]
    local = run_app(*common, "--output", tmp_path / "a", "--model", model_root, timeout=300)
    remote = run_app(*common, "--output", tmp_path / "b", "--model", model_root, "--serving-url", server, timeout=300)
    assert local.returncode == 0, local.stderr
    assert remote.returncode == 0, remote.stderr
    a, b = json.loads(local.stdout)[0], json.loads(remote.stdout)[0]
    assert a["verdict"] == b["verdict"] and a["faces"] == b["faces"] == 1
    assert b["threshold"] == pytest.approx(0.42)
    assert b["fake_probability"] == pytest.approx(a["fake_probability"], abs=1e-4)
    result = json.loads((tmp_path / "b" / b["name"] / "result.json").read_text())
    assert result["model"]["source"] == server
