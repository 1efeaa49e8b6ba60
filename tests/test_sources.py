"""The source splitter: no source and no group on both sides of a split."""

from training.sources import Item, leave_one_source_out, split_by_source


def _items() -> list[Item]:
    return [Item("a1", 1, "repoA", "gA"), Item("a2", 0, "repoA", "gA"), Item("b1", 1, "repoB", "shared"),
            Item("c1", 0, "repoC", "shared"), Item("c2", 0, "repoC", "gC"), Item("d1", 1, "repoD", "gD")]


def test_split_by_source_drops_shared_sources_and_groups():
    train = _items()
    held = [Item("v1", 1, "repoB", "gV"), Item("v2", 0, "repoX", "gC")]
    kept, dropped = split_by_source(train, held)
    assert {i.key for i in dropped} == {"b1", "c2"}
    assert {i.source for i in kept}.isdisjoint({i.source for i in held})
    assert {i.group for i in kept}.isdisjoint({i.group for i in held})
    assert len(kept) + len(dropped) == len(train)


def test_leave_one_source_out_never_trains_on_the_tested_source_or_its_groups():
    items = _items()
    folds = leave_one_source_out(items)
    assert [f[0] for f in folds] == ["repoA", "repoB", "repoC", "repoD"]
    for source, train, test in folds:
        assert {items[k].source for k in test} == {source}
        assert source not in {items[k].source for k in train}
        assert {items[k].group for k in train}.isdisjoint({items[k].group for k in test})
    # repoB's group "shared" also holds repoC's c1: it leaves repoB's training side... and repoC's fold drops b1
    by_source = {f[0]: f for f in folds}
    assert items.index(next(i for i in items if i.key == "c1")) not in by_source["repoB"][1]
    assert items.index(next(i for i in items if i.key == "b1")) not in by_source["repoC"][1]


def test_min_items_skips_small_sources():
    assert [f[0] for f in leave_one_source_out(_items(), min_items=2)] == ["repoA", "repoC"]
