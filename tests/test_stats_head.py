"""The statistics head: its pooling layer, the three head variants of the task model (classic, statistics, both),
the logistic head folded into a Dense layer, the equal-weight output unit, and training.stats_head on a tiny pack
through to the exported model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detector.models import backbones
from detector.models.classifier import ChannelStatistics, build_classifier
from training import stats_head
from detector.ingest.manifest import MediaItem
from training.experiments.feature_probe import fit_head
from training.prepare import _item_key, source_name

TAPS = backbones.get("mobilenetv2").stat_taps
VARIANTS = {"classic": {}, "statistics": {"taps": TAPS}, "both": {"taps": TAPS, "keep_top": True},
            "both, a head per kind": {"taps": TAPS, "keep_top": True, "stats_heads": 2}}


def test_channel_statistics_are_each_channels_mean_and_spread() -> None:
    x = np.random.default_rng(0).normal(2.0, 3.0, (2, 5, 6, 4)).astype(np.float32)
    out = np.asarray(ChannelStatistics()(x))
    assert out.shape == (2, 8)
    np.testing.assert_allclose(out[:, :4], x.mean(axis=(1, 2)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[:, 4:], x.std(axis=(1, 2)), rtol=1e-3, atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_head_variants_save_load_serve_and_explain(variant: str, tmp_path: Path) -> None:
    """Each head saves and loads as itself, serves the same probabilities from the SavedModel, and has Grad-CAM
    heatmaps; the statistics head alone also drops the backbone's stages past its deepest tap."""
    import keras
    import tensorflow as tf

    from detector.scan.explain import make_explainer
    from detector.models.model import export_model
    from detector.models.scoring import INPUT_NAME, OUTPUT_NAME, ModelCard

    model = build_classifier("mobilenetv2", **VARIANTS[variant])
    faces = np.random.default_rng(1).integers(0, 256, (3, 224, 224, 3)).astype(np.uint8)
    expect = np.asarray(model(faces.astype(np.float32))).reshape(-1)
    assert np.all((expect > 0) & (expect < 1))
    card = ModelCard(name="deepfake", version=1, backbone="mobilenetv2", image_size=224, trained=False,
                     threshold=0.5, threshold_source="test", created="2026-01-01", description="test")
    export_model(model, card, tmp_path / "m")
    loaded = keras.models.load_model(tmp_path / "m" / "model.keras", compile=False)
    assert type(loaded).__name__ == "DeepfakeClassifier"
    assert (loaded.taps, loaded.keep_top, loaded.stats_heads) == (tuple(VARIANTS[variant].get("taps", ())),
                                                                  VARIANTS[variant].get("keep_top", False),
                                                                  VARIANTS[variant].get("stats_heads", 1))
    np.testing.assert_allclose(np.asarray(loaded(faces.astype(np.float32))).reshape(-1), expect, atol=1e-5)
    served = tf.saved_model.load(str(tmp_path / "m" / "1")).signatures["serving_default"]
    np.testing.assert_allclose(served(**{INPUT_NAME: tf.constant(faces)})[OUTPUT_NAME].numpy(), expect, atol=1e-5)
    maps = make_explainer("gradcam", loaded).heatmaps(faces[:2])
    assert maps.shape == (2, 224, 224) and np.isfinite(maps).all()
    if variant == "statistics":
        assert tuple(model.backbone.output.shape[1:]) == (14, 14, 96)  # ends at mbv2_block13_add
        assert model.count_params() < build_classifier("mobilenetv2").count_params() / 3
        assert model.embedder().output.shape[-1] == 2 * (24 + 32 + 64 + 96)
    assert loaded.cam_layer == (TAPS[-1] if loaded.keep_top else None)


def test_keep_top_needs_taps_and_taps_must_exist() -> None:
    with pytest.raises(ValueError, match="give taps"):
        build_classifier("mobilenetv2", keep_top=True)
    with pytest.raises(ValueError, match="needs taps and keep_top"):
        build_classifier("mobilenetv2", taps=TAPS, stats_heads=2)
    with pytest.raises(ValueError, match="at least 1, not 0"):
        build_classifier("mobilenetv2", taps=TAPS, keep_top=True, stats_heads=0)
    with pytest.raises(ValueError, match="no layer mbv2_block99_add"):
        build_classifier("mobilenetv2", taps=("mbv2_block99_add",))


