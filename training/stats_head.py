"""The statistics head: a logistic head on texture statistics of a trained backbone's intermediate feature maps,
fitted on labeled_pool's real fakes, with leave-one-method-out figures and a task model ready to export.

    python -m training.stats_head --pack packs/main --init saved_model/deepfake/model.keras --out runs/stats_head \\
        [--keep-top]

Why: a head on a backbone's last, pooled feature map learns what the training footage shows. Trained on the pool's
fakes it reached 0.75 leave-one-method-out but 0.42 on the labelled set (``training.experiments.feature_probe``); every
fine-tuning run traded one for the other. The mean and standard deviation of each channel of four residual stages
(strides 4 to 16) describe texture at several scales instead, the kind of evidence a blend, a generator or a
resampling leaves, and a head on them raised both figures on the same crops (docs/research-log.md).

Steps:

1. The task model with the statistics head (:class:`detector.models.classifier.DeepfakeClassifier` with ``taps``, the
   backbone's :attr:`~detector.models.backbones.BackboneSpec.stat_taps` unless ``--taps``), its backbone weights taken
   from ``--init`` and frozen: only the head is fitted. ``--keep-top`` keeps ``--init``'s own head as well (the
   self-blend detector's blending evidence) and adds the two (see :func:`mix_weights`).
2. The features of every crop of the pack, of ``--augment`` codec-damaged copies of the pool's crops (random H.264
   CRF 18-40, rescaling, JPEG, on real and fake alike, as training.recipe damages its batches), and of the pool's
   crops after H.264 at CRF 35 and at half resolution (for the robustness figures only).
3. Per held-out method (:func:`training.data.folds.method_folds`: no group on both sides), a standardised,
   class-balanced logistic regression on the other methods' pool crops (and their damaged copies) scores the
   held-out videos by the scanner's rule, as they are and damaged. The log has ``training.recipe``'s form, so
   :mod:`training.lomo_report`'s figures and threshold rule apply: the threshold calls 5 % of the out-of-fold reals
   fake.
   With ``--fold-run RUN`` (a ``training.recipe`` run with folds, on the same pack), each fold's features come
   from the backbone that run trained for that fold instead, so the pool's fakes can train the backbone as well
   and still no backbone or head has seen the method it is judged on.
4. The head fitted on every pool crop becomes the model's Dense layer (standardisation folded into its weights).
5. The pack's other real faces (real_videos and LFW), which no statistics head is fitted on, are scored with the
   final model by the scanner's rule, per source: the share at or above the threshold and the mean. A head that has
   learnt what the pool's generated footage shows rather than what was done to it lifts real footage of the same
   look (studio talking heads), so these false positives are the alarm the pool's own figures cannot raise. (The
   backbone may have trained on these faces as blend sources: a check of the statistics head, not of the backbone.)

``--reencoded-pack PACK`` (the pool's videos re-encoded whole by ``training.degrade``, then prepared and packed as the
pool was) has each fold's head also score its held-out videos' copies: compression as re-sharing applies it, beside
the crop-level CRF 35 view.

``--per-kind`` fits one head per kind of fake instead (:data:`FAKE_KINDS`: face swaps, and faces a generator drew
whole), each on its kind's fakes against every real crop, each logit standardised on those reals, and the largest
of them is the statistics head's logit. One linear head on every kind has to settle on one direction between them:
raising the talking heads' figures cost DeepFaceLive's in every variant measured (docs/research-log.md); the largest of
two heads is a piecewise-linear "either kind of evidence". The kinds are the pool README's, fixed before measuring.

Writes ``model.keras``, ``stats_log.json``, ``lomo.json``, ``lomo.md`` and ``summary.json`` (what
``training.export`` reads) into ``--out``. Minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from detector.models import backbones
from detector import config
from detector.models.scoring import OUTPUT_NAME
from training.data import codec
from training.data.codec import damage_batch
from training.data.folds import method_folds
from training.data.packs import load_pack, pool_items, video_scores
from training.heads.linear import LinearHead, fit_head
from training.lomo_report import REENCODED_VIEW, lomo_figures, markdown
from training.prepare import source_name
from training.recipe import item_figures

#: Inverse regularisation strength of the logistic head (the feature probe's default; 0.01 to 0.3 measure alike).
DEFAULT_C = 0.1
#: Codec-damaged copies of each training crop the head also fits, so compression does not signal a class.
DEFAULT_AUGMENT = 1
#: Views of a crop the figures are taken on: as it is, after H.264 at CRF 35, at half resolution.
VIEWS = ("score", "crf35", "half_res")
#: The kinds of fake ``--per-kind`` fits a head for, by generation method (labeled_pool's README): face swaps paste
#: a generated face into real footage; talking heads and reenactment draw the whole face from a portrait or a driver.
FAKE_KINDS = {"face swap": ("deepfacelive", "deep-live-cam(inswapper)"),
              "generated face": ("vasa-1", "anitalker", "emo", "styletalk", "megactor")}
#: A kind with fewer fake training crops than this gets no head of its own in that fit (a fold that holds out
#: almost all of it); the other kinds' heads still score it.
MIN_KIND_CROPS = 8


@dataclass
class Reencoded:
    """The pool's videos re-encoded whole, prepared and packed as the pool was: their crops, the crops' statistics
    features and the kept head's logits (None without one). Items meet their originals by :func:`source_name`."""

    crops: list[dict]
    features: np.ndarray
    top: np.ndarray | None


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def load_weights(model, paths: Sequence[Path]) -> None:
    """Load a weights file into ``model``, or the average of several, variable by variable (batch-norm statistics
    included): checkpoint averaging, a "model soup" (Wortsman et al. 2022). Runs fine-tuned from one start lie in
    one basin, and their average tends to keep what each learnt while forgetting less of where they started."""
    if not paths:
        return
    model.load_weights(paths[0])
    if len(paths) == 1:
        return
    total = [w.astype(np.float64) for w in model.get_weights()]
    for path in paths[1:]:
        model.load_weights(path)
        total = [t + w for t, w in zip(total, model.get_weights())]
    model.set_weights([(t / len(paths)).astype(w.dtype) for t, w in zip(total, model.get_weights())])


