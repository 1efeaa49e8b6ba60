"""Training data preparation: each input layout is read with the right labels and groups, and crops are written once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detector.demo import pan_zoom_frames, write_video
from training import prepare


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_manifest(tmp_path: Path) -> None:
    touch(tmp_path / "v" / "a.mp4")
    (tmp_path / "m.csv").write_text("path,label,group\nv/a.mp4,fake,person1\nv/b.mp4,real,\n/abs/c.mp4,0,g\n")
    items = prepare.read_manifest(tmp_path / "m.csv")
    assert [(i.path, i.label, i.group) for i in items] == [
        (tmp_path / "v" / "a.mp4", 1, "person1"), (tmp_path / "v" / "b.mp4", 0, "b"), (Path("/abs/c.mp4"), 0, "g")]
    (tmp_path / "bad.csv").write_text("file,class\nx,real\n")
    with pytest.raises(ValueError, match="path,label"):
        prepare.read_manifest(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("path,label\nx.mp4,maybe\n")
    with pytest.raises(ValueError, match="unknown label"):
        prepare.read_manifest(tmp_path / "bad2.csv")


def test_real_fake_folders(tmp_path: Path) -> None:
    touch(tmp_path / "real" / "p1__a.mp4")
    touch(tmp_path / "real" / "sub" / "b.mov")
    touch(tmp_path / "fake" / "p1__swap.mp4")
    touch(tmp_path / "fake" / "notes.txt")
    items = {i.path.name: i for i in prepare.read_real_fake_folders(tmp_path)}
    assert set(items) == {"p1__a.mp4", "b.mov", "p1__swap.mp4"}
    assert items["p1__a.mp4"].label == 0 and items["p1__swap.mp4"].label == 1
    assert items["p1__a.mp4"].group == items["p1__swap.mp4"].group == "p1"
    with pytest.raises(ValueError):
        prepare.read_real_fake_folders(tmp_path / "real")


def test_dfdc_metadata_groups_fakes_with_their_original(tmp_path: Path) -> None:
    meta = {"orig.mp4": {"label": "REAL", "split": "train"},
            "fake1.mp4": {"label": "FAKE", "original": "orig.mp4", "split": "train"},
            "other.mp4": {"label": "REAL"}}
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    items = {i.path.name: i for i in prepare.read_dfdc(tmp_path / "metadata.json")}
    assert items["fake1.mp4"].label == 1 and items["orig.mp4"].label == 0
    assert items["fake1.mp4"].group == items["orig.mp4"].group == "orig"
    assert items["other.mp4"].group == "other"


def test_faceforensics_tree(tmp_path: Path) -> None:
    touch(tmp_path / "original_sequences" / "youtube" / "c23" / "videos" / "033.mp4")
    touch(tmp_path / "manipulated_sequences" / "Deepfakes" / "c23" / "videos" / "033_097.mp4")
    touch(tmp_path / "manipulated_sequences" / "Face2Face" / "c23" / "videos" / "097_033.mp4")
    items = {(i.path.parts[-4], i.path.name): i for i in prepare.read_faceforensics(tmp_path)}
    assert items[("youtube", "033.mp4")].label == 0
    deepfake = items[("Deepfakes", "033_097.mp4")]
    assert deepfake.label == 1 and deepfake.group == "033" and deepfake.source == "ff++ Deepfakes"
    assert items[("Face2Face", "097_033.mp4")].group == "097"
    with pytest.raises(ValueError):
        prepare.read_faceforensics(tmp_path / "nothing")


def test_real_dir_groups_stills_by_person(tmp_path: Path) -> None:
    touch(tmp_path / "George_Bush_0001.jpg")
    touch(tmp_path / "George_Bush_0002.jpg")
    touch(tmp_path / "clips" / "talk.mp4")
    items = {i.path.name: i for i in prepare.read_real_dir(tmp_path)}
    assert items["George_Bush_0001.jpg"].group == items["George_Bush_0002.jpg"].group
    assert all(i.label == 0 for i in items.values())
    assert items["talk.mp4"].group != items["George_Bush_0001.jpg"].group


def test_split_is_by_group_and_stable() -> None:
    splits = {g: prepare.split_of(g, 0.3) for g in (f"person{i}" for i in range(400))}
    assert splits == {g: prepare.split_of(g, 0.3) for g in splits}
    share = sum(s == "val" for s in splits.values()) / len(splits)
    assert 0.2 < share < 0.4
    assert prepare.split_of("x", 0.0) == "train" and prepare.split_of("x", 1.0) == "val"


@pytest.mark.slow
def test_prepare_writes_crops_once_and_resumes(tmp_path: Path) -> None:
    clip = write_video(pan_zoom_frames(24), tmp_path / "media" / "astronaut.mp4")
    (tmp_path / "media" / "broken.mp4").write_text("not a video")
    items = [prepare.MediaItem(clip, 0, "astro"), prepare.MediaItem(tmp_path / "media" / "broken.mp4", 1, "b")]
    out = tmp_path / "data"
    counts = prepare.prepare(items, out, frames=3, show_progress=False)
    assert counts["crops"] == 3 and counts["errors"] == 1
    rows = prepare.load_index(out)
    assert len(rows) == 3 and {r["group"] for r in rows} == {"astro"}
    assert all(Path(r["crop"]).is_file() and len(r["keypoints"]) == 10 for r in rows)
    assert len({r["frame_index"] for r in rows}) == 3
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert "not a readable video" in errors[0]["error"]
    again = prepare.prepare(items, out, frames=3, show_progress=False)
    assert again["skipped"] == 2 and again["crops"] == 0
    assert len(prepare.load_index(out)) == 3