def test_linear_head_folds_its_standardisation_into_one_dense_layer() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(2)
    x = rng.normal(5.0, [1.0, 10.0, 0.1], (200, 3))
    y = (x[:, 0] + 0.1 * x[:, 1] + rng.normal(0, 1, 200) > 5.0).astype(int)
    head = fit_head(x, y, 0.5)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    reference = LogisticRegression(C=0.5, max_iter=5000, class_weight="balanced").fit((x - mean) / scale, y)
    np.testing.assert_allclose(head(x), reference.predict_proba((x - mean) / scale)[:, 1], atol=1e-9)
    kernel, bias = head.dense_weights()
    np.testing.assert_allclose(1 / (1 + np.exp(-(x @ kernel + bias))), head(x), atol=1e-9)


def test_the_output_unit_weighs_both_heads_alike_on_reals() -> None:
    rng = np.random.default_rng(3)
    top, stats = rng.normal(-3.0, 2.0, 500), rng.normal(-8.0, 6.0, 500)
    kernel, bias = stats_head.mix_weights(top, stats)
    combined = kernel[0] * top + kernel[1] * stats + bias
    assert abs(combined.mean()) < 1e-9  # a typical real sits at probability 0.5 before the threshold
    assert kernel[0] * top.std() == pytest.approx(kernel[1] * stats.std()) == pytest.approx(0.5)


@pytest.mark.slow
@pytest.mark.parametrize("per_kind", [False, True])
def test_fitted_heads_are_what_the_saved_model_computes(per_kind: bool, pack: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The scorer fitted on features (statistics head, or one per kind of fake, plus the kept head, standardised)
    and the task model with those weights give the same probabilities, so the exported model is the one the
    figures were measured on."""
    from detector.models.classifier import DeepfakeClassifier
    from training.recipe import load_pack

    init = tmp_path / "init.keras"
    DeepfakeClassifier("mobilenetv2", weights=None).save(init)
    crops, images = load_pack(pack)
    monkeypatch.setattr(stats_head, "FAKE_KINDS", {"face swap": ("swap",), "generated face": ("talk",)})
    monkeypatch.setattr(stats_head, "MIN_KIND_CROPS", 1)
    kinds = stats_head.kind_of(crops) if per_kind else None
    model = stats_head.stats_model(init, keep_top=True, stats_heads=2 if per_kind else 1)
    assert not any(layer.trainable for layer in model.backbone.layers)
    stats, top = stats_head.feature_model(model).predict(images.astype(np.float32), verbose=0)
    features, tops = {"score": stats.astype(np.float64)}, {"score": top.reshape(-1).astype(np.float64)}
    labels = np.array([c["label"] for c in crops])
    rows = [i for i, c in enumerate(crops) if c["role"] == "pool"]
    scorer = stats_head.fit_scorer(features, tops, [], labels, rows, 0.1, kinds)
    assert len(scorer.heads) == (2 if per_kind else 1)
    stats_head.set_heads(model, scorer)
    np.testing.assert_allclose(model.predict(images.astype(np.float32), verbose=0).reshape(-1),
                               scorer(features["score"], tops["score"]), atol=1e-4)
    with pytest.raises(ValueError, match="statistics heads"):
        stats_head.set_heads(stats_head.stats_model(init, keep_top=True, stats_heads=3), scorer)


def test_a_head_per_kind_catches_two_kinds_one_linear_head_cannot() -> None:
    """Reals in the middle, one kind of fake on each side of them: no single direction separates both kinds from
    the reals, while the largest of two per-kind heads (each standardised on the reals) does; a kind with too few
    fake crops in a fit gets no head of its own."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(0, 1, (200, 2)), rng.normal(0, 1, (100, 2)) + [4, 0],
                        rng.normal(0, 1, (100, 2)) + [-4, 0]])
    labels = np.repeat([0, 1, 1], [200, 100, 100])
    kinds = [""] * 200 + ["face swap"] * 100 + ["generated face"] * 100
    features, rows = {"score": x}, list(range(len(x)))
    one = stats_head.fit_scorer(features, None, [], labels, rows, 1.0)
    per_kind = stats_head.fit_scorer(features, None, [], labels, rows, 1.0, kinds)
    assert len(per_kind.heads) == 2
    assert roc_auc_score(labels, one(x)) < 0.7 < 0.99 < roc_auc_score(labels, per_kind(x))
    reals = per_kind.stats_logit(x[:200])
    kernel, bias = per_kind.dense_weights()
    np.testing.assert_allclose((x[:200] @ kernel + bias).mean(axis=0), 0, atol=1e-9)  # each standardised on reals
    assert reals.mean() > 0  # the larger of two standardised logits
    few = stats_head.fit_scorer(features, None, [], labels, rows[:200 + stats_head.MIN_KIND_CROPS - 1] + rows[300:],
                                1.0, kinds)
    assert len(few.heads) == 1
    none = stats_head.fit_scorer(features, None, [], labels, rows[:203] + rows[300:303], 1.0, kinds)
    assert len(none.heads) == 1 and none.standard == [(0.0, 1.0)]  # no kind has enough: one head on them all


