"""Choose and fit the temporal evidence and the fusion rule on training sources only, leave one source out.

    python -m training.temporal_fit --train data_cache/temporal/pool data_cache/temporal/real_videos \
        --held-out data_cache/temporal/pool2 data_cache/temporal/labeled --out runs/temporal

Candidates, each scored out of fold (every source of the training sets held out in turn, with any item sharing a
group with it, by :func:`training.sources.leave_one_source_out`): the frame model's blending head alone, LRNet with
its published weights, LRNet fine-tuned from them on the training sources' clips, and the logistic fusion of the
frame head with each temporal model. The candidate with the best pooled out-of-fold video AUC is *the* candidate
(docs/validation-of-record.md); it is refitted on every training source and written to ``--out``:
``fusion.json`` (rules and threshold at 5 % false positives of the out-of-fold reals) and ``temporal.keras``.
Items sharing a source or group with ``--held-out`` sets are dropped from training first.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import keras
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from detector.scan.fusion import Fusion, Rule, logit
from detector.temporal.lrnet import build_lrnet, load_published_weights
from detector.temporal.model import PUBLISHED_DIR, TemporalModel, join, published_model
from training.data.readings import Reading, load_readings, video_score
from training.sources import Item, leave_one_source_out, split_by_source

log = logging.getLogger(__name__)


def frame_evidence(r: Reading) -> float | None:
    """The frame model's blending head (trained on synthetic blends only, so out of sample for every real fake)."""
    if len(r.crop_logits) == 0:
        return None
    p = 1.0 / (1.0 + np.exp(-r.crop_logits[:, 0]))
    return video_score(r.crop_track, p, r.counted_tracks())


def temporal_evidence(r: Reading, model: TemporalModel) -> float | None:
    if len(r.plan_seq) == 0:
        return None
    return video_score(r.plan_track, model.predict(r.plan_seq), r.counted_tracks() or set(r.plan_track.tolist()))


def fine_tune(readings: list[Reading], epochs: int = 15, seed: int = 0) -> TemporalModel:
    """LRNet's two networks, started from the published weights, trained on the dense clips of ``readings``
    (classes weighted equally)."""
    keras.utils.set_random_seed(seed)
    x = np.concatenate([r.dense_seq for r in readings if len(r.dense_seq)])
    y = np.concatenate([np.full(len(r.dense_seq), r.label) for r in readings if len(r.dense_seq)])
    weights = {0: len(y) / (2 * max(1, (y == 0).sum())), 1: len(y) / (2 * max(1, (y == 1).sum()))}
    nets = []
    for name, inputs in (("g1", x), ("g2", np.diff(x, axis=1))):
        net = load_published_weights(build_lrnet(name=name), PUBLISHED_DIR / f"lrnet_ffpp_{name}.pth")
        net.compile(optimizer=keras.optimizers.Adam(3e-4), loss="sparse_categorical_crossentropy", jit_compile=False)
        net.fit(inputs, y, epochs=epochs, batch_size=32, class_weight=weights, verbose=0, shuffle=True)
        nets.append(net)
    return TemporalModel(join(*nets))


def fit_rule(features: np.ndarray, labels: np.ndarray, names: list[str]) -> Rule:
    lr = LogisticRegression(C=1.0).fit(features, labels)
    return Rule({n: float(w) for n, w in zip(names, lr.coef_[0])}, float(lr.intercept_[0]))


def fusion_for(evidence: list[dict], labels: np.ndarray, names: list[str]) -> Fusion:
    """Rules over ``names`` (videos with all of them) and, after it, over the frame evidence alone."""
    rules = []
    for subset in (names, ["frame"]) if names != ["frame"] else (["frame"],):
        rows = [k for k, e in enumerate(evidence) if all(e.get(n) is not None for n in subset)]
        if len({int(labels[k]) for k in rows}) < 2:
            continue
        feats = np.array([[logit(evidence[k][n]) for n in subset] for k in rows])
        rules.append(fit_rule(feats, labels[rows], subset))
    return Fusion(rules)


