"""Two leave-one-method-out runs compared on the same videos: the AUC difference with a paired bootstrap interval.

    python -m training.compare runs/sh_b10b_top runs/sh_candidate [--json diff.json]

Why: each run's own interval on the pool is about +-0.08 wide (55 fakes, 75 reals), so two runs' intervals overlap
whatever they measure, and a fixed bar on the point estimate (say 0.81 against 0.79) is passed or missed by noise
as often as by a real gain. The two runs score the same held-out videos, though, and most of what moves one AUC
in a resample moves the other too. Resampling the videos once for both (stratified: as many fakes and reals as
there are, the way :func:`detector.evaluate.metrics.bootstrap_ci` draws) and taking the difference in each draw gives an
interval for the difference itself, far narrower than either run's, so "B beats A" can be asked of the data.

Each argument is a run folder with ``recipe_log.json`` (``training.recipe``) or ``stats_log.json``
(``training.stats_head``): the same fold form, each held-out video's score as it is, after CRF 35 and at half
resolution. Both runs must have scored exactly the same videos with the same labels (the same pack and split
seed); a run on other videos is refused. Per method, a method's fakes stand against every out-of-fold real, as in
:mod:`training.lomo_report`. When both logs record each video's group, the same-footage pairs are counted too (a fake
above the real it shares footage with, for each run, and the pairs only one of the two orders rightly): the one
figure here that what the footage shows cannot move. When both runs' ``summary.json`` holds ``training.stats_head``'s
figures on the pack's other reals (footage no statistics head is fitted on), they are printed side by side; when
both logs score every video re-encoded whole (``--reencoded-pack``), that view gets its paired intervals too.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.evaluate.metrics import bootstrap_values, percentile_interval
from training.lomo_report import (REENCODED_NAME, REENCODED_VIEW, VIEW_NAMES, auc_or_none, footage_pairs, method_mask,
                                  same_footage_pairs)

#: The views a fold log scores every held-out video in, and the names lomo_report gives them.
VIEWS = VIEW_NAMES
#: A view only some logs have (``training.stats_head --reencoded-pack``: the videos re-encoded whole), compared with
#: intervals like the as-is one when both runs scored it for every video.
OPTIONAL_VIEWS = {REENCODED_VIEW: REENCODED_NAME}
#: Log files a run folder may hold, in the order they are looked for.
LOG_NAMES = ("recipe_log.json", "stats_log.json")


@dataclass
class RunScores:
    """One run's out-of-fold videos: labels, the method of the fold that held each out, and a score per view."""

    items: list[str]
    labels: np.ndarray
    methods: list[str]
    scores: dict[str, np.ndarray]
    #: each video's group (footage it shares with others), or None for a log that did not record them
    groups: list[str] | None = None


def load_run(path: Path) -> RunScores:
    """The run's out-of-fold scores, videos in name order. Raises ValueError for a folder without a fold log."""
    for name in LOG_NAMES:
        if (path / name).is_file():
            try:
                log = json.loads((path / name).read_text())
            except ValueError as exc:
                raise ValueError(f"{path / name}: not JSON ({exc})") from None
            break
    else:
        raise ValueError(f"{path}: no {' or '.join(LOG_NAMES)} (a training.recipe or training.stats_head run)")
    try:
        rows = {item: (fold["method"], v) for fold in log.get("folds", []) for item, v in fold["scores"].items()}
        items = sorted(rows)
        run = RunScores(items=items, labels=np.array([int(rows[i][1]["label"]) for i in items], dtype=np.int64),
                        methods=[rows[i][0] for i in items],
                        scores={**{view: np.array([float(rows[i][1][view]) for i in items]) for view in VIEWS},
                                **{view: np.array([float(rows[i][1][view]) for i in items]) for view in OPTIONAL_VIEWS
                                   if all(view in rows[i][1] for i in items)}},
                        groups=[rows[i][1]["group"] for i in items] if all("group" in rows[i][1] for i in items)
                        else None)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path / name}: not a fold log of training.recipe or training.stats_head "
                         f"({type(exc).__name__}: {exc})") from None
    if not items:
        raise ValueError(f"{path}: the run has no leave-one-method-out folds")
    return run


