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


def test_resume_gives_each_file_its_own_result(detector, tmp_path: Path) -> None:
    """A file added beside another of nearly the same name gets its own row, and a file replaced under the same name
    is scanned again: a stored result is reused only for the very input it was made from."""
    inbox, out = tmp_path / "in", tmp_path / "out"
    frames = list(pan_zoom_frames(8))
    write_video(frames, inbox / "a_b.mp4")
    options = ScanOptions(frames=2, gradcam=False)
    batch.run(inbox, out, detector, options, show_progress=False)
    write_video(frames[::-1], inbox / "a b.mp4")
    outcome = batch.run(inbox, out, detector, options, show_progress=False)
    assert sorted(r["input"] for r in outcome.rows) == [str(inbox / "a b.mp4"), str(inbox / "a_b.mp4")]
    assert rows(out).keys() == {r["name"] for r in outcome.rows} and len(outcome.rows) == 2
    for row in outcome.rows:
        doc = json.loads((out / row["name"] / "result.json").read_text())
        assert doc["input"] == row["input"]
        assert doc["input_identity"]["path"] == Path(row["input"]).name
    kept = out / "a_b.mp4" / "result.json"
    stamp = kept.stat().st_mtime_ns
    write_video([np.ascontiguousarray(f[:, ::-1]) for f in frames], inbox / "a_b.mp4")  # another video, same name
    batch.run(inbox, out, detector, options, show_progress=False)
    assert kept.stat().st_mtime_ns != stamp, "a file replaced since its scan must be scanned again"
    assert json.loads(kept.read_text())["input_identity"]["size"] == (inbox / "a_b.mp4").stat().st_size


class Crash(BaseException):
    """What a killed process leaves: nothing after the injected point runs (a BaseException, so no handler of the
    batch catches it)."""


def complete(out: Path, inbox: Path) -> dict:
    """Check that ``out`` holds a whole, consistent result for every input and the summary lists them."""
    summary = rows(out)
    assert set(summary) == {p.name for p in inbox.iterdir()}
    for name, row in summary.items():
        doc = json.loads((out / name / "result.json").read_text())
        assert doc["input"] == str(inbox / name) == row["input"] and doc["verdict"] in ("real", "fake", "no_face")
        for rel in ("report.html", doc["timeline"], doc["gradcam_montage"], *(c["overlay"] for c in doc["gradcam"])):
            assert (out / name / rel).is_file(), (name, rel)
        assert not list((out / name).rglob(".partial-*")), "temporary files are removed"
    return summary


def test_a_crash_between_any_two_writes_is_repaired_by_the_next_run(detector, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file of a result and the summary is written through a temporary file and a rename; a run killed
    before any one of those writes (or halfway through one) leaves nothing that the next run reuses half-made."""
    from detector.ingest import inputs

    inbox = tmp_path / "in"
    write_video(list(pan_zoom_frames(8)), inbox / "a.mp4")
    options = ScanOptions(frames=2, gradcam=True, gradcam_frames=1)
    real_write = inputs.write_atomic
    calls = []
    monkeypatch.setattr(inputs, "write_atomic", lambda path, data: calls.append(path) or real_write(path, data))
    batch.run(inbox, tmp_path / "count", detector, options, show_progress=False)
    writes = len(calls)
    assert writes >= 6, calls  # overlay, montage, timeline, report, result.json, summary
    for crash_at in range(writes):
        out = tmp_path / f"out{crash_at}"
        seen = []

        def crashing(path: Path, data: bytes, crash_at=crash_at, seen=seen) -> None:
            seen.append(path)
            if len(seen) > crash_at:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.with_name(f".partial-1-{path.name}").write_bytes(data[: len(data) // 2])  # died mid-write
                raise Crash
            real_write(path, data)

        monkeypatch.setattr(inputs, "write_atomic", crashing)
        with pytest.raises(Crash):
            batch.run(inbox, out, detector, options, show_progress=False)
        monkeypatch.setattr(inputs, "write_atomic", real_write)
        complete(batch.run(inbox, out, detector, options, show_progress=False).summary_path.parent, inbox)


@pytest.mark.parametrize("damage", ["report.html", "timeline.png", "gradcam/montage.png", "result.json"])
def test_a_result_folder_with_a_missing_or_cut_file_is_scanned_again(detector, tmp_path: Path, damage: str) -> None:
    """The state a crash without atomic writes leaves (a file missing or cut short) is repaired too."""
    inbox, out = tmp_path / "in", tmp_path / "out"
    frames = list(pan_zoom_frames(8))
    write_video(frames, inbox / "a.mp4")
    write_video(frames[::-1], inbox / "b.mp4")
    options = ScanOptions(frames=2, gradcam=True, gradcam_frames=2)
    batch.run(inbox, out, detector, options, show_progress=False)
    target = out / "a.mp4" / damage
    if damage == "result.json":
        target.write_text(target.read_text()[:100])
    else:
        target.unlink()
    kept = (out / "b.mp4" / "result.json").stat().st_mtime_ns
    batch.run(inbox, out, detector, options, show_progress=False)
    complete(out, inbox)
    assert (out / "b.mp4" / "result.json").stat().st_mtime_ns == kept, "a whole result is still reused"
