"""Leave-one-method-out figures: the threshold at a false-positive rate, fakes caught, pooled and per-method AUC."""

from __future__ import annotations

import numpy as np
import pytest

from training.lomo_report import lomo_figures, markdown, threshold_at_fpr, tpr_at_fpr


def test_threshold_at_fpr_calls_at_most_that_share_of_reals_fake() -> None:
    reals = np.linspace(0, 1, 101)  # 101 reals
    t = threshold_at_fpr(reals, 0.05)
    assert np.mean(reals >= t) <= 0.05 and np.mean(reals >= t) > 0.03


def test_tpr_at_fpr() -> None:
    y = np.array([0] * 20 + [1] * 4)
    s = np.concatenate([np.linspace(0, 0.5, 20), [0.9, 0.8, 0.45, 0.1]])
    assert tpr_at_fpr(y, s, 0.05) == pytest.approx(0.5)  # the threshold sits above the top real (0.5)


def _log(separation: float) -> dict:
    rng = np.random.default_rng(0)
    folds = []
    for method, n_fake in (("swap", 6), ("talk", 4)):
        scores = {}
        for i in range(10):
            s = float(rng.uniform(0, 0.6))
            scores[f"{method}_real{i}"] = {"label": 0, "score": s, "crf35": s, "half_res": s}
        for i in range(n_fake):
            s = float(min(1.0, rng.uniform(0, 0.6) + separation))
            scores[f"{method}_fake{i}"] = {"label": 1, "score": s, "crf35": s * 0.5, "half_res": s}
        folds.append({"method": method, "scores": scores})
    return {"folds": folds}


def test_lomo_figures_pool_reals_across_folds_and_report_drops() -> None:
    fig = lomo_figures(_log(separation=0.5), n_bootstrap=200)
    assert fig["videos"] == 30 and fig["reals"] == 20
    pooled = fig["as_is"]["pooled"]
    assert pooled["roc_auc"] > 0.9 and pooled["roc_auc_ci"][0] <= pooled["roc_auc"] <= pooled["roc_auc_ci"][1]
    for method in ("swap", "talk"):
        assert fig["as_is"]["per_method"][method]["reals"] == 20  # each method against every out-of-fold real
    assert fig["half_resolution"]["auc_drop"] == pytest.approx(0.0)
    assert fig["h264_crf35"]["auc_drop"] > 0.2  # halved fake scores under compression: a real drop is reported
    assert "all methods, pooled" in markdown(fig)


def test_lomo_figures_near_chance_without_signal() -> None:
    assert abs(lomo_figures(_log(separation=0.0), n_bootstrap=0)["as_is"]["pooled"]["roc_auc"] - 0.5) < 0.2
