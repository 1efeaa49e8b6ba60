"""Leave-one-method-out folds over a labelled pool with groups: the honest estimate of how a detector does on a
manipulation method it has never seen.

For method M: the test split holds every fake of M, the reals of the groups those fakes share footage with, and a
share of the other reals (each real-only group is assigned to exactly one fold, so pooling the folds scores every
real once, out of fold). Training gets everything else, minus every group that appears in the test split: no group
is ever on both sides.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class PoolItem:
    """One labelled video: an id, 0 real / 1 fake, the generation method of a fake ('' for reals), its group."""

    item: str
    label: int
    method: str
    group: str


@dataclass
class Fold:
    method: str
    train: list[PoolItem]
    test: list[PoolItem]


def fold_slug(method: str) -> str:
    """A method's name as part of a file name (``deep-live-cam(inswapper)`` -> ``deep-live-cam_inswapper_``): fold
    models are saved under it, after the fold's number (which keeps two names that read alike apart)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", method)


def _shuffle_key(group: str, seed: int) -> bytes:
    return hashlib.sha256(f"{seed}:{group}".encode()).digest()


def method_folds(items: Sequence[PoolItem], seed: int = 0) -> list[Fold]:
    """One fold per fake method present, in sorted order."""
    methods = sorted({it.method for it in items if it.label == 1})
    if not methods:
        raise ValueError("no fakes with a method: nothing to leave out")
    fake_groups = {m: {it.group for it in items if it.label == 1 and it.method == m} for m in methods}
    groups_with_fakes = set().union(*fake_groups.values())
    # real-only groups dealt round-robin in a seeded shuffled order: every fold gets its share of reals, and the
    # assignment does not depend on how groups are named
    real_only = sorted({it.group for it in items if it.label == 0} - groups_with_fakes,
                       key=lambda g: _shuffle_key(g, seed))
    assigned = {g: methods[i % len(methods)] for i, g in enumerate(real_only)}
    folds = []
    for m in methods:
        test_groups = fake_groups[m] | {g for g, fm in assigned.items() if fm == m}
        test = [it for it in items if it.group in test_groups and (it.label == 0 or it.method == m)]
        train = [it for it in items if it.group not in test_groups]
        folds.append(Fold(m, train, test))
    return folds
