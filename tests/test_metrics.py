"""Checks for detector.metrics: every metric against scikit-learn, EER and aggregation against hand computations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from detector import metrics


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

    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert m["average_precision"] == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, s), abs=1e-12)
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


@pytest.mark.parametrize("seed", [0, 3])
def test_roc_curve_matches_sklearn_point_by_point(seed: int) -> None:
    y, s = _random_set(seed)
    fpr, tpr, thr = metrics.roc_curve(y, s)
    sk_fpr, sk_tpr, sk_thr = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_array_equal(thr, sk_thr)

    thin_fpr, thin_tpr, _ = metrics.roc_curve(y, s, drop_intermediate=True)
    assert thin_fpr.size < fpr.size
    assert np.trapezoid(thin_tpr, thin_fpr) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)


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
        metrics.roc_auc(np.full(6, label), np.linspace(0.1, 0.9, 6))


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
        point = metrics.roc_auc(y, s)
        low, high = metrics.bootstrap_ci(y, s, metrics.roc_auc, n=500, seed=0)
        assert low <= point <= high
        assert 0.0 <= low < high <= 1.0
        widths.append(high - low)
    assert widths[1] < widths[0] / 2


def test_bootstrap_is_stratified_and_reproducible() -> None:
    y = np.array([0] * 15 + [1] * 2)
    s = np.random.default_rng(0).uniform(0, 1, 17)

    def auc_checking_classes(yb: np.ndarray, sb: np.ndarray) -> float:
        assert yb.sum() == 2 and (1 - yb).sum() == 15
        return metrics.roc_auc(yb, sb)

    first = metrics.bootstrap_ci(y, s, auc_checking_classes, n=300, seed=7)
    assert first == metrics.bootstrap_ci(y, s, auc_checking_classes, n=300, seed=7)
    assert first != metrics.bootstrap_ci(y, s, auc_checking_classes, n=300, seed=8)


def test_group_bootstrap_is_wider_for_correlated_frames() -> None:
    # 12 videos x 30 near-identical frames: frame-wise resampling sees 360 samples, but there are only 12 videos.
    rng = np.random.default_rng(0)
    video_labels = np.array([0, 1] * 6)
    video_scores = np.clip(0.5 + 0.25 * (2 * video_labels - 1) + rng.normal(0, 0.25, 12), 0, 1)
    groups = np.repeat(np.arange(12), 30)
    y = video_labels[groups]
    s = np.clip(video_scores[groups] + rng.normal(0, 0.01, groups.size), 0, 1)
    frame_low, frame_high = metrics.bootstrap_ci(y, s, metrics.roc_auc, n=300)
    group_low, group_high = metrics.bootstrap_ci(y, s, metrics.roc_auc, n=300, groups=groups)
    assert group_high - group_low > 2 * (frame_high - frame_low)


def test_bootstrap_refuses_single_class_and_bad_settings() -> None:
    with pytest.raises(ValueError, match="both classes"):
        metrics.bootstrap_ci([1, 1, 1], [0.2, 0.5, 0.9], metrics.roc_auc)
    with pytest.raises(ValueError, match="alpha"):
        metrics.bootstrap_ci([0, 1], [0.2, 0.9], metrics.roc_auc, alpha=1.5)


# --------------------------------------------------------------------------------------------------- aggregation


def test_aggregate_by_group_matches_hand_computation() -> None:
    groups = ["b", "a", "b", "c", "a", "b", "c"]
    y = [1, 0, 1, 0, 0, 1, 0]
    s = [0.9, 0.1, 0.6, 0.4, 0.3, 0.3, 0.2]
    ids, labels, mean = metrics.aggregate_by_group(groups, y, s)
    assert ids == ["b", "a", "c"]
    assert labels.tolist() == [1, 0, 0]
    np.testing.assert_allclose(mean, [0.6, 0.2, 0.3])
    np.testing.assert_allclose(metrics.aggregate_by_group(groups, y, s, "max").scores, [0.9, 0.3, 0.4])
    np.testing.assert_allclose(metrics.aggregate_by_group(groups, y, s, "median").scores, [0.6, 0.2, 0.3])


def test_aggregate_by_group_refuses_mixed_labels_and_unknown_rules() -> None:
    with pytest.raises(ValueError, match="both labels: 'v2'"):
        metrics.aggregate_by_group(["v1", "v1", "v2", "v2"], [1, 1, 0, 1], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="unknown aggregation rule"):
        metrics.aggregate_by_group(["v1"], [1], [0.5], rule="mode")


# --------------------------------------------------------------------------------------------------- report


def _frame_table(seed: int = 0, n_videos: int = 17, frames: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    video_labels = rng.permutation(np.r_[np.ones(n_videos // 2 + 1, int), np.zeros(n_videos // 2, int)])
    groups = np.repeat([f"clip_{i:02d}.mp4" for i in range(n_videos)], frames)
    y = np.repeat(video_labels, frames)
    s = np.clip(0.5 + 0.2 * (2 * y - 1) + rng.normal(0, 0.25, y.size), 0, 1)
    return groups, y, s


def test_evaluation_report_sections_agree_with_their_parts() -> None:
    groups, y, s = _frame_table()
    report = metrics.evaluation_report(groups, y, s, 0.5, n_bootstrap=200)
    assert report["frame"]["roc_auc"] == pytest.approx(skm.roc_auc_score(y, s))
    video = metrics.aggregate_by_group(groups, y, s)
    assert report["video"]["roc_auc"] == pytest.approx(skm.roc_auc_score(video.labels, video.scores))
    assert report["video"]["n"] == 17 and report["frame"]["n"] == 17 * 8
    for level in ("frame", "video"):
        low, high = report[level]["roc_auc_ci"]
        assert low <= report[level]["roc_auc"] <= high
        assert report[level]["roc_curve"]["fpr"][-1] == 1.0
    assert [v["id"] for v in report["videos"]] == video.groups
    assert all(v["n_frames"] == 8 for v in report["videos"])
    assert [v["predicted_fake"] for v in report["videos"]] == (video.scores >= 0.5).tolist()


def test_write_report_writes_four_files_and_json_round_trips(tmp_path) -> None:
    groups, y, s = _frame_table()
    report = metrics.evaluation_report(groups, y, s, 0.5, n_bootstrap=200)
    paths = metrics.write_report(report, tmp_path / "eval")
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == [
        "confusion.png",
        "metrics.json",
        "metrics.md",
        "roc.png",
    ]
    assert json.loads(paths["json"].read_text(encoding="utf-8")) == report
    for key in ("roc", "confusion"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = paths["markdown"].read_text(encoding="utf-8")
    assert "| Metric | Frame | Video |" in markdown
    assert "| ROC-AUC 95% CI |" in markdown
    assert "clip_00.mp4" in markdown


def test_write_report_handles_a_single_class_set(tmp_path) -> None:
    groups = np.repeat(["a", "b", "c"], 4)
    y = np.ones(12, int)
    s = np.linspace(0.3, 0.9, 12)
    report = metrics.evaluation_report(groups, y, s, n_bootstrap=50)
    assert report["video"]["roc_auc"] is None and report["video"]["roc_auc_ci"] is None
    paths = metrics.write_report(report, tmp_path)
    assert json.loads(paths["json"].read_text(encoding="utf-8")) == report
    markdown = paths["markdown"].read_text(encoding="utf-8")
    assert "n/a" in markdown and "## Notes" in markdown