def test_every_pool_fake_must_belong_to_a_kind() -> None:
    crops = [{"role": "pool", "label": 0, "method": ""}, {"role": "pool", "label": 1, "method": "vasa-1"},
             {"role": "real", "label": 0}, {"role": "pool", "label": 1, "method": "deepfacelive"}]
    assert stats_head.kind_of(crops) == ["", "generated face", "", "face swap"]
    with pytest.raises(ValueError, match="'new-method' is in no kind"):
        stats_head.kind_of(crops + [{"role": "pool", "label": 1, "method": "new-method"}])


def test_other_reals_are_scored_per_source_at_the_threshold() -> None:
    """The pack's non-pool reals, one video score per item (the mean of its crops, as the scanner pools a track),
    grouped by real_videos source or dataset: the share at or above the threshold and the mean; pool crops do not
    count."""
    crops = [{"role": "real", "dataset": "videos", "item": "studio1", "group": "hdtf:studio1", "track": 0},
             {"role": "real", "dataset": "videos", "item": "studio1", "group": "hdtf:studio1", "track": 0},
             {"role": "real", "dataset": "videos", "item": "studio2", "group": "hdtf:studio2", "track": 0},
             {"role": "real", "dataset": "lfw", "item": "still", "group": "still", "track": 0},
             {"role": "pool", "dataset": "pool", "item": "fake", "group": "fake", "track": 0}]
    for c in crops:
        c["counted"] = True
    figures = stats_head.other_real_figures(crops, np.array([0.9, 0.7, 0.3, 0.1, 0.99]), threshold=0.85)
    assert figures == {"hdtf": {"items": 2, "at_or_above_threshold": 0.0, "mean_score": 0.55},
                       "lfw": {"items": 1, "at_or_above_threshold": 0.0, "mean_score": 0.1}}
    assert stats_head.other_real_figures(crops, np.array([0.9, 0.9, 0.3, 0.1, 0.99]), 0.8)["hdtf"][
        "at_or_above_threshold"] == 0.5


def test_each_fold_also_scores_its_videos_re_encoded_copies(pack: Path) -> None:
    """A re-encoded pool keeps each file's name at another path (another digest): its crops meet their originals,
    are scored by the head of the fold that held the original out, and, as identical copies, score exactly alike.
    A video whose copy shows no face gets no re-encoded score."""
    from training.recipe import load_pack

    crops, _ = load_pack(pack)
    rng = np.random.default_rng(0)
    features = {view: rng.normal(size=(len(crops), 6)) for view in stats_head.VIEWS}
    copies = [{**c, "item": f"{c['item']}_0123abcd"} for c in crops if c["item"] != "talk_fake"]
    kept = [i for i, c in enumerate(crops) if c["item"] != "talk_fake"]
    reencoded = stats_head.Reencoded(copies, features["score"][kept], None)
    folds = stats_head.fold_log(crops, features, 0.1, reencoded=reencoded)
    plain = stats_head.fold_log(crops, features, 0.1)
    for fold, same in zip(folds, plain):
        for item, v in fold["scores"].items():
            if item == "talk_fake":
                assert stats_head.REENCODED_VIEW not in v
            else:
                assert v[stats_head.REENCODED_VIEW] == pytest.approx(same["scores"][item]["score"])
    assert stats_head.source_name("clip_name_0123abcd") == "clip_name" == stats_head.source_name("clip_name")
    item = MediaItem(path=Path("some/dir/clip name.mp4"), label=0, group="g")
    assert source_name(_item_key(item)) == "clip_name"  # the inverse of the key prepare gives an item


