"""One verdict from several kinds of evidence: a logistic rule over each evidence's logit.

Each evidence (the frame model's score, the temporal model's) is a probability; the rule adds their logits with
fitted weights and a bias, and the sigmoid of that sum is the video's score. The weights are fitted on out-of-fold
scores of training sources (``training.temporal_fit``), never on the validation of record, and are stored in the
model card. A video with no temporal evidence (a still, a clip shorter than a window, a face never followed through
one) is scored by the rule fitted on the frame evidence alone, so its score is calibrated the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

#: Probabilities are clipped this far from 0 and 1 before their logit is taken.
EPS = 1e-4
#: Two evidences disagree when one is at least this sure of "fake" and the other this sure of "real".
DISAGREE = 0.8


def logit(p: float) -> float:
    p = min(max(float(p), EPS), 1 - EPS)
    return math.log(p / (1 - p))


@dataclass
class Rule:
    """``sigmoid(bias + sum(weights[e] * logit(score[e])))`` over the evidences it names."""

    weights: dict[str, float]
    bias: float = 0.0

    def score(self, evidence: Mapping[str, float]) -> float:
        z = self.bias + sum(w * logit(evidence[name]) for name, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-max(min(z, 60.0), -60.0)))

    def to_dict(self) -> dict:
        return {"weights": dict(self.weights), "bias": self.bias}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Rule":
        return cls(weights={str(k): float(v) for k, v in data["weights"].items()}, bias=float(data.get("bias", 0.0)))


@dataclass
class Fusion:
    """The rules of a model card: the first whose evidences are all present scores the video."""

    rules: list[Rule] = field(default_factory=list)

    def score(self, evidence: Mapping[str, float | None]) -> tuple[float | None, list[str]]:
        """The fused score and the evidences it used (None and [] when no rule applies)."""
        present = {k: v for k, v in evidence.items() if v is not None}
        for rule in self.rules:
            if set(rule.weights) <= set(present):
                return rule.score(present), sorted(rule.weights)
        return None, []

    def to_dict(self) -> dict:
        return {"rules": [r.to_dict() for r in self.rules]}

    @classmethod
    def from_dict(cls, data: Mapping | None) -> "Fusion | None":
        if not data or not data.get("rules"):
            return None
        return cls([Rule.from_dict(r) for r in data["rules"]])


def disagreement(evidence: Mapping[str, float | None]) -> str | None:
    """A warning when one evidence calls the video fake and another real, both surely; None otherwise."""
    present = {k: v for k, v in evidence.items() if v is not None}
    fake = [k for k, v in present.items() if v >= DISAGREE]
    real = [k for k, v in present.items() if v <= 1 - DISAGREE]
    if fake and real:
        return (f"the evidence disagrees: {', '.join(fake)} says fake, {', '.join(real)} says real; read the "
                "per-evidence scores before trusting the verdict")
    return None
