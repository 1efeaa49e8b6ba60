"""Which files a run scans, what each result folder is called, and where results may go.

Standard library only, so the command line can check its input and output before TensorFlow is imported (seconds)
and a missing file is answered at once.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path, PurePath

from detector.errors import DetectorError, InputError

#: File name endings the folder scan picks up (content is still probed; the name only filters the walk). Audio
#: endings are included so an audio file dropped among videos is reported as an error row rather than ignored.
MEDIA_SUFFIXES = (".m4a", ".mp3", ".wav", ".aac", ".flac", ".ogg", ".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi",
                  ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts", ".mts", ".gif", ".jpg", ".jpeg", ".png", ".webp",
                  ".bmp", ".tif", ".tiff")
#: Endings of still images, which are one frame (an animated GIF is scanned like a video).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
#: A file every run leaves in its output folder, so a later run over a folder that holds it never scans the results
#: (timeline and heatmap PNGs) as inputs, whichever output folder that later run writes to.
RESULTS_MARKER = ".deepfake-detector-results"
#: What a results folder made before the marker existed holds: summary.csv beside result folders.
SUMMARY_FILE, RESULT_FILE = "summary.csv", "result.json"
#: Hex digits of the digest that tells apart inputs whose sanitized names would be the same.
NAME_DIGEST = 10


def missing_reason(path: Path) -> str:
    """Why ``path`` cannot be opened although something may be listed under its name: a symbolic link whose target
    is gone, a link loop, or plainly no such file. One line, for the error message."""
    if not path.is_symlink():
        return "no such file"
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop (the link leads back to itself)"
        return "broken symbolic link (its target does not exist)"
    return "no such file"


def not_regular_reason(path: Path) -> str | None:
    """A one-line reason when ``path`` exists but is no regular file (a device, pipe or socket would block or stream
    forever when read as a video), else None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return "not a regular file (a device, pipe or socket)"


def is_results_folder(folder: Path) -> bool:
    """True for a folder a run wrote its results to: it holds :data:`RESULTS_MARKER`, or (made before the marker)
    summary.csv beside at least one result folder."""
    if (folder / RESULTS_MARKER).exists():
        return True
    if not (folder / SUMMARY_FILE).is_file():
        return False
    try:
        return any((child / RESULT_FILE).is_file() for child in folder.iterdir() if child.is_dir())
    except OSError:
        return False


def find_media(root: Path, exclude: Path | None = None) -> list[Path]:
    """Media files under a folder, recursively, in a stable order.

    Hidden files and folders are skipped, and so are ``exclude`` (the results folder when it lies inside ``root``) and
    every other results folder (:func:`is_results_folder`), so a rerun never scans timeline.png and heatmaps, its
    own or an earlier run's. Entries with a media name that cannot be read as a file (broken symbolic links, link
    loops, pipes) are listed too: the scan then reports each as an error row instead of leaving it out without a
    word. Linked folders are not followed (a link to a parent would never end).
    """
    skip = exclude.resolve() if exclude is not None else None
    found = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = [d for d in dirs if not d.startswith(".") and (skip is None or (here / d).resolve() != skip)
                   and not is_results_folder(here / d)]
        for name in files:
            if name.startswith(".") or Path(name).suffix.lower() not in MEDIA_SUFFIXES:
                continue
            found.append(here / name)
    return sorted(found)


def _relative(path: PurePath, root: PurePath | None) -> PurePath:
    return path.relative_to(root) if root is not None and root in path.parents else PurePath(path.name)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)


def result_name(path: PurePath, root: PurePath | None) -> str:
    """A filesystem-safe folder name for an input: its path relative to the scanned folder, '/' -> '__', characters
    other than letters, digits, '.', '_' and '-' -> '_'. Not unique ('a b.mp4' and 'a_b.mp4' share it): a batch
    names its folders with :func:`unique_names`; the server, with one input per job, uses it as it is."""
    return _safe("__".join(_relative(path, root).parts)) or "input"


