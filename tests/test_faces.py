"""Checks for detector.face.faces: MTCNN on a real face (scikit-image's astronaut), crop geometry, IoU and tracking."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from detector.face.faces import Detection, FaceDetector, FaceTracker, Observation, crop_face, iou

#: Where the astronaut's face is in the 512x512 image (x1, y1, x2, y2), read off the picture and MTCNN's output.
ASTRONAUT_FACE = np.array([182, 64, 265, 171], np.float32)
#: The shared development data sits beside the checkout (../shared/data); DETECTOR_DATA points elsewhere.
DATA = Path(os.environ.get("DETECTOR_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    """One MTCNN for the module: loading its weights takes seconds, each detection a fraction of one."""
    return FaceDetector()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.mark.slow
def test_finds_the_astronaut_face(detector: FaceDetector, astronaut: np.ndarray) -> None:
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert iou(face.box, ASTRONAUT_FACE) > 0.7
    assert face.confidence > 0.95
    assert face.keypoints.shape == (5, 2)
    x1, y1, x2, y2 = face.box
    assert np.all((face.keypoints[:, 0] > x1) & (face.keypoints[:, 0] < x2))
    assert np.all((face.keypoints[:, 1] > y1) & (face.keypoints[:, 1] < y2))
    left_eye, right_eye, nose, mouth_left, _ = face.keypoints
    assert left_eye[0] < right_eye[0] and left_eye[1] < nose[1] < mouth_left[1]  # an upright face's layout


@pytest.mark.slow
def test_finds_the_face_in_lfw_crops(detector: FaceDetector) -> None:
    """LFW crops are 150x150 and centred on the person, so the largest face must sit in the middle."""
    files = sorted((DATA / "real_faces" / "lfw").rglob("*.jpg"))[:25:5]
    if not files:
        pytest.skip(f"LFW faces not found under {DATA / 'real_faces' / 'lfw'} (set DETECTOR_DATA)")
    for path in files:
        faces = detector.detect(np.asarray(Image.open(path).convert("RGB")))
        assert faces, f"no face found in {path.name}"
        cx, cy = (faces[0].box[:2] + faces[0].box[2:]) / 2
        assert 50 < cx < 100 and 50 < cy < 100, path.name


@pytest.mark.slow
@pytest.mark.parametrize("name", ["coffee", "rocket"])
def test_no_face_in_pictures_without_people(detector: FaceDetector, name: str) -> None:
    assert detector.detect(getattr(data, name)()) == []


@pytest.mark.slow
def test_no_face_in_blank_or_tiny_frames(detector: FaceDetector) -> None:
    assert detector.detect(np.full((240, 320, 3), 128, np.uint8)) == []
    assert detector.detect(np.zeros((8, 8, 3), np.uint8)) == []


@pytest.mark.slow
def test_grayscale_is_refused(detector: FaceDetector, astronaut: np.ndarray) -> None:
    with pytest.raises(ValueError, match="RGB"):
        detector.detect(astronaut[..., 0])


@pytest.mark.slow
def test_boxes_map_back_from_the_downscaled_frame(astronaut: np.ndarray) -> None:
    """Detection runs on a frame shrunk to max_side, but boxes and keypoints come back in the original's pixels."""
    big = np.repeat(np.repeat(astronaut, 2, axis=0), 2, axis=1)  # 1024x1024, face at twice the coordinates
    faces = FaceDetector(max_side=512).detect(big)
    assert len(faces) == 1
    assert iou(faces[0].box, ASTRONAUT_FACE * 2) > 0.7


@pytest.mark.slow
def test_min_face_drops_small_faces(astronaut: np.ndarray) -> None:
    assert FaceDetector(min_face=60).detect(astronaut)
    assert FaceDetector(min_face=150).detect(astronaut) == []


@pytest.mark.slow
def test_several_faces_come_largest_first(detector: FaceDetector, astronaut: np.ndarray) -> None:
    small = astronaut[::2, ::2]
    canvas = np.full((512, 800, 3), 200, np.uint8)
    canvas[:, :512] = astronaut
    canvas[100:356, 530:786] = small
    faces = detector.detect(canvas)
    assert len(faces) == 2
    assert faces[0].width * faces[0].height > 2 * faces[1].width * faces[1].height
    assert faces[0].box[2] < 512 < faces[1].box[0]


def test_crop_is_a_square_of_margin_times_the_box() -> None:
    image = np.zeros((400, 600, 3), np.uint8)
    image[150:250, 250:330] = 255  # the "face": 80 wide, 100 tall
    box = np.array([250, 150, 330, 250], np.float32)
    keypoints = np.array([[290, 200], [250, 150], [330, 250]], np.float32)  # centre and the two box corners
    crop = crop_face(image, box, keypoints, margin=1.5, size=150, align=False)  # keypoints are not eyes here
    assert crop.image.shape == (150, 150, 3)
    left, top, right, bottom = crop.crop_box
    assert right - left == bottom - top == 150  # longer side 100 x 1.5
    assert (left + right) / 2 == pytest.approx(290, abs=1) and (top + bottom) / 2 == pytest.approx(200, abs=1)
    np.testing.assert_allclose(crop.keypoints[0], [75, 75], atol=1)
    np.testing.assert_allclose(crop.keypoints[1], [35, 25], atol=1)
    np.testing.assert_allclose(crop.keypoints[2], [115, 125], atol=1)
    # the white face fills the middle and the margin shows the dark surroundings
    assert crop.image[75, 75].min() == 255
    assert crop.image[5, 5].max() == 0 and crop.image[75, 20].max() == 0


