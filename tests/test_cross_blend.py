"""Cross-identity blends: the source face is aligned onto the target by their landmarks and colour-matched, only the
masked region changes, sources are chosen by landmark shape, blends confined to a face region stay in it, the
piecewise warp gives the source the target's face shape, expression blends take another frame of the same track,
and training.experiments.synthetic_probe runs on a tiny pack."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import FACE_KPS, dense_face_landmarks
from skimage import data

from training.data import sbi
from training.experiments import synthetic_probe
from training.data.cross_blend import (BlendSources, choose_source, cross_blend, nearest_sources, normalised_shape,
                                  piecewise_map)

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


def _other_shape(dense: np.ndarray) -> np.ndarray:
    """Another face shape: the same landmarks turned and moved, with the mouth opened and the jaw widened, which
    no similarity transform undoes."""
    matrix = cv2.getRotationMatrix2D((112, 112), 8, 0.9)
    matrix[:, 2] += (6, -4)
    out = dense @ matrix[:, :2].T + matrix[:, 2]
    out[48:68, 1] += np.where(out[48:68, 1] > out[48:68, 1].mean(), 9, -3)
    out[0:17, 0] += (out[0:17, 0] - out[0:17, 0].mean()) * 0.15
    return out.astype(np.float32)


def test_piecewise_map_reads_each_target_landmark_at_its_source_twin() -> None:
    """Every target landmark reads the source at the matching landmark, which one similarity transform cannot do
    for another face shape; for a source that is an exact similarity of the target, the map is that transform."""
    target = dense_face_landmarks()
    source = _other_shape(target)
    mx, my = piecewise_map(source, target, (224, 224))
    cols, rows = np.round(target[:, 0]).astype(int), np.round(target[:, 1]).astype(int)
    read = np.c_[mx[rows, cols], my[rows, cols]]
    expected = np.c_[source] + (np.c_[cols, rows] - target) * 1.0  # the rounding of the pixel, nearly 1:1 here
    assert np.abs(read - expected).max() < 0.6
    matrix, _ = cv2.estimateAffinePartial2D(target, source)
    by_similarity = np.c_[cols, rows] @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(by_similarity - source).max() > 5  # the shapes differ: one transform misses the mouth by pixels

    matrix = cv2.getRotationMatrix2D((100, 120), -12, 1.1)
    similar = (target @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)
    mx, my = piecewise_map(similar, target, (224, 224))
    ys, xs = np.mgrid[0:224, 0:224]
    np.testing.assert_allclose(mx, xs * matrix[0, 0] + ys * matrix[0, 1] + matrix[0, 2], atol=1e-3)
    np.testing.assert_allclose(my, xs * matrix[1, 0] + ys * matrix[1, 1] + matrix[1, 2], atol=1e-3)


def test_piecewise_blends_land_the_sources_features_on_the_targets(face: np.ndarray) -> None:
    """A source with a dark dot on every landmark, blended onto a target of another shape: piecewise puts the dots on
    the target's landmarks, the similarity transform leaves the mouth's off them. Degenerate landmarks fall back to
    the similarity warp; an unknown warp is an error."""
    target = dense_face_landmarks()
    source_lm = _other_shape(target)
    source = np.full((224, 224, 3), 200, np.uint8)
    for x, y in source_lm:
        cv2.circle(source, (int(round(x)), int(round(y))), 2, (0, 0, 0), -1)
    plain = np.random.default_rng(1).normal(150, 20, (224, 224, 3)).clip(0, 255).astype(np.uint8)
    mouth = np.round(target[48:60]).astype(int)

    def darkening(warp: str) -> float:
        """How much darker than the target the blend is at the target's mouth landmarks, over full blends."""
        out = []
        for seed in range(6):
            blended, mask = cross_blend(plain, target, source, source_lm, np.random.default_rng(seed), "face", warp)
            if mask.max() > 0.99:
                out.append(np.mean(plain[mouth[:, 1], mouth[:, 0]].astype(float)
                                   - blended[mouth[:, 1], mouth[:, 0]].astype(float)))
        assert out
        return float(np.mean(out))

    assert darkening("piecewise") > 40 > darkening("similarity") + 20
    flat = np.zeros_like(target)
    assert piecewise_map(target, flat, (224, 224)) is None
    fallback = cross_blend(face, flat, face, target, np.random.default_rng(0), "face", "piecewise")[0]
    assert fallback.tobytes() == cross_blend(face, flat, face, target, np.random.default_rng(0))[0].tobytes()
    with pytest.raises(ValueError, match="unknown warp"):
        cross_blend(face, target, face, target, np.random.default_rng(0), "face", "mesh")


