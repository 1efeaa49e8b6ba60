"""A tiny end-to-end retraining run: prepare -> train -> export -> evaluate -> scan with the exported model.

It checks the plumbing and the artefacts, not accuracy (a few steps on one face cannot learn anything); the shipped
model's accuracy comes from `training.evaluate` on real deepfakes (see the README).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detector.demo import astronaut, pan_zoom_frames, write_video

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.e2e


def run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def variant(frame: np.ndarray, k: int) -> np.ndarray:
    """Different-looking clips of the one bundled face, so groups can fall into both splits."""
    shifted = np.roll(frame, k, axis=2) if k % 2 else frame
    return np.ascontiguousarray(np.clip(shifted.astype(np.int16) + 12 * k - 24, 0, 255).astype(np.uint8))


def test_retrain_export_evaluate_and_scan(tmp_path: Path) -> None:
    assert astronaut().shape == (512, 512, 3)
    media = tmp_path / "media"
    rows = ["path,label,group"]
    for k in range(5):
        clip = write_video((variant(f, k) for f in pan_zoom_frames(12)), media / f"clip{k}.mp4")
        rows.append(f"{clip},{'fake' if k % 2 else 'real'},person{k}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    train_data, eval_data, run_dir = tmp_path / "train", tmp_path / "eval", tmp_path / "run"

    run("-m", "training.prepare", "--real-dir", str(media), "--out", str(train_data), "--frames", "3",
        "--val-fraction", "0.5", "--seed", "3")
    index = [json.loads(line) for line in (train_data / "index.jsonl").read_text().splitlines()]
    assert {r["split"] for r in index} == {"train", "val"}, "fixture needs groups in both splits"
    run("-m", "training.prepare", "--manifest", str(tmp_path / "labels.csv"), "--out", str(eval_data),
        "--frames", "2", "--val-fraction", "1.0")

    run("-m", "training.train", "--data", str(train_data), "--eval-data", str(eval_data), "--backbone",
        "mobilenetv2", "--weights", "none", "--image-size", "96", "--epochs", "2", "--steps-per-epoch", "2",
        "--batch-size", "8", "--val-pairs", "4", "--warmup-steps", "1", "--out", str(run_dir))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["images_seen"] == 2 * 2 * 8 and summary["landmarks"] in ("dlib68", "five")
    assert len(summary["history"]) == 2 and 0.0 <= summary["threshold"] <= 1.0
    assert (run_dir / "best.keras").is_file() and (run_dir / "log.csv").is_file()

    # a killed run has no summary.json: --summarize-only rebuilds it from the checkpoint and the CSV log
    (run_dir / "summary.json").unlink()
    run("-m", "training.train", "--data", str(train_data), "--eval-data", str(eval_data), "--backbone",
        "mobilenetv2", "--weights", "none", "--image-size", "96", "--epochs", "2", "--steps-per-epoch", "2",
        "--batch-size", "8", "--val-pairs", "4", "--out", str(run_dir), "--summarize-only")
    rebuilt = json.loads((run_dir / "summary.json").read_text())
    assert rebuilt["threshold"] == pytest.approx(summary["threshold"], abs=1e-6)
    assert [h["epoch"] for h in rebuilt["history"]] == [1, 2] and rebuilt["images_seen"] == summary["images_seen"]

    model_root = tmp_path / "saved_model" / "deepfake"
    run("-m", "training.evaluate", "--data", str(eval_data), "--model", str(run_dir / "best.keras"),
        "--out", str(tmp_path / "eval_report"))
    report = json.loads((tmp_path / "eval_report" / "video" / "metrics.json").read_text())
    assert report["video"]["n"] == 5 and "roc_auc" in report["video"]
    assert (tmp_path / "eval_report" / "video" / "roc.png").is_file()

    run("-m", "training.export", "--checkpoint", str(run_dir / "best.keras"), "--run", str(run_dir),
        "--evaluation", str(tmp_path / "eval_report" / "summary.json"), "--out", str(model_root))
    card = json.loads((model_root / "card.json").read_text())
    assert card["trained"] is True and card["backbone"] == "mobilenetv2" and card["image_size"] == 96
    assert card["threshold"] == pytest.approx(summary["threshold"], abs=1e-4)
    assert (model_root / "1" / "saved_model.pb").is_file()

    out = tmp_path / "scan"
    proc = run("app.py", "--input", str(media / "clip0.mp4"), "--output", str(out), "--model", str(model_root),
               "--frames", "3", "--quiet", "--json")
    row = json.loads(proc.stdout)[0]
    assert row["verdict"] in ("real", "fake") and row["provisional"] is False
    assert row["threshold"] == pytest.approx(card["threshold"], abs=1e-4)
    result = json.loads((out / row["name"] / "result.json").read_text())
    assert result["model"]["backbone"] == "mobilenetv2" and result["gradcam"]
