"""The transfer recipe: real fakes + self-blends + codec damage, leave-one-method-out folds, then the final model.

    KERAS_BACKEND=jax python -m training.recipe --pack packs/main --init runs/init_mnv2.keras --out runs/recipe

Backend-agnostic Keras (no TensorFlow import), so it runs under JAX on a GPU machine that has no TensorFlow, and
the model it saves loads under TensorFlow for export. Batches are built in worker processes forked *before* Keras
starts, each holding the decoded pack; every batch is half real, half fake, made of pairs:

- synthetic pairs (``--sbi-share``): a real crop and a fake made from it, from every real source: pure blending
  evidence on real footage, in every batch. ``--cross-share`` of them are cross-identity blends
  (training.data.cross_blend:
  another person's face with close landmarks pasted in), the rest self-blends (training.data.sbi); ``--region-share`` of
  them blend only the inner or the lower face (training.data.sbi.REGIONS), as reenactment and lip-sync do;
- same-footage pairs: a real fake and the real half of the same footage (DeepFaceLive streams, MegActor drivers),
  where only the face differs, so the model cannot learn content;
- other real fakes against reals drawn from the pool (and from the real datasets named by ``--other-fakes-reals``).

Both members of a pair get the same *kind* of random codec damage (training.data.codec: H.264 at CRF 18-40, rescaling,
JPEG), drawn independently of the label. Folds: training.data.folds (one per method, groups never on both sides); each
fold model starts from the same initial weights and scores its held-out method's videos with the scanner's own
aggregation rule. The final model trains on everything with more steps. Nothing here picks a checkpoint or a
threshold on the labelled validation set: the eval set only draws curves.

Two ways to keep what the initial model knows while it learns the pool's methods, both measured fold by fold:
``--freeze-until LAYER`` trains only the layers after ``LAYER`` (early, local features stay as they were), and
``--mix A,B,...`` also scores every fold model and the final model with their weights mixed back towards the initial
ones, ``(1 - a) * initial + a * trained`` (weight-space ensembling, as in WiSE-FT: fine-tuning gains on the new
distribution while mixing keeps the robustness of the starting point). ``training.lomo_report --mix`` gives the
figures of any mix, ``training.export --mix`` exports it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from training.data import codec
from training.data.cross_blend import BlendSources
from training.data.folds import fold_slug, method_folds
from training.data.packs import load_pack, pool_items, video_scores

_STATE: dict = {}
#: Share of the synthetic pairs made as cross-identity blends (the rest are self-blends). Cross-identity blends
#: measured better both ways tried: on frozen statistics features a head trained on self-blends alone scored 0.50 on
#: the pool's unseen methods and cross-identity blends 0.57 (training.experiments.synthetic_probe); fine-tuning from
#: version 1 on CPU (docs/research-log.md) with cross-identity blends gave 0.49 across methods and 0.80 on the
#: labelled eval crops, where self-blends gave 0.44 and 0.62.
DEFAULT_CROSS_SHARE = 1.0
#: Where a run keeps its fold models' weights (one ``<fold number>_<method>.weights.h5`` each), inside ``--out``.
FOLD_WEIGHTS_DIR = "folds"


class Sampler:
    """Index pools for one training set (a fold's train split, or everything) and the batch maker."""

    def __init__(self, crops: list[dict], allowed_items: set[str] | None, other_fakes_reals: Sequence[str] = ()):
        """``other_fakes_reals``: real datasets of the pack (their ``dataset`` names) whose crops also stand as the
        reals against the pool's other fakes, beside the pool's own reals."""

        def ok(c: dict) -> bool:
            return c["role"] != "eval" and (c["role"] != "pool" or allowed_items is None or c["item"] in allowed_items)

        usable = [i for i, c in enumerate(crops) if ok(c)]
        self.blends = BlendSources(crops, [i for i in usable if crops[i]["label"] == 0 and "landmarks" in crops[i]])
        self.sbi_reals = self.blends.indices
        self.pool_reals = [i for i in usable if crops[i]["role"] == "pool" and crops[i]["label"] == 0]
        self.pool_fakes = [i for i in usable if crops[i]["role"] == "pool" and crops[i]["label"] == 1]
        self.other_reals = self.pool_reals + [i for i in usable if crops[i]["role"] == "real"
                                              and crops[i]["label"] == 0 and crops[i]["dataset"] in other_fakes_reals]
        by_group: dict[str, dict[int, list[int]]] = {}
        for i in self.pool_reals + self.pool_fakes:
            by_group.setdefault(crops[i]["group"], {}).setdefault(crops[i]["label"], []).append(i)
        self.paired = [g for g in by_group.values() if 0 in g and 1 in g]
        self.crops = crops

    def pairs(self, n: int, rng: np.random.Generator, sbi_share: float, paired_share: float,
              images: np.ndarray, cross_share: float = 0.0, region_share: float = 0.0,
              warp_share: float = 0.0, expression_share: float = 0.0
              ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """``n`` (real, fake) pairs: synthetic ones (``sbi_share``; of those, ``cross_share`` cross-identity blends,
        ``expression_share`` of these from another frame of the target's own face track, ``warp_share`` in the
        target's face shape, and the rest self-blends, ``region_share`` of them
        confined to the inner or lower face), same-footage pool pairs (``paired_share``) and other pool fakes
        against pool reals (and those of ``other_fakes_reals``)."""
        reals, fakes = [], []
        for _ in range(n):
            u = rng.random()
            if u < sbi_share or not self.pool_fakes:
                k = int(rng.integers(len(self.sbi_reals)))
                # no draw at share 0, so such batches are the self-blend-only recipe's, number for number
                cross = cross_share > 0 and rng.random() < cross_share
                fake = self.blends.fake(k, images, rng, cross, region_share, warp_share, expression_share)
                real = images[self.sbi_reals[k]]
            elif u < sbi_share + paired_share and self.paired:
                group = self.paired[rng.integers(len(self.paired))]
                real = images[group[0][rng.integers(len(group[0]))]]
                fake = images[group[1][rng.integers(len(group[1]))]]
            else:
                fake = images[self.pool_fakes[rng.integers(len(self.pool_fakes))]]
                pool = self.other_reals or self.sbi_reals
                real = images[pool[rng.integers(len(pool))]]
            reals.append(real)
            fakes.append(fake)
        return reals, fakes


def mix_weights(initial: list[np.ndarray], trained: list[np.ndarray], alpha: float) -> list[np.ndarray]:
    """``(1 - alpha) * initial + alpha * trained``, array by array (batch-norm statistics included); arrays that are
    not floating point (counters) are taken from ``trained``. 0 gives the initial model, 1 the trained one."""
    if len(initial) != len(trained):
        raise ValueError(f"weight lists differ: {len(initial)} arrays against {len(trained)}")
    mixed = []
    for a, b in zip(initial, trained):
        if a.shape != b.shape:
            raise ValueError(f"weight shapes differ: {a.shape} against {b.shape}")
        mixed.append(((1 - alpha) * a + alpha * b).astype(b.dtype) if np.issubdtype(b.dtype, np.floating) else b)
    return mixed


class WeightsWriter:
    """Saves a training model's weights without its optimizer's state.

    Keras writes a compiled model's optimizer slots into ``save_weights``' file too (for MobileNetV2 with blocks 10-16
    training under AdamW: 16 MB of a 26 MB file). Nothing here resumes an optimizer from a file, and a GPU run's
    fold and final weights must fit what the remote machine hands back, so the weights go through an uncompiled
    twin of the same model (the same variables, by path) and only they are written (about 9 MB)."""

    def __init__(self, init: Path, model):
        import keras

        self.twin = keras.models.load_model(init, compile=False)
        mine, theirs = [w.path for w in self.twin.weights], [w.path for w in model.weights]
        if mine != theirs:
            raise ValueError(f"{init}: the reloaded model's weights differ from the training model's")
        self.model = model

    def save(self, path: Path) -> None:
        self.twin.set_weights(self.model.get_weights())
        self.twin.save_weights(path)


def freeze_until(model, name: str) -> int:
    """Freeze every layer of ``model`` up to and including the one called ``name`` (in graph order; a frozen
    batch-norm layer also keeps its statistics); returns how many layers froze."""
    names = [layer.name for layer in model.layers]
    if name not in names:
        raise ValueError(f"no layer named {name!r} (e.g. {', '.join(names[len(names) // 2:][:3])})")
    stop = names.index(name) + 1
    for layer in model.layers[:stop]:
        layer.trainable = False
    return stop


def parse_mixes(text: str) -> list[float]:
    """``"0.25,0.5,1"`` -> [0.25, 0.5, 1.0]; each in [0, 1]."""
    mixes = [float(x) for x in text.split(",") if x.strip()]
    if any(not 0 <= a <= 1 for a in mixes):
        raise ValueError(f"weight mixes must lie in [0, 1]: {text}")
    return mixes


def _light_augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = image[:, ::-1] if rng.random() < 0.5 else image
    if rng.random() < 0.5:
        out = np.clip(out.astype(np.float32) * rng.uniform(0.85, 1.15) + rng.uniform(-12, 12), 0, 255)
    return np.ascontiguousarray(out, np.uint8)


def _init_worker(pack: str, settings: dict) -> None:
    crops, images = load_pack(Path(pack))
    _STATE.update(crops=crops, images=images, settings=settings, samplers={})
    cv2.setNumThreads(1)


def _sampler(key: str) -> Sampler:
    if key not in _STATE["samplers"]:
        crops = _STATE["crops"]
        if key == "all":
            allowed = None
        elif key == "no_pool":
            allowed = set()  # no pool item: synthetic fakes of the other real sources only
        else:
            fold = {f.method: f for f in method_folds(pool_items(crops))}[key]
            allowed = {it.item for it in fold.train}
        _STATE["samplers"][key] = Sampler(crops, allowed, _STATE["settings"].get("other_fakes_reals", ()))
    return _STATE["samplers"][key]


def make_batch(task: tuple[str, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One batch (uint8 images, float32 labels) for training set ``key``, fully determined by (seed, index)."""
    key, seed, index = task
    s = _STATE["settings"]
    rng = np.random.default_rng([seed, index])
    half = s["batch_size"] // 2
    reals, fakes = _sampler(key).pairs(half, rng, s["sbi_share"], s["paired_share"], _STATE["images"],
                                       s["cross_share"], s["region_share"], s["warp_share"],
                                       s["expression_share"])
    images = np.stack([_light_augment(x, rng) for x in reals + fakes])
    images = codec.damage_batch(images, rng, use_h264=s["h264"])
    labels = np.concatenate([np.zeros(half, np.float32), np.ones(half, np.float32)])
    order = rng.permutation(len(labels))
    # uint8 through the pipe (a quarter of float32's bytes: at GPU speed the pipe, not the workers, is the limit)
    return images[order], labels[order]


def item_figures(crops: list[dict], scores: np.ndarray, role: str = "eval", n_bootstrap: int = 2000) -> dict | None:
    """Crop scores (one per crop of ``crops``) on the ``role`` crops as video-level figures by the scanner's rule (for
    the eval crops, the labelled set: shown, never used to choose anything). None without both classes there."""
    from training.lomo_report import block

    idx = [i for i, x in enumerate(crops) if x["role"] == role]
    if not idx:
        return None
    items = {crops[i]["item"] for i in idx}
    label_of = {crops[i]["item"]: int(crops[i]["label"]) for i in idx}
    videos = video_scores([crops[i] for i in idx], np.asarray(scores)[idx], items)
    y = np.array([label_of[k] for k in videos])
    return block(y, np.array([videos[k] for k in videos]), n_bootstrap) if len(set(y.tolist())) == 2 else None


def _auc(labels: list[int], scores: list[float]) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores)) if len(set(labels)) == 2 else None


def _scores_auc(scores: dict) -> float | None:
    """AUC of a fold's held-out video scores ({item: {"label", "score", ...}})."""
    return _auc([v["label"] for v in scores.values()], [v["score"] for v in scores.values()])


def share(text: str) -> float:
    """An argparse type: a share of the batch's pairs, from 0 to 1."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1")
    return value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pack", type=Path, required=True)
    p.add_argument("--init", type=Path, required=True, help="initial whole-model .keras (e.g. ImageNet backbone)")
    p.add_argument("--init-weights", type=Path,
                   help="weights to load into --init first, e.g. an earlier run's final.weights.h5 (to train on)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--fold-steps", type=int, default=600, help="steps per leave-one-method-out fold (0: no folds)")
    p.add_argument("--final-steps", type=int, default=1600)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--sbi-share", type=share, default=0.5,
                   help="share of pairs that are synthetic fakes of real crops (cross-identity blends or self-blends: "
                        "--cross-share)")
    p.add_argument("--paired-share", type=share, default=0.25, help="share of same-footage real/fake pairs")
    p.add_argument("--cross-share", type=share, default=DEFAULT_CROSS_SHARE,
                   help="share of the synthetic pairs that are cross-identity blends (the rest are self-blends)")
    p.add_argument("--region-share", type=share, default=0.0,
                   help="share of the synthetic fakes blended only in the inner or the lower face (lip-sync and "
                        "reenactment redraw a part of the face, not all of it); 0 blends the whole face")
    p.add_argument("--warp-share", type=share, default=0.0,
                   help="share of the cross-identity blends warped piecewise by landmarks into the target's face "
                        "shape, as a face swap tool draws it; the rest keep the source's shape (one similarity "
                        "transform)")
    p.add_argument("--expression-share", type=share, default=0.0,
                   help="share of the cross-identity draws whose source is another frame of the target's own face "
                        "track (same person, light and camera; another expression and gaze, as reenactment and "
                        "lip-sync leave); a still without one falls back to another person")
    p.add_argument("--other-fakes-reals", default="",
                   help="comma-separated real datasets of the pack (meta.json's dataset names, e.g. videos) whose "
                        "crops also stand against the pool's other fakes, beside the pool's reals: real footage "
                        "like the generators' (studio talking heads), so the setting cannot tell the classes apart")
    p.add_argument("--final-without-pool", action="store_true",
                   help="train the final model on synthetic fakes of the non-pool reals only (needs --sbi-share 1): "
                        "no pool crop is seen, so heads fitted later on its backbone (training.stats_head) can be "
                        "judged leave-one-method-out on the pool with reals the backbone never saw")
    p.add_argument("--curve-points", type=int, default=4, help="eval-set scores this many times in the final run")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-budget", type=float, default=0, help="seconds; skip remaining folds past this")
    p.add_argument("--freeze-until", help="train only the layers after this one (e.g. mbv2_block05_add)")
    p.add_argument("--mix", default="", help="also score with weights mixed towards the initial ones, e.g. "
                                             "0,0.25,0.5,0.75 ((1-a)*initial + a*trained; 1 is the trained model)")
    args = p.parse_args(argv)
    try:
        mixes = parse_mixes(args.mix)
    except ValueError as exc:
        p.error(str(exc))
    if args.final_without_pool and args.sbi_share < 1:
        p.error("--final-without-pool trains on synthetic fakes only: it needs --sbi-share 1")
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {"batch_size": args.batch_size, "sbi_share": args.sbi_share, "paired_share": args.paired_share,
                "cross_share": args.cross_share, "region_share": args.region_share,
                "warp_share": args.warp_share, "expression_share": args.expression_share,
                "other_fakes_reals": tuple(d for d in args.other_fakes_reals.split(",") if d),
                "h264": codec.ffmpeg_available()}
    # fork the batch workers before Keras and its backend start threads
    workers = mp.get_context("fork").Pool(args.workers, _init_worker, (str(args.pack), settings))
    started = time.time()
    crops, images = load_pack(args.pack)
    unknown = set(settings["other_fakes_reals"]) - {c["dataset"] for c in crops if c["role"] == "real"}
    if unknown:
        print(f"error: --other-fakes-reals: no real dataset {', '.join(sorted(unknown))} in {args.pack}",
              file=sys.stderr)
        workers.terminate()
        return 2
    import keras

    from detector.models import classifier  # noqa: F401  (registers the task model and its layers for loading)

    log = {"settings": {**settings, **{k: str(v) for k, v in vars(args).items()}}, "backend": keras.backend.backend(),
           "folds": [], "curve": []}
    print(f"backend {keras.backend.backend()}, {len(crops)} crops, h264 {settings['h264']}, workers {args.workers}",
          flush=True)
    try:
        model = keras.models.load_model(args.init, compile=False)
        if args.init_weights:
            model.load_weights(args.init_weights)
        writer = WeightsWriter(args.init, model)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        workers.terminate()
        return 2
    if args.freeze_until:
        try:
            log["frozen_layers"] = freeze_until(model, args.freeze_until)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            workers.terminate()
            return 2
    initial = [w.copy() for w in model.get_weights()]

    optimizer = keras.optimizers.AdamW(
        keras.optimizers.schedules.CosineDecay(args.lr * 0.1, 1, alpha=0.05, warmup_target=args.lr, warmup_steps=1),
        weight_decay=args.weight_decay)
    model.compile(optimizer=optimizer, loss=keras.losses.BinaryCrossentropy(label_smoothing=0.05))

    def fit(key: str, steps: int, seed: int, segments: int = 1, after_segment=None) -> float:
        """Train from the initial weights for ``steps`` batches, in ``segments`` fit calls (the cosine schedule
        runs on across them); ``after_segment(step, loss)`` runs between them, when the weights are in sync.

        The model is compiled once: each run resets the weights and zeroes the optimizer's state (step counter
        included), so the compiled train step is reused instead of being traced and compiled again per fold."""
        warmup = max(1, steps // 10)
        optimizer.learning_rate = keras.optimizers.schedules.CosineDecay(
            args.lr * 0.1, max(1, steps - warmup), alpha=0.05, warmup_target=args.lr, warmup_steps=warmup)
        model.set_weights(initial)
        for variable in optimizer.variables:
            variable.assign(np.zeros(variable.shape, variable.dtype))
        t = time.time()
        bounds = np.linspace(0, steps, segments + 1).round().astype(int)
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            batches = ((x.astype(np.float32), y) for x, y in
                       workers.imap(make_batch, ((key, seed, i) for i in range(lo, hi)), chunksize=2))
            history = model.fit(batches, steps_per_epoch=int(hi - lo), epochs=1, verbose=2)
            if after_segment:
                after_segment(int(hi), float(history.history["loss"][-1]))
        rate = steps * args.batch_size / (time.time() - t)
        print(f"{key}: {steps} steps, {rate:.0f} images/s (evaluation included)", flush=True)
        return rate

    def predict(indices: list[int]) -> np.ndarray:
        return model.predict(images[indices].astype(np.float32), batch_size=256, verbose=0).reshape(-1)

    items = pool_items(crops)
    eval_idx = [i for i, c in enumerate(crops) if c["role"] == "eval"]
    eval_items = {crops[i]["item"]: crops[i]["label"] for i in eval_idx}

    def at_mixes(score):
        """``score()`` with the model's weights mixed at each of ``--mix`` (keyed by the mix), then as trained again."""
        trained = model.get_weights()
        out = {}
        for alpha in mixes:
            model.set_weights(mix_weights(initial, trained, alpha))
            out[str(alpha)] = score()
        model.set_weights(trained)
        return out

    def eval_auc() -> float | None:
        if not eval_idx:
            return None
        scores = video_scores([crops[i] for i in eval_idx], predict(eval_idx), set(eval_items))
        return _auc([eval_items[k] for k in scores], list(scores.values()))

    if args.fold_steps:
        for k, fold in enumerate(method_folds(items, args.seed)):
            if args.time_budget and time.time() - started > args.time_budget:
                print(f"time budget spent: fold {fold.method} skipped", flush=True)
                continue
            rate = fit(fold.method, args.fold_steps, args.seed + 1 + k)
            test_items = {it.item for it in fold.test}
            # the fold model's weights, so heads fitted later on its backbone (training.stats_head --fold-run) are
            # judged on the method this backbone never saw
            fold_weights = Path(FOLD_WEIGHTS_DIR) / f"{k:02d}_{fold_slug(fold.method)}.weights.h5"
            (args.out / FOLD_WEIGHTS_DIR).mkdir(exist_ok=True)
            writer.save(args.out / fold_weights)
            idx = [i for i, c in enumerate(crops) if c["role"] == "pool" and c["item"] in test_items]
            # robustness: the same held-out crops after H.264 at CRF 35, and after a 2x downscale (about what a
            # 720p source re-encoded at 360p loses), both on top of whatever the source already had
            damaged = {"crf35": codec.damaged(images[idx], "crf35"), "half_res": codec.damaged(images[idx], "half_res")}
            held_out = {it.item: it for it in fold.test}

            def held_out_scores() -> dict:
                test_crops = [crops[i] for i in idx]
                scores = video_scores(test_crops, predict(idx), test_items)
                robust = {name: video_scores(test_crops, model.predict(x.astype(np.float32), batch_size=256,
                                                                       verbose=0).reshape(-1), test_items)
                          for name, x in damaged.items()}
                return {i: {"label": held_out[i].label, "group": held_out[i].group, "score": s,
                            **{k: r[i] for k, r in robust.items()}} for i, s in scores.items()}

            entry = {"method": fold.method, "images_seen": args.fold_steps * args.batch_size,
                     "images_per_s": round(rate), "train_items": len(fold.train),
                     "test_items": sorted(test_items), "weights": fold_weights.as_posix(),
                     "scores": held_out_scores(), "eval_video_auc": eval_auc()}
            if mixes:
                entry["mix"] = at_mixes(lambda: {"scores": held_out_scores(), "eval_video_auc": eval_auc()})
            log["folds"].append(entry)
            mixed = "; ".join(f"mix {a}: fold AUC {_scores_auc(m['scores'])}, eval AUC {m['eval_video_auc']}"
                              for a, m in entry.get("mix", {}).items())
            print(f"fold {fold.method}: fold AUC {_scores_auc(entry['scores'])}, eval AUC {entry['eval_video_auc']}"
                  + (f"; {mixed}" if mixed else ""), flush=True)
            (args.out / "recipe_log.json").write_text(json.dumps(log, indent=1))

    def curve_point(step: int, loss: float) -> None:
        point = {"step": step, "images_seen": step * args.batch_size, "loss": round(loss, 4),
                 "eval_video_auc": eval_auc()}
        log["curve"].append(point)
        print(f"curve: {point}", flush=True)

    final_key = "no_pool" if args.final_without_pool else "all"
    rate = fit(final_key, args.final_steps, args.seed + 100, max(1, args.curve_points), curve_point)
    log["final"] = {"images_seen": args.final_steps * args.batch_size, "images_per_s": round(rate),
                    "eval_video_auc": eval_auc(), "seconds": round(time.time() - started)}
    if mixes:
        log["final"]["mix_eval_video_auc"] = at_mixes(eval_auc)
    # weights only (WeightsWriter): a .keras of the compiled model would store the optimizer's state too;
    # --init-weights (here, training.stats_head) and training.export --weights load them into --init's model
    writer.save(args.out / "final.weights.h5")
    (args.out / "recipe_log.json").write_text(json.dumps(log, indent=1))
    print(json.dumps(log["final"]), flush=True)
    workers.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
