"""Read PyTorch ``.pth`` checkpoints into numpy arrays without torch and without trusting the pickle.

Why this exists: the only ImageNet weights that install offline here ship as PyTorch checkpoints, and torch is not a
dependency of this project (it would add gigabytes for a file read). A ``.pth`` file is a Python pickle, and an
ordinary :func:`pickle.load` will import and call *any* callable the file names (``os.system`` included), so loading
an untrusted checkpoint with it is running untrusted code. The reader here uses a :class:`pickle.Unpickler` whose
``find_class`` knows only the handful of names a state dict needs (the tensor-rebuild helpers, the storage types and
``collections.OrderedDict``), maps them to small local stand-ins and refuses everything else, so a hostile file fails
with :class:`UnsafePickleError` before anything it names is imported or called.

Both on-disk layouts are supported:

* the legacy format (``torch.save(..., _use_new_zipfile_serialization=False)``, and everything before torch 1.6): a
  run of pickles (magic number, protocol version, system info, the object, the storage keys) followed by each
  storage's raw bytes, each prefixed by its element count;
* the zip format (the default since torch 1.6): ``<root>/data.pkl`` plus one ``<root>/data/<key>`` member per storage.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

#: The first pickle in a legacy-format file (torch.serialization.MAGIC_NUMBER).
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
#: The protocol version torch writes after the magic number in a legacy file.
_LEGACY_PROTOCOL = 1001

#: torch storage class name -> numpy dtype of its elements ("bfloat16" has no numpy dtype: read as uint16 and widen).
_STORAGE_DTYPES: dict[str, str] = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
}

#: Top-level keys that training scripts commonly wrap a state dict in.
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")


class UnsafePickleError(pickle.UnpicklingError):
    """The checkpoint names a global that a plain state dict never needs (possibly an attempt to run code)."""


class CheckpointFormatError(ValueError):
    """The file is not a PyTorch checkpoint this reader understands, or its tensors do not fit their storages."""


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for ``torch.FloatStorage`` and friends: only carries the element dtype."""

    name: str
    dtype: str

    @property
    def itemsize(self) -> int:
        return 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize

    def decode(self, raw: bytes, big_endian: bool) -> np.ndarray:
        """Raw storage bytes -> a 1-D numpy array (bfloat16 is widened to float32, exactly)."""
        if self.dtype == "bfloat16":
            half = np.frombuffer(raw, np.dtype(">u2" if big_endian else "<u2"))
            return (half.astype(np.uint32) << 16).view(np.float32)
        dtype = np.dtype(self.dtype)
        if dtype.itemsize > 1:
            dtype = dtype.newbyteorder(">" if big_endian else "<")
        return np.frombuffer(raw, dtype).astype(dtype.newbyteorder("="), copy=False)


@dataclass
class _Storage:
    """A storage the pickle refers to by key; its bytes arrive later in the legacy format, so it fills in lazily."""

    kind: _StorageType
    numel: int
    data: np.ndarray | None = None


@dataclass
class _StorageView:
    """A slice of another storage (legacy format ``view_metadata``)."""

    base: _Storage
    offset: int
    numel: int

    @property
    def kind(self) -> _StorageType:
        return self.base.kind

    @property
    def data(self) -> np.ndarray | None:
        if self.base.data is None:
            return None
        return self.base.data[self.offset:self.offset + self.numel]


