"""The transfer recipe's batch maker on a tiny pack made by the test: half real, half fake, label-blind damage,
same-footage pairs from one group, held-out methods never drawn, and reproducible from (seed, index)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from training import recipe

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture
def worker(pack: Path):
    recipe._init_worker(str(pack), {"batch_size": 16, "sbi_share": 0.4, "paired_share": 0.3, "cross_share": 0.5,
                                    "region_share": 0.0, "warp_share": 0.5, "expression_share": 0.5,
                                    "h264": False})
    yield recipe._STATE
    recipe._STATE.clear()


def test_batches_are_half_real_half_fake_and_reproducible(worker) -> None:
    x, y = recipe.make_batch(("all", 3, 7))
    assert x.shape == (16, 224, 224, 3) and x.dtype == np.uint8
    assert y.sum() == 8
    x2, y2 = recipe.make_batch(("all", 3, 7))
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(x, recipe.make_batch(("all", 3, 8))[0])


def test_pools_respect_roles_and_pairs(worker) -> None:
    crops = worker["crops"]
    everything = recipe._sampler("all")
    names = lambda idx: {crops[i]["item"] for i in idx}  # noqa: E731
    assert names(everything.pool_fakes) == {"stream_fake", "talk_fake"}
    assert "labelled" not in names(everything.sbi_reals + everything.pool_reals)  # the eval set is never trained on
    assert len(everything.paired) == 1  # the stream's real and fake halves
    # the fold that holds "talk" out never draws it, nor anything of its group
    held_out = recipe._sampler("talk")
    assert names(held_out.pool_fakes) == {"stream_fake"}
    # --final-without-pool: not one pool crop, real or fake, as a pair member or a blend source
    no_pool = recipe._sampler("no_pool")
    assert not no_pool.pool_reals and not no_pool.pool_fakes and not no_pool.paired
    assert no_pool.sbi_reals and all(crops[i]["role"] not in ("pool", "eval") for i in no_pool.sbi_reals)


def test_other_fakes_reals_come_from_the_named_real_datasets_too(worker) -> None:
    """With ``other_fakes_reals``, the pool's other fakes stand against the named datasets' real crops as well as the
    pool's reals; by default against the pool's reals only; never against the eval set."""
    crops, images = worker["crops"], worker["images"]

    def real_items(sampler) -> set[str]:
        reals, _ = sampler.pairs(60, np.random.default_rng(1), 0.0, 0.0, images)
        # which crop each real is: the pack's row it views (two items of the tiny pack share their pixels)
        start, row = images.ctypes.data, images[0].nbytes
        return {crops[(real.ctypes.data - start) // row]["item"] for real in reals}

    assert real_items(recipe.Sampler(crops, None)) == {"stream_real", "webcam_real", "studio_real"}
    assert real_items(recipe.Sampler(crops, None, ("real",))) == {"stream_real", "webcam_real", "studio_real",
                                                                   "lfw_a"}
    assert "labelled" not in real_items(recipe.Sampler(crops, None, ("real", "eval")))  # never the eval set


def test_synthetic_pairs_are_cross_identity_blends_at_the_cross_share(worker, monkeypatch) -> None:
    """With every pair synthetic: at cross share 1 each fake pastes a face of another group onto its real, at 0 each
    is a self-blend of its own crop; either way only the face changes. The warp share picks the pasted face's shape:
    at 1 every paste takes the target's (piecewise), at 0 none does."""
    from training.data import cross_blend as cross_module

    sampler, images, crops = recipe._sampler("all"), worker["images"], worker["crops"]
    pasted: list[tuple[np.ndarray, np.ndarray, str]] = []
    original = cross_module.cross_blend

    def recording(target, target_landmarks, source, source_landmarks, rng, region, warp):
        pasted.append((target, source, warp))
        return original(target, target_landmarks, source, source_landmarks, rng, region, warp)

    monkeypatch.setattr(cross_module, "cross_blend", recording)  # where BlendSources.fake finds it

    def groups_of(image: np.ndarray) -> set[str]:
        return {crops[i]["group"] for i in range(len(images)) if np.array_equal(images[i], image)}

    for share, expect in ((1.0, 6), (0.0, 0)):
        pasted.clear()
        reals, fakes = sampler.pairs(6, np.random.default_rng(4), 1.0, 0.0, images, share)
        assert len(pasted) == expect
        for target, source, warp in pasted:
            assert not groups_of(target) & groups_of(source) and warp == "similarity"
        for real, fake in zip(reals, fakes):
            changed = np.abs(real.astype(int) - fake.astype(int)).sum(axis=2) > 0
            assert changed[80:160, 70:150].any() and not changed[:10, :10].any()
    pasted.clear()
    sampler.pairs(6, np.random.default_rng(4), 1.0, 0.0, images, 1.0, 0.0, 1.0)
    assert [warp for _, _, warp in pasted] == ["piecewise"] * 6