def stats_model(init: Path, backbone: str = config.DEFAULT_BACKBONE, taps: tuple[str, ...] | None = None,
                keep_top: bool = False, init_weights: Sequence[Path] = (), stats_heads: int = 1):
    """The statistics-head task model with every backbone layer's weights copied from the model at ``init`` (by
    layer name) and frozen, and with ``keep_top`` that model's own head as the linear ``top_head`` (its kept
    ``top_head`` when ``init`` was made here with one, so the shipped model refits from itself); the statistics
    head is left unfitted. ``init_weights`` (training.recipe runs' ``final.weights.h5`` of the same ``init``; several
    are averaged: :func:`load_weights`) are loaded into the ``init`` model first. ``stats_heads``: units of the
    statistics head (one per kind of fake, with ``keep_top``)."""
    from detector.models.classifier import build_classifier
    from detector.models.model import load_detector

    source = load_detector(init).keras_model
    if source is None:
        raise ValueError(f"{init}: --init must be a Keras model (a model folder with model.keras, or a .keras file)")
    load_weights(source, init_weights)
    model = build_classifier(backbone, taps=taps or backbones.get(backbone).stat_taps, keep_top=keep_top,
                             stats_heads=stats_heads)
    for layer in (model.preprocessor, *model.backbone.layers):
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())
    if keep_top:
        # a model made here with a kept head keeps it as top_head; a classic model's head is its sigmoid output
        names = {layer.name for layer in source.layers}
        top = source.get_layer("top_head" if "top_head" in names else OUTPUT_NAME)
        if top.name == OUTPUT_NAME and top.get_config().get("activation") != "sigmoid":
            raise ValueError(f"{init}: its head is not a sigmoid unit, so its logit cannot be kept")
        model.get_layer("top_head").set_weights(top.get_weights())
    model.freeze_backbone()
    return model


def feature_model(model):
    """Crops -> (statistics features, the kept head's logit or nothing)."""
    import keras

    outputs = [model.get_layer("stats_pool").output]
    if model.keep_top:
        outputs.append(model.get_layer("top_head").output)
    return keras.Model(model.input, outputs)


