"""The scanner's temporal stage: face boxes between sampled frames, windows read on a real clip, per-window scores
in result.json, and the scan carrying on without a landmark model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detector.face.faces import Detection, FaceTrack, Observation
from detector.temporal.branch import track_boxes


def _track(times: list[float], boxes: list[list[float]]) -> FaceTrack:
    track = FaceTrack(track_id=0)
    for k, (t, box) in enumerate(zip(times, boxes)):
        det = Detection(box=np.array(box, np.float32), confidence=0.99, keypoints=np.zeros((5, 2), np.float32))
        track.observations.append(Observation(k, t, det, np.zeros((4, 4, 3), np.uint8), np.zeros((5, 2))))
    return track


def test_track_boxes_interpolate_between_observations():
    track = _track([0.0, 1.0], [[0, 0, 10, 10], [10, 0, 20, 10]])
    boxes = track_boxes(track, np.array([0.0, 0.5, 1.0]))
    assert np.allclose(boxes[1], [5, 0, 15, 10])


def test_track_boxes_refuse_a_window_the_face_was_not_seen_near():
    track = _track([0.0, 1.0], [[0, 0, 10, 10], [10, 0, 20, 10]])
    assert track_boxes(track, np.array([5.0, 6.0]), max_gap=1.0) is None
    assert track_boxes(track, np.array([1.5, 1.9]), max_gap=1.0) is not None


@pytest.mark.slow
def test_a_scan_reports_per_window_temporal_scores(demo, tmp_path):
    from detector.scan.pipeline import Scanner
    from detector.scan.options import ScanOptions
    from detector.scan.report import write_result
    from detector.models.model import load_detector
    from detector.temporal.landmarks import find_predictor

    if find_predictor() is None:
        pytest.skip("dlib's 68-point predictor is not installed (apt-get install libdlib-data)")
    detector = load_detector()
    scanner = Scanner(detector, ScanOptions(gradcam=False))
    clip = next(p for p in demo.iterdir() if p.suffix == ".mp4")
    result = scanner.scan(clip)
    assert result.verdict in ("real", "fake")
    assert result.temporal is not None and result.temporal.windows
    window = result.temporal.windows[0]
    assert window.frames == 30 and window.end_time > window.start_time
    assert 0.0 <= window.probability <= 1.0 and result.temporal.score is not None
    doc = write_result(result, tmp_path, detector.card)
    assert doc["temporal"]["windows"][0]["frames"] == 30
    folder = tmp_path / result.name
    assert json.loads((folder / "result.json").read_text())["temporal"] == doc["temporal"]
    assert "Motion over time" in (folder / "report.html").read_text()

    still = next(p for p in demo.iterdir() if p.suffix in (".png", ".jpg"))
    assert scanner.scan(still).temporal is None

    off = Scanner(detector, ScanOptions(gradcam=False, temporal=False))
    assert off.scan(clip).temporal is None


@pytest.mark.slow
def test_no_landmark_model_is_a_warning_not_a_failure(demo, monkeypatch):
    import detector.temporal.branch as branch
    import detector.temporal.landmarks as landmarks
    from detector.scan.pipeline import Scanner
    from detector.scan.options import ScanOptions
    from detector.models.model import load_detector

    monkeypatch.setattr(landmarks, "find_predictor", lambda explicit=None: None)
    monkeypatch.setattr(branch, "_PREDICTOR", [])  # a predictor an earlier test loaded must not be reused
    clip = next(p for p in demo.iterdir() if p.suffix == ".mp4")
    result = Scanner(load_detector(), ScanOptions(gradcam=False)).scan(clip)
    assert result.verdict in ("real", "fake") and result.temporal is None
    assert any("temporal evidence off" in w and "libdlib-data" in w for w in result.warnings)
