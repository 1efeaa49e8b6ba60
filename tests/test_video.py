"""Checks for detector.video on media generated here with ffmpeg: probe facts, sampling, decoding and bad inputs."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from detector import video
from detector.demo import write_video
from detector.errors import InputError

if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
    pytest.skip("ffmpeg is not installed (apt-get install ffmpeg)", allow_module_level=True)

#: Pixel value of frame i in the index-coded clip: every frame says which frame it is.
CODE_STEP = 5
CODED_FRAMES = 50


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly; a failure shows ffmpeg's own message."""
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, capture_output=True)


def encoders() -> str:
    """ffmpeg's encoder list: builds differ (Debian has x265 and vpx, others may not), so codec tests can skip."""
    return subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit black PNG of any size in a few kilobytes (zlib squeezes the all-zero rows), built without
    allocating the image, so huge resolutions are cheap to test."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes((width + 7) // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every clip the tests need, made once: a plain clip, a rotated copy, an index-coded clip and bad files."""
    d = tmp_path_factory.mktemp("media")
    m = {name: d / name for name in ("clip.mp4", "rot.mp4", "marker.mp4", "marker_rot.mp4", "coded.mkv",
                                     "audio.m4a", "truncated.mp4", "still.png")}
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2", "-f", "lavfi", "-i",
           "sine=frequency=440:duration=2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
           "-movflags", "+faststart", str(m["clip.mp4"]))
    ffmpeg("-i", str(m["clip.mp4"]), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(m["rot.mp4"]))
    # a white block in the top-left corner of a black frame: its position after rotation shows the turn's direction
    ffmpeg("-f", "lavfi", "-i", "color=c=black:size=64x48:rate=10:duration=1,"
           "drawbox=x=0:y=0:w=16:h=12:color=white:t=fill", "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p",
           str(m["marker.mp4"]))
    ffmpeg("-i", str(m["marker.mp4"]), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(m["marker_rot.mp4"]))
    coded = (np.full((48, 64, 3), i * CODE_STEP, np.uint8) for i in range(CODED_FRAMES))
    write_video(coded, m["coded.mkv"], fps=25, codec="ffv1")
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(m["audio.m4a"]))
    data = m["clip.mp4"].read_bytes()
    m["truncated.mp4"].write_bytes(data[: len(data) // 2])
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=200x100", "-frames:v", "1", str(m["still.png"]))
    return m


def test_probe_reports_size_fps_duration_codec_and_audio(media: dict[str, Path]) -> None:
    info = video.probe(media["clip.mp4"])
    assert (info.width, info.height) == (320, 240)
    assert info.fps == pytest.approx(25.0)
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert info.frame_count == 50
    assert info.codec == "h264"
    assert "mp4" in info.container
    assert info.rotation == 0
    assert info.has_audio and not info.is_image
    assert info.to_dict()["width"] == 320


def test_rotated_clip_swaps_dimensions(media: dict[str, Path]) -> None:
    info = video.probe(media["rot.mp4"])
    assert info.rotation in (90, 270)
    assert (info.width, info.height) == (240, 320)
    frame = next(video.iter_frames(info, frames=1))
    assert frame.image.shape == (320, 240, 3)


def test_rotated_pixels_are_turned_as_the_rotation_says(media: dict[str, Path]) -> None:
    """The decoded frame is the upright frame turned clockwise by ``info.rotation`` degrees, not just reshaped."""
    upright = next(video.iter_frames(video.probe(media["marker.mp4"]), frames=1)).image
    info = video.probe(media["marker_rot.mp4"])
    turned = next(video.iter_frames(info, frames=1)).image
    expected = np.rot90(upright, k=-info.rotation // 90)
    assert turned.shape == expected.shape == (64, 48, 3)
    assert np.abs(turned.astype(int) - expected.astype(int)).mean() < 3
    assert np.abs(turned.astype(int) - upright.transpose(1, 0, 2).astype(int)).mean() > 20


def test_sample_indices_are_evenly_spaced() -> None:
    info = video.VideoInfo(path="x", width=10, height=10, codec="h264", container="mp4", fps=25.0, duration=4.0,
                           frame_count=100, rotation=0, is_image=False, has_audio=False)
    idx = video.sample_indices(info, frames=4)
    assert len(idx) == 4
    assert all(0 <= i < 100 for i in idx)
    assert np.all(np.diff(idx) == 25)
    assert abs(idx[0] - (99 - idx[-1])) <= 2  # centred: about as much margin at the start as at the end
    per_second = video.sample_indices(info, fps=5)
    assert len(per_second) == 20 and np.all(np.diff(per_second) == 5)  # 5 a second for 4 s at 25 fps
    assert video.sample_indices(info, frames=500) == list(range(100))  # never more frames than the video has
    still = video.VideoInfo(path="x", width=10, height=10, codec="png", container="png_pipe", fps=0, duration=0,
                            frame_count=1, rotation=0, is_image=True, has_audio=False)
    assert video.sample_indices(still, frames=32) == [0]
    with pytest.raises(ValueError):
        video.sample_indices(info, frames=0)


@pytest.mark.parametrize("frames, fps", [(1, None), (3, None), (7, None), (8, None), (49, None), (100, None),
                                         (None, 5.0), (None, 3.0)])
def test_only_the_sampled_frames_are_decoded(media: dict[str, Path], frames: int | None,
                                             fps: float | None) -> None:
    """Each frame of the coded clip is filled with its own index times CODE_STEP, so pixels prove which frame came."""
    info = video.probe(media["coded.mkv"])
    assert info.frame_count == CODED_FRAMES
    expected = video.sample_indices(info, frames, fps)
    got = list(video.iter_frames(info, frames, fps))
    assert [f.index for f in got] == expected
    assert [int(f.image[0, 0, 0]) for f in got] == [i * CODE_STEP for i in expected]
    assert all(f.time == pytest.approx(f.index / 25.0, abs=1e-3) for f in got)
    assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in got)


def test_still_image_is_one_frame(media: dict[str, Path]) -> None:
    info = video.probe(media["still.png"])
    assert info.is_image and info.frame_count == 1 and (info.width, info.height) == (200, 100)
    frames = list(video.iter_frames(info, frames=32))
    assert len(frames) == 1 and frames[0].image.shape == (100, 200, 3) and frames[0].index == 0


def test_one_frame_video_gives_its_frame(tmp_path: Path) -> None:
    path = tmp_path / "one.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-frames:v", "1", "-pix_fmt", "yuv420p", str(path))
    info = video.probe(path)
    assert info.frame_count == 1 and not info.is_image
    assert [f.index for f in video.iter_frames(info, frames=32)] == [0]


def test_big_frames_are_downscaled_while_decoding(tmp_path: Path) -> None:
    info = video.probe(png_header_only(tmp_path / "big.png", 8000, 6000))
    assert (info.width, info.height) == (8000, 6000)
    frame = next(video.iter_frames(info))
    assert frame.image.shape == (1440, 1920, 3)
    assert frame.scale == pytest.approx(1920 / 8000)


def test_max_side_shrinks_video_frames(media: dict[str, Path]) -> None:
    frame = next(video.iter_frames(video.probe(media["clip.mp4"]), frames=1, max_side=160))
    assert frame.image.shape == (120, 160, 3) and frame.scale == pytest.approx(0.5)


def test_resolution_over_the_limit_is_refused(media: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(video, "MAX_PIXELS", 300 * 200)
    with pytest.raises(InputError, match="larger than supported"):
        video.probe(media["clip.mp4"])


def test_resolution_beyond_ffmpeg_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        video.probe(png_header_only(tmp_path / "huge.png", 20000, 16400))
    assert "\n" not in str(err.value)


def _bad_inputs(tmp: Path, media: dict[str, Path]) -> dict[str, tuple[Path, str]]:
    """name -> (path, a word the message must contain)."""
    (tmp / "folder.mp4").mkdir()
    (tmp / "empty.mp4").write_bytes(b"")
    (tmp / "notes.mp4").write_text("these are meeting notes, not a video\n")
    (tmp / "random.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 20000, np.uint8).tobytes())
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", "-frames:v", "0", str(tmp / "zero_frames.mp4"))
    return {
        "missing": (tmp / "nope.mp4", "no such file"),
        "folder": (tmp / "folder.mp4", "folder"),
        "empty": (tmp / "empty.mp4", "empty"),
        "text": (tmp / "notes.mp4", "not a readable"),
        "random": (tmp / "random.mp4", "not a readable"),
        "audio_only": (media["audio.m4a"], "audio-only"),
        "zero_frames": (tmp / "zero_frames.mp4", "no video stream"),
    }


@pytest.mark.parametrize("kind", ["missing", "folder", "empty", "text", "random", "audio_only", "zero_frames"])
def test_bad_input_is_a_one_line_input_error(kind: str, tmp_path: Path, media: dict[str, Path]) -> None:
    path, word = _bad_inputs(tmp_path, media)[kind]
    with pytest.raises(InputError) as err:
        video.probe(path)
    message = str(err.value)
    assert word in message
    assert path.name in message
    assert "\n" not in message and len(message) < 300


def test_truncated_mp4_is_refused_after_decoding(media: dict[str, Path]) -> None:
    """A faststart mp4 cut in half still probes as full length; the frame count check catches it."""
    info = video.probe(media["truncated.mp4"])
    assert info.frame_count == 50
    requested = video.sample_indices(info, frames=8)
    frames = list(video.iter_frames(info, frames=8))
    assert 0 < len(frames) < len(requested) - 1
    with pytest.raises(InputError, match="truncated") as err:
        video.check_complete(info, len(requested), len(frames), frames[-1].time)
    assert "\n" not in str(err.value)


def test_check_complete_tolerates_one_missing_frame(media: dict[str, Path]) -> None:
    info = video.probe(media["clip.mp4"])
    assert video.check_complete(info, 8, 8, 1.9) == []
    assert len(video.check_complete(info, 8, 7, 1.9)) == 1


@pytest.mark.parametrize("codec, suffix, extra", [
    ("mjpeg", ".avi", ["-q:v", "3"]),
    ("libvpx-vp9", ".webm", ["-b:v", "200k", "-deadline", "realtime", "-cpu-used", "8"]),
    ("libx265", ".mkv", ["-preset", "ultrafast", "-x265-params", "log-level=error"]),
    ("mpeg4", ".mov", []),
])
def test_other_codecs_decode(codec: str, suffix: str, extra: list[str], tmp_path: Path) -> None:
    if f" {codec} " not in encoders():
        pytest.skip(f"this ffmpeg has no {codec} encoder")
    path = tmp_path / f"clip{suffix}"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=1", "-c:v", codec, *extra,
           "-pix_fmt", "yuvj420p" if codec == "mjpeg" else "yuv420p", str(path))
    info = video.probe(path)
    assert (info.width, info.height) == (160, 120)
    frames = list(video.iter_frames(info, frames=4))
    assert len(frames) == 4
    assert video.check_complete(info, 4, len(frames), frames[-1].time) == []
    assert frames[0].image.std() > 10  # real picture content, not a blank frame