def mix_weights(top_logits: np.ndarray, stats_logits: np.ndarray) -> tuple[np.ndarray, float]:
    """The output unit that adds two heads: each head's logit standardised by its mean and spread on the same real
    crops (the head's own training reals), weighted equally. Returns its Dense kernel (2,) and bias.

    Equal weights, not fitted: fitted on the pool, the weights would favour the head made for the pool's methods,
    which is what the kept head is there to balance."""
    mu, sd = np.array([top_logits.mean(), stats_logits.mean()]), np.array([top_logits.std(), stats_logits.std()])
    kernel = 0.5 / np.maximum(sd, 1e-6)
    return kernel, float(-np.dot(kernel, mu))


class Scorer:
    """The fitted statistics head(s) (and with a kept head, the output unit that adds both) applied to features.

    One head is used as it is. Several (one per kind of fake, ``standard`` their logits' mean and spread on real
    crops) give the largest standardised logit: the model's ``stats_head`` units and ``stats_max``."""

    def __init__(self, head: LinearHead | list[LinearHead], mix: tuple[np.ndarray, float] | None = None,
                 standard: list[tuple[float, float]] | None = None):
        self.heads = head if isinstance(head, list) else [head]
        self.standard = standard or [(0.0, 1.0)] * len(self.heads)
        self.mix = mix

    def dense_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Kernel (F, K) and bias (K,) of the ``stats_head`` layer: each head's standardisation of the features and
        of its own logit folded in."""
        kernels, biases = [], []
        for head, (mean, spread) in zip(self.heads, self.standard):
            kernel, bias = head.dense_weights()
            kernels.append(kernel / spread)
            biases.append((bias - mean) / spread)
        return np.stack(kernels, axis=1), np.array(biases)

    def stats_logit(self, stats: np.ndarray) -> np.ndarray:
        kernel, bias = self.dense_weights()
        return (np.asarray(stats, np.float64) @ kernel + bias).max(axis=1)

    def __call__(self, stats: np.ndarray, top: np.ndarray | None = None) -> np.ndarray:
        logit = self.stats_logit(stats)
        if self.mix is not None:
            kernel, bias = self.mix
            logit = kernel[0] * top + kernel[1] * logit + bias
        return _sigmoid(logit)


def kind_of(crops: list[dict]) -> list[str]:
    """Each crop's :data:`FAKE_KINDS` name ("" for reals and crops outside the pool). A pool fake of a method no kind
    lists raises ValueError: silently leaving it out would fit the heads on part of the pool."""
    by_method = {method: kind for kind, methods in FAKE_KINDS.items() for method in methods}
    kinds = []
    for crop in crops:
        if crop["role"] != "pool" or int(crop["label"]) == 0:
            kinds.append("")
        elif crop.get("method") in by_method:
            kinds.append(by_method[crop["method"]])
        else:
            raise ValueError(f"pool method {crop.get('method')!r} is in no kind of training.stats_head.FAKE_KINDS")
    return kinds


def kinds_with_heads(kinds: Sequence[str], rows: Sequence[int]) -> list[str]:
    """The kinds (in :data:`FAKE_KINDS` order) with at least ``MIN_KIND_CROPS`` fake crops among ``rows``."""
    counts = {kind: 0 for kind in FAKE_KINDS}
    for i in rows:
        if kinds[i]:
            counts[kinds[i]] += 1
    return [kind for kind, n in counts.items() if n >= MIN_KIND_CROPS]


def fit_scorer(features: dict[str, np.ndarray], top: dict[str, np.ndarray] | None, augmented: list[np.ndarray],
               labels: np.ndarray, rows: list[int], c: float, kinds: Sequence[str] | None = None) -> Scorer:
    """A head fitted on the crops ``rows``, each as it is and in every codec-damaged copy; with ``top`` (the kept
    head's logits), the output unit standardised on the real crops among ``rows``. With ``kinds`` (each crop's
    kind of fake: :func:`kind_of`), one head per kind instead, each on that kind's fakes and every real among
    ``rows``, its logit standardised on those reals (one head on them all when no kind has ``MIN_KIND_CROPS``)."""
    reals = [i for i in rows if labels[i] == 0]

    def fit(subset: list[int]) -> LinearHead:
        x = np.concatenate([features["score"][subset]] + [copy[subset] for copy in augmented])
        return fit_head(x, np.tile(labels[subset], 1 + len(augmented)), c)

    own_heads = kinds_with_heads(kinds, rows) if kinds is not None else []
    if not own_heads:
        scorer = Scorer(fit(list(rows)))
    else:
        heads, standard = [], []
        for kind in own_heads:
            head = fit(reals + [i for i in rows if kinds[i] == kind])
            logits = head.logit(features["score"][reals])
            heads.append(head)
            standard.append((float(logits.mean()), float(max(logits.std(), 1e-6))))
        scorer = Scorer(heads, standard=standard)
    if top is None:
        return scorer
    scorer.mix = mix_weights(top["score"][reals], scorer.stats_logit(features["score"][reals]))
    return scorer


def fold_log(crops: list[dict], features: dict[str, np.ndarray], c: float, augmented: list[np.ndarray] = (),
             top: dict[str, np.ndarray] | None = None, only: str | None = None,
             per_kind: bool = False, reencoded: Reencoded | None = None) -> list[dict]:
    """Leave-one-method-out folds in ``training.recipe``'s log form: each held-out video's score as it is, after
    CRF 35 and at half resolution, from a head that never saw its method or its group. ``only``: that method's
    fold alone (its features then come from a backbone that never saw it either: :func:`fold_run_log`).
    ``per_kind``: one head per kind of fake (:func:`fit_scorer`). ``reencoded``: the same fold's head also scores
    each held-out video's re-encoded copy (:data:`REENCODED_VIEW`; a video whose copy shows no face has none)."""
    kinds = kind_of(crops) if per_kind else None
    labels = np.array([int(x["label"]) for x in crops])
    folds = []
    for fold in method_folds(pool_items(crops)):
        if only is not None and fold.method != only:
            continue
        train_items = {it.item for it in fold.train}
        train = [i for i, x in enumerate(crops) if x["role"] == "pool" and x["item"] in train_items]
        scorer = fit_scorer(features, top, list(augmented), labels, train, c, kinds)
        test_items = {it.item for it in fold.test}
        idx = [i for i, x in enumerate(crops) if x["role"] == "pool" and x["item"] in test_items]
        test_crops = [crops[i] for i in idx]
        per_view = {view: video_scores(test_crops, scorer(features[view][idx], None if top is None
                                                          else top[view][idx]), test_items) for view in VIEWS}
        held_out = {it.item: it for it in fold.test}
        scores = {item: {"label": held_out[item].label, "group": held_out[item].group,
                         **{view: per_view[view][item] for view in VIEWS}} for item in per_view["score"]}
        if reencoded is not None:
            for item, score in reencoded_scores(reencoded, scorer, test_items).items():
                if item in scores:
                    scores[item][REENCODED_VIEW] = score
        folds.append({"method": fold.method, "train_items": len(train_items), "train_crops": len(train),
                      "scores": scores})
    return folds


