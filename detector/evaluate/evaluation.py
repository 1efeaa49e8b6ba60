"""Evaluation on labelled media: every file scanned by the scanner's own pipeline and rule, frame- and video-level
metrics with bootstrap intervals, and the report files (metrics.json, metrics.md, roc.png, confusion.png).

    python app.py --evaluate labels.csv --output runs/eval
    deepfake-detector evaluate labels.csv --output runs/eval

The video level scores each item exactly as a scan does (:class:`detector.scan.aggregate.ScoredTracks`); the frame level
takes the frames of each item's decisive track, and its intervals resample whole items, since frames of one video are
strongly correlated. Videos and still images are reported apart (a still is one frame, so it says little about
video-level performance) and together. Training's evaluation of prepared crop datasets
(:mod:`training.evaluate`) builds the same items from its crops and writes the same reports.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skm

from detector import config
from detector.evaluate import metrics
from detector.scan.aggregate import ScoredTracks
from detector.models.scoring import Scorer
from detector.scan.options import ScanOptions


@dataclass
class LabelledItem:
    """One labelled input as evaluation sees it: its id, label (1 fake), kind (``video`` or ``image``) and tracks."""

    id: str
    label: int
    kind: str
    tracks: ScoredTracks


def _json_id(key: object) -> str | int | float | bool | None:
    """Item ids as JSON can hold them: str/int/float/bool/None stay, anything else becomes its ``str``."""
    return key if isinstance(key, (str, int, float, bool)) or key is None else str(key)


def _section(y: np.ndarray, s: np.ndarray, threshold: float, n_bootstrap: int, alpha: float, seed: int,
             groups: np.ndarray | None) -> dict[str, Any]:
    """:func:`detector.evaluate.metrics.binary_metrics` plus the ROC-AUC interval and the (thinned) ROC curve, for one
    level."""
    section = metrics.binary_metrics(y, s, threshold)
    section["roc_auc_ci"] = None
    section["roc_curve"] = None
    if section["roc_auc"] is not None:
        low, high = metrics.bootstrap_ci(y, s, skm.roc_auc_score, n=n_bootstrap, alpha=alpha, seed=seed,
                                         groups=groups)
        section["roc_auc_ci"] = [low, high]
        fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=True)
        section["roc_curve"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    else:
        section["notes"].append("no ROC-AUC interval or ROC curve: only one class present")
    return section


def evaluation_report(items: Sequence[LabelledItem], threshold: float = config.DEFAULT_THRESHOLD, *,
                      rule: str = config.AGGREGATION, n_bootstrap: int = 2000, alpha: float = 0.05,
                      seed: int = 0) -> dict[str, Any]:
    """Frame- and video-level evaluation of scored items, as one JSON-ready dict.

    Items without a scored face are left out. The same ``threshold`` decides both levels, as the scanner does.
    Returns ``{"threshold", "aggregation", "bootstrap", "frame", "video", "videos"}``: ``frame`` and ``video`` are
    :func:`detector.evaluate.metrics.binary_metrics` dicts plus ``roc_auc_ci`` (``[low, high]`` or ``None``) and
    ``roc_curve`` (``{"fpr": [...], "tpr": [...]}`` or ``None``). ``videos`` lists ``id``, ``label``, ``score``,
    ``n_frames`` (of the decisive track) and ``predicted_fake`` per item.
    """
    scored = [(item, item.tracks.decisive_frames(rule), item.tracks.score(rule)) for item in items]
    scored = [entry for entry in scored if entry[1]]
    if not scored:
        raise ValueError("no item has a scored face: there is nothing to evaluate")
    frame_groups = np.asarray([item.id for item, frames, _ in scored for _ in frames])
    frame_labels = np.asarray([item.label for item, frames, _ in scored for _ in frames])
    frame_scores = np.asarray([p for _, frames, _ in scored for p in frames], np.float64)
    labels = np.asarray([item.label for item, _, _ in scored])
    scores = np.asarray([score for _, _, score in scored], np.float64)
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
        "frame": _section(frame_labels, frame_scores, threshold, n_bootstrap, alpha, seed, frame_groups),
        "video": _section(labels, scores, threshold, n_bootstrap, alpha, seed, None),
        "videos": [
            {
                "id": _json_id(item.id),
                "label": int(item.label),
                "score": float(score),
                "n_frames": len(frames),
                "predicted_fake": bool(score >= threshold),
            }
            for item, frames, score in scored
        ],
    }


# --------------------------------------------------------------------------------------------------- report files


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


def markdown(report: dict[str, Any]) -> str:
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
    paths["markdown"].write_text(markdown(report), encoding="utf-8")
    _plot_roc(report, paths["roc"])
    _plot_confusion(report, paths["confusion"])
    return paths


def report_sections(items: Sequence[LabelledItem], threshold: float, out_dir: Path, extra: dict,
                    rule: str = config.AGGREGATION) -> dict:
    """Write one report per kind present (videos, images) and one over everything, plus ``summary.json`` with the
    headline numbers, which are returned."""
    out_dir.mkdir(parents=True, exist_ok=True)
    headline = {}
    kinds = sorted({item.kind for item in items})
    sections = [(kind, [item for item in items if item.kind == kind]) for kind in kinds]
    if len(kinds) > 1:
        sections.append(("all", list(items)))
    for name, part in sections:
        if len({item.label for item in part}) < 2:
            headline[name] = {"note": "only one class present; no AUC"}
            continue
        rep = evaluation_report(part, threshold, rule=rule)
        rep.update(extra)
        write_report(rep, out_dir / name)
        video = rep["video"]
        headline[name] = {"items": video["n"], "roc_auc": video["roc_auc"], "roc_auc_ci": video["roc_auc_ci"],
                          "eer": video["eer"], "accuracy": video["accuracy"],
                          "confusion_matrix": video["confusion_matrix"], "frame_roc_auc": rep["frame"]["roc_auc"]}
    (out_dir / "summary.json").write_text(json.dumps({"threshold": threshold, **extra, "sections": headline},
                                                     indent=2) + "\n")
    return headline


# --------------------------------------------------------------------------------------------------- scanning


def evaluate_manifest(manifest: Path, out_dir: Path, detector: Scorer, options: ScanOptions | None = None,
                      show_progress: bool = True) -> int:
    """Scan every labelled file of a CSV manifest with the full pipeline and ``options`` (the defaults unless given;
    never Grad-CAM), write the evaluation report into ``out_dir`` and print its headline numbers. Files without a
    face or that fail are listed as skipped."""
    from tqdm import tqdm

    from detector.ingest.manifest import load_manifest
    from detector.scan.pipeline import Scanner

    labelled = load_manifest(manifest)
    options = dataclasses.replace(options or ScanOptions(), gradcam=False)
    rule = options.aggregation
    scanner = Scanner(detector, options)
    items, skipped = [], []
    for entry in tqdm(labelled, desc="evaluate", unit="file", disable=not show_progress):
        result = scanner.scan(entry.path)
        if result.verdict in ("error", "no_face"):
            skipped.append({"input": str(entry.path), "verdict": result.verdict, "error": result.error})
            continue
        tracks = ScoredTracks([[o.probability for o in t.observations] for t in result.tracks],
                              [t.counted for t in result.tracks])
        items.append(LabelledItem(str(entry.path), entry.label, "image" if result.info.is_image else "video", tracks))
    extra = {"model": detector.source, "model_card": {"backbone": detector.card.backbone,
                                                      "trained": detector.card.trained},
             "manifest": str(manifest), "frames_per_video": options.frames, "skipped": skipped}
    headline = report_sections(items, scanner.threshold, out_dir, extra, rule)
    print(json.dumps(headline, indent=2))
    for s in skipped:
        print(f"skipped {s['input']}: {s['verdict']} {s['error'] or ''}", file=sys.stderr)
    print(f"report: {out_dir}")
    return 0