@dataclass
class _TensorRef:
    """What ``_rebuild_tensor_v2`` returns here: where a tensor lives; turned into an array once storages are read."""

    storage: _Storage | _StorageView
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    def materialize(self) -> np.ndarray:
        """Copy the tensor out of its storage, checking it stays inside the storage (a hostile file could lie)."""
        flat = self.storage.data
        if flat is None:
            raise CheckpointFormatError("a tensor refers to a storage whose data is missing from the file")
        size, stride, offset = tuple(int(s) for s in self.size), tuple(int(s) for s in self.stride), int(self.offset)
        if len(size) != len(stride) or any(s < 0 for s in size) or any(s < 0 for s in stride) or offset < 0:
            raise CheckpointFormatError(f"invalid tensor geometry size={size} stride={stride} offset={offset}")
        if 0 in size:
            return np.zeros(size, flat.dtype)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= flat.size:
            raise CheckpointFormatError(f"tensor of size {size} at offset {offset} overruns its storage "
                                        f"of {flat.size} elements")
        view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                               strides=tuple(s * flat.itemsize for s in stride), writeable=False)
        return np.array(view, copy=True)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None) -> _TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor_v2`` (grad flags and hooks do not matter for weights)."""
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_tensor(storage, storage_offset, size, stride) -> _TensorRef:
    """Stand-in for the older ``torch._utils._rebuild_tensor``."""
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None) -> _TensorRef:
    """Stand-in for ``torch._utils._rebuild_parameter`` (a Parameter is its tensor, for our purposes)."""
    if not isinstance(data, _TensorRef):
        raise CheckpointFormatError("a Parameter in the checkpoint does not wrap a tensor")
    return data


#: The complete list of globals a checkpoint may name, each mapped to a harmless local stand-in.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    **{("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild a state dict and nothing else.

    ``find_class`` is where pickle turns a ``module.name`` reference into a live object (and so where a malicious
    pickle gets hold of ``os.system``); here it only answers from :data:`_ALLOWED_GLOBALS`. Persistent ids (how
    torch refers to tensor storages) are handed to ``storage_loader``; without one, any persistent id is refused.
    """

    def __init__(self, file: IO[bytes], storage_loader=None):
        super().__init__(file)
        self._storage_loader = storage_loader

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"checkpoint refers to {module}.{name}, which a weights file does not need; "
                                    "refusing to load it (an untrusted pickle can run arbitrary code)") from None

    def persistent_load(self, pid: Any) -> Any:
        if self._storage_loader is None:
            raise UnsafePickleError(f"unexpected persistent id {pid!r} in this part of the checkpoint")
        return self._storage_loader(pid)


def _ascii(value: Any) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def _load_legacy(f: IO[bytes]) -> Any:
    """The pre-1.6 layout: header pickles, the object pickle, the key list, then each storage's bytes in that order."""
    if RestrictedUnpickler(f).load() != _LEGACY_MAGIC:
        raise CheckpointFormatError("not a PyTorch checkpoint (bad magic number)")
    protocol = RestrictedUnpickler(f).load()
    if protocol != _LEGACY_PROTOCOL:
        raise CheckpointFormatError(f"unsupported legacy checkpoint protocol {protocol!r}")
    sys_info = RestrictedUnpickler(f).load()
    big_endian = isinstance(sys_info, Mapping) and sys_info.get("little_endian") is False
    storages: dict[str, _Storage] = {}

    def load_storage(pid: Any) -> _Storage | _StorageView:
        if not isinstance(pid, tuple) or len(pid) != 6 or _ascii(pid[0]) != "storage":
            raise UnsafePickleError(f"unexpected persistent id {pid!r}")
        _, kind, key, _location, numel, view = pid
        if not isinstance(kind, _StorageType):
            raise CheckpointFormatError(f"unknown storage type {kind!r}")
        key = _ascii(key)
        storage = storages.setdefault(key, _Storage(kind, int(numel)))
        if view is not None:
            _view_key, offset, view_numel = view
            return _StorageView(storage, int(offset), int(view_numel))
        return storage

    result = RestrictedUnpickler(f, load_storage).load()
    keys = RestrictedUnpickler(f).load()
    if not isinstance(keys, list):
        raise CheckpointFormatError("legacy checkpoint has no storage key list")
    for key in keys:
        storage = storages.get(_ascii(key))
        if storage is None:
            raise CheckpointFormatError(f"storage {key!r} is listed but never used")
        header = f.read(8)
        if len(header) != 8:
            raise CheckpointFormatError("checkpoint is truncated (storage header)")
        (numel,) = struct.unpack(">q" if big_endian else "<q", header)
        if numel != storage.numel:
            raise CheckpointFormatError(f"storage {key!r} has {numel} elements, the pickle said {storage.numel}")
        nbytes = numel * storage.kind.itemsize
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise CheckpointFormatError("checkpoint is truncated (storage data)")
        storage.data = storage.kind.decode(raw, big_endian)
    return result