def auc(y: np.ndarray, s: np.ndarray) -> float:
    return float(roc_auc_score(y, s)) if len(set(y.tolist())) == 2 else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, nargs="+", required=True)
    parser.add_argument("--held-out", type=Path, nargs="*", default=[])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tune", action="store_true",
                        help="also fine-tune LRNet per fold (about a minute per fold on 2 cores)")
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    train = [r for folder in args.train for r in load_readings(folder) if not r.is_image]
    held = [r for folder in args.held_out for r in load_readings(folder)]
    items = [Item(r.key, r.label, r.source, r.group) for r in train]
    kept, dropped = split_by_source(items, [Item(r.key, r.label, r.source, r.group) for r in held])
    keep = {i.key for i in kept}
    train = [r for r in train if r.key in keep]
    log.info("training videos: %d (%d fake); dropped for sharing a source or group with the held-out sets: %s",
             len(train), sum(r.label for r in train), [i.key for i in dropped])
    labels = np.array([r.label for r in train])

    published = TemporalModel(published_model())
    evidence = [{"frame": frame_evidence(r), "temporal_published": temporal_evidence(r, published)} for r in train]
    folds = leave_one_source_out([Item(r.key, r.label, r.source, r.group) for r in train])
    for source, tr, te in folds if args.tune else []:
        if not any(train[k].label for k in tr) or all(train[k].label for k in tr):
            continue
        tuned = fine_tune([train[k] for k in tr], args.epochs)
        for k in te:
            evidence[k]["temporal_tuned"] = temporal_evidence(train[k], tuned)
        log.info("fold %s: %d test videos", source, len(te))

    candidates = {"frame": ["frame"], "temporal_published": ["temporal_published"],
                  "frame+temporal_published": ["frame", "temporal_published"]}
    if args.tune:
        candidates.update({"temporal_tuned": ["temporal_tuned"], "frame+temporal_tuned": ["frame", "temporal_tuned"]})
    report: dict = {"videos": len(train), "fakes": int(labels.sum()), "candidates": {}}
    oof_by_candidate = {}
    for name, names in candidates.items():
        oof = np.full(len(train), np.nan)
        for source, tr, te in folds:
            fusion = fusion_for([evidence[k] for k in tr], labels[tr], names)
            for k in te:
                score, _ = fusion.score(evidence[k])
                oof[k] = 0.5 if score is None else score
        oof_by_candidate[name] = oof
        ok = ~np.isnan(oof)
        report["candidates"][name] = {"oof_video_auc": round(auc(labels[ok], oof[ok]), 4), "scored": int(ok.sum())}
        log.info("%-26s out-of-fold video AUC %.4f", name, report["candidates"][name]["oof_video_auc"])
    best = max(report["candidates"], key=lambda n: report["candidates"][n]["oof_video_auc"])
    report["chosen"] = best
    names = candidates[best]
    reals = oof_by_candidate[best][labels == 0]
    report["threshold"] = round(float(np.quantile(reals[~np.isnan(reals)], 0.95)), 4)
    args.out.mkdir(parents=True, exist_ok=True)
    temporal = published
    if "temporal_tuned" in names:
        temporal = fine_tune(train, args.epochs)
        for e, r in zip(evidence, train):
            e["temporal_tuned"] = temporal_evidence(r, temporal)
    final = fusion_for(evidence, labels, names)
    renamed = Fusion([Rule({("temporal" if n.startswith("temporal") else n): w for n, w in rule.weights.items()},
                           rule.bias) for rule in final.rules])
    report["fusion"] = renamed.to_dict()
    temporal.save(args.out)
    (args.out / "fusion.json").write_text(json.dumps(report, indent=2))
    log.info("chosen: %s; threshold %.4f; written to %s", best, report["threshold"], args.out)

    return 0


if __name__ == "__main__":
    raise SystemExit(main())
