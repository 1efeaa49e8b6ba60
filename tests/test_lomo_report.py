"""Leave-one-method-out figures: the threshold at a false-positive rate, fakes caught, pooled and per-method AUC."""

from __future__ import annotations

import numpy as np
import pytest

from training.lomo_report import (footage_pairs, lomo_figures, markdown, mix_markdown, mix_table, mixed,
                                  recipe_command, reencoded_figures, round_up, same_footage_pairs, threshold_at_fpr,
                                  tpr_at_fpr)


def test_threshold_at_fpr_calls_at_most_that_share_of_reals_fake() -> None:
    reals = np.linspace(0, 1, 101)  # 101 reals
    t = threshold_at_fpr(reals, 0.05)
    assert np.mean(reals >= t) <= 0.05 and np.mean(reals >= t) > 0.03


def test_the_rounded_threshold_still_calls_at_most_five_percent_of_reals_fake() -> None:
    """The card keeps 4 decimals: rounded to nearest, the threshold just above the allowed real's score could fall
    below it (0.85964 -> 0.8596); rounded up it cannot."""
    reals = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.85964, 0.9, 0.95, 0.97] + [0.05] * 64)  # 75 reals
    scores = {f"r{i}": {"label": 0, "score": float(v), "crf35": 0.5, "half_res": 0.5} for i, v in enumerate(reals)}
    scores["f"] = {"label": 1, "score": 0.99, "crf35": 0.5, "half_res": 0.5}
    threshold = lomo_figures({"folds": [{"method": "m", "scores": scores}]}, n_bootstrap=0)["threshold_at_5pct_fpr"]
    assert threshold == 0.8597 and np.mean(reals >= threshold) <= 0.05
    assert round(threshold_at_fpr(reals, 0.05), 4) == 0.8596 and np.mean(reals >= 0.8596) > 0.05  # the old rounding
    assert round_up(0.85) == 0.85 and round_up(0.85000001) == 0.8501


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


def _mixed_log() -> dict:
    """Fold models scored as trained (good separation) and mixed back halfway (some) and fully (none)."""
    log = _log(separation=0.5)
    for fold, sep_half, sep_none in zip(log["folds"], (0.25, 0.25), (0.0, 0.0)):
        fold["eval_video_auc"] = 0.6
        fold["mix"] = {}
        for key, sep, auc in (("0.0", sep_none, 0.9), ("0.5", sep_half, 0.8)):
            fold["mix"][key] = {"scores": {k: {**v, "score": v["score"] - (0.5 - sep) * v["label"]}
                                           for k, v in fold["scores"].items()}, "eval_video_auc": auc}
    log["final"] = {"eval_video_auc": 0.55, "mix_eval_video_auc": {"0.0": 0.9, "0.5": 0.85}}
    return log


def test_mix_table_has_a_row_per_mix_and_the_trained_models() -> None:
    rows = mix_table(_mixed_log())
    assert [r["mix"] for r in rows] == [0.0, 0.5, 1.0]
    aucs = [r["pooled"]["roc_auc"] for r in rows]
    assert aucs[0] < aucs[1] < aucs[2]  # the figures follow each mix's own scores
    assert [r["eval_video_auc_fold_mean"] for r in rows] == [0.9, 0.8, 0.6]
    assert [r["eval_video_auc_final"] for r in rows] == [0.9, 0.85, 0.55]
    assert "| 0.5 |" in mix_markdown(rows)


def test_mixed_swaps_in_a_mix_scores_and_refuses_one_not_scored() -> None:
    log = _mixed_log()
    assert mixed(log, None) is log
    half = mixed(log, 0.5)
    assert half["folds"][0]["scores"] is log["folds"][0]["mix"]["0.5"]["scores"]
    with pytest.raises(ValueError, match="not scored at mix 0.25"):
        mixed(log, 0.25)


def test_recipe_command_writes_what_the_run_was_given() -> None:
    """Logged settings (strings, as the recipe logs them) back to a command line: options left at None and flags left
    off are not written, so the card's command reproduces the run."""
    settings = {"pack": "packs/main", "init": "runs/v1.keras", "init_weights": "None", "batch_size": "32",
                "fold_steps": "0", "final_steps": "1500", "lr": "0.0003", "sbi_share": "1.0", "paired_share": "0.0",
                "cross_share": "1.0", "freeze_until": "mbv2_block09_add", "seed": "0", "final_without_pool": "True",
                "workers": "1"}
    command = recipe_command(settings)
    assert command.startswith("python -m training.recipe --pack packs/main --init runs/v1.keras --batch-size 32")
    assert "--freeze-until mbv2_block09_add" in command and command.endswith(" --final-without-pool")
    assert "--init-weights" not in command and "--workers" not in command
    assert "--region-share" not in command  # a log from before the option: its runs blended whole faces
    assert "--warp-share" not in command
    assert "--expression-share" not in command
    settings.update(init_weights="runs/a/final.weights.h5", final_without_pool="False", freeze_until="None")
    command = recipe_command(settings)
    assert "--init-weights runs/a/final.weights.h5" in command
    assert "--final-without-pool" not in command and "--freeze-until" not in command
    settings.update(region_share="0.5")
    assert "--cross-share 1.0 --region-share 0.5" in recipe_command(settings)
    assert "--region-share 0.5 --warp-share 0.5" in recipe_command({**settings, "warp_share": "0.5"})
    assert "--warp-share 0.5 --expression-share 0.5" in recipe_command({**settings, "warp_share": "0.5",
                                                                          "expression_share": "0.5"})
    assert "--other-fakes-reals" not in recipe_command({**settings, "other_fakes_reals": ""})
    assert "--other-fakes-reals videos --freeze-until" in recipe_command({**settings, "other_fakes_reals": "videos",
                                                                          "freeze_until": "b"})


