"""Cheap leave-one-method-out on a CPU: a logistic head on a model's frozen features, on the crops of a pack.

    python -m training.experiments.feature_probe --pack packs/main [--model saved_model/deepfake] [--pairs-only]
    [--with-reals]

Each crop of the pack (training.pack) goes once through the model (the shipped one unless ``--model``): its pooled
backbone features and its own fake probability. Then, per method (training.data.folds: no group on both sides), a
logistic regression trained on the other methods' pool crops scores the held-out videos with the scanner's rule
(training.recipe.video_scores), beside the model's own scores on the same videos; finally the head trained on the
whole pool scores the pack's eval crops (the labelled set: shown, never used to choose anything). Minutes on two
cores, where fine-tuning fold by fold needs a GPU, so it tells early whether a training set teaches something that
transfers. ``--pairs-only`` trains on same-footage groups only (a real and a fake of the same stream, where only the
face differs); ``--with-reals`` adds the pack's other real crops (self-blend sources) as reals.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from training.data.folds import method_folds
from training.heads.linear import fit_head
from training.lomo_report import block
from training.recipe import item_figures, load_pack, pool_items, video_scores


def paired_groups(crops: list[dict]) -> set[str]:
    """Groups that hold both a real and a fake pool crop (same footage)."""
    labels: dict[str, set[int]] = {}
    for c in crops:
        if c["role"] == "pool":
            labels.setdefault(c["group"], set()).add(int(c["label"]))
    return {g for g, seen in labels.items() if seen == {0, 1}}


def train_indices(crops: list[dict], items: set[str], pairs_only: bool, with_reals: bool) -> list[int]:
    """The crops a head trains on: pool crops of ``items`` (of same-footage groups only with ``pairs_only``), plus
    the other real crops with ``with_reals``."""
    pairs = paired_groups(crops) if pairs_only else None
    return [i for i, c in enumerate(crops)
            if (c["role"] == "pool" and c["item"] in items and (pairs is None or c["group"] in pairs))
            or (with_reals and c["role"] == "real" and int(c["label"]) == 0)]


def probe(crops: list[dict], features: np.ndarray, own: np.ndarray, c: float = 0.1, pairs_only: bool = False,
          with_reals: bool = False, n_bootstrap: int = 1000) -> dict:
    """Leave-one-method-out figures of the head and of the model's own scores, and both on the eval crops."""
    labels = np.array([int(x["label"]) for x in crops])
    rows = []  # (method, item, label, head score, own score)
    for fold in method_folds(pool_items(crops)):
        train = train_indices(crops, {it.item for it in fold.train}, pairs_only, with_reals)
        head = fit_head(features[train], labels[train], c)
        test_items = {it.item for it in fold.test}
        idx = [i for i, x in enumerate(crops) if x["role"] == "pool" and x["item"] in test_items]
        test_crops = [crops[i] for i in idx]
        ours, theirs = video_scores(test_crops, head(features[idx]), test_items), video_scores(
            test_crops, own[idx], test_items)
        label_of = {it.item: it.label for it in fold.test}
        rows += [(fold.method, item, label_of[item], ours[item], theirs[item]) for item in ours]
    y = np.array([r[2] for r in rows])
    out: dict = {"settings": {"C": c, "pairs_only": pairs_only, "with_reals": with_reals},
                 "lomo": {"head": block(y, np.array([r[3] for r in rows]), n_bootstrap),
                          "model": block(y, np.array([r[4] for r in rows]), n_bootstrap)},
                 "per_method": {}}
    reals = [r for r in rows if r[2] == 0]
    for method in sorted({r[0] for r in rows if r[2] == 1}):
        fakes = [r for r in rows if r[2] == 1 and r[0] == method]
        yy = np.array([0] * len(reals) + [1] * len(fakes))
        out["per_method"][method] = {key: block(yy, np.array([r[col] for r in reals + fakes]), 0)["roc_auc"]
                                     for key, col in (("head", 3), ("model", 4))}
    train = train_indices(crops, {x["item"] for x in crops if x["role"] == "pool"}, pairs_only, with_reals)
    head = fit_head(features[train], labels[train], c)
    head_eval = item_figures(crops, head(features), "eval", n_bootstrap)
    if head_eval is not None:
        out["eval"] = {"head": head_eval, "model": item_figures(crops, own, "eval", n_bootstrap)}
    return out


def model_features(model_path: Path | None, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pooled backbone features and the model's own fake probability for uint8 crops."""
    import keras

    from detector.models.model import load_detector

    model = load_detector(model_path).keras_model
    if model is None:
        raise SystemExit("error: --model must be a Keras model (a model folder with model.keras, or a .keras file)")
    # by name: the shipped model loads as a plain functional model, a DeepfakeClassifier has the same layer names
    # (a statistics-head model pools into "stats_pool" instead)
    names = {layer.name for layer in model.layers}
    both = keras.Model(model.inputs, [model.get_layer("pool" if "pool" in names else "stats_pool").output,
                                      model.outputs[0]])
    features, own = both.predict(images.astype(np.float32), batch_size=64, verbose=0)
    return features.astype(np.float32), own.reshape(-1).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pack", type=Path, required=True, help="a training.pack folder")
    p.add_argument("--model", type=Path, help="model whose features are probed (default: the shipped one)")
    p.add_argument("--C", type=float, default=0.1, help="inverse regularisation strength of the head")
    p.add_argument("--pairs-only", action="store_true", help="train on same-footage groups only")
    p.add_argument("--with-reals", action="store_true", help="add the pack's other real crops as reals")
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args(argv)
    try:
        crops, images = load_pack(args.pack)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {args.pack}: not a readable pack ({exc})", file=sys.stderr)
        return 2
    features, own = model_features(args.model, images)
    out = probe(crops, features, own, args.C, args.pairs_only, args.with_reals)
    for name, figures in (("leave-one-method-out", out["lomo"]), ("eval set", out.get("eval"))):
        if figures:
            for who in ("head", "model"):
                b = figures[who]
                print(f"{name:21s} {who:5s} ROC-AUC {b['roc_auc']} {b['roc_auc_ci']} ({b['fakes']} fakes, "
                      f"{b['reals']} reals; {b['tpr_at_5pct_fpr']:.0%} of fakes caught at 5 % FP)")
    for method, aucs in out["per_method"].items():
        print(f"  {method:28s} head {aucs['head']}  model {aucs['model']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
