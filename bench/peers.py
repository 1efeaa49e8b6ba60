"""The validation of record, in one run: this project's models beside the published peers, on the same videos.

    python -m bench.peers --readings data_cache/temporal/pool2 data_cache/temporal/labeled \
        --stills data_cache/temporal/dfdc --candidate runs/temporal --out runs/peers

What each row is (docs/validation-of-record.md):

* **shipped** - the model in ``saved_model/deepfake`` as the scanner scores a video (its card's fusion rule over
  frame and temporal evidence when it has one, else version 3's frame score);
* **version 3** - the frame model's own score (both heads), as version 3 shipped;
* **frame head** - version 3's blending head alone (the statistics head left out);
* **LRNet** - the published FaceForensics++ weights (our Keras port, parity-tested) on the scanner's windows and
  landmark reading; its published clip and video rule (mean of the two networks, mean over clips);
* **MesoNet** - Meso4_DF with its published face alignment, mean over 32 frames (``--mesonet``);
* **candidate** - ``--candidate``'s fusion rule (``training.temporal_fit``).

The readings come from ``training.temporal_data`` (the scanner's own face search and windows). A detector that gives
a video no score (no face, no window) is counted at 0.5, so every row is scored on the same videos. Prints one table
(ROC-AUC with a 95 % stratified bootstrap interval, fakes caught at 5 % and 10 % false positives), then per source,
then the paired AUC difference of the candidate against version 3; writes ``peers.json`` and ``peers.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from detector.evaluate.metrics import bootstrap_ci
from detector.models.model import load_detector
from detector.scan.fusion import Fusion
from detector.temporal.model import TemporalModel, published_model
from training.data.readings import Reading, load_readings, video_score
from training.temporal_fit import frame_evidence, temporal_evidence

NEUTRAL = 0.5


def tpr_at(y: np.ndarray, s: np.ndarray, fpr: float) -> float:
    """Share of fakes caught at the highest threshold that keeps false positives at or below ``fpr``."""
    fp, tp, _ = roc_curve(y, s)
    return float(tp[fp <= fpr + 1e-12].max())


def summary(y: np.ndarray, s: np.ndarray, interval: bool = True) -> dict:
    """AUC (with a 95 % stratified bootstrap interval unless ``interval`` is false: per source the sets are small
    and the pooled interval is the one to read) and fakes caught at 5 % and 10 % false positives."""
    if len(set(y.tolist())) < 2:
        return {"n": int(len(y)), "fakes": int(y.sum()), "mean_score": round(float(s.mean()), 3)}
    if not interval:
        return {"n": int(len(y)), "fakes": int(y.sum()), "auc": round(float(roc_auc_score(y, s)), 4)}
    low, high = bootstrap_ci(y, s, lambda a, b: roc_auc_score(a, b), n=2000)
    return {"n": int(len(y)), "fakes": int(y.sum()), "auc": round(float(roc_auc_score(y, s)), 4),
            "auc_ci": [round(low, 4), round(high, 4)], "tpr_at_5pct_fpr": round(tpr_at(y, s, 0.05), 3),
            "tpr_at_10pct_fpr": round(tpr_at(y, s, 0.10), 3)}


def paired_difference(y: np.ndarray, a: np.ndarray, b: np.ndarray, n: int = 2000, seed: int = 0) -> dict:
    """AUC(a) - AUC(b) with a stratified paired bootstrap over videos (the same draws for both)."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    diffs = []
    for _ in range(n):
        k = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        diffs.append(roc_auc_score(y[k], a[k]) - roc_auc_score(y[k], b[k]))
    diff = roc_auc_score(y, a) - roc_auc_score(y, b)
    return {"difference": round(float(diff), 4),
            "ci90": [round(float(np.percentile(diffs, 5)), 4), round(float(np.percentile(diffs, 95)), 4)]}


def v3_score(r: Reading, weights: np.ndarray, bias: float) -> float | None:
    if len(r.crop_logits) == 0:
        return None
    p = 1.0 / (1.0 + np.exp(-(r.crop_logits @ weights + bias)))
    return video_score(r.crop_track, p, r.counted_tracks())


def mesonet_scores(readings: list[Reading], roots: dict[str, Path], cache: Path, weights: Path) -> dict[str, float]:
    """MesoNet's score per video key, computed once and kept in ``cache`` (JSON)."""
    from bench.mesonet import MesoNet
    from tqdm import tqdm

    done = json.loads(cache.read_text()) if cache.is_file() else {}
    todo = [r for r in readings if r.key not in done]
    if todo:
        model = MesoNet(weights)
        for r in tqdm(todo, desc="MesoNet"):
            try:
                done[r.key] = model.score_file(roots[r.key])
            except Exception as exc:  # a file MesoNet's recipe cannot read counts as no score
                done[r.key] = None
                print(f"MesoNet: {r.key}: {exc}")
            cache.write_text(json.dumps(done))
    return done


