"""Metrics for the binary deepfake detector, on scikit-learn, with what it lacks: the equal error rate, a grouped
(cluster) bootstrap, and undefined metrics reported as ``None`` with the reason.

Conventions shared by everything here:

* label ``1`` = fake (the positive class), ``0`` = real;
* a score is the model's fake probability, and a sample is called fake when ``score >= threshold`` -- the same
  direction as the ROC curve's thresholds, so a threshold read off the curve (the EER threshold) can be used as a
  decision threshold unchanged;
* results are plain dicts and lists of Python ``float``/``int``/``str``/``None`` so they go to JSON as they are;
* a metric that the input cannot define (ROC-AUC with one class present, precision with nothing called fake) is
  ``None`` with the reason in the ``notes`` list -- never a stand-in number such as 0.5 or 0 that would read as a
  measurement, and never scikit-learn's warning or exception.

Evaluation reports (the frame and video levels, the report files and plots) are :mod:`detector.evaluate.evaluation`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn import metrics as skm

from detector.config import DEFAULT_THRESHOLD

#: Probabilities are clipped to [LOG_LOSS_EPS, 1 - LOG_LOSS_EPS] for log loss. A float32 sigmoid rounds to exactly
#: 0.0 or 1.0 for large logits; 1e-7 is Keras' epsilon, so one confident mistake costs at most ~16.1 nats, the same
#: cap binary cross-entropy had during training, and evaluation log loss stays comparable to the training loss.
LOG_LOSS_EPS = 1e-7

MetricFn = Callable[[np.ndarray, np.ndarray], "float | None"]


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


# --------------------------------------------------------------------------------------------------- EER


def equal_error_rate(y_true: ArrayLike, scores: ArrayLike) -> tuple[float, float]:
    """Equal error rate and the threshold where it occurs, as ``(eer, threshold)``.

    Convention: walk scikit-learn's ROC curve (every distinct score a threshold) from the highest threshold down. The
    false positive rate only rises and the false negative rate (1 - TPR) only falls, and at every step at least one
    of them moves, so ``FPR - FNR`` rises strictly from -1 to +1 and crosses zero exactly once. If a ROC point has
    FPR == FNR exactly (checked in integer counts, so 1/3 == 1 - 2/3 holds), that rate and that point's threshold
    are returned. Otherwise FPR and FNR are interpolated linearly between the last point with FPR < FNR and the first
    with FPR > FNR; the EER is the rate where the two lines meet, and the threshold is interpolated between the two
    points' thresholds with the same weight. The curve's (0, 0) start has threshold ``inf``; for interpolation the
    highest score stands in for it, so the returned threshold is always a finite score.

    The interpolated point is not an operating point any single threshold reaches: applying the returned threshold
    with ``>=`` gives the errors of the higher-threshold neighbour (FPR below the EER, FNR above it). On small sets
    this is the usual, and the only well-defined, reading of "the rate where the two errors are equal".
    Raises ``ValueError`` with one class present.
    """
    y = _labels(y_true)
    s = _scores(scores, y.size)
    _require_both_classes(y, "the equal error rate")
    fpr, tpr, thresholds = skm.roc_curve(y, s, drop_intermediate=False)
    n_pos, n_neg = int(np.sum(y == 1)), int(np.sum(y == 0))
    # back to exact counts: the rates are count / total, so rounding recovers the integers
    fps = np.rint(fpr * n_neg).astype(np.int64)
    tps = np.rint(tpr * n_pos).astype(np.int64)
    thresholds = np.r_[thresholds[1], thresholds[1:]]
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

    tn, fp, fn, tp = (int(c) for c in skm.confusion_matrix(y, (s >= threshold).astype(np.int64),
                                                             labels=[0, 1]).ravel())
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

    roc_auc = ap = eer = eer_threshold = None
    if _both_classes(y):
        roc_auc = float(skm.roc_auc_score(y, s))
        ap = float(skm.average_precision_score(y, s))
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
        "roc_auc": roc_auc,
        "average_precision": ap,
        "log_loss": float(skm.log_loss(y, np.clip(s, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS), labels=[0, 1])),
        "eer": eer,
        "eer_threshold": eer_threshold,
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "notes": notes,
    }


# --------------------------------------------------------------------------------------------------- bootstrap


def _group_members(groups: ArrayLike, n: int) -> tuple[list[Hashable], list[np.ndarray]]:
    """Group ids in order of first appearance, and the sample indices of each group."""
    keys = np.asarray(groups)
    if keys.ndim != 1 or keys.shape[0] != n:
        raise ValueError(f"groups must be 1-D with one id per label ({n}), got shape {keys.shape}")
    members: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys.tolist()):
        members.setdefault(key, []).append(i)
    return list(members), [np.asarray(m) for m in members.values()]


def _group_labels(ids: list[Hashable], members: list[np.ndarray], y: np.ndarray) -> np.ndarray:
    """One label per group; a group whose samples disagree is a data error, so it is refused, not voted on."""
    mixed = [g for g, m in zip(ids, members) if np.any(y[m] != y[m[0]])]
    if mixed:
        shown = ", ".join(repr(g) for g in mixed[:5])
        more = f" and {len(mixed) - 5} more" if len(mixed) > 5 else ""
        raise ValueError(f"{len(mixed)} group(s) have frames with both labels: {shown}{more}")
    return np.asarray([y[m[0]] for m in members], dtype=np.int64)


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
    Raises ``ValueError`` if a class is missing, a group mixes labels, or no draw gives a finite value.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return percentile_interval(bootstrap_values(y_true, scores, metric_fn, n=n, seed=seed, groups=groups), alpha)


def percentile_interval(values: ArrayLike, alpha: float = 0.05) -> tuple[float, float]:
    """The central ``(1 - alpha)`` percentile interval ``(low, high)`` of bootstrap ``values``."""
    low, high = np.percentile(np.asarray(values, dtype=np.float64), [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def bootstrap_values(
    y_true: ArrayLike,
    scores: ArrayLike,
    metric_fn: MetricFn,
    n: int = 2000,
    seed: int = 0,
    groups: ArrayLike | None = None,
) -> np.ndarray:
    """The finite values of ``metric_fn`` over :func:`bootstrap_ci`'s stratified resamples (same draws for the same
    ``seed``), for callers that need more than one interval of the same draws. Raises as :func:`bootstrap_ci`."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
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
    return values