def test_init_weights_are_loaded_into_the_init_model_first(tmp_path: Path) -> None:
    """A recipe run saves weights only: with ``init_weights`` the backbone and kept head are those weights, not
    the ``init`` model's own."""
    from detector.models.classifier import DeepfakeClassifier

    init, trained = tmp_path / "init.keras", tmp_path / "final.weights.h5"
    model = DeepfakeClassifier("mobilenetv2", weights=None)
    model.save(init)
    model.set_weights([w + 0.01 for w in model.get_weights()])
    model.save_weights(trained)
    plain = stats_head.stats_model(init, keep_top=True)
    loaded = stats_head.stats_model(init, keep_top=True, init_weights=[trained])
    layer = "mbv2_block03_project_conv"
    np.testing.assert_allclose(loaded.get_layer(layer).get_weights()[0],
                               model.get_layer(layer).get_weights()[0])
    assert not np.allclose(plain.get_layer(layer).get_weights()[0], loaded.get_layer(layer).get_weights()[0])
    np.testing.assert_allclose(loaded.get_layer("top_head").get_weights()[0],
                               model.get_layer(stats_head.OUTPUT_NAME).get_weights()[0])


def test_several_init_weights_are_averaged(tmp_path: Path) -> None:
    """Checkpoint averaging: with two weights files every variable (batch-norm statistics too) is their mean; one
    file in a list loads as it is."""
    from detector.models.classifier import DeepfakeClassifier

    init, a, b = tmp_path / "init.keras", tmp_path / "a.weights.h5", tmp_path / "b.weights.h5"
    model = DeepfakeClassifier("mobilenetv2", weights=None)
    model.save(init)
    base = model.get_weights()
    model.set_weights([w + 0.02 for w in base])
    model.save_weights(a)
    model.set_weights([w - 0.04 for w in base])
    model.save_weights(b)
    for layer in ("mbv2_block03_project_conv", "mbv2_block03_project_bn"):
        averaged = stats_head.stats_model(init, keep_top=True, init_weights=[a, b]).get_layer(layer).get_weights()
        single = stats_head.stats_model(init, keep_top=True, init_weights=[a]).get_layer(layer).get_weights()
        for got, one, start in zip(averaged, single, _entries_of(model, layer, base)):
            np.testing.assert_allclose(got, start - 0.01, atol=1e-6)
            np.testing.assert_allclose(one, start + 0.02, atol=1e-6)


def _entries_of(model, name: str, weights: list[np.ndarray]) -> list[np.ndarray]:
    """The entries of ``weights`` (model.get_weights() order) that belong to layer ``name``."""
    ids = [id(v) for v in model.get_layer(name).weights]
    order = [id(v) for v in model.weights]
    return [weights[order.index(i)] for i in ids]


def _fold_run(pack: Path, run: Path, init: Path) -> dict[str, Path]:
    """A recipe run's fold part, as training.recipe writes it: per method, weights of a backbone (here the init
    model shifted by a different amount per fold) and the fold's held-out items."""
    from detector.models.classifier import DeepfakeClassifier
    from training.data.folds import method_folds
    from training.recipe import load_pack, pool_items

    crops, _ = load_pack(pack)
    model = DeepfakeClassifier("mobilenetv2", weights=None)
    model.save(init)
    base = model.get_weights()
    (run / "folds").mkdir(parents=True)
    entries, weights = [], {}
    for k, fold in enumerate(method_folds(pool_items(crops))):
        rng = np.random.default_rng(k)  # each fold's convolutions moved its own way
        model.set_weights([w + rng.normal(0, 0.02, w.shape).astype(w.dtype) if w.ndim == 4 else w for w in base])
        weights[fold.method] = run / "folds" / f"{fold.method}.weights.h5"
        model.save_weights(weights[fold.method])
        entries.append({"method": fold.method, "weights": f"folds/{fold.method}.weights.h5",
                        "test_items": sorted(it.item for it in fold.test)})
    (run / "recipe_log.json").write_text(json.dumps({"folds": entries}))
    return weights


