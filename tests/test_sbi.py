"""Self-blended images: the fake differs from its source only inside the mask, and the mask covers the face."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from detector.face.faces import FaceDetector, crop_face
from training.data import sbi
from training.data.dense_landmarks import DlibLandmarks, FivePointLandmarks, find_predictor, load_landmark_model
from training.train import face_box_in_crop

LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_faces" / "lfw"

pytestmark = pytest.mark.slow  # MTCNN finds the face every test starts from


@pytest.fixture(scope="module")
def face() -> tuple[np.ndarray, np.ndarray]:
    """The astronaut's face cropped exactly as the scanner crops faces, with its MTCNN keypoints."""
    image = skdata.astronaut()
    det = FaceDetector().detect(image)[0]
    crop = crop_face(image, det.box, det.keypoints)
    return crop.image, crop.keypoints


@pytest.fixture(scope="module")
def dense(face) -> np.ndarray:
    if find_predictor() is None:
        pytest.skip("dlib's 68-point predictor is not installed (apt-get install libdlib-data)")
    return DlibLandmarks().predict(face[0], face_box_in_crop(face[0].shape[0]))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", ["dense", "five"])
def test_blend_changes_only_the_masked_region(face, dense, kind: str, seed: int) -> None:
    image, keypoints = face
    landmarks = dense if kind == "dense" else keypoints
    blended, mask = sbi.self_blend(image, landmarks, np.random.default_rng(seed))
    assert blended.shape == image.shape and blended.dtype == np.uint8
    assert mask.shape == image.shape[:2] and 0.0 <= mask.min() and mask.max() <= 1.0
    outside = mask <= 0
    assert outside.any()
    np.testing.assert_array_equal(blended[outside], image[outside])
    changed = np.abs(blended.astype(int) - image.astype(int)).sum(axis=2) > 0
    assert changed.sum() > 500, "a self-blend must alter the face"
    assert not (changed & outside).any()


def test_mask_covers_the_face_centre_and_not_the_corners(face, dense) -> None:
    image, keypoints = face
    for seed in range(5):
        mask = sbi.face_mask(dense, image.shape[:2], np.random.default_rng(seed))
        nose = keypoints[2].astype(int)
        assert mask[nose[1], nose[0]] > 0.9
        assert mask[0, 0] == 0 and mask[-1, -1] == 0 and mask[0, -1] == 0


def test_blend_is_deterministic_per_seed(face, dense) -> None:
    a = sbi.self_blend(face[0], dense, np.random.default_rng(3))[0]
    b = sbi.self_blend(face[0], dense, np.random.default_rng(3))[0]
    c = sbi.self_blend(face[0], dense, np.random.default_rng(4))[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_augment_keeps_shape_and_type(face) -> None:
    out = sbi.augment(face[0], np.random.default_rng(0))
    assert out.shape == face[0].shape and out.dtype == np.uint8 and out.flags["C_CONTIGUOUS"]


def test_dense_landmarks_sit_on_the_face(face, dense) -> None:
    image, keypoints = face
    assert dense.shape == (68, 2)
    assert (dense >= -5).all() and (dense <= image.shape[0] + 5).all()
    eyes_y = dense[36:48, 1].mean()
    mouth_y = dense[48:68, 1].mean()
    chin_y = dense[8, 1]
    assert eyes_y < mouth_y < chin_y
    # dlib's eye centres agree with MTCNN's within a tenth of the crop
    left_eye = dense[36:42].mean(axis=0)
    right_eye = dense[42:48].mean(axis=0)
    mtcnn_eyes = sorted(keypoints[:2].tolist())
    dlib_eyes = sorted([left_eye.tolist(), right_eye.tolist()])
    assert np.abs(np.array(mtcnn_eyes) - np.array(dlib_eyes)).max() < image.shape[0] / 10


def test_five_point_fallback(face, monkeypatch) -> None:
    image, keypoints = face
    outline = sbi.five_point_outline(keypoints)
    assert outline.shape[1] == 2 and len(outline) >= 12
    hull_area = cv2.contourArea(cv2.convexHull(outline))
    eye_dist = np.linalg.norm(keypoints[1] - keypoints[0])
    assert hull_area > 2 * eye_dist ** 2
    monkeypatch.setenv("DETECTOR_DLIB_PREDICTOR", "/nonexistent")
    monkeypatch.setattr("detector.temporal.landmarks.DEBIAN_PREDICTOR", Path("/nonexistent"))
    model = load_landmark_model("dlib")
    assert isinstance(model, FivePointLandmarks)
    np.testing.assert_array_equal(model.predict(image, face_box_in_crop(224), keypoints), keypoints)


def test_blend_on_real_lfw_faces(dense) -> None:
    if not LFW.is_dir():
        pytest.skip(f"LFW faces not found at {LFW} (shared data absent)")
    detector, landmarks = FaceDetector(), DlibLandmarks()
    for path in sorted(LFW.glob("*.jpg"))[:3]:
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        det = detector.detect(image)[0]
        crop = crop_face(image, det.box, det.keypoints)
        pts = landmarks.predict(crop.image, face_box_in_crop(224))
        blended, mask = sbi.self_blend(crop.image, pts, np.random.default_rng(0))
        np.testing.assert_array_equal(blended[mask <= 0], crop.image[mask <= 0])
        assert mask[112, 112] > 0
