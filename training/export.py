"""Export a trained checkpoint as the shipped model: TF Serving layout, model.keras and a model card.

    python -m training.export --checkpoint runs/lite0/best.keras --run runs/lite0 \\
        --evaluation runs/eval_lite0/summary.json --out saved_model/deepfake

The card records the backbone, the threshold (taken from the training run, where it was chosen at the EER point of
held-out self-blended validation pairs), the training recipe and command, and the measured metrics, so whoever
deploys the model can see what it is and how far to trust it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import shutil
import sys
from pathlib import Path

import keras

from detector import config
from detector.models.model import export_model
from detector.models.scoring import ModelCard
from training.recipe import mix_weights


def make_card(run_summary: dict, evaluation: dict | None, version: int, notes: str = "") -> ModelCard:
    """A model card from a training run's summary.json and an evaluation's summary.json, with every path inside the
    project recorded relative to it (:func:`detector.config.project_relative`)."""
    run_summary, evaluation = config.project_relative(run_summary), config.project_relative(evaluation)
    training = {k: run_summary[k] for k in (
        "backbone", "weights", "mode", "image_size", "epochs", "steps_per_epoch", "batch_size", "lr", "seed",
        "landmarks", "train_crops", "train_groups", "images_seen", "seconds", "data", "command", "best", "machine",
        "images_seen_this_run", "backend", "h264_augmentation", "leave_one_method_out", "curve", "weight_mix",
        "stats_head") if k in run_summary}
    # the reals the threshold was chosen on live in the card once, as its reference_real_scores
    lomo = dict(training.get("leave_one_method_out") or {})
    reference = lomo.pop("out_of_fold_real_scores", [])
    if lomo:
        training["leave_one_method_out"] = lomo
    if run_summary.get("mode") == "stats_head":
        head = run_summary["stats_head"]
        copies = head["augment"]
        description = (f"{run_summary['backbone']} backbone of {run_summary.get('weights')}, frozen. A statistics "
                       f"head: a logistic regression on the mean and standard deviation of each channel of "
                       f"{', '.join(head['taps'])} ({head['features']} texture statistics), fitted on the "
                       f"{head['train_crops']} face crops of labeled_pool's real and fake videos"
                       + (f" and {copies} codec-damaged cop{'y' if copies == 1 else 'ies'} of each" if copies else "")
                       + " (training.stats_head).")
        if head.get("kinds"):
            description += (" One such head per kind of fake (" + "; ".join(
                f"{kind}: {', '.join(methods)}" for kind, methods in head["kinds"].items())
                + "), each fitted on its kind's fakes against every real crop and standardised on those reals; "
                "the largest of their logits is the statistics head's.")
        if head.get("keep_top"):
            description += (" The starting model's own head (the blending evidence it learnt from synthetic fakes) "
                            "is kept: the output adds the two heads' logits, each standardised on real crops, with "
                            "equal weight.")
        description += " Leave-one-method-out figures under training.leave_one_method_out."
    elif run_summary.get("mode") == "recipe":
        description = (f"{run_summary['backbone']} ({run_summary.get('weights') or 'random init'} start) fine-tuned "
                       "on real fakes of labeled_pool and self-blended images of real faces, with codec damage on "
                       "both classes (training.recipe); leave-one-method-out figures under "
                       "training.leave_one_method_out.")
        if float(run_summary.get("weight_mix", 1.0)) != 1.0:
            description += (f" Its weights are {run_summary['weight_mix']:g} of the fine-tuned ones and the rest of "
                            "the starting model's (weight-space ensembling).")
    else:
        how = ("with a linear head trained on its frozen features of" if run_summary.get("mode") == "features"
               else "fine-tuned on")
        description = (f"{run_summary['backbone']} ({run_summary.get('weights') or 'random init'} start) {how} "
                       "self-blended images made from real face crops (video frames and stills); it never saw a "
                       "real deepfake in training.")
    if notes:
        description += " " + notes
    return ModelCard(
        name=config.MODEL_NAME, version=version, backbone=run_summary["backbone"],
        image_size=int(run_summary.get("image_size", config.IMAGE_SIZE)), trained=True,
        threshold=round(float(run_summary["threshold"]), 4), threshold_source=run_summary["threshold_source"],
        created=_dt.date.today().isoformat(), description=description, training=training,
        metrics=evaluation or {}, reference_real_scores=list(reference))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help=".keras checkpoint (e.g. runs/x/best.keras)")
    p.add_argument("--run", type=Path, required=True, help="the training run folder (its summary.json)")
    p.add_argument("--weights", type=Path, help="weights file (.weights.h5) to load into --checkpoint's model, e.g. "
                                                "a training.recipe run's final.weights.h5 with --checkpoint its --init")
    p.add_argument("--mix", type=float, help="export (1-a)*checkpoint + a*weights, a training.recipe weight mix; "
                                             "the run's summary must be made for it (training.lomo_report --mix)")
    p.add_argument("--evaluation", type=Path, help="summary.json of training.evaluate on labelled data")
    p.add_argument("--degraded", action="append", default=[], metavar="NAME=SUMMARY",
                   help="summary.json of the same evaluation on damaged copies (training.degrade), recorded in the "
                        "card under metrics.degraded.NAME; repeatable, e.g. h264_crf35=runs/eval_crf35/summary.json")
    p.add_argument("--out", type=Path, default=config.DEFAULT_MODEL_DIR, help="model root to (re)write")
    p.add_argument("--version", type=int, default=1)
    p.add_argument("--notes", default="", help="extra sentence for the card's description")
    args = p.parse_args(argv)
    try:
        summary = json.loads((args.run / "summary.json").read_text())
        evaluation = json.loads(args.evaluation.read_text()) if args.evaluation else None
        degraded = {}
        for entry in args.degraded:
            name, sep, path = entry.partition("=")
            if not sep or not name or not path:
                raise ValueError(f"--degraded {entry!r}: expected NAME=SUMMARY")
            degraded[name] = {key: value for key, value in json.loads(Path(path).read_text()).items()
                              if key in ("manifest", "sections", "skipped")}
        if degraded:
            if evaluation is None:
                raise ValueError("--degraded needs --evaluation (the figures it is compared with)")
            evaluation = {**evaluation, "degraded": degraded}
        model = keras.models.load_model(args.checkpoint, compile=False)
        if args.mix is not None:
            if not args.weights:
                raise ValueError("--mix needs --weights (the trained weights to mix with --checkpoint's)")
            if float(summary.get("weight_mix", 1.0)) != args.mix:
                raise ValueError(f"{args.run / 'summary.json'} is for weight mix {summary.get('weight_mix', 1.0)}, "
                                 f"not {args.mix}: run training.lomo_report --mix {args.mix} first")
            initial = model.get_weights()
        if args.weights:
            model.load_weights(args.weights)
        if args.mix is not None:
            model.set_weights(mix_weights(initial, model.get_weights(), args.mix))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    card = make_card(summary, evaluation, args.version, args.notes)
    if args.out.exists():
        shutil.rmtree(args.out)
    export_model(model, card, args.out)
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"exported {args.out} ({size / 1e6:.1f} MB), threshold {card.threshold}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
