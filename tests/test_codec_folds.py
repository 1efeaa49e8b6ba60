"""Codec augmentation (real H.264 damage that grows with CRF, label-blind) and the leave-one-method-out splitter
(no group on both sides, every real scored out of fold exactly once)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from training.data import codec
from training.data.folds import PoolItem, fold_slug, method_folds


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    face = data.astronaut()[40:264, 110:334]  # 224x224 around the face
    return np.stack([face, face[:, ::-1]])


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255 ** 2 / mse)


@pytest.mark.skipif(not codec.ffmpeg_available(), reason="ffmpeg is not installed")
def test_h264_roundtrip_damages_more_at_higher_crf(crops: np.ndarray) -> None:
    light, heavy = codec.h264_roundtrip(crops, 18), codec.h264_roundtrip(crops, 40)
    assert light.shape == heavy.shape == crops.shape and light.dtype == np.uint8
    assert _psnr(crops, light) > 30  # near-transparent (measured 34.6 dB; 4:2:0 chroma costs some)
    assert _psnr(crops, heavy) < _psnr(crops, light) - 6  # visibly blocky
    assert not np.array_equal(light, crops)


def test_h264_refuses_odd_sizes() -> None:
    with pytest.raises(ValueError):
        codec.h264_roundtrip(np.zeros((1, 15, 16, 3), np.uint8), 23)


def test_damage_is_label_blind_and_reproducible(crops: np.ndarray) -> None:
    a = codec.damage_batch(crops, np.random.default_rng(3), use_h264=codec.ffmpeg_available())
    b = codec.damage_batch(crops, np.random.default_rng(3), use_h264=codec.ffmpeg_available())
    np.testing.assert_array_equal(a, b)  # the damage depends on the draw only, never on what the crop is
    assert a.shape == crops.shape
    assert codec.rescale_roundtrip(crops[0], 0.4).shape == crops[0].shape
    assert _psnr(crops[0], codec.jpeg_roundtrip(crops[0], 30)) < _psnr(crops[0], codec.jpeg_roundtrip(crops[0], 95))


def _pool() -> list[PoolItem]:
    items = []
    for i in range(6):  # face-swap pairs: fake and real halves of the same footage share a group
        items += [PoolItem(f"swap{i}_fake", 1, "swap", f"pair{i}"), PoolItem(f"swap{i}_real", 0, "", f"pair{i}")]
    items += [PoolItem(f"talk{i}", 1, "talk", f"talk{i}") for i in range(5)]
    items += [PoolItem(f"reen{i}", 1, "reenact", "reen_shared") for i in range(2)]  # two fakes, one group
    items += [PoolItem(f"real{i}", 0, "", f"person{i // 2}") for i in range(12)]  # two clips per person
    return items


def test_leave_one_method_out_keeps_groups_apart() -> None:
    items = _pool()
    folds = method_folds(items)
    assert [f.method for f in folds] == ["reenact", "swap", "talk"]
    for fold in folds:
        train_groups, test_groups = {i.group for i in fold.train}, {i.group for i in fold.test}
        assert not train_groups & test_groups
        assert {i.method for i in fold.test if i.label == 1} == {fold.method}
        assert fold.method not in {i.method for i in fold.train}
        assert any(i.label == 0 for i in fold.test) and any(i.label == 0 for i in fold.train)
    # pooled over folds, every real is tested exactly once and every fake exactly once
    tested = [i.item for f in folds for i in f.test]
    assert sorted(tested) == sorted(i.item for i in items)


def test_leave_one_method_out_needs_fakes() -> None:
    with pytest.raises(ValueError):
        method_folds([PoolItem("a", 0, "", "g")])


def test_fold_slugs_are_safe_file_names() -> None:
    """Fold models are saved under their method's name: path separators and brackets never reach the file system."""
    assert fold_slug("deep-live-cam(inswapper)") == "deep-live-cam_inswapper_"
    assert fold_slug("vasa-1") == "vasa-1"
    assert fold_slug("../x y/z") == ".._x_y_z"
