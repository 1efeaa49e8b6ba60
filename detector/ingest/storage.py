"""Where a distributed scan reads its inputs and writes its results: local paths, ``s3://`` and ``gs://`` URIs.

Object stores go through ``pyarrow.fs`` (installed with Ray Data), which takes credentials and endpoints from the
usual places: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` for an S3-compatible server,
instance roles, ``GOOGLE_APPLICATION_CREDENTIALS``. ffmpeg needs a real file, so a worker copies its object to a
temporary file for the scan and deletes it afterwards; results are written to a temporary folder and uploaded.

Plain paths stay plain paths, so a folder scan names its results exactly as the local engine does (and a rerun with
either engine can resume the other's results). The scan modules (and with them TensorFlow) are imported only where a
listing needs them, so the command line can check a location instantly.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

from detector.errors import DetectorError, InputError

#: URI schemes read and written through ``pyarrow.fs``; anything else is a local path.
REMOTE_SCHEMES = ("s3", "gs")


def is_remote(location: str) -> bool:
    """True for ``s3://...`` and ``gs://...`` locations."""
    scheme, sep, _ = str(location).partition("://")
    return bool(sep) and scheme.lower() in REMOTE_SCHEMES


@dataclass(frozen=True)
class InputFile:
    """One file to scan: where a worker opens it, how the results call it, and its result folder name."""

    source: str
    display: str
    name: str
    #: what its stored result must match to be reused (see :func:`detector.ingest.inputs.input_identity`)
    identity: dict | None = None


@functools.lru_cache(maxsize=16)
def _filesystem(scheme: str, bucket: str):
    """One pyarrow filesystem per bucket and process (creating an S3 client is not free)."""
    from pyarrow import fs as pafs

    filesystem, _ = pafs.FileSystem.from_uri(f"{scheme}://{bucket}")
    return filesystem


def resolve(location: str):
    """``(filesystem, path inside it)`` for a remote URI."""
    scheme, _, rest = str(location).partition("://")
    bucket = rest.split("/", 1)[0]
    if not bucket:
        raise InputError(f"{location}: no bucket in this URI")
    return _filesystem(scheme.lower(), bucket), rest.rstrip("/")


def join(location: str, *parts: str) -> str:
    """``location/part/...`` for a URI or a local path."""
    if is_remote(location):
        return "/".join([str(location).rstrip("/"), *parts])
    return str(Path(location).joinpath(*parts))


def list_inputs(location: str) -> list[InputFile]:
    """The media files under ``location`` (a file or a folder, scanned recursively), in a stable order.

    Local paths use the local engine's own listing and names; a bucket prefix is filtered the same way (media
    endings, hidden files and folders skipped)."""
    from detector.ingest.inputs import (MEDIA_SUFFIXES, RESULT_FILE, RESULTS_MARKER, SUMMARY_FILE, folder_name,
                                        input_identity, local_identity)

    if not is_remote(location):
        from detector.ingest.inputs import list_inputs as list_local

        files, root = list_local(Path(location))
        return [InputFile(str(path.resolve()), str(path), folder_name(path, root), local_identity(path, root))
                for path in files]
    from pyarrow import fs as pafs

    scheme = str(location).partition("://")[0].lower()
    try:
        filesystem, path = resolve(location)
        info = filesystem.get_file_info(path)
        if info.type == pafs.FileType.File:
            key = PurePosixPath(path)
            return [InputFile(str(location), str(location), folder_name(key, None),
                              input_identity(key, None, info.size, info.mtime_ns))]
        if info.type != pafs.FileType.Directory:
            raise InputError(f"{location}: no such file or folder")
        listing = filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
    except OSError as exc:
        raise InputError(f"{location}: cannot list ({_one_line(exc)})") from None
    root = PurePosixPath(path)
    keys = {PurePosixPath(e.path).relative_to(root) for e in listing if e.type == pafs.FileType.File}
    # results folders (the marker, or summary.csv beside result folders), as the local walk skips them
    results = {k.parent for k in keys if k.name == RESULTS_MARKER}
    results |= {k.parent.parent for k in keys if k.name == RESULT_FILE and len(k.parts) >= 2
                and k.parent.parent / SUMMARY_FILE in keys}
    found = []
    for entry in sorted(listing, key=lambda e: e.path):
        rel = PurePosixPath(entry.path).relative_to(root)
        if entry.type != pafs.FileType.File or any(part.startswith(".") for part in rel.parts):
            continue
        if any(parent in results for parent in rel.parents):
            continue
        if rel.suffix.lower() in MEDIA_SUFFIXES:
            uri = f"{scheme}://{entry.path}"
            key = PurePosixPath(entry.path)
            found.append(InputFile(uri, uri, folder_name(key, root),
                                   input_identity(key, root, entry.size, entry.mtime_ns)))
    if not found:
        raise InputError(f"{location}: no video or image files found in this folder")
    return found


