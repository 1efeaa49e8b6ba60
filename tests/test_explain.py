"""Checks for detector.scan.explain, run for every registered explainer: heatmap shape and range, that the heatmap
points at what drives the score, and the overlay/montage images the report shows."""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pytest
from conftest import sample_faces, spread_head
from skimage import data

from detector import config
from detector.scan.explain import EXPLAINERS, _normalise, make_explainer, montage, overlay
from detector.models.model import build_classifier

SIZE = config.IMAGE_SIZE


@pytest.fixture(scope="module")
def task_model() -> keras.Model:
    """The real task network (random weights, head spread so its score depends on the input): what the scanner
    explains."""
    keras.utils.set_random_seed(0)
    net = build_classifier()
    spread_head(net, sample_faces())
    return net


@pytest.fixture(scope="module")
def brightness_model() -> keras.Model:
    """A tiny flat CNN whose score grows with brightness everywhere, so the bright region is, by construction,
    what raised the score: a correct CAM must light up there and stay dark elsewhere."""
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    net = keras.Model(inputs, outputs)
    for layer in net.layers[1:3]:
        kernel, bias = layer.get_weights()
        layer.set_weights([np.full_like(kernel, 1 / kernel[..., 0].size), np.zeros_like(bias)])
    kernel, bias = net.layers[-1].get_weights()
    net.layers[-1].set_weights([np.full_like(kernel, 0.01), np.full_like(bias, -1.0)])
    return net


def face_crops() -> np.ndarray:
    """A tight and a loose crop of a real face at the model's input size."""
    astro = data.astronaut()
    return np.stack([cv2.resize(astro[40:200, 150:300], (SIZE, SIZE)), cv2.resize(astro, (SIZE, SIZE))])


def test_every_method_is_registered() -> None:
    assert {"gradcam", "gradcam++"} <= set(EXPLAINERS)  # the command line's --cam choices


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(EXPLAINERS))
def test_heatmaps_of_the_task_model(task_model: keras.Model, method: str) -> None:
    explainer = make_explainer(method, task_model)
    maps = explainer.heatmaps(face_crops())
    assert maps.shape == (2, SIZE, SIZE) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0
    assert maps.reshape(2, -1).max(axis=1) == pytest.approx([1.0, 1.0])  # each map uses the full range
    assert maps[0].std() > 0.01
    assert explainer.heatmaps(np.zeros((0, SIZE, SIZE, 3), np.uint8)).shape == (0, SIZE, SIZE)
    np.testing.assert_allclose(explainer.heatmaps(face_crops()), maps, atol=1e-5)  # as a graph, where it can be one
    assert explainer.compiled == EXPLAINERS[method].compilable


@pytest.mark.parametrize("method", sorted(EXPLAINERS))
def test_heatmap_points_at_what_raised_the_score(brightness_model: keras.Model, method: str) -> None:
    image = np.zeros((2, 64, 64, 3), np.uint8)
    image[0, 4:28, 4:28] = 255  # bright top-left
    image[1, 36:60, 36:60] = 255  # bright bottom-right
    maps = make_explainer(method, brightness_model).heatmaps(image, batch_size=1)
    assert maps.shape == (2, 64, 64)
    assert maps[0, 8:24, 8:24].mean() > 0.6 and maps[0, 40:56, 40:56].mean() < 0.1
    assert maps[1, 40:56, 40:56].mean() > 0.6 and maps[1, 8:24, 8:24].mean() < 0.1


@pytest.mark.parametrize("method", sorted(EXPLAINERS))
def test_calls_after_the_first_run_as_a_graph_and_give_the_same_maps(brightness_model: keras.Model,
                                                                     method: str) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    explainer = make_explainer(method, brightness_model)
    eager = explainer.heatmaps(images, batch_size=2)  # chunks of 2 and 1: the graph pads the second
    assert not explainer.compiled
    again = explainer.heatmaps(images, batch_size=2)
    assert explainer.compiled == EXPLAINERS[method].compilable
    np.testing.assert_allclose(again, eager, atol=1e-5)
    np.testing.assert_allclose(explainer.heatmaps(images[2:], batch_size=2), eager[2:], atol=1e-5)


def test_unknown_method_is_a_value_error(brightness_model: keras.Model) -> None:
    with pytest.raises(ValueError, match="unknown explanation method"):
        make_explainer("lime", brightness_model)


def test_normalise_scales_to_unit_range_and_keeps_flat_maps_at_zero() -> None:
    np.testing.assert_allclose(_normalise(np.array([[2.0, 4.0], [6.0, 10.0]])), [[0, 0.25], [0.5, 1.0]])
    np.testing.assert_array_equal(_normalise(np.full((3, 3), 7.0)), np.zeros((3, 3)))
    assert np.isfinite(_normalise(np.array([[np.nan, 1.0], [0.0, 2.0]]))).all()


def test_overlay_blends_a_colour_map_over_the_crop() -> None:
    crop = np.full((SIZE, SIZE, 3), 128, np.uint8)
    heat = np.zeros((SIZE, SIZE), np.float32)
    heat[:, SIZE // 2:] = 1.0
    out = overlay(crop, heat)
    assert out.shape == crop.shape and out.dtype == np.uint8
    hot, cold = out[:, -1].mean(axis=0), out[:, 0].mean(axis=0)
    assert hot[0] > hot[2] and cold[2] > cold[0]  # jet: high = red, low = blue (RGB order)
    np.testing.assert_array_equal(overlay(crop, heat, alpha=0.0), crop)


def test_montage_tiles_images_in_a_grid() -> None:
    tiles = [np.full((20, 30, 3), i * 40, np.uint8) for i in range(5)]
    sheet = montage(tiles, columns=2, pad=4)
    assert sheet.shape == (3 * 24 + 4, 2 * 34 + 4, 3)
    assert sheet[4, 4].tolist() == [0, 0, 0] and sheet[4 + 24, 4 + 34].tolist() == [120] * 3
    assert sheet[-5, -5].tolist() == [255] * 3  # the empty sixth cell stays white
    odd = montage([tiles[0], np.zeros((10, 10, 3), np.uint8)], columns=4)
    assert odd.shape == (28, 2 * 34 + 4, 3)  # other sizes are resized to the first tile's
    with pytest.raises(ValueError):
        montage([])
