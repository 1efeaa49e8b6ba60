"""Evaluation metrics for the binary deepfake detector, at frame and video level.

Conventions shared by everything here:

* label ``1`` = fake (the positive class), ``0`` = real;
* a score is the model's fake probability, and a sample is called fake when ``score >= threshold`` -- the same
  direction as the ROC curve's thresholds, so a threshold read off the curve (the EER threshold) can be used as a
  decision threshold unchanged;
* results are plain dicts and lists of Python ``float``/``int``/``str``/``None`` so they go to JSON as they are;
* a metric that the input cannot define (ROC-AUC with one class present, precision with nothing called fake) is
  ``None`` with the reason in the ``notes`` list -- never a stand-in number such as 0.5 or 0 that would read as a
  measurement.

The metrics are computed with numpy from one shared ROC computation instead of by calling scikit-learn, so that
degenerate inputs give ``None`` plus a note rather than a warning or an exception; the tests check every value
against scikit-learn.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from detector import aggregate
from detector.config import DEFAULT_THRESHOLD

#: Probabilities are clipped to [LOG_LOSS_EPS, 1 - LOG_LOSS_EPS] for log loss. A float32 sigmoid rounds to exactly
#: 0.0 or 1.0 for large logits; 1e-7 is Keras' epsilon, so one confident mistake costs at most ~16.1 nats, the same
#: cap binary cross-entropy had during training, and evaluation log loss stays comparable to the training loss.
LOG_LOSS_EPS = 1e-7

#: Ways :func:`aggregate_by_group` turns a video's frame scores into one video score: the scanner's own pooling
#: rules (:mod:`detector.aggregate`), so evaluation cannot drift from what a scan reports.
AGGREGATION_RULES = aggregate.RULES

MetricFn = Callable[[np.ndarray, np.ndarray], "float | None"]


class GroupedScores(NamedTuple):
    """Video-level (group-level) labels and scores, in the order each group first appears in the input."""

    groups: list[Hashable]
    labels: np.ndarray
    scores: np.ndarray


# --------------------------------------------------------------------------------------------------- input checks


def _labels(y_true: ArrayLike) -> np.ndarray:
    """Labels as a 1-D int array of 0/1; bools are accepted, anything else is refused with the offending values."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y.shape}")
    if y.size == 0:
        raise ValueError("y_true is empty: there is nothing to evaluate")
    if y.dtype.kind not in "biuf":
        raise ValueError(f"y_true must be numeric 0/1 labels, got dtype {y.dtype}")
    bad = np.setdiff1d(np.unique(y), [0, 1])
    if bad.size:
        raise ValueError(f"y_true must hold only 0 (real) and 1 (fake); found {bad[:5].tolist()}")
    return y.astype(np.int64)


def _scores(scores: ArrayLike, n: int) -> np.ndarray:
    """Scores as a finite 1-D float64 array of length ``n``; NaN would silently corrupt every ranking metric."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.shape[0] != n:
        raise ValueError(f"scores must be 1-D with one score per label ({n}), got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"scores contain {int(np.sum(~np.isfinite(s)))} non-finite value(s)")
    return s


def _both_classes(y: np.ndarray) -> bool:
    return bool(np.any(y == 1) and np.any(y == 0))


def _require_both_classes(y: np.ndarray, what: str) -> None:
    if not _both_classes(y):
        raise ValueError(
            f"{what} needs both classes; got {int(np.sum(y == 1))} fake and {int(np.sum(y == 0))} real"
        )


# --------------------------------------------------------------------------------------------------- ranking metrics


def _cumulative_counts(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True/false positive counts at each distinct score used as threshold, highest threshold first.

    Tied scores are one threshold: a tie is either all called fake or all called real, which is what makes AUC
    count ties as half and identical scores give AUC 0.5.
    """
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    y_sorted = y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last_of_tie]
    fps = last_of_tie + 1 - tps
    return tps, fps, s_sorted[last_of_tie]