@pytest.mark.e2e
def test_a_fold_run_scores_each_fold_with_its_own_backbone(pack: Path, tmp_path: Path) -> None:
    """With a recipe run's fold models, each fold's held-out videos are scored from the features of the backbone
    that fold trained (the same figures as features made by that backbone alone), not from the final one."""
    from training.recipe import load_pack

    init, run = tmp_path / "init.keras", tmp_path / "run"
    weights = _fold_run(pack, run, init)
    crops, images = load_pack(pack)
    rows = np.flatnonzero([c["role"] == "pool" for c in crops])

    def build(path: Path):
        return stats_head.stats_model(init, keep_top=True, init_weights=[path])

    folds = stats_head.fold_run_log(stats_head.fold_run_weights(run, crops), crops, images, build, 0.1, 1, 0)
    assert [f["method"] for f in folds] == ["swap", "talk"]
    for fold in folds:
        own = stats_head.pack_features(build(weights[fold["method"]]), images, rows, 1, 0)
        expect = stats_head.fold_log(crops, own[0], 0.1, own[2], own[1], only=fold["method"])
        assert len(expect) == 1 and _flat(expect[0]["scores"]) == pytest.approx(_flat(fold["scores"]))
    # the final model's features would score the "talk" fold otherwise
    final = stats_head.pack_features(stats_head.stats_model(init, keep_top=True), images, rows, 1, 0)
    other = stats_head.fold_log(crops, final[0], 0.1, final[2], final[1], only="talk")[0]["scores"]
    assert _flat(other) != pytest.approx(_flat(folds[1]["scores"]), abs=1e-4)


def _flat(scores: dict) -> list[float]:
    """A fold's video scores ({item: {"label", "group", view: score}}) as one list of numbers, in a fixed order."""
    return [float(scores[item][key]) for item in sorted(scores) for key in sorted(scores[item]) if key != "group"]


