"""Which synthetic fakes teach what transfers: self-blends, cross-identity blends, or both, measured on real fakes.

    python -m training.experiments.synthetic_probe --pack packs/main --init saved_model/deepfake/model.keras [--pairs
    1500]

Real crops that are not in the pool (the pack's ``real`` role: LFW stills and real_videos frames, with landmarks)
are each paired with a fake made from them: a self-blend (:mod:`training.data.sbi`) or a cross-identity blend
(:mod:`training.data.cross_blend`: another person's face with close landmarks, from a different group). Real and fake
alike get the same random codec damage (:func:`training.data.codec.damage_batch`). A standardised logistic head on the
backbone's frozen statistics features (:func:`training.stats_head.stats_model`) is fitted on each kind of pair, and
on half of each, and then scored where it never trained: every video of the pool (all seven methods unseen, by the
scanner's rule) and the labelled eval crops (shown, never used to choose). Minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from detector import config
from training.data.codec import damage_batch
from training.data.cross_blend import BlendSources
from training.experiments.feature_probe import fit_head
from training.recipe import item_figures, load_pack
from training.stats_head import feature_model, stats_model

KINDS = ("self-blend", "cross-identity", "both")


def sources(crops: list[dict]) -> list[int]:
    """The real crops fakes are made from: not pool, not eval, with landmarks."""
    return [i for i, c in enumerate(crops) if c["role"] == "real" and int(c["label"]) == 0 and "landmarks" in c]


def make_pairs(crops: list[dict], images: np.ndarray, kind: str, count: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` (real, fake) pairs of one kind; ``both`` alternates the two. A cross-identity source comes from
    another group among the candidates with the closest landmarks (:func:`training.data.cross_blend.choose_source`); a
    crop with no other group to draw from gets a self-blend."""
    blends = BlendSources(crops, sources(crops))
    if len(blends) < 2:
        raise ValueError("the pack needs at least two real crops with landmarks outside the pool")
    reals, fakes = [], []
    for n in range(count):
        k = int(rng.integers(len(blends)))
        cross = kind == "cross-identity" or (kind == "both" and n % 2 == 1)
        fakes.append(blends.fake(k, images, rng, cross))
        reals.append(images[blends.indices[k]])
    out = []
    for batch in (np.stack(reals), np.stack(fakes)):
        damaged = np.concatenate([damage_batch(batch[s:s + 32], rng) for s in range(0, len(batch), 32)])
        out.append(damaged)
    return out[0], out[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pack", type=Path, required=True, help="a training.pack folder")
    p.add_argument("--init", type=Path, required=True, help="model whose frozen backbone gives the features")
    p.add_argument("--backbone", default=config.DEFAULT_BACKBONE)
    p.add_argument("--pairs", type=int, default=1500, help="real/fake pairs per kind")
    p.add_argument("--C", type=float, default=0.1, help="inverse regularisation strength of the head")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args(argv)
    try:
        crops, images = load_pack(args.pack)
        extract = feature_model(stats_model(args.init, args.backbone))
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def features(batch: np.ndarray) -> np.ndarray:
        return np.asarray(extract.predict(batch.astype(np.float32), batch_size=64, verbose=0), np.float64)

    pack_features = features(images)
    out: dict = {"settings": {"pack": str(args.pack), "init": str(args.init), "pairs": args.pairs, "C": args.C,
                              "seed": args.seed}, "kinds": {}}
    for kind in KINDS:
        try:
            reals, fakes = make_pairs(crops, images, kind, args.pairs, np.random.default_rng(args.seed))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        x = np.concatenate([features(reals), features(fakes)])
        head = fit_head(x, np.repeat([0, 1], [len(reals), len(fakes)]), args.C)
        scores = head(pack_features)
        out["kinds"][kind] = {"pool_all_methods": item_figures(crops, scores, "pool"),
                              "eval_crops": item_figures(crops, scores, "eval")}
        pool, ev = out["kinds"][kind]["pool_all_methods"], out["kinds"][kind]["eval_crops"]
        print(f"{kind:15s} pool (every method unseen) ROC-AUC {pool['roc_auc']} {pool['roc_auc_ci']}, "
              f"{pool['tpr_at_5pct_fpr']:.0%} caught at 5 % FP; labelled eval crops "
              f"{ev['roc_auc'] if ev else 'n/a'}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(config.project_relative(out), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
