"""Leave-one-method-out figures from a training.recipe run, and the run summary the export reads.

    python -m training.lomo_report --run runs/recipe --prior-images 6000

Reads ``recipe_log.json`` (each fold's out-of-fold video scores) and writes ``lomo.json``, ``lomo.md`` and
``summary.json`` into the run folder:

- pooled out-of-fold ROC-AUC over every held-out video, with a stratified 95 % bootstrap interval;
- per method: its fakes against every out-of-fold real (each real was scored by the one fold that held it out);
- fakes caught at 5 % and 10 % false positives on those reals;
- the same after H.264 at CRF 35 and after halving the resolution, and the AUC drop;
- the threshold: the score at which 5 % of the out-of-fold reals are called fake (never tuned on a reported set);
- with a re-encoded copy of the pool scored by each fold (``training.stats_head --reencoded-pack``): the held-out
  videos re-encoded whole at CRF 35, as re-sharing damages them, against the same videos as they are;
- same-footage pairs (a log that records each video's group): how often a fake scores above the real it shares
  footage with (the DeepFaceLive halves, MegActor's drivers). Across videos, a score can rank a fake high for what
  the footage shows; within a pair only the face differs, so this count cannot be won by content.

A run made with ``--mix`` scored every fold model with its weights mixed back towards the initial ones as well:
``mix.md`` compares the mixes (pooled out-of-fold AUC, fakes caught at 5 % false positives, AUC after CRF 35, and
the labelled eval set's video AUC, which is shown, never used to choose), and ``--mix A`` makes the figures, the
threshold and the summary those of mix ``A``, for ``training.export --mix A``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from detector.evaluate.metrics import bootstrap_ci

#: False-positive rate on out-of-fold reals at which the shipped threshold is set.
TARGET_FPR = 0.05
#: The view of a fold log made with a re-encoded copy of the pool (``training.stats_head --reencoded-pack``): each
#: held-out video re-encoded whole at H.264 CRF 35 (``training.degrade``) and its faces found again.
REENCODED_VIEW = "video_crf35"
#: Each view a fold log scores every held-out video in, and the name its figures go under.
VIEW_NAMES = {"score": "as_is", "crf35": "h264_crf35", "half_res": "half_resolution"}
#: The name :data:`REENCODED_VIEW`'s figures go under.
REENCODED_NAME = "h264_crf35_video"


def auc_or_none(y: np.ndarray, s: np.ndarray) -> float | None:
    """ROC-AUC, or None where only one class is present (a fold or a method with no reals or no fakes)."""
    return float(roc_auc_score(y, s)) if len(set(y.tolist())) == 2 else None


def tpr_at_fpr(y: np.ndarray, s: np.ndarray, fpr_target: float) -> float:
    """Share of fakes scored above the threshold that calls ``fpr_target`` of the reals fake."""
    threshold = threshold_at_fpr(s[y == 0], fpr_target)
    return float(np.mean(s[y == 1] >= threshold))


def threshold_at_fpr(real_scores: np.ndarray, fpr_target: float) -> float:
    """The smallest score that calls at most ``fpr_target`` of these reals fake (ties count as fake)."""
    ordered = np.sort(np.asarray(real_scores, np.float64))[::-1]
    allowed = int(np.floor(fpr_target * len(ordered)))
    return float(np.nextafter(ordered[allowed], np.inf)) if allowed < len(ordered) else float(ordered[-1])


def round_up(threshold: float, digits: int = 4) -> float:
    """``threshold`` rounded up to ``digits`` decimals, as the card keeps it: rounded to nearest, a threshold just
    above a real's score can land just below it, and that real would be called fake after all."""
    scale = 10 ** digits
    return float(np.ceil(round(threshold * scale, 6)) / scale)


def block(y: np.ndarray, s: np.ndarray, n_bootstrap: int = 2000) -> dict:
    auc = auc_or_none(y, s)
    ci = bootstrap_ci(y, s, auc_or_none, n=n_bootstrap) if auc is not None and n_bootstrap else None
    return {"fakes": int(y.sum()), "reals": int((1 - y).sum()), "roc_auc": None if auc is None else round(auc, 4),
            "roc_auc_ci": None if ci is None else [round(ci[0], 4), round(ci[1], 4)],
            "tpr_at_5pct_fpr": round(tpr_at_fpr(y, s, 0.05), 4), "tpr_at_10pct_fpr": round(tpr_at_fpr(y, s, 0.10), 4)}


