"""What scores face crops, as the scanner sees it: the :class:`Scorer` protocol and the model card a scorer carries.

Two scorers implement it: :class:`detector.models.model.Detector` (the model in this process) and
:class:`detector.models.serving.RestDetector` (a model on a TF Serving server). The batch runner, the server's worker
and evaluation are written against the protocol. No TensorFlow here, so the REST client and anything that only needs the
interface or the card stay light.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from detector import __version__, config
from detector.errors import ModelError

#: Names of the exported signatures' tensors, which every client relies on: ``serving_default`` takes uint8 crops as
#: INPUT_NAME, ``serving_jpeg`` encoded crops as JPEG_INPUT_NAME (a ``_bytes`` name, so TF Serving's REST API accepts
#: base64), and both return OUTPUT_NAME.
INPUT_NAME = "faces"
JPEG_INPUT_NAME = "image_bytes"
OUTPUT_NAME = "fake_probability"


@dataclass
class ModelCard:
    """What a user needs to trust (or distrust) a model: what it is, how it was made, how well it measured."""

    name: str = config.MODEL_NAME
    version: int = 1
    backbone: str = config.DEFAULT_BACKBONE
    image_size: int = config.IMAGE_SIZE
    trained: bool = False
    threshold: float = config.DEFAULT_THRESHOLD
    threshold_source: str = "default 0.5 (no validation data)"
    created: str = field(default_factory=lambda: _dt.date.today().isoformat())
    detector_version: str = __version__
    description: str = ("Untrained network built in memory: verdicts are provisional and carry no information "
                        "until a trained model is exported to saved_model/.")
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    #: The video scores of the real videos the threshold was chosen on, each scored by a model that never trained on
    #: it (the leave-one-method-out folds), lowest first; empty when the model came without them.
    reference_real_scores: list[float] = field(default_factory=list)

    def false_positive_rate(self, score: float | None) -> float | None:
        """The share of :attr:`reference_real_scores` at or above ``score``: the false-positive rate a threshold at
        this score would have had on those real videos. A raw probability says little by itself (a threshold
        chosen at 5 % false positives can sit far above most real videos' scores); this says how rare the score is
        among real footage. None without a score or without reference scores."""
        if score is None or not self.reference_real_scores:
            return None
        reals = np.asarray(self.reference_real_scores, np.float64)
        return float(np.mean(reals >= score))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelCard:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> ModelCard:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: unreadable model card ({exc})") from None


@runtime_checkable
class Scorer(Protocol):
    """Scores uint8 RGB face crops; carries its card (threshold, backbone, whether it is trained)."""

    card: ModelCard
    #: Where the model came from, for result.json: a path (relative to the project when inside it) or a URL.
    source: str
    #: The Keras model when Grad-CAM can run on it (the model is in this process), else None.
    keras_model: Any

    @property
    def image_size(self) -> int:
        """Side of the square crops :meth:`predict` takes."""
        ...

    @property
    def fingerprint(self) -> str:
        """What identifies the weights wherever the project lies (a content hash, or the served model's URL and
        version): stored results are reused only for the same fingerprint."""
        ...

    def predict(self, crops: np.ndarray, batch_size: int = config.BATCH_SIZE) -> np.ndarray:
        """Fake probabilities (N,) for uint8 crops (N, S, S, 3)."""
        ...
