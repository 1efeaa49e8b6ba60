"""The bench's own judgement of "the same track", which the speed work's agreement figures rest on."""

from __future__ import annotations

import numpy as np

from bench.search_agreement import matched, same_track
from detector.faces import Detection, FaceTrack, Observation


def _track(frames: list[int], x: float = 100.0) -> FaceTrack:
    def obs(f: int) -> Observation:
        det = Detection(box=np.array([x, 100, x + 80, 180], np.float32), confidence=1.0,
                        keypoints=np.zeros((5, 2), np.float32))
        return Observation(f, f / 25, det, np.zeros((4, 4, 3), np.uint8), np.zeros((5, 2), np.float32))

    return FaceTrack(0, [obs(f) for f in frames])


def test_same_track_needs_overlapping_boxes_in_most_frames() -> None:
    frames = list(range(0, 100, 10))
    assert same_track(_track(frames), _track(frames))
    assert same_track(_track(frames), _track(frames[:8]))  # 8 of 10 frames shared: 80 %
    assert not same_track(_track(frames), _track(frames[:7]))
    assert not same_track(_track(frames), _track(frames, x=300))  # same frames, another place


def test_matched_pairs_each_track_once() -> None:
    frames = list(range(0, 100, 10))
    old = [_track(frames), _track(frames, x=300)]
    assert matched(old, [_track(frames)]) == 1
    assert matched(old, [_track(frames, x=300), _track(frames)]) == 2
    assert matched([_track(frames), _track(frames)], [_track(frames)]) == 1