def method_mask(labels: np.ndarray, methods: list[str], method: str) -> np.ndarray:
    """Every real, and the fakes of ``method``: a method's fakes stand against every out-of-fold real."""
    return (labels == 0) | np.array([m == method and y == 1 for m, y in zip(methods, labels)], dtype=bool)


def footage_pairs(labels: np.ndarray, groups: list[str]) -> list[tuple[int, int]]:
    """Every (fake, real) pair of videos in the same group, as indices: none when no group holds both classes."""
    by_group: dict[str, tuple[list[int], list[int]]] = {}
    for i, (y, g) in enumerate(zip(labels, groups)):
        by_group.setdefault(g, ([], []))[int(y)].append(i)
    return [(f, r) for reals, fakes in by_group.values() for f in fakes for r in reals]


def same_footage_pairs(labels: np.ndarray, groups: list[str], scores: np.ndarray) -> dict:
    """How many same-footage pairs (:func:`footage_pairs`) have the fake scored above the real (a tie counts half,
    as in an AUC)."""
    pairs = footage_pairs(labels, groups)
    above = sum(1.0 if scores[f] > scores[r] else 0.5 if scores[f] == scores[r] else 0.0 for f, r in pairs)
    return {"pairs": len(pairs), "fake_above_real": above}


def reencoded_figures(rows: list[tuple[str, dict]], n_bootstrap: int = 2000) -> dict:
    """Figures for the held-out videos re-encoded whole (``training.stats_head --reencoded-pack``), with the as-is
    AUC of exactly those videos beside it, so the drop compares like with like (a copy in which no face is found
    again drops out of both). ``rows``: each video's fold method and scores."""
    y = np.array([v["label"] for _, v in rows])
    s = np.array([v[REENCODED_VIEW] for _, v in rows], np.float64)
    as_is = auc_or_none(y, np.array([v["score"] for _, v in rows], np.float64))
    out = {"pooled": block(y, s, n_bootstrap), "as_is_same_videos": None if as_is is None else round(as_is, 4),
           "per_method": {}}
    methods = [m for m, _ in rows]
    for method in sorted({m for m, v in rows if v["label"] == 1}):
        keep = method_mask(y, methods, method)
        out["per_method"][method] = block(y[keep], s[keep], 0)
    auc = out["pooled"]["roc_auc"]
    out["auc_drop"] = None if as_is is None or auc is None else round(as_is - auc, 4)
    return out


def lomo_figures(log: dict, n_bootstrap: int = 2000) -> dict:
    """Figures for the as-is scores (with bootstrap intervals) and the damaged copies (point estimates)."""
    rows = [(fold["method"], item, v) for fold in log["folds"] for item, v in fold["scores"].items()]
    reals = [v for _, _, v in rows if v["label"] == 0]
    out: dict = {"folds": len(log["folds"]), "videos": len(rows), "reals": len(reals)}
    y = np.array([v["label"] for _, _, v in rows])
    for key, name in VIEW_NAMES.items():
        s = np.array([v[key] for _, _, v in rows], np.float64)
        n = n_bootstrap if key == "score" else 0
        section = {"pooled": block(y, s, n), "per_method": {}}
        real_s = np.array([v[key] for v in reals], np.float64)
        for fold in log["folds"]:
            fakes = [v[key] for v in fold["scores"].values() if v["label"] == 1]
            if fakes:
                yy = np.concatenate([np.zeros(len(real_s)), np.ones(len(fakes))])
                section["per_method"][fold["method"]] = block(yy, np.concatenate([real_s, fakes]), n)
        out[name] = section
    base = out["as_is"]["pooled"]["roc_auc"]
    for key in ("h264_crf35", "half_resolution"):
        auc = out[key]["pooled"]["roc_auc"]
        out[key]["auc_drop"] = None if base is None or auc is None else round(base - auc, 4)
    reencoded = [(m, v) for m, _, v in rows if REENCODED_VIEW in v]
    if reencoded:
        out[REENCODED_NAME] = reencoded_figures(reencoded, n_bootstrap)
    if rows and all("group" in v for _, _, v in rows):
        groups = [v["group"] for _, _, v in rows]
        out["same_footage_pairs"] = {name: same_footage_pairs(y, groups, np.array([v[key] for _, _, v in rows]))
                                     for key, name in VIEW_NAMES.items()}
    out["threshold_at_5pct_fpr"] = round_up(threshold_at_fpr(np.array([v["score"] for v in reals]), TARGET_FPR))
    # the reals the threshold was chosen on, for the card: a scan reports how many of them score as high as it
    out["out_of_fold_real_scores"] = sorted(round(float(v["score"]), 4) for v in reals)
    return out


