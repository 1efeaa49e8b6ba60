"""The awkward-input corpus: what a new user throws at ``app.py``, made here, with the verdict class and one-line
message each input must get.

Broken files, links that lead nowhere, names that look like options or ffmpeg protocols, phone photos stored
sideways, palette GIFs, cut-off downloads, variable frame rates, huge and tiny frames. One folder run scans the whole
corpus (TensorFlow starts once), run from inside the folder with ``--input .`` so paths reach ffmpeg as a user's
relative paths do (``-x.mp4``), and with the results folder inside the input folder. The single-input checks that
follow need no model: they are answered before TensorFlow is imported.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ffmpeg, png_header_only, run_app
from PIL import Image
from skimage import data

from detector.ingest.inputs import RESULTS_MARKER, folder_name

pytestmark = pytest.mark.e2e

SCORED, NO_FACE, ERROR = "scored", "no_face", "error"
#: The phrases of the input warnings; a row without an expected warning must carry none of them.
INPUT_WARNINGS = ("palette-quantized", "sampled frame", "decoded")
#: A missing file must be answered in about a second; the bound leaves room for a machine busy with other work.
FAST_ANSWER_S = 3.0

if shutil.which("ffmpeg") is None:
    pytest.skip("ffmpeg is not installed (apt-get install ffmpeg)", allow_module_level=True)


@dataclass
class Case:
    """What one input must come to: its summary row name, verdict class and words of its one-line message (the
    error, or the input warning; empty: no error and no input warning)."""

    row: str
    kind: str
    words: str = ""


def pattern(path: Path, *extra: str, size: str = "96x64", seconds: float = 1, rate: int = 25) -> Path:
    """A faceless test pattern clip (small, so face detection on it costs next to nothing)."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}", *extra, path)
    return path


def cut(source: Path, target: Path, share: float) -> Path:
    data_ = source.read_bytes()
    target.write_bytes(data_[: int(len(data_) * share)])
    return target


def sideways(upright: np.ndarray, orientation: int, path: Path) -> Path:
    """A JPEG stored as a phone stores it, with the EXIF orientation that turns it upright for display."""
    stored = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
    image = Image.fromarray(upright)
    exif = Image.Exif()
    exif[0x0112] = orientation
    (image.transpose(stored[orientation]) if orientation != 1 else image).save(path, exif=exif.tobytes())
    return path


