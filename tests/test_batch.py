"""Folder runs: worker processes give the same results as the in-process path, and reruns resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import sample_faces, spread_head

from detector.engines import batch
from detector.demo import pan_zoom_frames, write_video
from detector.models.model import untrained_detector
from detector.scan.pipeline import ScanOptions

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("inbox")
    frames = list(pan_zoom_frames(16))
    write_video(frames, root / "a.mp4")
    write_video(frames[::-1], root / "b.mp4")
    write_video([np.ascontiguousarray(f[:, ::-1]) for f in frames], root / "sub" / "c.mp4")
    (root / "broken.mp4").write_text("not a video")
    return root


@pytest.fixture(scope="module")
def detector():
    det = untrained_detector()
    spread_head(det.keras_model, sample_faces())  # so comparisons between clips mean something
    return det


def rows(out: Path) -> dict[str, dict]:
    with (out / "summary.csv").open() as fh:
        return {r["name"]: r for r in csv.DictReader(fh)}


def test_workers_match_in_process_and_resume(folder: Path, detector, tmp_path: Path,
                                             capfd: pytest.CaptureFixture) -> None:
    options = ScanOptions(frames=4, gradcam=False, batch_size=8)
    serial = batch.run(folder, tmp_path / "serial", detector, options, show_progress=False, workers=0)
    capfd.readouterr()
    parallel = batch.run(folder, tmp_path / "parallel", detector, options, show_progress=False, workers=2,
                         worker_stderr=False)
    quiet = capfd.readouterr().err
    assert "absl" not in quiet and "oneDNN" not in quiet, quiet  # the workers' TensorFlow start-up lines
    a, b = rows(tmp_path / "serial"), rows(tmp_path / "parallel")
    assert set(a) == set(b) == {"a.mp4", "b.mp4", "sub__c.mp4", "broken.mp4"}
    for name in a:
        assert a[name]["verdict"] == b[name]["verdict"], name
        if a[name]["fake_probability"]:
            assert float(a[name]["fake_probability"]) == pytest.approx(float(b[name]["fake_probability"]), abs=1e-4)
    assert b["broken.mp4"]["verdict"] == "error" and "not a readable video" in b["broken.mp4"]["error"]
    assert [r["name"] for r in serial.rows] == [r["name"] for r in parallel.rows]
    scores = {float(r["fake_probability"]) for n, r in b.items() if r["fake_probability"]}
    assert len(scores) > 1, "the fixture model should tell the clips apart"

    result = tmp_path / "parallel" / "a.mp4" / "result.json"
    stamp = result.stat().st_mtime_ns
    again = batch.run(folder, tmp_path / "parallel", detector, options, show_progress=False, workers=2)
    assert result.stat().st_mtime_ns == stamp, "a finished input must not be scanned again"
    assert len(again.rows) == 4 and len(again.errors) == 1
    error_doc = json.loads((tmp_path / "parallel" / "broken.mp4" / "result.json").read_text())
    assert error_doc["verdict"] == "error"
    other = ScanOptions(frames=3, gradcam=False, batch_size=8)
    changed = batch.run(folder, tmp_path / "parallel", detector, other, show_progress=False)
    assert result.stat().st_mtime_ns != stamp, "results made with other settings must not be reused"
    assert json.loads(result.read_text())["frames_sampled"] == 3 and len(changed.rows) == 4
    stamp = result.stat().st_mtime_ns
    fresh = batch.run(folder, tmp_path / "parallel", detector, other, show_progress=False, resume=False)
    assert result.stat().st_mtime_ns != stamp and len(fresh.rows) == 4