def reencoded_scores(reencoded: Reencoded, scorer: Callable, items: set[str]) -> dict[str, float]:
    """Video scores, by the scanner's rule, of the re-encoded copies of ``items`` (keyed by the original item)."""
    original = {source_name(item): item for item in items}
    idx = [i for i, x in enumerate(reencoded.crops) if x["role"] == "pool" and source_name(x["item"]) in original]
    if not idx:
        return {}
    crop_scores = scorer(reencoded.features[idx], None if reencoded.top is None else reencoded.top[idx])
    videos = video_scores([reencoded.crops[i] for i in idx], crop_scores, {reencoded.crops[i]["item"] for i in idx})
    return {original[source_name(item)]: score for item, score in videos.items()}


def other_real_figures(crops: list[dict], scores: np.ndarray, threshold: float) -> dict:
    """The pack's non-pool real faces (role ``real``) scored by the final model, one video score per item by the
    scanner's rule, per source (a real_videos dataset such as ``hdtf``, or ``lfw``): how many, the share at or above
    ``threshold`` (false positives at the shipped operating point) and the mean score."""
    idx = [i for i, x in enumerate(crops) if x["role"] == "real"]
    videos = video_scores([crops[i] for i in idx], np.asarray(scores)[idx], {crops[i]["item"] for i in idx})
    source_of = {crops[i]["item"]: (crops[i]["group"].split(":")[0] if crops[i]["dataset"] == "videos"
                                    else crops[i]["dataset"]) for i in idx}
    out: dict = {}
    for source in sorted(set(source_of.values())):
        s = np.array([v for item, v in videos.items() if source_of[item] == source])
        out[source] = {"items": len(s), "at_or_above_threshold": round(float(np.mean(s >= threshold)), 4),
                       "mean_score": round(float(s.mean()), 4)}
    return out