def build_corpus(folder: Path, demo: Path) -> dict[str, Case]:
    """Write every input into ``folder``; return the expected outcome by file name (relative to ``folder``)."""
    clip, still = demo / "astronaut_pan.mp4", demo / "astronaut.jpg"
    portrait = data.astronaut()[:384, :512].copy()
    big = cv2.resize(portrait, (2048, 1536), interpolation=cv2.INTER_CUBIC)
    cases: dict[str, Case] = {}

    def add(name: str, kind: str, words: str = "") -> Path:
        cases[name] = Case(folder_name(folder / name, folder), kind, words)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        return folder / name

    # faces: every one of these must be scored, several with a warning that weakens the verdict
    shutil.copy(clip, add("good.mp4", SCORED))
    shutil.copy(still, add("astronaut.jpg", SCORED))
    sideways(big, 1, add("phone_upright.jpg", SCORED))
    sideways(big, 6, add("phone_exif6.jpg", SCORED))
    sideways(portrait, 3, add("phone_exif3.jpg", SCORED))
    sideways(portrait, 8, add("phone_exif8.jpg", SCORED))
    ffmpeg("-i", clip, add("clip.gif", SCORED, "palette-quantized"))
    ffmpeg("-i", clip, "-vf", "setpts='if(lte(N,6),N/24,0.25+(N-6)*0.3)/TB'", "-fps_mode", "passthrough",
           "-frames:v", "15", "-c:v", "libx264", "-pix_fmt", "yuv420p", add("vfr.mp4", SCORED))
    cut(clip, add("download_70pct.mp4", SCORED, "sampled frames decoded"), 0.7)
    cut(clip, add("download_50pct.mp4", SCORED, "sampled frames decoded"), 0.5)

    # no face anywhere: names, containers, codecs and frame sizes that must not trip anything
    tiny = pattern(folder / "_pattern.mp4", "-pix_fmt", "yuv420p")
    # names that sanitize alike ('a b.png', 'a_b.png') each get their own result folder and row
    for name in ("-x.mp4", "--help.mp4", "concat:x.mp4", "a b 'quoted'.mp4", "a_b__quoted_.mp4", "ünïcødé.mp4",
                 "LOUD.MP4", "deep/er/still/clip.mp4", "folder.mp4/inner.mp4", "a b.mp4", "a_b.mp4", "a?b.mp4",
                 "sub/a.mp4", "sub__a.mp4"):
        shutil.copy(tiny, add(name, NO_FACE))
    (folder / "link_to_pattern.mp4").symlink_to(tiny)
    add("link_to_pattern.mp4", NO_FACE)
    pattern(folder / "_still.png", "-frames:v", "1").rename(add("img%d.png", NO_FACE))
    shutil.copy(folder / "img%d.png", add("still_named.mp4", NO_FACE))  # content decides, not the name
    shutil.copy(tiny, add("video_named.jpg", NO_FACE))
    for name, extra in (("clip.webm", ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"]),
                        ("clip.avi", ["-c:v", "mjpeg", "-pix_fmt", "yuvj420p"]), ("clip.mov", ["-c:v", "mpeg4"]),
                        ("clip.mkv", ["-c:v", "ffv1"]), ("clip.ts", ["-c:v", "mpeg2video"]),
                        ("clip.flv", ["-c:v", "flv1"]), ("clip.wmv", ["-c:v", "wmv2"])):
        pattern(add(name, NO_FACE), *extra)
    pattern(add("odd_size.mp4", NO_FACE), "-pix_fmt", "yuv444p", size="97x65")
    pattern(add("tiny_16px.mp4", NO_FACE), "-pix_fmt", "yuv420p", size="16x16")
    pattern(add("one_frame.mp4", NO_FACE), "-frames:v", "1", "-pix_fmt", "yuv420p")
    pattern(add("50k_frames.mp4", NO_FACE), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            size="16x16", rate=1000, seconds=50)
    ffmpeg("-i", tiny, "-c", "copy", "-metadata:s:v:0", "rotate=90", add("rotated.mp4", NO_FACE))
    pattern(add("palette.png", NO_FACE, "palette-quantized"), "-frames:v", "1", "-pix_fmt", "pal8")
    for name, mode in (("gray.jpg", "L"), ("cmyk.jpg", "CMYK"), ("rgba.png", "RGBA"), ("still.webp", "RGB"),
                       ("still.bmp", "RGB"), ("still.tiff", "RGB")):
        Image.fromarray(np.full((64, 96, 3), (40, 160, 90), np.uint8)).convert(mode).save(add(name, NO_FACE))
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(add("one_pixel.png", NO_FACE))
    png_header_only(add("8000x6000.png", NO_FACE), 8000, 6000)
    cut(still, add("half_a_jpeg.jpg", SCORED), 0.5)  # the top half holds the face; the rest decodes grey

    # unusable: each an error row with its own one-line reason, and the rest of the folder carries on
    add("empty.mp4", ERROR, "empty file (0 bytes)").write_bytes(b"")
    add("notes.mp4", ERROR, "not a readable video").write_text("minutes of the meeting\n")
    add("random.mp4", ERROR, "not a readable video").write_bytes(np.random.default_rng(0).bytes(20000))
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", add("voice.m4a", ERROR, "audio-only"))
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", add("voice.mp4", ERROR, "audio-only"))
    pattern(add("zero_frames.mp4", ERROR, "no video stream"), "-frames:v", "0")
    not_faststart = pattern(folder / "_moov_at_end.mp4", "-pix_fmt", "yuv420p")
    cut(not_faststart, add("cut_moov_at_end.mp4", ERROR, "not a readable video"), 0.5)
    cut(clip, add("cut_to_header.mp4", ERROR, "could not decode any frame"), 0.02)
    png_header_only(add("60000x60000.png", ERROR, "no frame size"), 60000, 60000)  # beyond ffmpeg itself
    (folder / "dangling.mp4").symlink_to(folder / "gone.mp4")
    add("dangling.mp4", ERROR, "broken symbolic link")
    (folder / "loop_a.mp4").symlink_to(folder / "loop_b.mp4")
    (folder / "loop_b.mp4").symlink_to(folder / "loop_a.mp4")
    add("loop_a.mp4", ERROR, "symbolic link loop")
    add("loop_b.mp4", ERROR, "symbolic link loop")
    os.mkfifo(add("pipe.mp4", ERROR, "not a regular file"))

    # never scanned: hidden files, other file types and earlier runs' results folders (one marked as such, one
    # from before the marker: summary.csv beside result folders); the scratch sources above are media, so scanned
    (folder / ".hidden.mp4").write_bytes(tiny.read_bytes())
    for earlier in ("old_results", "old_results_unmarked"):
        (folder / earlier / "clip.mp4" / "gradcam").mkdir(parents=True)
        shutil.copy(folder / "palette.png", folder / earlier / "clip.mp4" / "timeline.png")
        shutil.copy(folder / "palette.png", folder / earlier / "clip.mp4" / "gradcam" / "montage.png")
        (folder / earlier / "clip.mp4" / "result.json").write_text("{}")
        (folder / earlier / "summary.csv").write_text("input,name,verdict\n")
    (folder / "old_results" / RESULTS_MARKER).touch()
    (folder / "readme.txt").write_text("not media\n")
    cases["_pattern.mp4"] = Case("_pattern.mp4", NO_FACE)
    cases["_moov_at_end.mp4"] = Case("_moov_at_end.mp4", NO_FACE)
    return cases


def timed_app(*args: str | Path, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    """``python app.py ARGS`` as a user runs it, and its wall time."""
    began = time.perf_counter()
    proc = run_app(*args, cwd=cwd, timeout=900)
    return proc, time.perf_counter() - began


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, demo: Path) -> tuple[Path, dict[str, Case]]:
    folder = tmp_path_factory.mktemp("awkward") / "inbox"
    folder.mkdir()
    return folder, build_corpus(folder, demo)


@pytest.fixture(scope="module")
def folder_run(corpus: tuple[Path, dict[str, Case]]) -> tuple[subprocess.CompletedProcess, dict[str, dict]]:
    folder, _ = corpus
    proc, _ = timed_app("--input", ".", "--output", "results", "--frames", "4", "--no-gradcam", "--quiet",
                      cwd=folder)
    with (folder / "results" / "summary.csv").open(newline="") as fh:
        rows = {row["name"]: row for row in csv.DictReader(fh)}
    return proc, rows


def test_every_input_gets_its_verdict_class_and_message(corpus, folder_run) -> None:
    folder, cases = corpus
    proc, rows = folder_run
    assert proc.returncode == 1, proc.stderr  # some inputs are errors: reported, and the rest scanned
    assert "Traceback" not in proc.stderr
    assert all(line.startswith(("error:", "note:")) for line in proc.stderr.splitlines()), proc.stderr
    assert sorted(rows) == sorted(case.row for case in cases.values())
    wrong = []
    for name, case in cases.items():
        row = rows[case.row]
        doc = json.loads((folder / "results" / case.row / "result.json").read_text())
        kind = SCORED if row["verdict"] in ("real", "fake") else row["verdict"]
        message = row["error"] or " | ".join(w for w in doc["warnings"] if any(p in w for p in INPUT_WARNINGS))
        if kind != case.kind or case.words not in message or (not case.words and message):
            wrong.append(f"{name}: {row['verdict']} {message!r}, expected {case.kind} {case.words!r}")
        assert "\n" not in message and len(message) < 400, name
        assert (case.kind == ERROR) == bool(row["error"]), name
        if case.kind == SCORED:
            assert row["faces"] == "1", name
    assert not wrong, "\n".join(wrong)
    assert not any(name.startswith(("results", "old_results")) for name in rows)
    assert len({row["input"] for row in rows.values()}) == len(rows), "each row is its own input's"


def test_sideways_photos_have_an_unstretched_face(corpus, folder_run) -> None:
    """Phone photos stored sideways are scanned as displayed: their face box is where the upright photo has it."""
    folder, _ = corpus

    def box(name: str, size: tuple[int, int]) -> np.ndarray:
        doc = json.loads((folder / "results" / name / "result.json").read_text())
        assert (doc["video"]["width"], doc["video"]["height"]) == size, name
        return np.array(doc["tracks"][0]["frames"][0]["box"])

    upright = box("phone_upright.jpg", (2048, 1536))
    assert np.abs(box("phone_exif6.jpg", (2048, 1536)) - upright).max() < 0.03 * 2048
    for name in ("phone_exif3.jpg", "phone_exif8.jpg"):
        assert np.abs(box(name, (512, 384)) - upright / 4).max() < 0.03 * 512, name


def test_frame_times_are_the_timestamps(corpus, folder_run) -> None:
    """The variable-frame-rate clip (7 frames 1/24 s apart, then one every 0.3 s): result.json's frame times are
    the frames' timestamps as ffprobe lists them, not index / average fps."""
    folder, _ = corpus
    listed = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "frame=pts_time",
                             "-of", "csv=p=0", str(folder / "vfr.mp4")], capture_output=True, text=True).stdout
    stamps = [float(line.strip(",")) for line in listed.split()]
    doc = json.loads((folder / "results" / "vfr.mp4" / "result.json").read_text())
    assert len(stamps) == doc["video"]["frame_count"] == 15
    times = [f["time"] for f in doc["frames"]]
    assert times == pytest.approx([stamps[f["index"]] for f in doc["frames"]], abs=1e-3)
    by_rate = [f["index"] / doc["video"]["fps"] for f in doc["frames"]]
    assert max(abs(a - b) for a, b in zip(times, by_rate)) > 0.3
    long = json.loads((folder / "results" / "50k_frames.mp4" / "result.json").read_text())
    assert long["video"]["frame_count"] == 50_000 and long["frames_sampled"] == 4