def rows_for(readings: list[Reading], candidate: Fusion | None, shipped: Fusion | None, temporal: TemporalModel,
             mesonet: dict[str, float] | None, weights: np.ndarray, bias: float) -> dict[str, np.ndarray]:
    cols: dict[str, list] = {"version 3": [], "frame head": [], "LRNet (published)": []}
    if mesonet is not None:
        cols["MesoNet Meso4_DF"] = []
    if shipped is not None:
        cols["shipped"] = []
    if candidate is not None:
        cols["candidate"] = []
    for r in readings:
        frame, lr = frame_evidence(r), temporal_evidence(r, temporal)
        cols["version 3"].append(v3_score(r, weights, bias))
        cols["frame head"].append(frame)
        cols["LRNet (published)"].append(lr)
        if mesonet is not None:
            cols["MesoNet Meso4_DF"].append(mesonet.get(r.key))
        for name, fusion in (("shipped", shipped), ("candidate", candidate)):
            if fusion is not None:
                cols[name].append(fusion.score({"frame": frame, "temporal": lr})[0])
    return {k: np.array([NEUTRAL if v is None else v for v in vals], np.float64) for k, vals in cols.items()}


def table(results: dict[str, dict]) -> str:
    lines = ["| detector | videos | ROC-AUC [95 % CI] | caught at 5 % FP | at 10 % FP |", "|---|---:|---|---:|---:|"]
    for name, m in results.items():
        if "auc" in m:
            lines.append(f"| {name} | {m['n']} | {m['auc']:.3f} [{m['auc_ci'][0]:.2f}, {m['auc_ci'][1]:.2f}] | "
                         f"{m['tpr_at_5pct_fpr']:.0%} | {m['tpr_at_10pct_fpr']:.0%} |")
    return "\n".join(lines)


def source_table(per_source: dict, names: list[str]) -> str:
    """Per source: AUC where it holds both classes, else the mean score (fakes-only or reals-only sources)."""
    lines = ["| source | videos (fake) | " + " | ".join(names) + " |", "|---|---|" + "---:|" * len(names)]
    for source, by_name in per_source.items():
        first = next(iter(by_name.values()))
        cells = [f"{m['auc']:.2f}" if "auc" in m else f"mean {m['mean_score']:.2f}" for m in by_name.values()]
        lines.append(f"| {source} | {first['n']} ({first['fakes']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=Path, nargs="+", required=True, help="training.temporal_data folders")
    parser.add_argument("--stills", type=Path, nargs="*", default=[], help="folders of stills, reported apart")
    parser.add_argument("--candidate", type=Path, help="a training.temporal_fit output folder")
    parser.add_argument("--mesonet", type=Path, help="Meso4 weights (.h5); MesoNet needs the media (--media)")
    parser.add_argument("--media", type=Path, nargs="*", default=[],
                        help="the labels.csv of each --readings/--stills folder, same order (for MesoNet)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    detector = load_detector()
    w, b = detector.keras_model.get_layer("fake_probability").get_weights()
    weights, bias = np.asarray(w).reshape(-1), float(np.asarray(b).reshape(-1)[0])
    shipped_card = detector.card.to_dict() if hasattr(detector.card, "to_dict") else {}
    shipped = Fusion.from_dict(shipped_card.get("fusion"))
    candidate = None
    if args.candidate:
        candidate = Fusion.from_dict(json.loads((args.candidate / "fusion.json").read_text())["fusion"])
    temporal = TemporalModel(published_model())

    report: dict = {}
    for title, folders in (("videos", args.readings), ("stills", args.stills)):
        if not folders:
            continue
        readings = [r for folder in folders for r in load_readings(folder)]
        mesonet = None
        if args.mesonet and args.media:
            roots = {}
            for folder, manifest in zip(list(args.readings) + list(args.stills), args.media):
                for line in (folder / "index.jsonl").read_text().splitlines():
                    row = json.loads(line)
                    roots[row["key"]] = manifest.parent / row["path"]
            mesonet = mesonet_scores(readings, roots, args.out / f"mesonet_{title}.json", args.mesonet)
        cols = rows_for(readings, candidate, shipped, temporal, mesonet, weights, bias)
        y = np.array([r.label for r in readings])
        results = {name: summary(y, s) for name, s in cols.items()}
        per_source = {}
        for source in sorted({r.source for r in readings}):
            k = np.array([r.source == source for r in readings])
            per_source[source] = {name: summary(y[k], s[k], interval=False) for name, s in cols.items()}
        section = {"overall": results, "per_source": per_source}
        if "candidate" in cols and len(set(y.tolist())) == 2:
            section["candidate_minus_version3"] = paired_difference(y, cols["candidate"], cols["version 3"])
        report[title] = section
        print(f"\n## {title} ({len(readings)}, {int(y.sum())} fake)\n")
        print(table(results))
        print("\n" + source_table(per_source, list(cols)))
        if "candidate_minus_version3" in section:
            print(f"\ncandidate - version 3, paired: {section['candidate_minus_version3']}")
    (args.out / "peers.json").write_text(json.dumps(report, indent=2))
    md = "\n\n".join(f"## {title}\n\n{table(sec['overall'])}\n\n{source_table(sec['per_source'], list(sec['overall']))}"
                       for title, sec in report.items())
    (args.out / "peers.md").write_text(md + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
