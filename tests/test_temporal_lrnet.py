"""The project's LRNet port against the published PyTorch recipe's own scores on fixture clips."""

from pathlib import Path

import numpy as np
import pytest

from detector.temporal.lrnet import build_lrnet, load_published_weights

FIXTURE = Path(__file__).parent / "fixtures" / "lrnet_parity.npz"
PEERS = Path(__file__).resolve().parents[2] / "shared" / "peers" / "lrnet"


def _published(weights: str, net: str) -> Path:
    path = PEERS / weights / f"{net}.pth"
    if not path.is_file():
        pytest.skip(f"published LRNet weights not here ({path})")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("weights", ["ffpp", "deeperforensics"])
@pytest.mark.parametrize("net", ["g1", "g2"])
def test_port_matches_published_scores(weights, net):
    fixture = np.load(FIXTURE)
    clips = fixture["clips"]
    inputs = clips if net == "g1" else np.diff(clips, axis=1)
    model = load_published_weights(build_lrnet(), _published(weights, net))
    scores = model.predict(inputs, verbose=0)[:, 1]
    assert np.abs(scores - fixture[f"{weights}_{net}"]).max() < 1e-4
    # the fixture spans both classes, so agreement is not a constant
    assert fixture[f"{weights}_{net}"].min() < 0.2 and fixture[f"{weights}_{net}"].max() > 0.8


@pytest.mark.slow
def test_a_state_dict_of_another_network_is_refused(tmp_path):
    from detector.models.torch_weights import load_state_dict  # noqa: F401  (the reader the loader uses)

    bogus = tmp_path / "bogus.pth"
    bogus.write_bytes(b"not a checkpoint")
    with pytest.raises(Exception):
        load_published_weights(build_lrnet(), bogus)