@pytest.mark.parametrize("case", ["missing", "not a video", "dangling link", "output is input", "y4m without size",
                                  "concat list", "dash name", "fps nan", "fps inf"])
def test_unusable_single_inputs_are_answered_before_the_model_loads(corpus, case: str, tmp_path: Path) -> None:
    """One line on stderr, exit status 2, and fast: no TensorFlow start for an input that cannot be scanned, and a
    message that says what is wrong (not ffmpeg's errno text, not argparse's alone)."""
    folder, _ = corpus
    y4m = tmp_path / "clip.y4m"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25", "-frames:v", "1", "-pix_fmt", "yuv420p", y4m)
    header, _, body = y4m.read_bytes().partition(b"\n")
    y4m.write_bytes(header.replace(b"W96 H64", b"W0 H0") + b"\n" + body)
    (tmp_path / "list.txt").write_text(f"ffconcat version 1.0\nfile '{folder / 'good.mp4'}'\n")
    out = ["--output", tmp_path / "out"]
    args, words = {
        "missing": (["--input", "missing.mp4", *out], "missing.mp4: no such file"),
        "not a video": (["--input", "notes.mp4", *out], "notes.mp4: not a readable video"),
        "dangling link": (["--input", "dangling.mp4", *out], "broken symbolic link"),
        "output is input": (["--input", ".", "--output", "."], "is the --input folder"),
        "y4m without size": (["--input", y4m, *out], "clip.y4m: not a readable video or image (Picture size 0x0"),
        "concat list": (["--input", tmp_path / "list.txt", *out], "list.txt: a playlist"),
        "dash name": (["--input", "-x.mp4", *out], "--input=-x.mp4, or start with ./, as in ./-x.mp4"),
        "fps nan": (["--input", "good.mp4", "--fps", "nan", *out], "--fps must be a positive number"),
        "fps inf": (["--input", "good.mp4", "--fps", "inf", *out], "--fps must be a positive number"),
    }[case]
    proc, seconds = timed_app(*args, cwd=folder)
    assert proc.returncode == 2
    if case in ("dash name", "fps nan", "fps inf"):  # argparse's usage lines, then its one error line
        assert proc.stderr.strip().splitlines()[-1].startswith(("app.py: error: ", "deepfake-detector: error: "))
        proc.stderr = proc.stderr.strip().splitlines()[-1].split(": ", 1)[1]
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and proc.stderr.startswith("error: ")
    assert "Device or resource busy" not in proc.stderr and "Operation not permitted" not in proc.stderr
    assert words in proc.stderr
    assert seconds < FAST_ANSWER_S, f"{seconds:.2f} s"