def test_warp_share_zero_draws_nothing_and_one_warps_every_cross_blend(face: np.ndarray) -> None:
    """At share 0 the fakes are those of before the option, byte for byte (earlier runs' batches stay as they were);
    at share 1 every cross-identity blend is the piecewise one."""
    dense = dense_face_landmarks()
    other = _other_shape(dense)
    tinted = np.clip(face.astype(int) + [40, -20, 10], 0, 255).astype(np.uint8)
    crops = [{"landmarks": dense.tolist(), "group": "a"}, {"landmarks": other.tolist(), "group": "b"}]
    blends, images = BlendSources(crops, [0, 1]), np.stack([face, tinted])
    for seed in range(3):
        rng = np.random.default_rng(seed)
        choose_source(0, blends.shapes, blends.groups, rng)
        before = cross_blend(face, dense, tinted, other, rng)[0]
        assert blends.fake(0, images, np.random.default_rng(seed), True).tobytes() == before.tobytes()
        rng = np.random.default_rng(seed)
        choose_source(0, blends.shapes, blends.groups, rng)
        rng.random()  # the warp's draw
        shaped = cross_blend(face, dense, tinted, other, rng, "face", "piecewise")[0]
        warped = blends.fake(0, images, np.random.default_rng(seed), True, 0.0, 1.0)
        assert warped.tobytes() == shaped.tobytes() and warped.tobytes() != before.tobytes()


def test_expression_share_takes_the_source_from_the_same_face_track(face: np.ndarray) -> None:
    """At share 1 a crop with other frames of its own track is blended with one of them (never with the other
    person's face); a crop alone in its track falls back to another group's face; share 0 is the default's draw."""
    dense = dense_face_landmarks()
    other = _other_shape(dense)
    frames = [np.clip(face.astype(int) + tint, 0, 255).astype(np.uint8) for tint in ([0, 0, 0], [30, 0, 0],
                                                                                   [0, 30, 0], [0, 0, 40])]
    crops = [{"landmarks": dense.tolist(), "group": "a", "role": "real", "item": "clip", "track": 0},
             {"landmarks": other.tolist(), "group": "a", "role": "real", "item": "clip", "track": 0},
             {"landmarks": dense.tolist(), "group": "a", "role": "real", "item": "clip", "track": 0},
             {"landmarks": other.tolist(), "group": "b", "role": "real", "item": "still", "track": 0}]
    blends, images = BlendSources(crops, [0, 1, 2, 3]), np.stack(frames)
    assert blends.track_mates == [[1, 2], [0, 2], [0, 1], []]
    landmarks = [dense, other, dense, other]
    for seed in range(4):
        rng = np.random.default_rng(seed)
        rng.random()  # the expression draw
        mate = [1, 2][int(rng.integers(2))]
        expected = cross_blend(frames[0], dense, frames[mate], landmarks[mate], rng)[0]
        got = blends.fake(0, images, np.random.default_rng(seed), True, expression_share=1.0)
        assert got.tobytes() == expected.tobytes()
        # the still has no other frame: another group's face, drawn as without the option
        rng = np.random.default_rng(seed)
        rng.random()
        source = choose_source(3, blends.shapes, blends.groups, rng)
        assert source in (0, 1, 2)
        expected = cross_blend(frames[3], other, frames[source], landmarks[source], rng)[0]
        assert blends.fake(3, images, np.random.default_rng(seed), True, expression_share=1.0).tobytes() == \
            expected.tobytes()
        assert blends.fake(0, images, np.random.default_rng(seed), True, expression_share=0.0).tobytes() == \
            blends.fake(0, images, np.random.default_rng(seed), True).tobytes()


@pytest.mark.slow
def test_synthetic_probe_runs_on_a_tiny_pack(pack: Path, tmp_path: Path) -> None:
    """Pairs of each kind (a single-group source falls back to a self-blend), heads on frozen statistics, scored on
    every pool video; the figures land in the JSON."""
    from detector.models.classifier import DeepfakeClassifier
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