def test_crop_is_resized_to_the_model_size() -> None:
    image = np.random.default_rng(0).integers(0, 256, (100, 100, 3), np.uint8)
    crop = crop_face(image, np.array([40, 40, 60, 60]), margin=1.0, size=224)
    assert crop.image.shape == (224, 224, 3) and crop.keypoints.shape == (0, 2)
    np.testing.assert_array_equal(crop.crop_box, [40, 40, 60, 60])


def test_crop_pads_with_black_at_the_frame_border() -> None:
    image = np.full((200, 200, 3), 255, np.uint8)
    box = np.array([0, 0, 60, 60], np.float32)  # face in the corner: most of the margin falls outside the frame
    crop = crop_face(image, box, np.array([[0, 0]], np.float32), margin=2.0, size=120)
    left, top, right, bottom = crop.crop_box
    assert (left, top, right, bottom) == (-30, -30, 90, 90)
    assert crop.image[:25, :25].max() == 0  # padding outside the frame
    assert crop.image[40:, 40:].min() == 255  # the picture itself
    np.testing.assert_allclose(crop.keypoints[0], [30, 30], atol=0.5)


def test_iou() -> None:
    a = np.array([0, 0, 10, 10], np.float32)
    assert iou(a, a) == pytest.approx(1.0)
    assert iou(a, np.array([20, 20, 30, 30])) == 0.0
    assert iou(a, np.array([5, 0, 15, 10])) == pytest.approx(50 / 150)
    assert iou(a, np.array([2, 2, 4, 4])) == pytest.approx(4 / 100)
    assert iou(np.zeros(4), np.zeros(4)) == 0.0


def _obs(frame: int, box: tuple[float, float, float, float]) -> Observation:
    det = Detection(box=np.array(box, np.float32), confidence=0.99, keypoints=np.zeros((5, 2), np.float32))
    return Observation(frame_index=frame, time=frame / 25, detection=det, crop=np.zeros((4, 4, 3), np.uint8),
                       crop_keypoints=np.zeros((5, 2), np.float32))


def test_tracker_keeps_two_moving_faces_apart() -> None:
    """Two faces walk towards each other; each track must keep its own face (x positions stay monotonic)."""
    tracker = FaceTracker()
    for step in range(6):
        left = (50 + 20 * step, 100, 150 + 20 * step, 200)
        right = (450 - 20 * step, 110, 550 - 20 * step, 210)
        # detector order is by size, not identity: swap the order every other frame
        tracker.update([_obs(step, left), _obs(step, right)][:: 1 if step % 2 else -1])
    tracks = tracker.result()
    assert len(tracks) == 2
    for track in tracks:
        xs = [o.detection.box[0] for o in track.observations]
        assert len(xs) == 6
        assert xs == sorted(xs) or xs == sorted(xs, reverse=True)
    assert {round(float(t.observations[0].detection.box[1])) for t in tracks} == {100, 110}


def test_tracker_follows_a_fast_face_by_its_centre() -> None:
    """Sampled frames can be far apart: a face that moves by most of its width (IoU near 0) is still one track."""
    tracker = FaceTracker()
    for step in range(5):
        x = 100 + 70 * step
        tracker.update([_obs(step * 30, (x, 100, x + 100, 200))])
    tracks = tracker.result()
    assert len(tracks) == 1 and len(tracks[0].observations) == 5


def test_tracker_survives_missed_frames_but_not_long_gaps() -> None:
    tracker = FaceTracker(max_gap=2)
    box = (100, 100, 200, 200)
    tracker.update([_obs(0, box)])
    tracker.update([])  # detector missed the face once
    tracker.update([_obs(2, box)])
    for frame in range(3, 7):
        tracker.update([])
    tracker.update([_obs(7, box)])  # after a long absence: a new person
    tracks = tracker.result()
    assert [len(t.observations) for t in tracks] == [2, 1]


def test_max_faces_keeps_the_most_prominent_tracks() -> None:
    tracker = FaceTracker()
    for step in range(4):
        faces = [_obs(step, (0, 0, 50, 50)), _obs(step, (300, 0, 400, 100))]
        if step == 3:
            faces.append(_obs(step, (600, 0, 800, 200)))  # large but seen only once
        tracker.update(faces)
    assert len(tracker.result(max_faces=8)) == 3
    top = tracker.result(max_faces=1)
    assert len(top) == 1 and top[0].track_id == 0
    assert top[0].observations[0].detection.box[0] == 300  # seen in every frame and larger than the other