def test_video_scores_use_the_scanners_rule() -> None:
    crops = [{"item": "v", "track": 0, "counted": True}, {"item": "v", "track": 0, "counted": True},
             {"item": "v", "track": 1, "counted": False}]
    scores = recipe.video_scores(crops, np.array([0.2, 0.4, 0.99]), {"v"})
    assert scores == {"v": pytest.approx(0.3)}  # the uncounted track's 0.99 does not decide


def test_mix_weights_runs_from_the_initial_to_the_trained_model() -> None:
    initial = [np.zeros((2, 3), np.float32), np.full(4, 2.0, np.float32), np.array([7], np.int64)]
    trained = [np.ones((2, 3), np.float32), np.full(4, 4.0, np.float32), np.array([9], np.int64)]
    for alpha, expect in ((0.0, 0.0), (0.25, 0.25), (1.0, 1.0)):
        mixed = recipe.mix_weights(initial, trained, alpha)
        assert np.allclose(mixed[0], expect) and np.allclose(mixed[1], 2.0 + 2.0 * expect)
        assert mixed[0].dtype == np.float32 and mixed[2][0] == 9  # counters are not averaged
    with pytest.raises(ValueError, match="shapes differ"):
        recipe.mix_weights(initial, [np.ones((3, 2), np.float32), *trained[1:]], 0.5)
    assert recipe.parse_mixes("0, 0.5,1") == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        recipe.parse_mixes("0.5,1.5")


def test_freeze_until_freezes_that_layer_and_everything_before_it() -> None:
    import keras

    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="early")(inputs)
    x = keras.layers.BatchNormalization(name="early_bn")(x)
    outputs = keras.layers.Dense(1, name="late")(x)
    model = keras.Model(inputs, outputs)
    assert recipe.freeze_until(model, "early_bn") == 3  # the input layer, early, early_bn
    assert [layer.trainable for layer in model.layers] == [False, False, False, True]
    assert len(model.trainable_weights) == 2  # only late's kernel and bias train
    with pytest.raises(ValueError, match="no layer named 'block_99'"):
        recipe.freeze_until(model, "block_99")