@pytest.mark.slow
def test_a_fold_run_of_other_folds_is_refused(pack: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A run whose folds held out other videos (another pack or seed), or that lacks a fold, gives a one-line
    error, never figures from backbones that saw the held-out method."""
    init, run = tmp_path / "init.keras", tmp_path / "run"
    _fold_run(pack, run, init)
    log = json.loads((run / "recipe_log.json").read_text())
    log["folds"][0]["test_items"] = log["folds"][0]["test_items"][:-1]
    (run / "recipe_log.json").write_text(json.dumps(log))
    args = ["--pack", str(pack), "--init", str(init), "--out", str(tmp_path / "out"), "--fold-run", str(run)]
    assert stats_head.main(args) == 2
    assert "held out other videos" in capsys.readouterr().err
    (run / "recipe_log.json").write_text(json.dumps({"folds": log["folds"][1:]}))
    assert stats_head.main(args) == 2
    assert "no fold model for 'swap'" in capsys.readouterr().err


@pytest.mark.e2e
def test_stats_head_runs_leave_one_method_out_and_exports(pack: Path, tmp_path: Path) -> None:
    """The tool on the tiny pack: one fold per method, no group on both sides of a fold, held-out videos scored as
    they are and damaged, the threshold from the out-of-fold reals, and an export whose card says what it is."""
    import keras

    from detector.models.classifier import DeepfakeClassifier
    from training import export

    init, run, root = tmp_path / "init.keras", tmp_path / "run", tmp_path / "model"
    DeepfakeClassifier("mobilenetv2", weights=None).save(init)
    assert stats_head.main(["--pack", str(pack), "--init", str(init), "--out", str(run), "--keep-top",
                            "--prior-images", "6000"]) == 0
    log = json.loads((run / "stats_log.json").read_text())
    assert [f["method"] for f in log["folds"]] == ["swap", "talk"]
    held_out = {f["method"]: set(f["scores"]) for f in log["folds"]}
    assert "talk_fake" not in held_out["swap"] and "stream_fake" not in held_out["talk"]
    assert {"stream_real", "stream_fake"} <= held_out["swap"]  # the swap's own footage is held out with it
    for fold in log["folds"]:
        for scores in fold["scores"].values():
            assert set(scores) == {"label", "group", "score", "crf35", "half_res"}
    swap = log["folds"][0]["scores"]
    assert swap["stream_real"]["group"] == swap["stream_fake"]["group"]  # the pair the figures count
    summary = json.loads((run / "summary.json").read_text())
    reals = [v["score"] for f in log["folds"] for v in f["scores"].values() if v["label"] == 0]
    assert summary["mode"] == "stats_head" and summary["images_seen"] == 6000
    assert set(summary["stats_head"]["other_reals"]) == {"real"}  # the pack's one non-pool real source
    assert summary["threshold"] >= np.quantile(reals, 0.95) - 1e-9
    assert (run / "lomo.md").read_text().startswith("| held out")
    assert "fake scored above its real" in (run / "lomo.md").read_text()
    assert export.main(["--checkpoint", str(run / "model.keras"), "--run", str(run), "--out", str(root)]) == 0
    card = json.loads((root / "card.json").read_text())
    assert "texture statistics" in card["description"] and card["training"]["stats_head"]["keep_top"] is True
    exported = keras.models.load_model(root / "model.keras", compile=False)
    assert exported.keep_top and exported.taps == TAPS


@pytest.mark.slow
def test_stats_head_per_kind_fits_a_head_per_kind_and_exports_them(pack: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture) -> None:
    """--per-kind: a pool method no kind lists is a one-line error, --keep-top is required, and a run with kinds
    writes them into its summary and the card and exports a model with one statistics unit per kind."""
    import keras

    from detector.models.classifier import DeepfakeClassifier
    from training import export

    init, run, root = tmp_path / "init.keras", tmp_path / "run", tmp_path / "model"
    DeepfakeClassifier("mobilenetv2", weights=None).save(init)
    args = ["--pack", str(pack), "--init", str(init), "--out", str(run), "--keep-top", "--per-kind"]
    assert stats_head.main(args) == 2
    assert "pool method 'swap' is in no kind" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        stats_head.main(args[:-2] + ["--per-kind"])
    assert exit_.value.code == 2 and "needs --keep-top" in capsys.readouterr().err
    monkeypatch.setattr(stats_head, "FAKE_KINDS", {"face swap": ("swap",), "generated face": ("talk",)})
    monkeypatch.setattr(stats_head, "MIN_KIND_CROPS", 1)
    assert stats_head.main(args) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stats_head"]["kinds"] == {"face swap": ["swap"], "generated face": ["talk"]}
    assert summary["command"].endswith("--keep-top --per-kind")
    assert export.main(["--checkpoint", str(run / "model.keras"), "--run", str(run), "--out", str(root)]) == 0
    card = json.loads((root / "card.json").read_text())
    assert "One such head per kind of fake (face swap: swap; generated face: talk)" in card["description"]
    assert keras.models.load_model(root / "model.keras", compile=False).stats_heads == 2


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in backbones.available() if backbones.get(n).stat_taps])
def test_every_registered_tap_set_builds_a_statistics_head(name: str) -> None:
    """The registry's taps exist in their backbone, shallow to deep, and the head pools two numbers per channel."""
    model = build_classifier(name, taps=backbones.get(name).stat_taps)
    taps = [model.get_layer(t) for t in model.taps]
    sizes = [int(layer.output.shape[1]) for layer in taps]
    assert sizes == sorted(sizes, reverse=True)  # from fine to coarse maps
    assert model.embedder().output.shape[-1] == 2 * sum(int(layer.output.shape[-1]) for layer in taps)
    assert model.backbone.layers[-1].name == model.taps[-1]  # nothing past the deepest tap
