"""Cross-identity blends: the source face is aligned onto the target by their landmarks and colour-matched, only the
masked region changes, sources are chosen by landmark shape, blends confined to a face region stay in it, and
training.synthetic_probe runs on a tiny pack."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import FACE_KPS, dense_face_landmarks
from skimage import data

from training import sbi, synthetic_probe
from training.cross_blend import BlendSources, choose_source, cross_blend, nearest_sources, normalised_shape

LANDMARKS = np.array(FACE_KPS, np.float32)


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return cv2.resize(np.ascontiguousarray(data.astronaut()[30:290, 100:360]), (224, 224))


def moved(image: np.ndarray, landmarks: np.ndarray, angle: float, scale: float, shift: tuple[float, float]):
    """The image and its landmarks under one similarity transform: the same face somewhere else in the crop."""
    matrix = cv2.getRotationMatrix2D((112, 112), angle, scale)
    matrix[:, 2] += shift
    out = cv2.warpAffine(image, matrix, (224, 224), borderMode=cv2.BORDER_REFLECT)
    return out, (np.c_[landmarks, np.ones(len(landmarks))] @ matrix.T).astype(np.float32)


@pytest.mark.parametrize("seed", range(3))
def test_the_source_face_is_aligned_onto_the_target_and_only_the_mask_changes(face: np.ndarray, seed: int) -> None:
    source, source_landmarks = moved(face, LANDMARKS, angle=12, scale=0.85, shift=(15, -10))
    blended, mask = cross_blend(face, LANDMARKS, source, source_landmarks, np.random.default_rng(seed))
    assert blended.shape == face.shape and blended.dtype == np.uint8
    outside, inside = mask <= 0, mask >= 0.9 * mask.max()  # the blend ratio may be partial
    assert outside.any() and inside.sum() > 2000
    np.testing.assert_array_equal(blended[outside], face[outside])
    # the source is the target moved: aligned back, the blend reproduces the target up to resampling
    assert np.abs(blended[inside].astype(int) - face[inside].astype(int)).mean() < 6
    assert np.abs(source[inside].astype(int) - face[inside].astype(int)).mean() > 20  # it was not aligned before


def test_the_source_takes_the_targets_colour_inside_the_face(face: np.ndarray) -> None:
    tinted = np.clip(face.astype(int) + [60, -30, -30], 0, 255).astype(np.uint8)
    blended, mask = cross_blend(face, LANDMARKS, tinted, LANDMARKS, np.random.default_rng(1))
    inside = mask >= 0.9 * mask.max()
    gap = np.abs(blended[inside].astype(float).mean(axis=0) - face[inside].astype(float).mean(axis=0))
    assert gap.max() < 4, gap  # without matching the red channel would sit about 60 levels off
    assert cross_blend(face, LANDMARKS, tinted, LANDMARKS, np.random.default_rng(1))[0].tobytes() == blended.tobytes()


def test_sources_are_chosen_by_landmark_shape_not_position_or_size() -> None:
    target = normalised_shape(LANDMARKS)
    same_shape = normalised_shape(LANDMARKS * 1.7 + 40)  # the same face shape, bigger and elsewhere
    turned = normalised_shape(moved(np.zeros((224, 224, 3), np.uint8), LANDMARKS, 35, 1.0, (0, 0))[1])
    squashed = normalised_shape(LANDMARKS * [1.0, 0.6])
    order = nearest_sources(target, np.stack([turned, squashed, same_shape]), k=3)
    assert order[0] == 2 and set(order) == {0, 1, 2}


def test_a_source_comes_from_another_group_or_none() -> None:
    shapes = np.stack([normalised_shape(LANDMARKS * s) for s in (1.0, 1.1, 0.9, 1.2)])
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert choose_source(0, shapes, ["a", "a", "b", "c"], rng) in (2, 3)
    assert choose_source(0, shapes, ["a", "a", "a", "a"], rng) is None


def test_region_masks_cover_their_part_of_the_face_only() -> None:
    """The lower face (lip-sync's region) never reaches the eyes, the inner face never the chin or the forehead the
    whole-face mask lifts into, and both are smaller than any whole-face mask; all cover the mouth."""
    dense = dense_face_landmarks()
    masks = {region: [sbi.face_mask(dense, (224, 224), np.random.default_rng(seed), region) for seed in range(30)]
             for region in sbi.REGIONS}
    smallest_face = min(m.sum() for m in masks["face"])
    for region in ("inner", "lower"):
        assert max(m.sum() for m in masks[region]) < smallest_face
        assert min(m[160, 112] for m in masks[region]) > 0.5  # the mouth
    assert max(m[100, 85] for m in masks["lower"]) == 0  # an eye
    assert min(m[100, 85] for m in masks["face"]) > 0.9
    assert max(m[200, 112] for m in masks["inner"]) == 0  # below the chin point's reach from the lips
    assert max(m[:60].max() for m in masks["inner"]) == 0
    assert any(m[:60].max() > 0 for m in masks["face"])  # the forehead


def test_region_share_zero_makes_the_whole_face_fakes_of_before(face: np.ndarray) -> None:
    """No random draw is spent on regions at share 0, so earlier runs' batches come out number for number; at share
    1 every fake leaves the forehead alone."""
    dense = dense_face_landmarks()
    tinted = np.clip(face.astype(int) + [40, -20, 10], 0, 255).astype(np.uint8)
    crops = [{"landmarks": dense.tolist(), "group": g} for g in ("a", "b")]
    blends, images = BlendSources(crops, [0, 1]), np.stack([face, tinted])
    for seed in range(3):
        rng = np.random.default_rng(seed)
        other = choose_source(0, blends.shapes, blends.groups, rng)
        before = cross_blend(face, dense, images[other], dense, rng)[0]
        assert blends.fake(0, images, np.random.default_rng(seed), True, 0.0).tobytes() == before.tobytes()
        partial = blends.fake(0, images, np.random.default_rng(seed), True, 1.0)
        changed = np.abs(partial.astype(int) - face.astype(int)).sum(axis=2) > 0
        assert changed.sum() > 500 and not changed[:60].any()


@pytest.mark.slow
def test_synthetic_probe_runs_on_a_tiny_pack(pack: Path, tmp_path: Path) -> None:
    """Pairs of each kind (a single-group source falls back to a self-blend), heads on frozen statistics, scored on
    every pool video; the figures land in the JSON."""
    from detector.classifier import DeepfakeClassifier
    from training.recipe import load_pack

    crops, images = load_pack(pack)
    reals, fakes = synthetic_probe.make_pairs(crops, images, "both", 4, np.random.default_rng(0))
    assert reals.shape == fakes.shape == (4, 224, 224, 3) and not np.array_equal(reals, fakes)
    init = tmp_path / "init.keras"
    DeepfakeClassifier("mobilenetv2", weights=None).save(init)
    out = tmp_path / "probe.json"
    assert synthetic_probe.main(["--pack", str(pack), "--init", str(init), "--pairs", "6", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())["kinds"]
    assert set(figures) == set(synthetic_probe.KINDS)
    for kind in figures.values():
        assert kind["pool_all_methods"]["fakes"] == 2 and kind["pool_all_methods"]["reals"] == 3
        assert kind["eval_crops"] is None  # the tiny pack's eval set holds one class only
