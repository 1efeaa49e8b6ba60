"""The bench's own judgement of "the same track", which the speed work's agreement figures rest on."""

from __future__ import annotations

import numpy as np

from bench.search_agreement import matched, same_track
from detector.face.faces import Detection, FaceTrack, Observation


def _track(frames: list[int], x: float = 100.0) -> FaceTrack:
    def obs(f: int) -> Observation:
        det = Detection(box=np.array([x, 100, x + 80, 180], np.float32), confidence=1.0,
                        keypoints=np.zeros((5, 2), np.float32))
        return Observation(f, f / 25, det, np.zeros((4, 4, 3), np.uint8), np.zeros((5, 2), np.float32))

    return FaceTrack(0, [obs(f) for f in frames])


def test_same_track_needs_overlapping_boxes_in_most_frames() -> None:
    frames = list(range(0, 100, 10))
    at = {f: k for k, f in enumerate(frames)}
    assert same_track(_track(frames), _track(frames), at, at)
    assert same_track(_track(frames), _track(frames[:8]), at, at)  # 8 of 10 frames shared: 80 %
    assert not same_track(_track(frames), _track(frames[:7]), at, at)
    assert not same_track(_track(frames), _track(frames, x=300), at, at)  # same frames, another place


def test_frames_pair_by_their_place_in_the_sampling() -> None:
    """A scan that decodes only reference frames samples frame 12 where the previous one sampled frame 10: the same
    sample, so the same track."""
    frames = list(range(0, 100, 10))
    moved = [f + 2 for f in frames]
    at, at_moved = {f: k for k, f in enumerate(frames)}, {f: k for k, f in enumerate(moved)}
    assert same_track(_track(frames), _track(moved), at, at_moved)
    assert not same_track(_track(frames), _track(moved), at, {f: k + 3 for k, f in enumerate(moved)})  # 7 of 10


def test_matched_pairs_each_track_once() -> None:
    frames = list(range(0, 100, 10))
    at = {f: k for k, f in enumerate(frames)}
    old = [_track(frames), _track(frames, x=300)]
    assert matched(old, [_track(frames)], at, at) == 1
    assert matched(old, [_track(frames, x=300), _track(frames)], at, at) == 2
    assert matched([_track(frames), _track(frames)], [_track(frames)], at, at) == 1