def mixed(log: dict, alpha: float | None) -> dict:
    """The log as if each fold model had been mixed at ``alpha`` (None: as trained)."""
    if alpha is None:
        return log
    key = str(float(alpha))
    folds = []
    for fold in log["folds"]:
        if key not in fold.get("mix", {}):
            raise ValueError(f"fold {fold['method']} was not scored at mix {key} (scored: "
                             f"{', '.join(fold.get('mix', {})) or 'none'})")
        folds.append({**fold, "scores": fold["mix"][key]["scores"],
                      "eval_video_auc": fold["mix"][key]["eval_video_auc"]})
    return {**log, "folds": folds}


def mix_table(log: dict, n_bootstrap: int = 0) -> list[dict]:
    """One row per weight mix the run scored, and the trained models (mix 1) whether or not it listed them."""
    keys = set(log["folds"][0].get("mix", {})) if log["folds"] else set()
    final = log.get("final", {})
    rows = []
    for alpha in sorted({float(k) for k in keys} | {1.0}):
        view = mixed(log, alpha if str(alpha) in keys else None)
        fig = lomo_figures(view, n_bootstrap)
        evals = [f["eval_video_auc"] for f in view["folds"] if f.get("eval_video_auc") is not None]
        final_eval = final.get("mix_eval_video_auc", {}).get(str(alpha))
        if final_eval is None and alpha == 1.0:
            final_eval = final.get("eval_video_auc")
        rows.append({"mix": alpha, "pooled": fig["as_is"]["pooled"],
                     "h264_crf35_auc": fig["h264_crf35"]["pooled"]["roc_auc"],
                     "eval_video_auc_fold_mean": round(float(np.mean(evals)), 4) if evals else None,
                     "eval_video_auc_final": final_eval})
    return rows


def mix_markdown(rows: list[dict]) -> str:
    def num(x: float | None) -> str:
        return "" if x is None else f"{x:.2f}"

    lines = ["| weight mix (1 = trained) | pooled ROC-AUC | fakes caught at 5% FP | AUC after CRF 35 | "
             "eval video AUC, fold models (mean) | eval video AUC, final model |", "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['mix']:g} | {num(r['pooled']['roc_auc'])} | {r['pooled']['tpr_at_5pct_fpr']:.0%} | "
                     f"{num(r['h264_crf35_auc'])} | {num(r['eval_video_auc_fold_mean'])} | "
                     f"{num(r['eval_video_auc_final'])} |")
    return "\n".join(lines) + "\n"


def markdown(fig: dict) -> str:
    lines = ["| held out | fakes | reals | ROC-AUC [95% CI] | fakes caught at 5% / 10% FP | AUC after CRF 35 | "
             "AUC at half resolution |", "|---|---:|---:|---|---|---:|---:|"]

    def row(name: str, b: dict, c: dict, h: dict) -> str:
        ci = "" if not b["roc_auc_ci"] else f" [{b['roc_auc_ci'][0]:.2f}, {b['roc_auc_ci'][1]:.2f}]"
        return (f"| {name} | {b['fakes']} | {b['reals']} | {b['roc_auc']:.2f}{ci} | "
                f"{b['tpr_at_5pct_fpr']:.0%} / {b['tpr_at_10pct_fpr']:.0%} | {c['roc_auc']:.2f} | {h['roc_auc']:.2f} |")

    lines.append(row("**all methods, pooled**", fig["as_is"]["pooled"], fig["h264_crf35"]["pooled"],
                     fig["half_resolution"]["pooled"]))
    for m, b in fig["as_is"]["per_method"].items():
        lines.append(row(m, b, fig["h264_crf35"]["per_method"][m], fig["half_resolution"]["per_method"][m]))
    video = fig.get(REENCODED_NAME)
    if video:
        b = video["pooled"]
        ci = f" [{b['roc_auc_ci'][0]:.2f}, {b['roc_auc_ci'][1]:.2f}]" if b["roc_auc_ci"] else ""
        methods = ", ".join(f"{m} {f['roc_auc']:.2f}" for m, f in video["per_method"].items()
                            if f["roc_auc"] is not None)
        lines += ["", f"Videos re-encoded whole at H.264 CRF 35 ({b['fakes']} fakes, {b['reals']} reals with a face "
                      f"found again): pooled ROC-AUC {b['roc_auc']:.2f}{ci}, against {video['as_is_same_videos']:.2f} "
                      f"as they are (drop {video['auc_drop']:+.2f}); {b['tpr_at_5pct_fpr']:.0%} / "
                      f"{b['tpr_at_10pct_fpr']:.0%} caught at 5 % / 10 % FP; {methods}."]
    pairs = fig.get("same_footage_pairs")
    if pairs and pairs["as_is"]["pairs"]:
        views = (("as_is", "as is"), ("h264_crf35", "after CRF 35"), ("half_resolution", "at half resolution"))
        counts = ", ".join(f"{pairs[name]['fake_above_real']:g} / {pairs[name]['pairs']} {label}"
                           for name, label in views)
        lines += ["", f"Same-footage pairs (a fake and the real it shares footage with), fake scored above its real: "
                      f"{counts}."]
    return "\n".join(lines) + "\n"


