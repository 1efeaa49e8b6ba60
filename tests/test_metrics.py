"""Checks for detector.evaluate.metrics: the threshold metrics against scikit-learn's, EER against hand computations
and an independent interpolation, undefined metrics as None with a note, and the stratified and grouped bootstrap."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from detector.evaluate import metrics


def _random_set(seed: int, n: int = 300, decimals: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Labels and informative but imperfect probabilities.

    Rounding creates ties, which is where ROC code breaks; clipping keeps exact 0 and 1 out, whose log loss depends
    on the clipping epsilon (checked separately).
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    logits = 1.5 * (2 * y - 1) + rng.normal(0, 1.5, size=n)
    return y, np.clip(np.round(1 / (1 + np.exp(-logits)), decimals), 0.01, 0.99)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8])
def test_binary_metrics_match_sklearn(seed: int, threshold: float) -> None:
    y, s = _random_set(seed)
    pred = (s >= threshold).astype(int)
    m = metrics.binary_metrics(y, s, threshold)

    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert m["specificity"] == pytest.approx(skm.recall_score(y, pred, pos_label=0))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred, labels=[0, 1]).tolist()
    assert (m["n"], m["n_positive"], m["n_negative"]) == (y.size, int(y.sum()), int((1 - y).sum()))
    assert m["n_predicted_positive"] == int(pred.sum())
    assert m["notes"] == []
    json.dumps(m, allow_nan=False)


def test_log_loss_clips_saturated_probabilities() -> None:
    y = np.array([0, 1, 1, 0])
    s = np.array([1.0, 0.9, 0.0, 0.2])
    m = metrics.binary_metrics(y, s)
    assert np.isfinite(m["log_loss"])
    expected = skm.log_loss(y, np.clip(s, metrics.LOG_LOSS_EPS, 1 - metrics.LOG_LOSS_EPS))
    assert m["log_loss"] == pytest.approx(expected)
    assert any("clipped" in note for note in m["notes"])


# --------------------------------------------------------------------------------------------------- EER


def test_eer_perfect_separation_is_zero_and_threshold_makes_no_errors() -> None:
    y = np.array([0, 0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    eer, threshold = metrics.equal_error_rate(y, s)
    assert eer == 0.0
    assert threshold == 0.8
    assert np.array_equal(s >= threshold, y == 1)


def test_eer_identical_scores_is_one_half() -> None:
    y = np.array([0, 1, 0, 1, 1])
    eer, threshold = metrics.equal_error_rate(y, np.full(5, 0.42))
    assert eer == pytest.approx(0.5)
    assert threshold == pytest.approx(0.42)


def test_eer_hand_computed_interpolation() -> None:
    # Reals 0.2 0.4 0.6 0.8, fakes 0.5 0.7 0.9. At threshold 0.7: FPR 1/4, FNR 1/3; at 0.6: FPR 2/4, FNR 1/3.
    # FPR - FNR goes -1/12 -> +1/6, so w = (1/12) / (1/4) = 1/3: EER = 1/4 + 1/3 * 1/4 = 1/3,
    # threshold = 0.7 + 1/3 * (0.6 - 0.7) = 0.6667.
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    s = np.array([0.2, 0.4, 0.6, 0.8, 0.5, 0.7, 0.9])
    eer, threshold = metrics.equal_error_rate(y, s)
    assert eer == pytest.approx(1 / 3)
    assert threshold == pytest.approx(0.7 - 0.1 / 3)


def test_eer_exact_crossing_on_a_roc_point() -> None:
    # At threshold 0.4: one of two reals above (FPR 1/2), one of two fakes below (FNR 1/2).
    eer, threshold = metrics.equal_error_rate([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert (eer, threshold) == (0.5, 0.4)


def test_eer_exact_crossing_found_despite_float_rounding() -> None:
    # FPR 1/3 and FNR 1 - 2/3 differ in float64; the integer check must still see them as equal.
    eer, threshold = metrics.equal_error_rate([0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.7, 0.3, 0.8, 0.9])
    assert (eer, threshold) == (pytest.approx(1 / 3), 0.7)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_eer_matches_independent_interpolation_on_sklearn_roc(seed: int) -> None:
    y, s = _random_set(seed, n=200)
    fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    fnr = 1 - tpr
    i = int(np.argmax(fpr - fnr >= -1e-12))
    j = i - 1
    w = (fnr[j] - fpr[j]) / ((fpr[i] - fpr[j]) - (fnr[i] - fnr[j]))
    expected = fpr[j] + w * (fpr[i] - fpr[j])
    eer, threshold = metrics.equal_error_rate(y, s)
    assert eer == pytest.approx(expected, abs=1e-9)
    assert s.min() <= threshold <= s.max()


# --------------------------------------------------------------------------------------------------- degenerate input


@pytest.mark.parametrize("label", [0, 1])
def test_single_class_gives_none_with_note(label: int) -> None:
    m = metrics.binary_metrics(np.full(6, label), np.linspace(0.1, 0.9, 6))
    for key in ("roc_auc", "average_precision", "eer", "eer_threshold", "balanced_accuracy"):
        assert m[key] is None
    missing = "specificity" if label == 1 else "recall"
    assert m[missing] is None
    assert any("only" in note and "ROC-AUC" in note for note in m["notes"])
    assert m["accuracy"] == pytest.approx(0.5)
    json.dumps(m, allow_nan=False)
    with pytest.raises(ValueError, match="both classes"):
        metrics.equal_error_rate(np.full(6, label), np.linspace(0.1, 0.9, 6))


def test_nothing_called_fake_leaves_precision_undefined_but_f1_zero() -> None:
    m = metrics.binary_metrics([0, 1, 1], [0.1, 0.2, 0.3], threshold=0.9)
    assert m["precision"] is None
    assert m["f1"] == 0.0
    assert m["recall"] == 0.0
    assert any("precision is undefined" in note for note in m["notes"])


@pytest.mark.parametrize(
    ("y", "s", "match"),
    [
        ([0, 1, 2], [0.1, 0.2, 0.3], "only 0"),
        ([0, 1], [0.1, np.nan], "non-finite"),
        ([0, 1], [0.1, 0.2, 0.3], "one score per label"),
        ([], [], "empty"),
        ([0, 1], [0.1, 1.5], r"\[0, 1\]"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(y: list, s: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        metrics.binary_metrics(y, s)


# --------------------------------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_contains_estimate_and_narrows_with_more_data() -> None:
    widths = []
    for n in (40, 800):
        y, s = _random_set(5, n=n, decimals=6)
        point = skm.roc_auc_score(y, s)
        low, high = metrics.bootstrap_ci(y, s, skm.roc_auc_score, n=200, seed=0)
        assert low <= point <= high
        assert 0.0 <= low < high <= 1.0
        widths.append(high - low)
    assert widths[1] < widths[0] / 2


def test_bootstrap_is_stratified_and_reproducible() -> None:
    y = np.array([0] * 15 + [1] * 2)
    s = np.random.default_rng(0).uniform(0, 1, 17)

    def auc_checking_classes(yb: np.ndarray, sb: np.ndarray) -> float:
        assert yb.sum() == 2 and (1 - yb).sum() == 15
        return skm.roc_auc_score(yb, sb)

    first = metrics.bootstrap_ci(y, s, auc_checking_classes, n=100, seed=7)
    assert first == metrics.bootstrap_ci(y, s, auc_checking_classes, n=100, seed=7)
    assert first != metrics.bootstrap_ci(y, s, auc_checking_classes, n=100, seed=8)


def test_group_bootstrap_is_wider_for_correlated_frames() -> None:
    # 12 videos x 30 near-identical frames: frame-wise resampling sees 360 samples, but there are only 12 videos.
    rng = np.random.default_rng(0)
    video_labels = np.array([0, 1] * 6)
    video_scores = np.clip(0.5 + 0.25 * (2 * video_labels - 1) + rng.normal(0, 0.25, 12), 0, 1)
    groups = np.repeat(np.arange(12), 30)
    y = video_labels[groups]
    s = np.clip(video_scores[groups] + rng.normal(0, 0.01, groups.size), 0, 1)
    frame_low, frame_high = metrics.bootstrap_ci(y, s, skm.roc_auc_score, n=200)
    group_low, group_high = metrics.bootstrap_ci(y, s, skm.roc_auc_score, n=200, groups=groups)
    assert group_high - group_low > 2 * (frame_high - frame_low)


def test_bootstrap_refuses_single_class_and_bad_settings() -> None:
    with pytest.raises(ValueError, match="both classes"):
        metrics.bootstrap_ci([1, 1, 1], [0.2, 0.5, 0.9], skm.roc_auc_score)
    with pytest.raises(ValueError, match="alpha"):
        metrics.bootstrap_ci([0, 1], [0.2, 0.9], skm.roc_auc_score, alpha=1.5)
    with pytest.raises(ValueError, match="both labels: 'v2'"):  # a video is fake or real, never both
        metrics.bootstrap_ci([1, 1, 0, 1, 0], [0.1, 0.2, 0.3, 0.4, 0.5], skm.roc_auc_score,
                             groups=["v1", "v1", "v2", "v2", "v3"])
