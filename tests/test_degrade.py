"""training.degrade: a manifest's videos re-encoded (and shrunk where taller), its stills through the same codec, the
copy's manifest pointing at them, and a bad file reported and left out while the rest carry on."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ffmpeg

from detector.ingest import video
from training import degrade

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "videos").mkdir(parents=True)
    (src / "faces").mkdir()
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x480:rate=25:duration=1", "-c:v", "libx264", "-crf", "10",
           "-pix_fmt", "yuv420p", src / "videos" / "clip.mp4")
    rng = np.random.default_rng(0)
    cv2.imwrite(str(src / "faces" / "still.jpg"), rng.integers(0, 256, (101, 75, 3), dtype=np.uint8))
    (src / "faces" / "broken.png").write_bytes(b"not an image")
    path = src / "labels.csv"
    path.write_text("path,label,dataset\nvideos/clip.mp4,fake,x\nfaces/still.jpg,real,y\nfaces/broken.png,real,y\n")
    return path


def test_copies_are_damaged_shrunk_and_listed_in_a_new_manifest(manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    lines: list[str] = []
    count, failed = degrade.degrade_manifest(manifest, out, crf=40, height=360, log=lines.append)
    assert count == 2 and len(failed) == 1 and failed[0].startswith("faces/broken.png")
    assert any("left out" in line for line in lines)
    with (out / "labels.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["path"] for r in rows] == ["videos/clip.mp4", "faces/still.png"]
    assert [r["dataset"] for r in rows] == ["x", "y"]  # the other columns are kept
    info = video.probe(out / "videos" / "clip.mp4")
    assert (info.width, info.height) == (480, 360) and info.frame_count == 25
    still = cv2.imread(str(out / "faces" / "still.png"))
    original = cv2.imread(str(manifest.parent / "faces" / "still.jpg"))
    assert still.shape == original.shape  # small stills are not shrunk, odd sides survive the codec
    assert np.abs(still.astype(int) - original.astype(int)).mean() > 5  # CRF 40 damages noise heavily


def test_without_a_height_the_size_stays(manifest: Path, tmp_path: Path) -> None:
    assert degrade.main(["--manifest", str(manifest), "--out", str(tmp_path / "o"), "--crf", "20"]) == 0
    info = video.probe(tmp_path / "o" / "videos" / "clip.mp4")
    assert (info.width, info.height) == (640, 480)


def test_bad_arguments_and_manifests_fail_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        degrade.main(["--manifest", "x.csv", "--out", str(tmp_path), "--crf", "60"])
    assert "--crf must lie in 0-51" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\na.mp4,fake\n")
    assert degrade.main(["--manifest", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {bad}: no 'path' column"
    assert degrade.main(["--manifest", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")]) == 2
