"""Which files a run scans and where its results may go (detector.ingest.inputs): no media is decoded here."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from detector.errors import DetectorError, InputError
from detector.ingest.inputs import (check_output, find_media, list_inputs, missing_reason, prepare_output,
                                    result_name, unique_names)


@pytest.fixture()
def inbox(tmp_path: Path) -> Path:
    """A folder as users leave them: videos, a results folder from an earlier run inside it, hidden files, links
    that lead nowhere or in a circle, a pipe and a link back to the folder itself."""
    root = tmp_path / "inbox"
    (root / "sub").mkdir(parents=True)
    for name in ("a.mp4", "sub/b.MOV", "notes.txt", ".hidden.mp4", "-x.mp4"):
        (root / name).write_bytes(b"x")
    (root / "results" / "a.mp4" / "gradcam").mkdir(parents=True)
    (root / "results" / "a.mp4" / "timeline.png").write_bytes(b"x")
    (root / "results" / "a.mp4" / "gradcam" / "montage.png").write_bytes(b"x")
    (root / "dangling.mp4").symlink_to(root / "gone.mp4")
    (root / "loop_a.mp4").symlink_to(root / "loop_b.mp4")
    (root / "loop_b.mp4").symlink_to(root / "loop_a.mp4")
    (root / "sub" / "up").symlink_to(root)
    os.mkfifo(root / "pipe.mp4")
    return root


def names(paths: list[Path], root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in paths]


def test_folder_walk_lists_broken_links_and_skips_its_own_results(inbox: Path) -> None:
    found = names(find_media(inbox, exclude=inbox / "results"), inbox)
    assert found == ["-x.mp4", "a.mp4", "dangling.mp4", "loop_a.mp4", "loop_b.mp4", "pipe.mp4", "sub/b.MOV"]
    assert "results/a.mp4/timeline.png" in names(find_media(inbox), inbox)  # without the exclusion it would be scanned
    files, root = list_inputs(inbox, inbox / "results")
    assert root == inbox and names(files, inbox) == found
    relative = Path(os.path.relpath(inbox / "results"))
    assert names(find_media(inbox, exclude=relative), inbox) == found  # however the output folder was spelt


def test_missing_inputs_say_why(inbox: Path) -> None:
    assert missing_reason(inbox / "dangling.mp4") == "broken symbolic link (its target does not exist)"
    assert missing_reason(inbox / "loop_a.mp4") == "symbolic link loop (the link leads back to itself)"
    assert missing_reason(inbox / "nothing.mp4") == "no such file"
    with pytest.raises(InputError, match="dangling.mp4: broken symbolic link"):
        list_inputs(inbox / "dangling.mp4")
    with pytest.raises(InputError, match="nothing.mp4: no such file or folder"):
        list_inputs(inbox / "nothing.mp4")


def test_output_may_not_be_the_input_folder(inbox: Path) -> None:
    with pytest.raises(DetectorError, match="is the --input folder"):
        check_output(inbox, inbox)
    with pytest.raises(DetectorError, match="is the --input folder"):
        check_output(inbox, inbox / "sub" / "..")
    check_output(inbox, inbox / "results")
    check_output(inbox / "a.mp4", inbox)  # a single file's results beside it are fine


def test_result_names_are_stable_and_cannot_collide(tmp_path: Path) -> None:
    """A folder name depends on its own input alone (adding 'a b.mp4' beside 'a_b.mp4' renames neither), and two
    inputs never share one: a name that sanitizing changed, or one that could read as a joined path, carries a
    digest of the input's relative path."""
    paths = [tmp_path / "a b.mp4", tmp_path / "a_b.mp4", tmp_path / "a?b.mp4", tmp_path / "sub" / "a.mp4",
             tmp_path / "sub__a.mp4", tmp_path / "x_" / "y.mp4", tmp_path / "x" / "_y.mp4", tmp_path / "ünï.mp4"]
    names = unique_names(paths, tmp_path)
    assert len(set(names)) == len(names), names
    assert names[1] == "a_b.mp4" and names[3] == "sub__a.mp4" and names[7] == "ünï.mp4"  # plain names stay as they are
    assert names[0].startswith("a_b~") and names[0].endswith(".mp4") and names[2].startswith("a_b~")
    assert names[4].startswith("sub__a~")  # could be read as sub/a.mp4
    for i, path in enumerate(paths):  # each alone, in any company, gets the same name
        assert unique_names([path], tmp_path) == [names[i]]
        assert unique_names(paths[::-1], tmp_path)[::-1][i] == names[i]
    assert all(re.fullmatch(r"[\w.~-]+", name) for name in names)
    assert result_name(paths[0], tmp_path) == "a_b.mp4"  # the plain sanitized form (the server's folder names)


def test_results_folders_inside_the_input_are_never_scanned(tmp_path: Path) -> None:
    """Not only the current output folder: a folder marked as results by an earlier run (or, from before the marker,
    one holding summary.csv and result folders) is skipped, so its timeline and heatmap PNGs never become rows."""
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    (inbox / "a.mp4").write_bytes(b"x")
    (inbox / "sub" / "summary.csv").write_text("my own table\n")  # a user's own summary.csv is no results folder
    (inbox / "sub" / "b.mp4").write_bytes(b"x")
    prepare_output(inbox / "run1")
    (inbox / "run1" / "a.mp4").mkdir()
    (inbox / "run1" / "a.mp4" / "timeline.png").write_bytes(b"x")
    (inbox / "legacy" / "a.mp4" / "gradcam").mkdir(parents=True)
    (inbox / "legacy" / "summary.csv").write_text("input,name,verdict\n")
    (inbox / "legacy" / "a.mp4" / "result.json").write_text("{}")
    (inbox / "legacy" / "a.mp4" / "gradcam" / "montage.png").write_bytes(b"x")
    assert names(find_media(inbox, exclude=inbox / "run2"), inbox) == ["a.mp4", "sub/b.mp4"]
    files, _ = list_inputs(inbox, tmp_path / "elsewhere")
    assert names(files, inbox) == ["a.mp4", "sub/b.mp4"]
