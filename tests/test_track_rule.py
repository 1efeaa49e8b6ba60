"""The track rule: only real, persistent faces decide a verdict; the others stay in the results with the reason."""

from __future__ import annotations

import numpy as np
import pytest

from detector.scan import aggregate
from detector.scan.aggregate import TrackFacts, select_tracks
from detector.face.faces import Detection, FaceTrack, Observation
from detector.scan.pipeline import mark_counted_tracks

#: Five keypoints of an upright face in a 224-px aligned crop (eyes, nose, mouth corners).
FACE_KPS = np.array([[80, 95], [144, 95], [112, 125], [88, 155], [136, 155]], np.float32)
#: The same points scrambled: mouth above the eyes, as MTCNN reports on a background blob.
BLOB_KPS = np.array([[80, 160], [144, 100], [112, 90], [88, 60], [136, 70]], np.float32)


def _track(track_id: int, frames: list[int], side: float, kps: np.ndarray = FACE_KPS,
           probability: float = 0.1) -> FaceTrack:
    obs = []
    for f in frames:
        box = np.array([100, 100, 100 + side, 100 + side], np.float32)
        det = Detection(box=box, confidence=0.99, keypoints=np.zeros((5, 2), np.float32))
        obs.append(Observation(f, f / 25, det, np.zeros((224, 224, 3), np.uint8), kps, probability=probability))
    return FaceTrack(track_id, obs)


def test_a_one_frame_track_never_decides_a_multi_frame_video() -> None:
    main = _track(0, list(range(32)), 200, probability=0.02)
    blob = _track(1, [7], 40, probability=0.98)  # MTCNN's one-frame false face, scored very fake
    tracks = [main, blob]
    mark_counted_tracks(tracks, frames_sampled=32, is_image=False, crop_size=224)
    assert main.counted and not blob.counted
    assert "seen in 1 of 32" in blob.reason
    scores, video = aggregate.decide([[o.probability for o in t.observations] for t in tracks],
                                     [aggregate.TrackDecision(t.counted) for t in tracks])
    assert video == pytest.approx(0.02)  # not 0.98: the blob is reported, not counted
    assert scores[1] == pytest.approx(0.98)  # its own score is still there


@pytest.fixture
def demo_result_doc() -> dict:
    """result.json of a scan whose tracks are the ones above (the scanner's finish and the report; no model)."""
    from detector.models.scoring import ModelCard
    from detector.scan.pipeline import ExtractedFaces, ScanOptions, ScanResult, Scanner
    from detector.scan.report import result_to_dict
    from detector.ingest.video import VideoInfo

    class ScoredAlready:
        """Stands in for the model: the observations carry their probabilities, only the card is read."""

        card = ModelCard(trained=True, threshold=0.5)

    tracks = [_track(0, list(range(32)), 200, probability=0.02), _track(1, [7], 40, probability=0.98)]
    mark_counted_tracks(tracks, 32, False, 224)
    info = VideoInfo("x.mp4", 640, 480, "h264", "mp4", 25.0, 1.28, 32, 0, False, False)
    faces = ExtractedFaces(info, [{"index": i, "time": i / 25, "faces": 1} for i in range(32)], tracks, [], {})
    scanner = Scanner(ScoredAlready(), ScanOptions(gradcam=False))
    result = scanner.finish(ScanResult(path="x.mp4", name="x", verdict="error", threshold=0.5), faces)
    return result_to_dict(result, ScoredAlready.card)


def test_a_one_frame_track_is_still_reported(demo_result_doc) -> None:
    doc = demo_result_doc
    blob = [t for t in doc["tracks"] if not t["counted"]]
    assert len(blob) == 1 and "seen in 1 of" in blob[0]["not_counted_reason"]
    assert doc["fake_probability"] == pytest.approx(0.02, abs=1e-4)


def test_persistent_faces_all_count_and_the_most_suspicious_wins() -> None:
    decisions = select_tracks([TrackFacts(30, 200), TrackFacts(12, 150), TrackFacts(9, 120)], 32)
    assert [d.counted for d in decisions] == [True, True, True]
    scores, video = aggregate.decide([[0.1], [0.9], [0.3]], decisions)
    assert video == pytest.approx(0.9)


def test_a_tiny_background_face_does_not_count() -> None:
    decisions = select_tracks([TrackFacts(32, 300), TrackFacts(32, 50)], 32)
    assert decisions[0].counted and not decisions[1].counted
    assert "too small" in decisions[1].reason


def test_implausible_landmarks_do_not_count() -> None:
    tracks = [_track(0, list(range(32)), 200), _track(1, list(range(32)), 200, kps=BLOB_KPS)]
    mark_counted_tracks(tracks, 32, False, 224)
    assert tracks[0].counted and not tracks[1].counted and "landmarks" in tracks[1].reason


def test_the_only_face_counts_even_if_brief() -> None:
    assert select_tracks([TrackFacts(2, 100)], 32)[0].counted


def test_with_no_persistent_face_the_most_persistent_track_decides_with_a_warning() -> None:
    tracks = [_track(0, [1, 2], 100), _track(1, [9, 10, 11], 90)]
    warnings = mark_counted_tracks(tracks, 32, False, 224)
    assert [t.counted for t in tracks] == [False, True]
    assert warnings and "most persistent" in warnings[0]


def test_every_face_of_a_still_counts() -> None:
    decisions = select_tracks([TrackFacts(1, 200), TrackFacts(1, 150)], 1, is_image=True)
    assert all(d.counted for d in decisions)


def test_plausible_landmarks() -> None:
    assert aggregate.plausible_landmarks(FACE_KPS, 224)
    assert not aggregate.plausible_landmarks(BLOB_KPS, 224)
    assert not aggregate.plausible_landmarks(FACE_KPS * 0.1, 224)  # eyes 6 px apart in a 224-px crop
