"""Checks for detector.evaluate.evaluation: the report's two levels agree with the scanner's rule and with
scikit-learn, and the report files are written (also for a set with one class)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from detector.scan.aggregate import ScoredTracks
from detector.evaluate.evaluation import LabelledItem, evaluation_report, write_report


def labelled_items(seed: int = 0, n_videos: int = 17, frames: int = 8) -> list[LabelledItem]:
    """Videos with a counted face (informative scores) and, in every third, a brief uncounted face scoring 0.99: it
    must never decide, as in a scan."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.r_[np.ones(n_videos // 2 + 1, int), np.zeros(n_videos // 2, int)])
    items = []
    for i, label in enumerate(labels):
        face = np.clip(0.5 + 0.2 * (2 * label - 1) + rng.normal(0, 0.25, frames), 0, 1).tolist()
        tracks = ScoredTracks([face], [True]) if i % 3 else ScoredTracks([face, [0.99]], [True, False])
        items.append(LabelledItem(f"clip_{i:02d}.mp4", int(label), "video", tracks))
    return items


def test_report_levels_follow_the_scan_rule_and_agree_with_sklearn() -> None:
    items = labelled_items()
    report = evaluation_report(items, 0.5, n_bootstrap=100)
    scores = [item.tracks.score() for item in items]
    labels = [item.label for item in items]
    assert [v["score"] for v in report["videos"]] == pytest.approx(scores)
    assert max(scores) < 0.99  # the uncounted faces never decided
    assert report["video"]["roc_auc"] == pytest.approx(skm.roc_auc_score(labels, scores))
    frame_labels = [item.label for item in items for _ in item.tracks.decisive_frames()]
    frame_scores = [p for item in items for p in item.tracks.decisive_frames()]
    assert report["frame"]["roc_auc"] == pytest.approx(skm.roc_auc_score(frame_labels, frame_scores))
    assert report["video"]["n"] == 17 and report["frame"]["n"] == 17 * 8
    for level in ("frame", "video"):
        low, high = report[level]["roc_auc_ci"]
        assert low <= report[level]["roc_auc"] <= high
        assert report[level]["roc_curve"]["fpr"][-1] == 1.0
    assert [v["id"] for v in report["videos"]] == [item.id for item in items]
    assert all(v["n_frames"] == 8 for v in report["videos"])
    assert [v["predicted_fake"] for v in report["videos"]] == [s >= 0.5 for s in scores]
    assert report["aggregation"] == "mean"
    assert evaluation_report(items, 0.5, rule="max", n_bootstrap=50)["videos"][0]["score"] == pytest.approx(
        items[0].tracks.score("max"))


def test_items_without_a_face_are_left_out_and_none_at_all_is_refused() -> None:
    items = labelled_items()[:4] + [LabelledItem("empty.mp4", 1, "video", ScoredTracks())]
    assert "empty.mp4" not in [v["id"] for v in evaluation_report(items, n_bootstrap=50)["videos"]]
    with pytest.raises(ValueError, match="no item has a scored face"):
        evaluation_report([LabelledItem("empty.mp4", 1, "video", ScoredTracks())])


def test_write_report_writes_four_files_and_json_round_trips(tmp_path) -> None:
    report = evaluation_report(labelled_items(), 0.5, n_bootstrap=100)
    paths = write_report(report, tmp_path / "eval")
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
    items = [LabelledItem(name, 1, "video", ScoredTracks([np.linspace(0.3, 0.9, 4).tolist()], [True]))
             for name in "abc"]
    report = evaluation_report(items, n_bootstrap=50)
    assert report["video"]["roc_auc"] is None and report["video"]["roc_auc_ci"] is None
    paths = write_report(report, tmp_path)
    assert json.loads(paths["json"].read_text(encoding="utf-8")) == report
    markdown = paths["markdown"].read_text(encoding="utf-8")
    assert "n/a" in markdown and "## Notes" in markdown
