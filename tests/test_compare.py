"""Two runs compared on the same out-of-fold videos: the paired AUC difference and its interval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.compare import compare, load_run, main, paired_difference


def _write_run(folder: Path, log_name: str, fake_shift: float, swap_only: bool = False, seed: int = 0,
               extra_item: bool = False) -> Path:
    """A fold log of two methods (each fold: 12 reals, 10 fakes), the fakes' scores raised by ``fake_shift``
    (only the swap method's with ``swap_only``); the same random draws for every run of one ``seed``."""
    rng = np.random.default_rng(seed)
    folds = []
    for method in ("swap", "talk"):
        scores = {}
        for i in range(12):
            s = float(rng.uniform(0, 0.7))
            scores[f"{method}_real{i}"] = {"label": 0, "score": s, "crf35": s, "half_res": s}
        for i in range(10):
            s = float(rng.uniform(0.2, 0.9))
            if method == "swap" or not swap_only:
                s = min(1.0, s + fake_shift)
            scores[f"{method}_fake{i}"] = {"label": 1, "score": s, "crf35": s, "half_res": s}
        folds.append({"method": method, "scores": scores})
    if extra_item:
        folds[0]["scores"]["swap_fake_extra"] = {"label": 1, "score": 0.5, "crf35": 0.5, "half_res": 0.5}
    folder.mkdir(parents=True)
    (folder / log_name).write_text(json.dumps({"settings": {}, "folds": folds}))
    return folder


def test_a_run_against_itself_differs_by_nothing(tmp_path: Path) -> None:
    run = load_run(_write_run(tmp_path / "a", "stats_log.json", 0.0))
    result = compare(run, run, n_bootstrap=200)
    pooled = result["as_is"]["pooled"]
    assert pooled["difference"] == 0 and pooled["ci95"] == [0, 0]
    assert result["videos"] == 44 and result["fakes"] == 20 and result["reals"] == 24


def test_a_real_gain_on_one_method_shows_there_and_in_the_pooled_interval(tmp_path: Path) -> None:
    """Raising one method's fakes (same videos, same other scores) lifts that method and the pool, and the paired
    interval, far narrower than either AUC's own, excludes zero; the untouched method differs by nothing."""
    a = load_run(_write_run(tmp_path / "a", "recipe_log.json", 0.0))
    b = load_run(_write_run(tmp_path / "b", "stats_log.json", 0.3, swap_only=True))
    result = compare(a, b, n_bootstrap=400)
    pooled, per = result["as_is"]["pooled"], result["as_is"]["per_method"]
    assert pooled["difference"] > 0.05 and pooled["ci95"][0] > 0
    assert pooled["ci90"][0] >= pooled["ci95"][0] and pooled["ci90"][1] <= pooled["ci95"][1]
    assert per["swap"]["difference"] > 0.1 and per["swap"]["ci95"][0] > 0
    assert per["talk"]["difference"] == 0
    assert result["h264_crf35"]["pooled"]["difference"] == pooled["difference"]  # the views are compared too


def test_paired_difference_interval_contains_the_point_estimate() -> None:
    rng = np.random.default_rng(1)
    y = np.array([0] * 30 + [1] * 20)
    a = rng.uniform(size=50) + 0.3 * y
    b = a + rng.normal(0, 0.1, size=50)
    d = paired_difference(y, a, b, n_bootstrap=300)
    assert d["ci95"][0] <= d["difference"] <= d["ci95"][1]
    with pytest.raises(ValueError, match="both classes"):
        paired_difference(np.zeros(5, int), a[:5], b[:5])


def test_runs_on_other_videos_are_refused_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = _write_run(tmp_path / "a", "stats_log.json", 0.0)
    b = _write_run(tmp_path / "b", "stats_log.json", 0.0, extra_item=True)
    assert main([str(a), str(b), "--bootstrap", "10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the runs scored different videos") and err.count("\n") == 1
    assert main([str(a), str(tmp_path / "missing")]) == 2
    assert "no recipe_log.json or stats_log.json" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "stats_log.json").write_text(json.dumps({"folds": [{"method": "m", "scores": {"v": {"label": 1}}}]}))
    assert main([str(a), str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a fold log" in err and err.count("\n") == 1


def test_main_prints_the_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = _write_run(tmp_path / "a", "stats_log.json", 0.0)
    b = _write_run(tmp_path / "b", "stats_log.json", 0.2)
    assert main([str(a), str(b), "--bootstrap", "50", "--json", str(tmp_path / "d.json")]) == 0
    out = capsys.readouterr().out
    assert "| **all methods, pooled** |" in out and "| swap |" in out and "h264_crf35" in out
    saved = json.loads((tmp_path / "d.json").read_text())
    assert saved["as_is"]["pooled"]["difference"] > 0


def test_same_footage_pairs_are_compared_when_both_logs_have_groups(tmp_path: Path) -> None:
    """Each swap fake shares footage with one real (groups p0-p9); B lifts the swap fakes, so the pairs A gets wrong
    and B right show as B's alone, and the markdown says so. Without groups in a log there is no pair line."""
    def with_groups(folder: Path) -> Path:
        log = json.loads((folder / "stats_log.json").read_text())
        for fold in log["folds"]:
            for item, v in fold["scores"].items():
                number = item.rsplit("real", 1)[-1].rsplit("fake", 1)[-1]
                v["group"] = f"p{number}" if fold["method"] == "swap" else item
        (folder / "stats_log.json").write_text(json.dumps(log))
        return folder

    a = load_run(with_groups(_write_run(tmp_path / "a", "stats_log.json", 0.0)))
    b = load_run(with_groups(_write_run(tmp_path / "b", "stats_log.json", 0.5, swap_only=True)))
    pairs = compare(a, b, n_bootstrap=50)["same_footage_pairs"]["as_is"]
    assert pairs["pairs"] == 10 and pairs["b"] == 10 and pairs["only_a"] == 0
    assert pairs["only_b"] == 10 - pairs["a"] > 0
    plain = load_run(_write_run(tmp_path / "c", "stats_log.json", 0.0))
    assert plain.groups is None and "same_footage_pairs" not in compare(plain, plain, n_bootstrap=50)


def test_main_shows_both_runs_other_reals_when_their_summaries_have_them(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    a = _write_run(tmp_path / "a", "stats_log.json", 0.0)
    b = _write_run(tmp_path / "b", "stats_log.json", 0.2)
    figures = {"hdtf": {"items": 6, "at_or_above_threshold": 0.1667, "mean_score": 0.66}}
    (a / "summary.json").write_text(json.dumps({"stats_head": {"other_reals": {"hdtf": {
        "items": 6, "at_or_above_threshold": 0.0, "mean_score": 0.52}}}}))
    assert main([str(a), str(b), "--bootstrap", "20"]) == 0
    assert "other reals" not in capsys.readouterr().out  # B has no summary
    (b / "summary.json").write_text(json.dumps({"stats_head": {"other_reals": figures}}))
    assert main([str(a), str(b), "--bootstrap", "20"]) == 0
    assert "A hdtf 0.52 (0/6); B hdtf 0.66 (1/6)" in capsys.readouterr().out


def test_the_whole_video_view_is_compared_when_both_runs_scored_every_video(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    def with_view(folder: Path, shift: float, skip: str | None = None) -> Path:
        log = json.loads((folder / "stats_log.json").read_text())
        for fold in log["folds"]:
            for item, v in fold["scores"].items():
                if item != skip:
                    v["video_crf35"] = min(1.0, v["score"] + (shift if v["label"] == 1 else 0.0))
        (folder / "stats_log.json").write_text(json.dumps(log))
        return folder

    a = with_view(_write_run(tmp_path / "a", "stats_log.json", 0.0), 0.0)
    b = with_view(_write_run(tmp_path / "b", "stats_log.json", 0.0), 0.4)
    result = compare(load_run(a), load_run(b), n_bootstrap=200)
    video = result["h264_crf35_video"]["pooled"]
    assert video["difference"] > 0.05 and video["ci90"][0] > 0  # B's re-encoded fakes stand out, A's do not
    assert result["as_is"]["pooled"]["difference"] == 0
    assert main([str(a), str(b), "--bootstrap", "50"]) == 0
    assert "h264_crf35_video (the videos re-encoded whole)" in capsys.readouterr().out
    partial = with_view(_write_run(tmp_path / "c", "stats_log.json", 0.0), 0.4, skip="swap_fake0")
    assert "h264_crf35_video" not in compare(load_run(a), load_run(partial), n_bootstrap=20)