def roc_curve(
    y_true: ArrayLike, scores: ArrayLike, drop_intermediate: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve as ``(fpr, tpr, thresholds)``, highest threshold first, starting at (0, 0) with threshold ``inf``.

    Same layout as :func:`sklearn.metrics.roc_curve` so the two can be compared point by point.
    ``drop_intermediate`` removes points on straight segments, which only shrinks what a report stores or plots.
    Raises ``ValueError`` when only one class is present, because one of the two rates is then 0/0.
    """
    y = _labels(y_true)
    s = _scores(scores, y.size)
    _require_both_classes(y, "an ROC curve")
    tps, fps, thresholds = _cumulative_counts(y, s)
    tps = np.r_[0, tps]
    fps = np.r_[0, fps]
    thresholds = np.r_[np.inf, thresholds]
    if drop_intermediate and tps.size > 2:
        keep = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        tps, fps, thresholds = tps[keep], fps[keep], thresholds[keep]
    return fps / fps[-1], tps / tps[-1], thresholds


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve (trapezoids, so ties count half). Raises ``ValueError`` with one class present."""
    fpr, tpr, _ = roc_curve(y_true, scores)
    return float(np.trapezoid(tpr, fpr))


def average_precision(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Average precision, ``sum_k (R_k - R_{k-1}) * P_k`` over distinct thresholds (scikit-learn's definition).

    No interpolation of the precision-recall curve: the trapezoid rule over-states precision on small sets.
    Raises ``ValueError`` with one class present.
    """
    y = _labels(y_true)
    s = _scores(scores, y.size)
    _require_both_classes(y, "average precision")
    tps, fps, _ = _cumulative_counts(y, s)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def equal_error_rate(y_true: ArrayLike, scores: ArrayLike) -> tuple[float, float]:
    """Equal error rate and the threshold where it occurs, as ``(eer, threshold)``.

    Convention: walk the ROC curve from the highest threshold down. The false positive rate only rises and the
    false negative rate (1 - TPR) only falls, and at every step at least one of them moves, so ``FPR - FNR`` rises
    strictly from -1 to +1 and crosses zero exactly once. If a ROC point has FPR == FNR exactly (checked in integer
    counts, so 1/3 == 1 - 2/3 holds), that rate and that point's threshold are returned. Otherwise FPR and FNR are
    interpolated linearly between the last point with FPR < FNR and the first with FPR > FNR; the EER is the rate
    where the two lines meet, and the threshold is interpolated between the two points' thresholds with the same
    weight. The curve's (0, 0) start has threshold ``inf``; for interpolation the highest score stands in for it,
    so the returned threshold is always a finite score.

    The interpolated point is not an operating point any single threshold reaches: applying the returned threshold
    with ``>=`` gives the errors of the higher-threshold neighbour (FPR below the EER, FNR above it). On small sets
    this is the usual, and the only well-defined, reading of "the rate where the two errors are equal".
    Raises ``ValueError`` with one class present.
    """
    y = _labels(y_true)
    s = _scores(scores, y.size)
    _require_both_classes(y, "the equal error rate")
    tps, fps, thresholds = _cumulative_counts(y, s)
    n_pos, n_neg = int(tps[-1]), int(fps[-1])
    tps = np.r_[0, tps]
    fps = np.r_[0, fps]
    thresholds = np.r_[thresholds[0], thresholds]
    # (FPR - FNR) * n_pos * n_neg, exact in integers.
    gap = fps * n_pos - (n_pos - tps) * n_neg
    i = int(np.argmax(gap >= 0))
    fpr = fps / n_neg
    if gap[i] == 0:
        return float(fpr[i]), float(thresholds[i])
    j = i - 1
    w = -gap[j] / (gap[i] - gap[j])
    eer = fpr[j] + w * (fpr[i] - fpr[j])
    threshold = thresholds[j] + w * (thresholds[i] - thresholds[j])
    return float(eer), float(threshold)


def log_loss(y_true: ArrayLike, scores: ArrayLike, eps: float = LOG_LOSS_EPS) -> float:
    """Mean binary cross-entropy in nats, with probabilities clipped to ``[eps, 1 - eps]`` (see LOG_LOSS_EPS)."""
    y = _labels(y_true)
    p = np.clip(_scores(scores, y.size), eps, 1.0 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


# --------------------------------------------------------------------------------------------------- binary metrics


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def binary_metrics(y_true: ArrayLike, scores: ArrayLike, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """Every metric the reports show, for one set of labels and fake probabilities, as a JSON-ready dict.

    Keys: ``n``, ``n_positive`` (fake), ``n_negative`` (real), ``n_predicted_positive``, ``threshold``,
    ``accuracy``, ``balanced_accuracy``, ``precision``, ``recall`` (TPR), ``specificity`` (TNR), ``f1``,
    ``roc_auc``, ``average_precision``, ``log_loss``, ``eer``, ``eer_threshold``, ``confusion_matrix``
    (``[[tn, fp], [fn, tp]]``, rows = true label, as scikit-learn lays it out) and ``notes`` (list of str).

    A metric the data cannot define is ``None`` and ``notes`` says why: with one class present ROC-AUC, average
    precision, EER and balanced accuracy are undefined (and recall or specificity, whichever class is missing);
    precision is undefined when nothing is called fake. F1 is ``2tp / (2tp + fp + fn)``, so it is 0 rather than
    undefined when fakes exist but none is caught. Scores must be probabilities in [0, 1].
    """
    y = _labels(y_true)
    s = _scores(scores, y.size)
    if np.any((s < 0) | (s > 1)):
        raise ValueError("scores must be fake probabilities in [0, 1]")
    threshold = float(threshold)
    notes: list[str] = []

    pred = s >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    tn = int(np.sum(~pred & (y == 0)))
    n_pos, n_neg = tp + fn, tn + fp

    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, n_pos)
    specificity = _ratio(tn, n_neg)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    balanced = None if recall is None or specificity is None else (recall + specificity) / 2
    if precision is None:
        notes.append(f"no sample has score >= {threshold:g}, so precision is undefined")
    if f1 is None:
        notes.append("no fakes and none predicted, so F1 is undefined")

    roc_auc_value = ap = eer = eer_threshold = None
    if _both_classes(y):
        roc_auc_value = roc_auc(y, s)
        ap = average_precision(y, s)
        eer, eer_threshold = equal_error_rate(y, s)
    else:
        present, missing = ("fake", "real") if n_pos else ("real", "fake")
        undefined = "specificity" if missing == "real" else "recall"
        notes.append(
            f"only {present} samples present ({y.size}), no {missing}: ROC-AUC, average precision, EER, "
            f"balanced accuracy and {undefined} are undefined"
        )

    clipped = int(np.sum((s < LOG_LOSS_EPS) | (s > 1.0 - LOG_LOSS_EPS)))
    if clipped:
        notes.append(f"{clipped} score(s) within {LOG_LOSS_EPS:g} of 0 or 1 were clipped for log loss")

    return {
        "n": int(y.size),
        "n_positive": n_pos,
        "n_negative": n_neg,
        "n_predicted_positive": tp + fp,
        "threshold": threshold,
        "accuracy": (tp + tn) / y.size,
        "balanced_accuracy": balanced,
        "precision": precision,
        "recall": recall,
        "specificity": specificity,
        "f1": f1,
        "roc_auc": roc_auc_value,
        "average_precision": ap,
        "log_loss": log_loss(y, s),
        "eer": eer,
        "eer_threshold": eer_threshold,
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "notes": notes,
    }


# --------------------------------------------------------------------------------------------------- groups


def _group_members(groups: ArrayLike, n: int) -> tuple[list[Hashable], list[np.ndarray]]:
    """Group ids in order of first appearance, and the frame indices of each group."""
    keys = np.asarray(groups)
    if keys.ndim != 1 or keys.shape[0] != n:
        raise ValueError(f"groups must be 1-D with one id per label ({n}), got shape {keys.shape}")
    members: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys.tolist()):
        members.setdefault(key, []).append(i)
    return list(members), [np.asarray(m) for m in members.values()]


def _group_labels(ids: list[Hashable], members: list[np.ndarray], y: np.ndarray) -> np.ndarray:
    """One label per group; a group whose frames disagree is a data error, so it is refused, not voted on."""
    mixed = [g for g, m in zip(ids, members) if np.any(y[m] != y[m[0]])]
    if mixed:
        shown = ", ".join(repr(g) for g in mixed[:5])
        more = f" and {len(mixed) - 5} more" if len(mixed) > 5 else ""
        raise ValueError(f"{len(mixed)} group(s) have frames with both labels: {shown}{more}")
    return np.asarray([y[m[0]] for m in members], dtype=np.int64)


def aggregate_by_group(
    groups: ArrayLike, y_true: ArrayLike, scores: ArrayLike, rule: str = "mean"
) -> GroupedScores:
    """Frame-level scores to one score per group (video), by ``rule`` (one of :data:`detector.aggregate.RULES`).

    Groups come back in the order they first appear, so the output lines up with the input's video order.
    Raises ``ValueError`` if a group's frames carry both labels: a video is either fake or real, and mixed labels
    mean the frame table was built wrong.
    """
    if rule not in AGGREGATION_RULES:
        raise ValueError(f"unknown aggregation rule {rule!r}; known: {', '.join(AGGREGATION_RULES)}")
    y = _labels(y_true)
    s = _scores(scores, y.size)
    ids, members = _group_members(groups, y.size)
    labels = _group_labels(ids, members, y)
    video_scores = np.asarray([aggregate.pool(s[m], rule) for m in members], dtype=np.float64)
    return GroupedScores(groups=ids, labels=labels, scores=video_scores)


# --------------------------------------------------------------------------------------------------- bootstrap


def bootstrap_ci(
    y_true: ArrayLike,
    scores: ArrayLike,
    metric_fn: MetricFn,
    n: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    groups: ArrayLike | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap ``(1 - alpha)`` interval ``(low, high)`` for ``metric_fn(y_true, scores)``.

    Stratified: each resample draws as many positives as there are, with replacement, from the positives, and the
    same for negatives. On a 17-video set a plain resample would now and then draw a single class, where AUC is
    undefined, and dropping those draws would bias the interval.

    ``groups`` (optional, one id per sample) makes it a cluster bootstrap: whole groups are resampled, stratified
    by group label, and all their frames go in. Frames of one video are strongly correlated, so resampling frames
    one by one would pretend there is far more independent data than there is and give intervals that are too
    narrow. Draws where ``metric_fn`` returns ``None`` or a non-finite value are left out.
    Raises ``ValueError`` if a class is missing or no draw gives a finite value.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    y = _labels(y_true)
    s = _scores(scores, y.size)
    _require_both_classes(y, "a stratified bootstrap")

    if groups is None:
        units = [np.asarray([i]) for i in range(y.size)]
        unit_labels = y
    else:
        ids, units = _group_members(groups, y.size)
        unit_labels = _group_labels(ids, units, y)
    pos = np.flatnonzero(unit_labels == 1)
    neg = np.flatnonzero(unit_labels == 0)

    rng = np.random.default_rng(seed)
    draws = np.concatenate(
        [pos[rng.integers(0, pos.size, size=(n, pos.size))], neg[rng.integers(0, neg.size, size=(n, neg.size))]],
        axis=1,
    )
    values = np.empty(n, dtype=np.float64)
    for b, chosen in enumerate(draws):
        idx = chosen if groups is None else np.concatenate([units[u] for u in chosen])
        value = metric_fn(y[idx], s[idx])
        values[b] = np.nan if value is None else float(value)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("metric_fn gave no finite value on any bootstrap resample")
    low, high = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


# --------------------------------------------------------------------------------------------------- report


def _json_id(key: Hashable) -> str | int | float | bool | None:
    """Group ids as JSON can hold them: str/int/float/bool/None stay, anything else becomes its ``str``."""
    return key if isinstance(key, (str, int, float, bool)) or key is None else str(key)


def _section(
    y: np.ndarray,
    s: np.ndarray,
    threshold: float,
    n_bootstrap: int,
    alpha: float,
    seed: int,
    groups: np.ndarray | None,
) -> dict[str, Any]:
    """``binary_metrics`` plus the ROC-AUC interval and the (thinned) ROC curve, for one level."""
    section = binary_metrics(y, s, threshold)
    section["roc_auc_ci"] = None
    section["roc_curve"] = None
    if section["roc_auc"] is not None:
        low, high = bootstrap_ci(y, s, roc_auc, n=n_bootstrap, alpha=alpha, seed=seed, groups=groups)
        section["roc_auc_ci"] = [low, high]
        fpr, tpr, _ = roc_curve(y, s, drop_intermediate=True)
        section["roc_curve"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    else:
        section["notes"].append("no ROC-AUC interval or ROC curve: only one class present")
    return section


def evaluation_report(
    groups: ArrayLike,
    y_true: ArrayLike,
    scores: ArrayLike,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    rule: str = "mean",
    n_bootstrap: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Any]:
    """Frame- and video-level evaluation of per-frame predictions, as one JSON-ready dict.

    Inputs are the columns of a frame table: ``groups`` (video id per frame), ``y_true`` (the video's label on each
    of its frames) and ``scores`` (fake probability per frame). Video scores are the frames' scores combined by
    ``rule`` (see :func:`aggregate_by_group`), and the same ``threshold`` decides both levels, as the scanner does.

    Returns ``{"threshold", "aggregation", "bootstrap", "frame", "video", "videos"}``: ``frame`` and ``video`` are
    :func:`binary_metrics` dicts plus ``roc_auc_ci`` (``[low, high]`` or ``None``) and ``roc_curve``
    (``{"fpr": [...], "tpr": [...]}`` or ``None``); the frame-level interval resamples whole videos (see
    :func:`bootstrap_ci`). ``videos`` lists ``id``, ``label``, ``score``, ``n_frames`` and ``predicted_fake`` per video.
    """
    y = _labels(y_true)
    s = _scores(scores, y.size)
    group_keys = np.asarray(groups)
    video = aggregate_by_group(group_keys, y, s, rule)
    n_frames = {key: len(m) for key, m in zip(*_group_members(group_keys, y.size))}
    threshold = float(threshold)
    return {
        "threshold": threshold,
        "aggregation": rule,
        "bootstrap": {
            "n": int(n_bootstrap),
            "alpha": float(alpha),
            "seed": int(seed),
            "method": "stratified percentile bootstrap; the frame level resamples whole videos",
        },
        "frame": _section(y, s, threshold, n_bootstrap, alpha, seed, group_keys),
        "video": _section(video.labels, video.scores, threshold, n_bootstrap, alpha, seed, None),
        "videos": [
            {
                "id": _json_id(key),
                "label": int(label),
                "score": float(score),
                "n_frames": n_frames[key],
                "predicted_fake": bool(score >= threshold),
            }
            for key, label, score in zip(video.groups, video.labels, video.scores)
        ],
    }


def _fmt(value: float | int | None, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _fmt_ci(ci: Sequence[float] | None) -> str:
    return "n/a" if ci is None else f"[{ci[0]:.4f}, {ci[1]:.4f}]"


def _md_cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _markdown(report: dict[str, Any]) -> str:
    """The report as a short Markdown page: settings, one metrics table with both levels, notes, videos."""
    frame, video = report["frame"], report["video"]
    boot = report["bootstrap"]
    level = round(100 * (1 - boot["alpha"]), 2)

    def counts(sec: dict[str, Any]) -> str:
        return f"{sec['n']} ({sec['n_positive']} fake / {sec['n_negative']} real)"

    def cm(sec: dict[str, Any]) -> str:
        (tn, fp), (fn, tp) = sec["confusion_matrix"]
        return f"{tn} / {fp} / {fn} / {tp}"

    rows = [
        ("Samples", counts(frame), counts(video)),
        ("ROC-AUC", _fmt(frame["roc_auc"]), _fmt(video["roc_auc"])),
        (f"ROC-AUC {level:g}% CI", _fmt_ci(frame["roc_auc_ci"]), _fmt_ci(video["roc_auc_ci"])),
        ("Average precision", _fmt(frame["average_precision"]), _fmt(video["average_precision"])),
        ("Accuracy", _fmt(frame["accuracy"]), _fmt(video["accuracy"])),
        ("Balanced accuracy", _fmt(frame["balanced_accuracy"]), _fmt(video["balanced_accuracy"])),
        ("Precision", _fmt(frame["precision"]), _fmt(video["precision"])),
        ("Recall (TPR)", _fmt(frame["recall"]), _fmt(video["recall"])),
        ("Specificity (TNR)", _fmt(frame["specificity"]), _fmt(video["specificity"])),
        ("F1", _fmt(frame["f1"]), _fmt(video["f1"])),
        ("Log loss", _fmt(frame["log_loss"]), _fmt(video["log_loss"])),
        ("EER", _fmt(frame["eer"]), _fmt(video["eer"])),
        ("EER threshold", _fmt(frame["eer_threshold"]), _fmt(video["eer_threshold"])),
        ("TN / FP / FN / TP", cm(frame), cm(video)),
    ]
    lines = [
        "# Evaluation report",
        "",
        f"- Threshold: {report['threshold']:g} (score >= threshold is called fake)",
        f"- Video score: {report['aggregation']} of its frame scores",
        f"- ROC-AUC intervals: {boot['method']}, {boot['n']} resamples, seed {boot['seed']}",
        "",
        "| Metric | Frame | Video |",
        "|---|---:|---:|",
        *(f"| {name} | {f} | {v} |" for name, f, v in rows),
    ]
    notes = [f"- {lvl}: {note}" for lvl in ("frame", "video") for note in report[lvl]["notes"]]
    if notes:
        lines += ["", "## Notes", "", *notes]
    lines += ["", "## Videos", "", "| Video | Label | Score | Frames | Called |", "|---|---|---:|---:|---|"]
    for v in report["videos"]:
        label = "fake" if v["label"] == 1 else "real"
        called = "fake" if v["predicted_fake"] else "real"
        lines.append(f"| {_md_cell(v['id'])} | {label} | {v['score']:.4f} | {v['n_frames']} | {called} |")
    return "\n".join(lines) + "\n"


def _plot_roc(report: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    for level, style in (("frame", "-"), ("video", "--")):
        sec = report[level]
        if sec["roc_curve"] is None:
            ax.plot([], [], linestyle=style, label=f"{level}: n/a (one class)")
            continue
        ci = sec["roc_auc_ci"]
        ci_text = "" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"
        ax.plot(
            sec["roc_curve"]["fpr"],
            sec["roc_curve"]["tpr"],
            linestyle=style,
            label=f"{level} (n={sec['n']}): AUC {sec['roc_auc']:.3f}{ci_text}",
        )
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("False positive rate (real called fake)")
    ax.set_ylabel("True positive rate (fake caught)")
    ax.set_title("ROC")
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)


def _plot_confusion(report: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = np.asarray(report["video"]["confusion_matrix"])
    fig = Figure(figsize=(4, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(int(matrix.max()), 1))
    for (row, col), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else "black"
        ax.text(col, row, str(count), ha="center", va="center", color=colour, fontsize=16)
    ax.set_xticks([0, 1], ["real", "fake"])
    ax.set_yticks([0, 1], ["real", "fake"])
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    ax.set_title(f"Videos, threshold {report['threshold']:g}")
    fig.tight_layout()
    fig.savefig(path)


def write_report(report: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``metrics.json``, ``metrics.md``, ``roc.png`` and ``confusion.png`` into ``out_dir`` (created if needed).

    The JSON is strict (``allow_nan=False``): undefined metrics are already ``null``, so a NaN here would be a bug
    and is refused rather than written as the non-standard ``NaN`` token. Plots draw on an Agg canvas without pyplot,
    so no global backend is switched and no display is needed. Returns the written paths by short name.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "metrics.json",
        "markdown": out / "metrics.md",
        "roc": out / "roc.png",
        "confusion": out / "confusion.png",
    }
    paths["json"].write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    paths["markdown"].write_text(_markdown(report), encoding="utf-8")
    _plot_roc(report, paths["roc"])
    _plot_confusion(report, paths["confusion"])
    return paths