def crop_features(extract, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Statistics features of crops (and the kept head's logits, or None) from a :func:`feature_model`."""
    out = extract.predict(images.astype(np.float32), batch_size=64, verbose=0)
    out = out if isinstance(out, (list, tuple)) else [out]
    return out[0].astype(np.float64), (out[1].reshape(-1).astype(np.float64) if len(out) > 1 else None)


def pack_features(model, images: np.ndarray, rows: np.ndarray, augment: int, seed: int
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None, list[np.ndarray]]:
    """The statistics features of every crop (and the kept head's logits, or None without one), of the crops
    ``rows`` (the pool's) after H.264 at CRF 35 and at half resolution, and of ``augment`` codec-damaged copies of
    them (drawn from ``seed``, so every backbone measured sees the same damage)."""
    extract = feature_model(model)
    features, top = {}, {}
    features["score"], top["score"] = crop_features(extract, images)
    for view in VIEWS[1:]:
        features[view], top[view] = np.zeros_like(features["score"]), np.zeros_like(features["score"][:, 0])
        features[view][rows], damaged_top = crop_features(extract, codec.damaged(images[rows], view))
        if damaged_top is not None:
            top[view][rows] = damaged_top
    rng = np.random.default_rng(seed)
    augmented = []
    for copy in range(augment):
        print(f"codec-damaged copy {copy + 1} of {augment} ...", flush=True)
        damaged = np.zeros_like(features["score"])
        for start in range(0, len(rows), 32):
            batch = rows[start:start + 32]
            damaged[batch] = crop_features(extract, damage_batch(images[batch], rng))[0]
        augmented.append(damaged)
    return features, (top if model.keep_top else None), augmented


def fold_run_weights(run: Path, crops: list[dict]) -> dict[str, Path]:
    """Each fold's model weights in ``training.recipe`` run ``run`` (its ``recipe_log.json``), by held-out method,
    checked against this pack's folds: a run cut short, or one whose folds held out other videos (another pack or
    ``--seed``), would score methods with backbones that saw them, so it is refused (ValueError)."""
    log = json.loads((run / "recipe_log.json").read_text())
    entries = {entry["method"]: entry for entry in log.get("folds", [])}
    weights = {}
    for fold in method_folds(pool_items(crops)):
        entry = entries.get(fold.method)
        if entry is None or "weights" not in entry:
            raise ValueError(f"{run}: no fold model for {fold.method!r} (a run with --fold-steps, not cut short)")
        if set(entry["test_items"]) != {it.item for it in fold.test}:
            raise ValueError(f"{run}: fold {fold.method!r} held out other videos than this pack's fold "
                             "(another pack, or --seed)")
        weights[fold.method] = run / entry["weights"]
    return weights


def fold_run_log(weights: dict[str, Path], crops: list[dict], images: np.ndarray, build: Callable[[Path], object],
                 c: float, augment: int, seed: int, per_kind: bool = False) -> list[dict]:
    """Leave-one-method-out folds where each fold's head is fitted on the features of the backbone that
    ``training.recipe`` trained for that fold (``weights``: :func:`fold_run_weights`): the pool's fakes can then
    train the backbone too, and no backbone or head saw the method it is judged on. ``build(path)`` makes the
    statistics model from a fold's weights."""
    rows = np.flatnonzero(np.array([c["role"] == "pool" for c in crops]))
    folds = []
    for method, path in weights.items():
        print(f"fold {method}: features from its own backbone ...", flush=True)
        features, top, augmented = pack_features(build(path), images, rows, augment, seed)
        folds += fold_log(crops, features, c, augmented, top, only=method, per_kind=per_kind)
    return folds


def set_heads(model, scorer: Scorer) -> None:
    """Make the model compute ``scorer``: the statistics head's Dense layer (and the output unit with a kept head)."""
    kernel, bias = scorer.dense_weights()
    if kernel.shape[1] != getattr(model, "stats_heads", 1):
        raise ValueError(f"the scorer has {kernel.shape[1]} statistics heads, the model {model.stats_heads}")
    stats = model.get_layer("stats_head" if model.keep_top else OUTPUT_NAME)
    stats.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    if scorer.mix is not None:
        kernel, bias = scorer.mix
        model.get_layer(OUTPUT_NAME).set_weights([kernel.reshape(2, 1).astype(np.float32),
                                                  np.array([bias], np.float32)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pack", type=Path, required=True, help="a training.pack folder")
    p.add_argument("--init", type=Path, required=True, help="trained model whose backbone is kept (model.keras)")
    p.add_argument("--init-weights", type=Path, nargs="+", default=[],
                   help="weights to load into --init first: a training.recipe run's final.weights.h5, or several "
                        "runs' of the same --init, averaged")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--backbone", default=config.DEFAULT_BACKBONE)
    p.add_argument("--taps", help="comma-separated layer names (default: the backbone's stat_taps)")
    p.add_argument("--keep-top", action="store_true", help="keep --init's own head and add the two")
    p.add_argument("--per-kind", action="store_true",
                   help="one statistics head per kind of fake (FAKE_KINDS: face swaps, generated faces), the largest "
                        "standardised logit counting; needs --keep-top")
    p.add_argument("--C", type=float, default=DEFAULT_C, help="inverse regularisation strength of the head")
    p.add_argument("--augment", type=int, default=DEFAULT_AUGMENT,
                   help="codec-damaged copies of each training crop (training.data.codec.damage_batch)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prior-images", type=int, default=0, help="images the --init model was trained on")
    p.add_argument("--fold-run", type=Path,
                   help="a training.recipe run with folds (the same pack and --seed): each fold's head is fitted and "
                        "scored on the backbone that fold trained, so the pool's fakes may train the backbone too; "
                        "the final head is on --init (with --init-weights, e.g. that run's final.weights.h5)")
    p.add_argument("--init-description", default="", help="what the --init model is, for the card")
    p.add_argument("--reencoded-pack", type=Path,
                   help="the pool's videos re-encoded whole (training.degrade), prepared and packed as the pool was: "
                        "each fold's head also scores the held-out videos' re-encoded copies")
    args = p.parse_args(argv)
    if args.per_kind and not args.keep_top:
        p.error("--per-kind needs --keep-top (the kinds' heads feed the output unit beside the kept head)")
    if args.reencoded_pack and args.fold_run:
        p.error("--reencoded-pack needs the one backbone of --init (not per-fold backbones of --fold-run)")
    t0 = time.time()
    try:
        crops, images = load_pack(args.pack)
        taps = tuple(t for t in args.taps.split(",") if t) if args.taps else None
        rows = np.flatnonzero(np.array([c["role"] == "pool" for c in crops]))
        kinds = kind_of(crops) if args.per_kind else None
        headed = kinds_with_heads(kinds, rows) if kinds else []
        if kinds and not headed:
            raise ValueError(f"{args.pack}: no kind of fake has {MIN_KIND_CROPS} pool crops for a head")
        model = stats_model(args.init, args.backbone, taps, args.keep_top, args.init_weights, len(headed) or 1)
        fold_weights = fold_run_weights(args.fold_run, crops) if args.fold_run else None
        reencoded_pack = load_pack(args.reencoded_pack) if args.reencoded_pack else None
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"features of {len(crops)} crops, {len(rows)} pool crops also damaged ...", flush=True)
    features, top, augmented = pack_features(model, images, rows, args.augment, args.seed)
    if fold_weights:
        folds = fold_run_log(fold_weights, crops, images,
                             lambda path: stats_model(args.init, args.backbone, taps, args.keep_top, [path]),
                             args.C, args.augment, args.seed, args.per_kind)
    else:
        reencoded = None
        if reencoded_pack is not None:
            print(f"features of the {len(reencoded_pack[0])} re-encoded crops ...", flush=True)
            reencoded = Reencoded(reencoded_pack[0], *crop_features(feature_model(model), reencoded_pack[1]))
        folds = fold_log(crops, features, args.C, augmented, top, per_kind=args.per_kind, reencoded=reencoded)
    labels = np.array([int(x["label"]) for x in crops])
    final = fit_scorer(features, top, augmented, labels, rows.tolist(), args.C, kinds)
    set_heads(model, final)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "model.keras")
    final_scores = final(features["score"], None if top is None else top["score"])
    evaluation = item_figures(crops, final_scores)
    init_weights = " ".join(map(str, args.init_weights))
    settings = {"pack": str(args.pack), "init": str(args.init), "init_weights": init_weights,
                "backbone": args.backbone, "taps": list(model.taps),
                "keep_top": args.keep_top, "C": args.C, "augment": args.augment, "seed": args.seed,
                "fold_run": str(args.fold_run) if args.fold_run else "", "per_kind": args.per_kind,
                "reencoded_pack": str(args.reencoded_pack) if args.reencoded_pack else ""}
    log = {"settings": settings, "folds": folds, "final": {"train_crops": len(rows), "eval": evaluation}}
    (args.out / "stats_log.json").write_text(json.dumps(config.project_relative(log), indent=2) + "\n")
    fig = lomo_figures(log)
    other_reals = other_real_figures(crops, final_scores, fig["threshold_at_5pct_fpr"])
    (args.out / "lomo.json").write_text(json.dumps(fig, indent=2) + "\n")
    (args.out / "lomo.md").write_text(markdown(fig))
    command = (f"python -m training.stats_head --pack {args.pack} --init {args.init} "
               + (f"--init-weights {init_weights} " if init_weights else "")
               + f"--C {args.C} "
               f"--augment {args.augment} --seed {args.seed}" + (" --keep-top" if args.keep_top else "")
               + (" --per-kind" if args.per_kind else "")
               + (f" --taps {args.taps}" if args.taps else "")
               + (f" --fold-run {args.fold_run}" if args.fold_run else "")
               + (f" --reencoded-pack {args.reencoded_pack}" if args.reencoded_pack else ""))
    summary = {
        "backbone": args.backbone, "weights": args.init_description or str(args.init), "mode": "stats_head",
        "image_size": model.image_size, "seed": args.seed, "images_seen": args.prior_images,
        "train_crops": len(rows), "seconds": round(time.time() - t0, 1),
        "stats_head": {"taps": list(model.taps), "keep_top": args.keep_top, "C": args.C, "augment": args.augment,
                       "kinds": {kind: list(FAKE_KINDS[kind]) for kind in headed} or None,
                       "features": int(features["score"].shape[1]), "train_crops": len(rows),
                       "eval_crops_figures": evaluation, "other_reals": other_reals},
        "threshold": fig["threshold_at_5pct_fpr"],
        "threshold_source": ("score at 5% false positives on the out-of-fold reals of the leave-one-method-out "
                             "folds (labeled_pool; each real scored by the head of the fold that did not train on "
                             "it)"),
        "leave_one_method_out": fig, "command": command,
    }
    (args.out / "summary.json").write_text(json.dumps(config.project_relative(summary), indent=2) + "\n")
    print(markdown(fig))
    if evaluation:
        print(f"eval crops (labelled set, shown only): video ROC-AUC {evaluation['roc_auc']} "
              f"{evaluation['roc_auc_ci']}")
    if other_reals:
        print("the pack's other reals, never fitted by the statistics head (share at or above the threshold, mean "
              "score): " + "; ".join(f"{source} {f['at_or_above_threshold']:.0%} of {f['items']}, {f['mean_score']:.2f}"
                                     for source, f in other_reals.items()))
    print(json.dumps({"threshold": summary["threshold"], "out": str(args.out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