def paired_difference(y: np.ndarray, a: np.ndarray, b: np.ndarray, n_bootstrap: int = 2000,
                      seed: int = 0) -> dict:
    """AUC of ``b`` minus AUC of ``a`` on the same samples, with 95 % and 90 % paired bootstrap intervals (the same
    resampled videos for both in every draw; the 90 % interval's low end is the one-sided 95 % bound)."""
    auc_a, auc_b = auc_or_none(y, a), auc_or_none(y, b)
    if auc_a is None or auc_b is None:
        raise ValueError("both classes are needed for an AUC")

    def difference(y_draw: np.ndarray, idx: np.ndarray) -> float | None:
        idx = idx.astype(np.int64)
        da, db = auc_or_none(y_draw, a[idx]), auc_or_none(y_draw, b[idx])
        return None if da is None or db is None else db - da

    # the bootstrap resamples (label, score) pairs; giving it each sample's index as its "score" lets one draw
    # pick the same videos for both runs
    index = np.arange(len(y), dtype=np.float64)
    out = {"auc_a": round(auc_a, 4), "auc_b": round(auc_b, 4), "difference": round(auc_b - auc_a, 4)}
    if n_bootstrap:
        values = bootstrap_values(y, index, difference, n=n_bootstrap, seed=seed)
        for level, alpha in (("ci95", 0.05), ("ci90", 0.10)):
            out[level] = [round(bound, 4) for bound in percentile_interval(values, alpha)]
    return out


def compare(a: RunScores, b: RunScores, n_bootstrap: int = 2000) -> dict:
    """Pooled and per-method differences (B minus A) for every view; intervals for the as-is view only (the damaged
    views are point estimates in lomo_report too)."""
    if a.items != b.items or not np.array_equal(a.labels, b.labels):
        only = sorted(set(a.items) ^ set(b.items))
        detail = f"{len(only)} videos in one run only, e.g. {only[0]}" if only else "the labels differ"
        raise ValueError(f"the runs scored different videos ({detail}): compare runs on the same pack and seed")
    out: dict = {"videos": len(a.items), "fakes": int(a.labels.sum()), "reals": int((1 - a.labels).sum())}
    methods = sorted({m for m, y in zip(a.methods, a.labels) if y == 1})
    for view, name in VIEWS.items():
        n = n_bootstrap if view == "score" else 0
        section = {"pooled": paired_difference(a.labels, a.scores[view], b.scores[view], n)}
        section["per_method"] = {}
        for method in methods:
            keep = method_mask(a.labels, a.methods, method)
            section["per_method"][method] = paired_difference(a.labels[keep], a.scores[view][keep],
                                                              b.scores[view][keep], n)
        out[name] = section
    for view, name in OPTIONAL_VIEWS.items():
        if view in a.scores and view in b.scores:
            out[name] = {"pooled": paired_difference(a.labels, a.scores[view], b.scores[view], n_bootstrap)}
    if a.groups is not None and a.groups == b.groups:
        out["same_footage_pairs"] = {name: pair_comparison(a.labels, a.groups, a.scores[view], b.scores[view])
                                     for view, name in VIEWS.items()}
    return out


def pair_comparison(labels: np.ndarray, groups: list[str], a: np.ndarray, b: np.ndarray) -> dict:
    """Each run's same-footage pair count (:func:`training.lomo_report.same_footage_pairs`), and the discordant
    pairs: those only B orders rightly (fake strictly above its real) and those only A does."""
    pairs = footage_pairs(labels, groups)
    right_a = {(f, r) for f, r in pairs if a[f] > a[r]}
    right_b = {(f, r) for f, r in pairs if b[f] > b[r]}
    return {"pairs": len(pairs), "a": same_footage_pairs(labels, groups, a)["fake_above_real"],
            "b": same_footage_pairs(labels, groups, b)["fake_above_real"],
            "only_b": len(right_b - right_a), "only_a": len(right_a - right_b)}


