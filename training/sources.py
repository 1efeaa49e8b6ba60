"""Split labelled videos by where they come from, never by video.

A model that has seen one output of a generator's demo folder, or the real footage a fake was made from, scores the
rest of that folder well for the wrong reason. So evaluation here holds out whole *sources* (a dataset or a
repository) and whole *groups* (a fake with its target footage, near-duplicate renders): nothing of a held-out source
or group may be trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    """One labelled video as the splitter sees it: its key, label (1 = fake), source and group."""

    key: str
    label: int
    source: str
    group: str


def split_by_source(train: Sequence[Item], held_out: Sequence[Item]) -> tuple[list[Item], list[Item]]:
    """Training items that share neither a source nor a group with ``held_out``, and the ones dropped for it."""
    sources = {i.source for i in held_out}
    groups = {i.group for i in held_out}
    kept = [i for i in train if i.source not in sources and i.group not in groups]
    dropped = [i for i in train if i.source in sources or i.group in groups]
    return kept, dropped


def leave_one_source_out(items: Sequence[Item], min_items: int = 1) -> list[tuple[str, list[int], list[int]]]:
    """Folds (source, train indices, test indices): each source with at least ``min_items`` items is tested once by
    a model trained on every other source, minus any item sharing a group with the tested source's items."""
    folds = []
    for source in sorted({i.source for i in items}):
        test = [k for k, i in enumerate(items) if i.source == source]
        if len(test) < min_items:
            continue
        test_groups = {items[k].group for k in test}
        train = [k for k, i in enumerate(items) if i.source != source and i.group not in test_groups]
        folds.append((source, train, test))
    return folds
