"""Which files a run scans, what each result folder is called, and where results may go.

Standard library only, so the command line can check its input and output before TensorFlow is imported (seconds)
and a missing file is answered at once.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from detector.errors import DetectorError, InputError

#: File name endings the folder scan picks up (content is still probed; the name only filters the walk). Audio
#: endings are included so an audio file dropped among videos is reported as an error row rather than ignored.
MEDIA_SUFFIXES = (".m4a", ".mp3", ".wav", ".aac", ".flac", ".ogg", ".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi",
                  ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts", ".mts", ".gif", ".jpg", ".jpeg", ".png", ".webp",
                  ".bmp", ".tif", ".tiff")
#: Endings of still images, which are one frame (an animated GIF is scanned like a video).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


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


def find_media(root: Path, exclude: Path | None = None) -> list[Path]:
    """Media files under a folder, recursively, in a stable order.

    Hidden files and folders are skipped, and so is ``exclude`` (the results folder when it lies inside ``root``, so a
    rerun never scans its own timeline.png and heatmaps). Entries with a media name that cannot be read as a file
    (broken symbolic links, link loops, pipes) are listed too: the scan then reports each as an error row instead of
    leaving it out without a word. Linked folders are not followed (a link to a parent would never end).
    """
    skip = exclude.resolve() if exclude is not None else None
    found = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = [d for d in dirs if not d.startswith(".") and (skip is None or (here / d).resolve() != skip)]
        for name in files:
            if name.startswith(".") or Path(name).suffix.lower() not in MEDIA_SUFFIXES:
                continue
            found.append(here / name)
    return sorted(found)


def result_name(path: Path, root: Path | None) -> str:
    """A unique, filesystem-safe folder name for an input: its path relative to the scanned folder, '/' -> '__'."""
    rel = path.relative_to(root) if root is not None and root in path.parents else Path(path.name)
    safe = "__".join(rel.parts)
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in safe) or "input"


def unique_names(paths: list[Path], root: Path | None) -> list[str]:
    """:func:`result_name` of each path, made unique in order ('a b.mp4' and 'a_b.mp4' would share a folder and
    overwrite each other's results): later duplicates get '-2', '-3', ... Stable for a stable input order, so a
    rerun finds its results again."""
    names, used = [], set()
    for path in paths:
        base = name = result_name(path, root)
        count = 1
        while name in used:
            count += 1
            name = f"{base}-{count}"
        used.add(name)
        names.append(name)
    return names


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


def prepare_output(out_dir: Path) -> None:
    """Create the output folder and prove it is writable before any slow work starts."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise DetectorError(f"cannot write to output folder {out_dir}: {exc.strerror or exc}") from None
