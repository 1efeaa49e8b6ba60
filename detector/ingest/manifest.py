"""Labelled media lists: a CSV manifest of ``path,label[,group]``, read the same way for evaluation (here) and for
training-data preparation (:mod:`training.prepare`, which adds the dataset layouts only training uses).

Standard library only.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from detector.errors import InputError

#: Label words a manifest may use, and what they mean: 0 real, 1 fake.
LABELS = {"real": 0, "fake": 1, "original": 0, "pristine": 0, "manipulated": 1, "0": 0, "1": 1}


@dataclass(frozen=True)
class MediaItem:
    """One labelled input: a video or image, 0 (real) / 1 (fake), and the group that keeps splits clean."""

    path: Path
    label: int
    group: str
    source: str = ""


def parse_label(value: str) -> int:
    try:
        return LABELS[str(value).strip().lower()]
    except KeyError:
        raise ValueError(f"unknown label {value!r} (use real/fake or 0/1)") from None


def read_manifest(csv_path: Path) -> list[MediaItem]:
    """CSV with columns ``path,label[,group]``; relative paths are relative to the CSV's folder. Raises ``OSError``
    for an unreadable file and ``ValueError`` for missing columns or an unknown label."""
    items = []
    with csv_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"path", "label"} <= set(reader.fieldnames):
            raise ValueError(f"{csv_path}: a manifest needs the columns path,label[,group]")
        for row in reader:
            path = Path(row["path"])
            path = path if path.is_absolute() else csv_path.parent / path
            group = (row.get("group") or "").strip() or path.stem
            items.append(MediaItem(path, parse_label(row["label"]), group, "manifest"))
    return items


def load_manifest(csv_path: Path) -> list[MediaItem]:
    """:func:`read_manifest` for the command line: any problem is an :class:`InputError` with a one-line message, and
    a manifest without rows is one too (an evaluation of nothing would only fail later, after the model loaded)."""
    try:
        items = read_manifest(csv_path)
    except OSError as exc:
        raise InputError(f"{csv_path}: cannot read the manifest ({exc.strerror or exc})") from None
    except (ValueError, csv.Error, UnicodeDecodeError) as exc:
        raise InputError(f"{csv_path}: {exc}".replace(f"{csv_path}: {csv_path}: ", f"{csv_path}: ")) from None
    if not items:
        raise InputError(f"{csv_path}: the manifest lists no files")
    return items
