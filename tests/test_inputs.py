"""Which files a run scans and where its results may go (detector.ingest.inputs): no media is decoded here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from detector.errors import DetectorError, InputError
from detector.ingest.inputs import check_output, find_media, list_inputs, missing_reason, result_name, unique_names


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


def test_result_names_are_unique_and_stable(tmp_path: Path) -> None:
    paths = [tmp_path / "a b.mp4", tmp_path / "a_b.mp4", tmp_path / "a?b.mp4", tmp_path / "sub" / "a.mp4"]
    assert result_name(paths[0], tmp_path) == result_name(paths[1], tmp_path) == "a_b.mp4"
    assert unique_names(paths, tmp_path) == ["a_b.mp4", "a_b.mp4-2", "a_b.mp4-3", "sub__a.mp4"]
    assert unique_names(paths, tmp_path) == unique_names(list(paths), tmp_path)
