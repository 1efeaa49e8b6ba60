"""The cheap leave-one-method-out probe: which crops a head trains on, and that its figures follow the features."""

from __future__ import annotations

import numpy as np

from training.experiments.feature_probe import paired_groups, probe, train_indices


def _crops() -> list[dict]:
    """Three methods of pool fakes (one sharing footage with a real), pool reals, other reals and eval items."""
    specs = [("pool", "stream_real", 0, "", "stream"), ("pool", "stream_fake", 1, "swap", "stream")]
    specs += [("pool", f"talk{i}", 1, "talk", f"talk{i}") for i in range(6)]
    specs += [("pool", f"reen{i}", 1, "reenact", f"reen{i}") for i in range(6)]
    specs += [("pool", f"real{i}", 0, "", f"real{i}") for i in range(12)]
    specs += [("real", "lfw", 0, "", "lfw")]
    specs += [("eval", f"eval_fake{i}", 1, "", f"ef{i}") for i in range(5)]
    specs += [("eval", f"eval_real{i}", 0, "", f"er{i}") for i in range(5)]
    return [{"role": role, "item": item, "label": label, "method": method, "group": group, "track": 0,
             "counted": True} for role, item, label, method, group in specs for _ in range(3)]


def test_pairs_only_trains_on_same_footage_groups_and_reals_are_optional() -> None:
    crops = _crops()
    assert paired_groups(crops) == {"stream"}
    every = {c["item"] for c in crops if c["role"] == "pool"}
    pairs = train_indices(crops, every, pairs_only=True, with_reals=False)
    assert {crops[i]["item"] for i in pairs} == {"stream_real", "stream_fake"}
    with_reals = train_indices(crops, every, pairs_only=False, with_reals=True)
    assert "lfw" in {crops[i]["item"] for i in with_reals}
    assert not any(crops[i]["role"] == "eval" for i in with_reals)


def test_figures_follow_the_features() -> None:
    """One feature carries the label (with noise): the head finds it in every fold; the model's own scores are
    noise, and the figures say so."""
    crops = _crops()
    rng = np.random.default_rng(0)
    labels = np.array([c["label"] for c in crops], np.float32)
    features = np.stack([labels * 2 + rng.normal(0, 0.5, len(crops)), rng.normal(0, 1, len(crops))], axis=1)
    own = rng.uniform(0, 1, len(crops)).astype(np.float32)
    out = probe(crops, features.astype(np.float32), own, n_bootstrap=0)
    assert out["lomo"]["head"]["roc_auc"] > 0.95 and out["eval"]["head"]["roc_auc"] > 0.95
    assert abs(out["lomo"]["model"]["roc_auc"] - 0.5) < 0.3
    assert set(out["per_method"]) == {"swap", "talk", "reenact"}
    assert out["lomo"]["head"]["reals"] == 13  # every pool real scored once, out of fold
