"""Overlapped stages: frames decoded ahead arrive in order, failures surface where they happened, nothing is left
running, and crops scored while the search goes on get the probabilities a scan in sequence gives."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from detector.face.faces import Detection, Observation
from detector.scan.overlap import StreamScorer, prefetch


def _numbers(n: int, log: list[str], fail_at: int | None = None):
    try:
        for i in range(n):
            if i == fail_at:
                raise ValueError(f"broken at {i}")
            log.append(f"made {i}")
            yield i
    finally:
        log.append("closed")


def test_prefetch_keeps_order_and_reads_ahead() -> None:
    log: list[str] = []
    items = prefetch(_numbers(5, log), depth=2)
    assert next(items) == 0
    time.sleep(0.3)
    assert "made 2" in log  # produced while the consumer was busy
    assert "made 4" not in log  # but no more than depth ahead
    assert list(items) == [1, 2, 3, 4]
    assert log[-1] == "closed"


def test_prefetch_raises_the_sources_error_in_place() -> None:
    log: list[str] = []
    got = []
    with pytest.raises(ValueError, match="broken at 3"):
        for item in prefetch(_numbers(10, log, fail_at=3), depth=2):
            got.append(item)
    assert got == [0, 1, 2]


def test_closing_early_stops_the_thread_and_closes_the_source() -> None:
    log: list[str] = []
    before = threading.active_count()
    items = prefetch(_numbers(1000, log), depth=2)
    assert next(items) == 0
    items.close()
    assert log[-1] == "closed" and len(log) < 10
    assert threading.active_count() == before


def test_depth_zero_is_a_plain_pass_through() -> None:
    log: list[str] = []
    assert list(prefetch(_numbers(3, log), depth=0)) == [0, 1, 2]


class MeanModel:
    """Scores a crop by its mean brightness, recording the batch sizes it was given."""

    def __init__(self, fail: bool = False):
        self.batches: list[int] = []
        self.fail = fail

    def predict(self, crops: np.ndarray, batch_size: int = 32) -> np.ndarray:
        if self.fail:
            raise RuntimeError("model server gone")
        self.batches.append(len(crops))
        return crops.reshape(len(crops), -1).mean(axis=1) / 255.0


def _observation(value: int) -> Observation:
    det = Detection(box=np.zeros(4, np.float32), confidence=1.0, keypoints=np.zeros((5, 2), np.float32))
    return Observation(value, value / 10, det, np.full((8, 8, 3), value, np.uint8), np.zeros((5, 2), np.float32))


def test_stream_scorer_scores_every_crop_in_batches() -> None:
    model = MeanModel()
    frames = [[_observation(v) for v in range(f * 3, f * 3 + 3)] for f in range(7)]  # 21 crops, 3 per frame
    with StreamScorer(model, batch=8) as scorer:
        for observations in frames:
            scorer.add(observations)
        scorer.finish()
    assert model.batches == [9, 9, 3]  # sent as soon as 8 were waiting, the rest at the end
    for observations in frames:
        for obs in observations:
            assert obs.probability == pytest.approx(obs.frame_index / 255.0)
    assert scorer.seconds > 0


def test_a_model_failure_surfaces_at_finish() -> None:
    with StreamScorer(MeanModel(fail=True), batch=2) as scorer:
        scorer.add([_observation(1), _observation(2)])
        with pytest.raises(RuntimeError, match="model server gone"):
            scorer.finish()


@pytest.mark.e2e  # the shipped model and MTCNN on the demo clip
def test_overlapped_scan_scores_like_a_scan_in_sequence(demo) -> None:
    from detector.models.model import load_detector
    from detector.scan.pipeline import ScanOptions, Scanner

    detector = load_detector()
    overlapped = Scanner(detector, ScanOptions(frames=12, gradcam=False)).scan(demo / "astronaut_pan.mp4")
    sequence = Scanner(detector, ScanOptions(frames=12, gradcam=False, overlap=False)).scan(demo / "astronaut_pan.mp4")
    assert overlapped.verdict == sequence.verdict and overlapped.verdict in ("real", "fake")
    assert overlapped.score == pytest.approx(sequence.score, abs=1e-5)
    assert [len(t.observations) for t in overlapped.tracks] == [len(t.observations) for t in sequence.tracks]
    probs = [o.probability for t in overlapped.tracks for o in t.observations]
    assert probs == pytest.approx([o.probability for t in sequence.tracks for o in t.observations], abs=1e-5)
    assert set(overlapped.seconds) >= {"decode", "faces", "model", "gradcam", "total"}