def test_an_fps_interval_longer_than_the_clip_still_gives_a_verdict(tmp_path: Path, demo: Path) -> None:
    """--fps 0.1 on a 2-s clip and on a one-frame clip: one frame in the middle is judged, no error."""
    folder = tmp_path / "fps"
    folder.mkdir()
    ffmpeg("-i", demo / "astronaut_pan.mp4", "-t", "2", folder / "two_seconds.mp4")
    ffmpeg("-i", demo / "astronaut_pan.mp4", "-frames:v", "1", folder / "one_frame.mp4")
    pattern(folder / "pattern.mp4", "-pix_fmt", "yuv420p", seconds=1)
    proc, _ = timed_app("--input", folder, "--output", tmp_path / "out", "--fps", "0.1", "--no-gradcam", "--quiet",
                        cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with (tmp_path / "out" / "summary.csv").open(newline="") as fh:
        rows = {row["name"]: row for row in csv.DictReader(fh)}
    assert {n: r["verdict"] in ("real", "fake") for n, r in rows.items() if n != "pattern.mp4"} == {
        "two_seconds.mp4": True, "one_frame.mp4": True}
    assert rows["pattern.mp4"]["verdict"] == "no_face" and not any(r["error"] for r in rows.values())
    assert {r["frames_sampled"] for r in rows.values()} == {"1"}