def recipe_command(settings: dict) -> str:
    """The training.recipe command line of a run, from its logged settings (values logged as strings; options left at
    None and flags left off are not written)."""
    valued = ("pack", "init", "init_weights", "batch_size", "fold_steps", "final_steps", "lr", "sbi_share",
              "paired_share", "cross_share", "region_share", "warp_share", "expression_share",
              "other_fakes_reals", "freeze_until", "seed")
    parts = [f"--{k.replace('_', '-')} {settings[k]}" for k in valued if settings.get(k) not in (None, "None", "")]
    if settings.get("final_without_pool") in (True, "True"):
        parts.append("--final-without-pool")
    return "python -m training.recipe " + " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="a training.recipe output folder")
    p.add_argument("--backbone", default="mobilenetv2")
    p.add_argument("--prior-images", type=int, default=0, help="images the --init model had already seen")
    p.add_argument("--init-description", default="", help="what the initial model was, for the card")
    p.add_argument("--mix", type=float, help="figures of this weight mix (a run made with --mix)")
    args = p.parse_args(argv)
    try:
        log = json.loads((args.run / "recipe_log.json").read_text())
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not log.get("folds"):
        print("error: the run has no leave-one-method-out folds", file=sys.stderr)
        return 2
    if any("mix" in fold for fold in log["folds"]):
        table = mix_markdown(mix_table(log))
        (args.run / "mix.md").write_text(table)
        print(table)
    try:
        fig = lomo_figures(mixed(log, args.mix))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    (args.run / "lomo.json").write_text(json.dumps(fig, indent=2) + "\n")
    (args.run / "lomo.md").write_text(markdown(fig))
    settings = log["settings"]
    if "final" not in log:  # a run cut off before its final model: the fold figures stand, there is nothing to export
        print(markdown(fig))
        print("note: the run has no final model (cut off after its folds); wrote lomo.json and lomo.md only")
        return 0
    summary = {
        "backbone": args.backbone, "weights": args.init_description or settings.get("init"), "mode": "recipe",
        "image_size": 224, "batch_size": int(settings["batch_size"]), "lr": float(settings["lr"]),
        "seed": int(settings["seed"]),
        "images_seen": args.prior_images + log["final"]["images_seen"],
        "images_seen_this_run": log["final"]["images_seen"], "images_per_s": log["final"]["images_per_s"],
        "seconds": log["final"]["seconds"], "backend": log["backend"], "h264_augmentation": settings["h264"],
        "threshold": fig["threshold_at_5pct_fpr"], "weight_mix": 1.0 if args.mix is None else args.mix,
        "threshold_source": ("score at 5% false positives on the out-of-fold reals of the leave-one-method-out "
                             "folds (labeled_pool; each real scored by the fold model that did not train on it)"),
        "leave_one_method_out": fig, "curve": log["curve"],
        "command": recipe_command(settings),
    }
    (args.run / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(markdown(fig))
    print(json.dumps({"threshold": summary["threshold"], "images_seen": summary["images_seen"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
