"""The fusion rule: logits of each evidence weighted, a frame-only fallback, and the disagreement warning."""

import math

import pytest

from detector.scan.fusion import Fusion, Rule, disagreement, logit


def test_rule_is_a_logistic_over_evidence_logits():
    rule = Rule({"frame": 2.0, "temporal": 1.0}, bias=-0.5)
    z = -0.5 + 2.0 * logit(0.7) + 1.0 * logit(0.2)
    assert rule.score({"frame": 0.7, "temporal": 0.2}) == pytest.approx(1 / (1 + math.exp(-z)))
    assert rule.score({"frame": 0.9, "temporal": 0.2}) > rule.score({"frame": 0.7, "temporal": 0.2})


def test_fusion_falls_back_to_the_rule_whose_evidence_is_present():
    fusion = Fusion([Rule({"frame": 1.0, "temporal": 1.0}), Rule({"frame": 1.0}, bias=1.0)])
    both, used = fusion.score({"frame": 0.6, "temporal": 0.6})
    assert used == ["frame", "temporal"] and both == pytest.approx(1 / (1 + math.exp(-2 * logit(0.6))))
    alone, used = fusion.score({"frame": 0.6, "temporal": None})
    assert used == ["frame"] and alone == pytest.approx(1 / (1 + math.exp(-(1 + logit(0.6)))))
    assert fusion.score({"temporal": 0.6}) == (None, [])


def test_fusion_round_trips_through_the_card():
    fusion = Fusion([Rule({"frame": 0.3}, -0.56)])
    assert Fusion.from_dict(fusion.to_dict()) == fusion
    assert Fusion.from_dict(None) is None and Fusion.from_dict({"rules": []}) is None


def test_extreme_probabilities_stay_finite():
    assert 0.0 < Rule({"frame": 50.0}).score({"frame": 1.0}) <= 1.0
    assert 0.0 <= Rule({"frame": 50.0}).score({"frame": 0.0}) < 1.0


def test_disagreement_only_when_both_are_sure():
    assert disagreement({"frame": 0.95, "temporal": 0.05})
    assert disagreement({"frame": 0.6, "temporal": 0.05}) is None
    assert disagreement({"frame": 0.95, "temporal": None}) is None
