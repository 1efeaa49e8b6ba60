"""The transfer recipe's batch maker on a tiny pack made by the test: half real, half fake, label-blind damage,
same-footage pairs from one group, held-out methods never drawn, and reproducible from (seed, index)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from training import recipe

FACE_KPS = [[85, 100], [139, 100], [112, 130], [90, 160], [134, 160]]


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pack")
    (root / "crops").mkdir()
    face = cv2.resize(np.ascontiguousarray(data.astronaut()[30:290, 100:360]), (224, 224))
    specs = [  # role, item, label, method, group, brightness
        ("pool", "stream_real", 0, "", "stream", 0), ("pool", "stream_fake", 1, "swap", "stream", 40),
        ("pool", "talk_fake", 1, "talk", "talk", 80), ("pool", "webcam_real", 0, "", "webcam", -30),
        ("real", "lfw_a", 0, "", "lfw_a", 20), ("eval", "labelled", 1, "", "labelled", 0),
    ]
    crops = []
    for n, (role, item, label, method, group, shift) in enumerate(specs):
        for k in range(2):
            name = f"{n}_{k}.jpg"
            image = np.clip(face.astype(int) + shift, 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / "crops" / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            entry = {"file": name, "role": role, "dataset": role, "item": item, "label": label, "method": method,
                     "group": group, "track": 0, "counted": True}
            if label == 0 and role != "eval":
                entry["landmarks"] = FACE_KPS
            crops.append(entry)
    (root / "meta.json").write_text(json.dumps({"image_size": 224, "crops": crops}))
    return root


@pytest.fixture
def worker(pack: Path):
    recipe._init_worker(str(pack), {"batch_size": 16, "sbi_share": 0.4, "paired_share": 0.3, "h264": False})
    yield recipe._STATE
    recipe._STATE.clear()


def test_batches_are_half_real_half_fake_and_reproducible(worker) -> None:
    x, y = recipe.make_batch(("all", 3, 7))
    assert x.shape == (16, 224, 224, 3) and x.dtype == np.uint8
    assert y.sum() == 8
    x2, y2 = recipe.make_batch(("all", 3, 7))
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(x, recipe.make_batch(("all", 3, 8))[0])


def test_pools_respect_roles_and_pairs(worker) -> None:
    crops = worker["crops"]
    everything = recipe._sampler("all")
    names = lambda idx: {crops[i]["item"] for i in idx}  # noqa: E731
    assert names(everything.pool_fakes) == {"stream_fake", "talk_fake"}
    assert "labelled" not in names(everything.sbi_reals + everything.pool_reals)  # the eval set is never trained on
    assert len(everything.paired) == 1  # the stream's real and fake halves
    # the fold that holds "talk" out never draws it, nor anything of its group
    held_out = recipe._sampler("talk")
    assert names(held_out.pool_fakes) == {"stream_fake"}


def test_video_scores_use_the_scanners_rule() -> None:
    crops = [{"item": "v", "track": 0, "counted": True}, {"item": "v", "track": 0, "counted": True},
             {"item": "v", "track": 1, "counted": False}]
    scores = recipe.video_scores(crops, np.array([0.2, 0.4, 0.99]), {"v"})
    assert scores == {"v": pytest.approx(0.3)}  # the uncounted track's 0.99 does not decide