def test_weights_writer_saves_the_trained_weights_without_the_optimizers_state(tmp_path: Path) -> None:
    """A compiled, trained model's weights go to the file (they load back equal) and its optimizer's slots do not;
    a model that is not the one reloaded from ``init`` is refused."""
    import h5py
    import keras

    def small(width: int) -> keras.Model:
        inputs = keras.Input((4,))
        return keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(width, name="hidden")(inputs)))

    init = tmp_path / "init.keras"
    small(8).save(init)
    model = keras.models.load_model(init, compile=False)
    writer = recipe.WeightsWriter(init, model)
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((8, 4)), np.ones((8, 1)), epochs=1, verbose=0)
    writer.save(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5", "r") as saved:
        assert "optimizer" not in saved
    reloaded = keras.models.load_model(init, compile=False)
    assert not all(np.allclose(a, b) for a, b in zip(reloaded.get_weights(), model.get_weights()))  # it trained
    reloaded.load_weights(tmp_path / "w.weights.h5")
    assert all(np.array_equal(a, b) for a, b in zip(reloaded.get_weights(), model.get_weights()))
    with pytest.raises(ValueError, match="differ"):
        recipe.WeightsWriter(init, small(3))


def test_bad_init_weights_or_pool_settings_are_one_line_errors(pack: Path, tmp_path: Path, capsys) -> None:
    from detector.models.classifier import DeepfakeClassifier

    init = tmp_path / "init.keras"
    DeepfakeClassifier("mobilenetv2", weights=None).save(init)
    args = ["--pack", str(pack), "--init", str(init), "--out", str(tmp_path / "run"), "--workers", "1"]
    assert recipe.main([*args, "--init-weights", str(tmp_path / "missing.weights.h5")]) == 2
    assert "error:" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        recipe.main([*args, "--final-without-pool", "--sbi-share", "0.5"])
    assert exit_info.value.code == 2 and "needs --sbi-share 1" in capsys.readouterr().err
    assert recipe.main([*args, "--other-fakes-reals", "real,nosuch"]) == 2
    assert "no real dataset nosuch" in capsys.readouterr().err
    for flag in ("--sbi-share", "--region-share"):
        with pytest.raises(SystemExit) as exit_info:
            recipe.main([*args, flag, "1.5"])
        assert exit_info.value.code == 2 and "between 0 and 1" in capsys.readouterr().err


@pytest.mark.slow
def test_recipe_runs_with_weight_mixes_and_a_frozen_backbone_and_exports_a_mix(pack: Path, tmp_path: Path) -> None:
    """The whole chain on the tiny pack, as a GPU run would go: folds scored as trained and mixed back, the report
    of a mix, and its export, whose weights are that mix of the initial and trained ones."""
    import h5py
    import keras

    from detector.models.classifier import DeepfakeClassifier
    from training import export
    from training import lomo_report
    from training import stats_head

    init, run, model_root = tmp_path / "init.keras", tmp_path / "run", tmp_path / "model"
    DeepfakeClassifier("mobilenetv2", weights=None).save(init)
    cmd = [sys.executable, "-m", "training.recipe", "--pack", str(pack), "--init", str(init), "--out", str(run),
           "--batch-size", "4", "--fold-steps", "2", "--final-steps", "2", "--curve-points", "1", "--workers", "1",
           "--lr", "0.01", "--mix", "0,0.5", "--freeze-until", "mbv2_block05_add"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900,
                          env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    assert done.returncode == 0, done.stderr[-3000:]
    log = json.loads((run / "recipe_log.json").read_text())
    assert [f["method"] for f in log["folds"]] == ["swap", "talk"] and log["frozen_layers"] > 40
    for fold in log["folds"]:
        assert set(fold["mix"]) == {"0.0", "0.5"}
        assert set(fold["mix"]["0.5"]["scores"]) == set(fold["scores"])
        assert (run / fold["weights"]).is_file() and set(fold["test_items"]) >= set(fold["scores"])
        assert all(v["group"] for v in fold["scores"].values())  # for the same-footage pair count
    for saved in [run / "final.weights.h5", *(run / f["weights"] for f in log["folds"])]:
        with h5py.File(saved, "r") as weights:
            assert "optimizer" not in weights and "layers" in weights  # the model's weights only
    # the statistics head judged fold by fold on the backbones these folds trained
    assert stats_head.main(["--pack", str(pack), "--init", str(init), "--out", str(tmp_path / "heads"),
                            "--fold-run", str(run), "--keep-top"]) == 0
    heads = json.loads((tmp_path / "heads" / "stats_log.json").read_text())
    assert [f["method"] for f in heads["folds"]] == ["swap", "talk"] and heads["settings"]["fold_run"]
    # mix 0 is the initial model in both folds: the same scores for the reals both folds hold out
    assert set(log["final"]["mix_eval_video_auc"]) == {"0.0", "0.5"}
    assert lomo_report.main(["--run", str(run), "--mix", "0.5"]) == 0
    assert json.loads((run / "summary.json").read_text())["weight_mix"] == 0.5 and (run / "mix.md").is_file()
    assert export.main(["--checkpoint", str(init), "--weights", str(run / "final.weights.h5"), "--run", str(run),
                        "--mix", "0.25", "--out", str(model_root)]) == 2  # the summary is for mix 0.5
    assert export.main(["--checkpoint", str(init), "--weights", str(run / "final.weights.h5"), "--run", str(run),
                        "--mix", "0.5", "--out", str(model_root)]) == 0
    exported = keras.models.load_model(model_root / "model.keras", compile=False)
    start = keras.models.load_model(init, compile=False)
    trained = keras.models.load_model(init, compile=False)
    trained.load_weights(run / "final.weights.h5")
    head = [w.path for w in exported.weights].index(exported.head.kernel.path)
    expect = 0.5 * start.get_weights()[head] + 0.5 * trained.get_weights()[head]
    assert not np.allclose(start.get_weights()[head], trained.get_weights()[head])  # the head did train
    assert np.allclose(exported.get_weights()[head], expect, atol=1e-6)