def _load_zip(path: Path) -> Any:
    """The torch >= 1.6 layout: ``<root>/data.pkl`` and one ``<root>/data/<key>`` member per storage."""
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise CheckpointFormatError(f"{path}: zip file is not a PyTorch checkpoint (no single data.pkl)")
        root = pickles[0][: -len("data.pkl")]
        names = set(archive.namelist())
        byteorder_name = f"{root}byteorder"
        big_endian = byteorder_name in names and archive.read(byteorder_name).strip() == b"big"
        storages: dict[str, _Storage] = {}

        def load_storage(pid: Any) -> _Storage:
            if not isinstance(pid, tuple) or len(pid) != 5 or _ascii(pid[0]) != "storage":
                raise UnsafePickleError(f"unexpected persistent id {pid!r}")
            _, kind, key, _location, numel = pid
            if not isinstance(kind, _StorageType):
                raise CheckpointFormatError(f"unknown storage type {kind!r}")
            key = _ascii(key)
            if key not in storages:
                member = f"{root}data/{key}"
                if member not in names:
                    raise CheckpointFormatError(f"{path}: storage {key!r} is missing from the archive")
                raw = archive.read(member)
                nbytes = int(numel) * kind.itemsize
                if len(raw) < nbytes:
                    raise CheckpointFormatError(f"{path}: storage {key!r} is shorter than its {numel} elements")
                storages[key] = _Storage(kind, int(numel), kind.decode(raw[:nbytes], big_endian))
            return storages[key]

        return RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), load_storage).load()


def _materialize(obj: Any) -> Any:
    """Replace every tensor reference in a loaded structure with its numpy array."""
    if isinstance(obj, _TensorRef):
        return obj.materialize()
    if isinstance(obj, Mapping):
        return {k: _materialize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v) for v in obj)
    return obj


def _flatten(obj: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """Nested mappings of arrays -> one ``{"a.b.c": array}`` dict (non-array leaves such as epoch counters dropped)."""
    out: dict[str, np.ndarray] = {}
    if isinstance(obj, np.ndarray):
        out[prefix] = obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def load_torch_checkpoint(path: str | os.PathLike) -> Any:
    """The checkpoint's object with every tensor as a numpy array (for files that hold more than a state dict)."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        return _materialize(_load_zip(path))
    with open(path, "rb") as f:
        if f.read(1) != b"\x80":
            raise CheckpointFormatError(f"{path}: not a pickle-based PyTorch checkpoint")
        f.seek(0)
        try:
            return _materialize(_load_legacy(f))
        except (EOFError, struct.error) as exc:
            raise CheckpointFormatError(f"{path}: truncated or corrupt checkpoint ({exc})") from None


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Parameter name -> numpy array for a ``.pth`` state dict, safely (see the module docstring for why).

    Common wrappers (``{"state_dict": ...}``, ``{"model": ...}``) are unwrapped; nested dicts flatten to dotted keys.
    Raises :class:`UnsafePickleError` for a pickle that names anything beyond what tensors need, and
    :class:`CheckpointFormatError` for files that are not checkpoints or whose tensors do not fit their storages.
    """
    obj = load_torch_checkpoint(path)
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and any(isinstance(v, np.ndarray) for v in inner.values()):
                obj = inner
                break
    state = _flatten(obj)
    if not state:
        raise CheckpointFormatError(f"{path}: no tensors found in the checkpoint")
    return state