@contextlib.contextmanager
def local_copy(source: str) -> Iterator[Path]:
    """A local path for ``source``: the file itself, or a temporary copy of an object that is deleted on exit."""
    if not is_remote(source):
        yield Path(source)
        return
    folder = Path(tempfile.mkdtemp(prefix=_copy_prefix()))
    try:
        target = folder / ("input" + PurePosixPath(source).suffix.lower())
        try:
            filesystem, path = resolve(source)
            with filesystem.open_input_stream(path) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 20)
        except OSError as exc:
            raise InputError(f"{source}: cannot download ({_one_line(exc)})") from None
        yield target
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _copy_prefix() -> str:
    """Temporary copies are named after the process, so a worker that must end abruptly can delete its own."""
    return f"deepfake-scan-{os.getpid()}-"


def remove_copies() -> None:
    """Delete this process's temporary copies (for a worker about to end without unwinding its stack)."""
    for folder in Path(tempfile.gettempdir()).glob(_copy_prefix() + "*"):
        shutil.rmtree(folder, ignore_errors=True)


def prepare_output(location: str) -> None:
    """Create the output folder (or check the bucket) and prove it is writable before any slow work starts."""
    if not is_remote(location):
        from detector.ingest.inputs import prepare_output as prepare_local

        prepare_local(Path(location))
        return
    from detector.ingest.inputs import RESULTS_MARKER

    probe = join(location, ".write_test")
    try:
        write_bytes(probe, b"ok")
        filesystem, path = resolve(probe)
        filesystem.delete_file(path)
        write_bytes(join(location, RESULTS_MARKER), b"")
    except (OSError, InputError) as exc:
        raise DetectorError(f"cannot write to output location {location}: {_one_line(exc)}") from None


def read_text(location: str) -> str | None:
    """The text of a file or object, or None when it is missing or unreadable."""
    try:
        if not is_remote(location):
            return Path(location).read_text()
        filesystem, path = resolve(location)
        with filesystem.open_input_stream(path) as fh:
            return fh.read().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def exists(location: str) -> bool:
    """True when a file or object is at ``location``."""
    try:
        if not is_remote(location):
            return Path(location).is_file()
        from pyarrow import fs as pafs

        filesystem, path = resolve(location)
        return filesystem.get_file_info(path).type == pafs.FileType.File
    except (OSError, InputError):
        return False


def write_bytes(location: str, data: bytes) -> None:
    """Write a whole file or object (raises OSError); a local file through a temporary file and a rename, an object
    in one request (an object store never shows half an object)."""
    if not is_remote(location):
        from detector.ingest.inputs import write_atomic

        write_atomic(Path(location), data)
        return
    filesystem, path = resolve(location)
    with filesystem.open_output_stream(path) as fh:
        fh.write(data)


@contextlib.contextmanager
def output_folder(location: str, name: str) -> Iterator[Path]:
    """A local folder to write ``location/name/`` into: the folder itself, or a temporary one uploaded on exit.

    The body writes into ``<yielded>/<name>/`` (so the writers that take an output root and a name work
    unchanged); nothing is uploaded when the body raises. As on a local disk, the folder's old result.json is
    deleted first and the new one uploaded last, so an upload cut off midway leaves no result.json that a resumed
    run could take for a complete result."""
    if not is_remote(location):
        yield Path(location)
        return
    staging = Path(tempfile.mkdtemp(prefix="deepfake-out-"))
    try:
        yield staging
        filesystem, path = resolve(join(location, name, "result.json"))
        try:
            filesystem.delete_file(path)
        except OSError:
            if exists(join(location, name, "result.json")):
                raise
        files = sorted((p for p in (staging / name).rglob("*") if p.is_file()), key=lambda p: p.name == "result.json")
        for file in files:
            write_bytes(join(location, name, *file.relative_to(staging / name).parts), file.read_bytes())
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