def other_reals(run: Path) -> dict | None:
    """The run's figures on the pack's other reals (``training.stats_head`` writes them into ``summary.json``), or
    None for a run without them."""
    try:
        summary = json.loads((run / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return (summary.get("stats_head") or {}).get("other_reals") or None


def markdown(result: dict, name_a: str, name_b: str) -> str:
    """The as-is view's table (pooled first, then per method) and one line for each damaged view."""
    lines = [f"B = {name_b} against A = {name_a}, on the same {result['videos']} out-of-fold videos "
             f"({result['fakes']} fakes, {result['reals']} reals); paired bootstrap",
             "",
             "| held out | A | B | B - A | 95% interval | 90% interval |",
             "|---|---:|---:|---:|---|---|"]

    def row(label: str, d: dict) -> str:
        return (f"| {label} | {d['auc_a']:.4f} | {d['auc_b']:.4f} | {d['difference']:+.4f} | "
                f"[{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}] | [{d['ci90'][0]:+.4f}, {d['ci90'][1]:+.4f}] |")

    section = result["as_is"]
    lines.append(row("**all methods, pooled**", section["pooled"]))
    lines += [row(method, d) for method, d in section["per_method"].items()]
    lines.append("")
    for name in ("h264_crf35", "half_resolution"):
        d = result[name]["pooled"]
        lines.append(f"- {name}: A {d['auc_a']:.4f}, B {d['auc_b']:.4f}, B - A {d['difference']:+.4f}")
    for name in OPTIONAL_VIEWS.values():
        if name in result:
            d = result[name]["pooled"]
            intervals = (f", 95% [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}], 90% [{d['ci90'][0]:+.4f}, "
                         f"{d['ci90'][1]:+.4f}]" if "ci95" in d else "")
            lines.append(f"- {name} (the videos re-encoded whole): A {d['auc_a']:.4f}, B {d['auc_b']:.4f}, B - A "
                         f"{d['difference']:+.4f}{intervals}")
    pairs = result.get("same_footage_pairs")
    if pairs and pairs["as_is"]["pairs"]:
        lines.append("- same-footage pairs, fake above its real: " + "; ".join(
            f"{label} A {d['a']:g}, B {d['b']:g} of {d['pairs']} (only B right {d['only_b']}, only A right "
            f"{d['only_a']})" for label, d in (("as is", pairs["as_is"]), ("after CRF 35", pairs["h264_crf35"]))))
    others = result.get("other_reals")
    if others:
        def line(figures: dict) -> str:
            return ", ".join(f"{source} {f['mean_score']:.2f} ({round(f['at_or_above_threshold'] * f['items'])}/"
                             f"{f['items']})" for source, f in figures.items())

        lines.append("- the pack's other reals, mean score per source (items at or above the run's threshold): "
                     f"A {line(others['a'])}; B {line(others['b'])}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_a", type=Path, help="the reference run (e.g. the shipped model's stats_head run)")
    p.add_argument("run_b", type=Path, help="the candidate run")
    p.add_argument("--bootstrap", type=int, default=2000, help="resamples (default 2000)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    if args.bootstrap < 1:
        print("error: --bootstrap must be at least 1", file=sys.stderr)
        return 2
    try:
        result = compare(load_run(args.run_a), load_run(args.run_b), args.bootstrap)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    others = {name: other_reals(path) for name, path in (("a", args.run_a), ("b", args.run_b))}
    if all(others.values()):
        result["other_reals"] = others
    print(markdown(result, str(args.run_a), str(args.run_b)), end="")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