def test_same_footage_pairs_count_only_a_fake_against_the_reals_of_its_own_group() -> None:
    """Group g1 holds one fake above its real, g2 a fake below one real and tied with the other, g3 only a real:
    three pairs, 1.5 of them ordered, although every fake outscores the unpaired real."""
    y = np.array([1, 0, 1, 0, 0, 0])
    groups = ["g1", "g1", "g2", "g2", "g2", "g3"]
    s = np.array([0.9, 0.3, 0.5, 0.6, 0.5, 0.1])
    assert sorted(footage_pairs(y, groups)) == [(0, 1), (2, 3), (2, 4)]
    assert same_footage_pairs(y, groups, s) == {"pairs": 3, "fake_above_real": 1.5}
    assert same_footage_pairs(y, ["a", "b", "c", "d", "e", "f"], s) == {"pairs": 0, "fake_above_real": 0.0}


def test_lomo_figures_count_same_footage_pairs_only_when_the_log_has_groups() -> None:
    scores = {"real_a": {"label": 0, "group": "a", "score": 0.2, "crf35": 0.6, "half_res": 0.2},
              "fake_a": {"label": 1, "group": "a", "score": 0.7, "crf35": 0.4, "half_res": 0.7},
              "real_b": {"label": 0, "group": "b", "score": 0.1, "crf35": 0.1, "half_res": 0.1}}
    fig = lomo_figures({"folds": [{"method": "swap", "scores": scores}]}, n_bootstrap=0)
    assert fig["same_footage_pairs"]["as_is"] == {"pairs": 1, "fake_above_real": 1.0}
    assert fig["same_footage_pairs"]["h264_crf35"]["fake_above_real"] == 0.0  # CRF 35 flipped the pair
    assert "fake scored above its real: 1 / 1 as is, 0 / 1 after CRF 35" in markdown(fig)
    for v in scores.values():
        del v["group"]
    fig = lomo_figures({"folds": [{"method": "swap", "scores": scores}]}, n_bootstrap=0)
    assert "same_footage_pairs" not in fig and "Same-footage" not in markdown(fig)


def test_reencoded_videos_are_compared_with_the_same_videos_as_they_are() -> None:
    """Four reals and two fakes per method; re-encoding lowers one swap fake below every real. The drop is taken
    against exactly the videos that have a re-encoded score (one real without a face again drops out of both)."""
    def video(label: int, score: float, reencoded: float | None) -> dict:
        v = {"label": label, "score": score, "crf35": score, "half_res": score}
        return v if reencoded is None else {**v, "video_crf35": reencoded}

    swap = {"r1": video(0, 0.1, 0.2), "r2": video(0, 0.2, 0.3), "f1": video(1, 0.8, 0.05), "f2": video(1, 0.9, 0.9)}
    talk = {"r3": video(0, 0.3, 0.25), "r4": video(0, 0.95, None), "f3": video(1, 0.7, 0.7), "f4": video(1, 0.6, 0.6)}
    fig = lomo_figures({"folds": [{"method": "swap", "scores": swap}, {"method": "talk", "scores": talk}]},
                       n_bootstrap=0)
    video_fig = fig["h264_crf35_video"]
    assert video_fig["pooled"]["reals"] == 3 and video_fig["as_is_same_videos"] == 1.0  # r4 (0.95) is left out
    assert video_fig["pooled"]["roc_auc"] == pytest.approx(9 / 12) and video_fig["auc_drop"] == pytest.approx(0.25)
    assert video_fig["per_method"]["swap"]["roc_auc"] == pytest.approx(0.5)
    assert video_fig["per_method"]["talk"]["roc_auc"] == 1.0
    assert "Videos re-encoded whole at H.264 CRF 35 (4 fakes, 3 reals" in markdown(fig)
    assert reencoded_figures([("swap", swap["r1"]), ("swap", swap["f2"])], 0)["auc_drop"] == 0.0
    for v in (*swap.values(), *talk.values()):
        v.pop("video_crf35", None)
    assert "h264_crf35_video" not in lomo_figures({"folds": [{"method": "swap", "scores": swap}]}, n_bootstrap=0)
