"""Scoring through a TF Serving model server over its documented REST predict API, instead of in-process.

    python app.py --input clip.mp4 --output results --serving-url http://host:8501/v1/models/deepfake

Ingestion, faces and reports stay local; only the crops travel. They are sent to the model's ``serving_jpeg``
signature as base64 strings (``{"b64": ...}``, TF Serving's REST encoding for a ``*_bytes`` input), PNG-encoded so the
server scores exactly the pixels the local model would. The client sticks to the REST API as documented
(https://www.tensorflow.org/tfx/serving/api_rest): ``GET <model url>`` for status, ``GET <model url>/metadata`` for
signatures, ``POST <model url>:predict`` with ``signature_name`` and ``instances``.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import cv2
import numpy as np

from detector import config
from detector.errors import ModelError
from detector.models.scoring import INPUT_NAME, OUTPUT_NAME, ModelCard

SIGNATURE = "serving_jpeg"


class RestDetector:
    """A :class:`detector.models.scoring.Scorer` whose model runs on a TF Serving server (no Grad-CAM: the Keras model
    is not here)."""

    keras_model = None

    def __init__(self, url: str, card: ModelCard | None = None, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.source = self.url
        metadata = self._get(self.url + "/metadata")
        signatures = metadata.get("metadata", {}).get("signature_def", {}).get("signature_def", {})
        if SIGNATURE not in signatures:
            raise ModelError(f"{self.url}: the served model has no {SIGNATURE!r} signature "
                             f"(found: {', '.join(sorted(signatures)) or 'none'}); export it with training.export")
        default = signatures.get("serving_default", {}).get("inputs", {}).get(INPUT_NAME, {})
        dims = [int(d.get("size", -1)) for d in default.get("tensor_shape", {}).get("dim", [])]
        size = dims[1] if len(dims) == 4 and dims[1] > 0 else config.IMAGE_SIZE
        self.card = card or ModelCard(trained=True, image_size=size, backbone="unknown (served)",
                                      description=f"served by TF Serving at {self.url}",
                                      threshold_source="default 0.5 (no local model card)")
        version = metadata.get("model_spec", {}).get("version")
        if version:
            self.card.version = int(version)

    @property
    def image_size(self) -> int:
        return self.card.image_size

    @property
    def fingerprint(self) -> str:
        """TF Serving reports no hash of its model: the URL and the model version it serves stand in for one."""
        return f"{self.url} version {self.card.version}"

    def _get(self, url: str) -> dict:
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise ModelError(f"{url}: TF Serving answered {exc.code} ({_error_text(exc)})") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ModelError(f"{url}: cannot reach TF Serving ({getattr(exc, 'reason', exc)})") from None

    def predict(self, crops: np.ndarray, batch_size: int = config.BATCH_SIZE) -> np.ndarray:
        """Fake probabilities (N,) for uint8 crops (N, S, S, 3), in batches of ``batch_size`` per request."""
        crops = np.asarray(crops, np.uint8)
        out = []
        for start in range(0, len(crops), batch_size):
            instances = [{"b64": _png_b64(crop)} for crop in crops[start:start + batch_size]]
            body = json.dumps({"signature_name": SIGNATURE, "instances": instances}).encode()
            request = urllib.request.Request(self.url + ":predict", data=body,
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    reply = json.loads(response.read())
            except urllib.error.HTTPError as exc:
                raise ModelError(f"{self.url}:predict answered {exc.code} ({_error_text(exc)})") from None
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise ModelError(f"{self.url}:predict failed ({getattr(exc, 'reason', exc)})") from None
            out.append(_parse_predictions(reply))
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0,), np.float32)


def _png_b64(crop: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not PNG-encode a face crop")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def _parse_predictions(reply: dict) -> np.ndarray:
    """Row format replies: ``predictions`` is a list of scalars (one output) or of ``{name: value}`` dicts."""
    if "error" in reply:
        raise ModelError(f"TF Serving error: {reply['error']}")
    preds = reply.get("predictions")
    if preds is None and "outputs" in reply:
        preds = reply["outputs"]
        preds = preds[OUTPUT_NAME] if isinstance(preds, dict) else preds
    if preds is None:
        raise ModelError(f"TF Serving reply has no predictions: {str(reply)[:200]}")
    values = [p[OUTPUT_NAME] if isinstance(p, dict) else p for p in preds]
    return np.asarray(values, np.float32).reshape(-1)


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        return json.loads(exc.read()).get("error", exc.reason)
    except (ValueError, OSError, AttributeError):
        return str(exc.reason)