def _plain(parts: tuple[str, ...]) -> bool:
    """True when joining ``parts`` with '__' can be undone: every part is already safe, none holds '__', and in a
    path of several parts none starts or ends with '_' (so 'x_/y' and 'x/_y' cannot both become 'x___y')."""
    for part in parts:
        if not part or _safe(part) != part or "__" in part:
            return False
        if len(parts) > 1 and (part.startswith("_") or part.endswith("_")):
            return False
    return True


def folder_name(path: PurePath, root: PurePath | None) -> str:
    """The result folder name of one input, which depends on that input alone (so it is stable whatever else the
    folder holds) and is never another input's: :func:`result_name` when that can be read back as the relative path,
    else the same with '~' and a digest of the relative path before the ending ('a b.mp4' -> 'a_b~3f2a...9c.mp4').
    Sanitized names never hold '~', so a digested name cannot be a plain one."""
    rel = _relative(path, root)
    base = result_name(path, root)
    if _plain(rel.parts):
        return base
    digest = hashlib.sha256(rel.as_posix().encode("utf-8", "surrogateescape")).hexdigest()[:NAME_DIGEST]
    stem, dot, ending = base.rpartition(".")
    if not stem or not ending.isalnum():
        return f"{base}~{digest}"
    return f"{stem}~{digest}{dot}{ending}"


def unique_names(paths: list[PurePath], root: PurePath | None) -> list[str]:
    """:func:`folder_name` of each path: unique, and each the same whatever other paths are listed with it."""
    return [folder_name(path, root) for path in paths]


def input_identity(path: PurePath, root: PurePath | None, size: int | None, mtime_ns: int | None) -> dict:
    """What a stored result must match to be reused for an input: its path relative to the scanned folder (its name
    for a single file), size and modification time. Stored in result.json; a file replaced, grown or renamed into
    another's place is scanned again."""
    return {"path": _relative(path, root).as_posix(), "size": size, "mtime_ns": mtime_ns}


def local_identity(path: Path, root: Path | None) -> dict:
    """:func:`input_identity` of a local file (size and time None when it cannot be read: such an input is an error
    row, and error rows are never reused)."""
    try:
        info = os.stat(path)
        size, mtime = info.st_size, info.st_mtime_ns
    except OSError:
        size, mtime = None, None
    return input_identity(path, root, size, mtime)


def list_inputs(input_path: Path, out_dir: Path | None = None) -> tuple[list[Path], Path | None]:
    """The files to scan and the folder their result names are relative to (None for a single file). ``out_dir`` is
    left out of a folder's walk when it lies inside it."""
    if not input_path.exists():
        reason = missing_reason(input_path)
        raise InputError(f"{input_path}: {'no such file or folder' if reason == 'no such file' else reason}")
    if input_path.is_dir():
        files = find_media(input_path, out_dir)
        if not files:
            raise InputError(f"{input_path}: no video or image files found in this folder")
        return files, input_path
    return [input_path], None


def check_output(input_path: Path, out_dir: Path) -> None:
    """Refuse an output folder that is the input folder itself: result folders are named after the inputs, so they
    would collide with the very files being scanned. A results folder inside the input folder is fine (the walk
    skips it)."""
    try:
        same = input_path.is_dir() and out_dir.exists() and out_dir.resolve() == input_path.resolve()
    except OSError:
        return
    if same:
        raise DetectorError(f"--output {out_dir} is the --input folder: results would be mixed with the videos; "
                            "give another folder (a subfolder such as results/ is fine)")


#: Prefix of the temporary file a write goes through (hidden, so a folder scan never lists it).
TEMP_PREFIX = ".partial-"


def write_atomic(path: Path, data: bytes) -> None:
    """Write a whole file through a temporary file in the same folder and a rename, so a crash leaves the old file
    or the new one, never a part of either (raises OSError)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{path.name}")
    try:
        temp.write_bytes(data)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def prepare_output(out_dir: Path) -> None:
    """Create the output folder, prove it is writable before any slow work starts, and mark it as a results folder
    (:data:`RESULTS_MARKER`) so no later scan of a folder around it takes its images for inputs."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write_test"
        probe.write_text("ok")
        probe.unlink()
        (out_dir / RESULTS_MARKER).touch()
    except OSError as exc:
        raise DetectorError(f"cannot write to output folder {out_dir}: {exc.strerror or exc}") from None
