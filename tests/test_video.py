"""Checks for detector.ingest.video on media generated here with ffmpeg: probe facts, sampling, decoding and bad
inputs."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ffmpeg, png_header_only
from PIL import Image, ImageOps
from skimage import data

from detector.ingest import video
from detector.demo import write_video
from detector.errors import InputError
from detector.face.faces import iou

if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
    pytest.skip("ffmpeg is not installed (apt-get install ffmpeg)", allow_module_level=True)

#: Pixel value of frame i in the index-coded clip: every frame says which frame it is.
CODE_STEP = 5
CODED_FRAMES = 50


def encoders() -> str:
    """ffmpeg's encoder list: builds differ (Debian has x265 and vpx, others may not), so codec tests can skip."""
    return subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout


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
    m["truncated.mp4"].write_bytes(data[: len(data) * 2 // 5])
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


@pytest.fixture(scope="module")
def b_frame_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """The index-coded frames as H.264 in a fixed pattern of one reference frame (I or P) then ``b``
    unreferenced B-frames, for b = 3 (a common encoder setting) and 7 (runs longer than the sampling step)."""
    folder = tmp_path_factory.mktemp("bframes")
    clips = {}
    for b in (3, 7):
        coded = (np.full((48, 64, 3), i * CODE_STEP, np.uint8) for i in range(CODED_FRAMES))
        clips[b] = write_video(coded, folder / f"coded_b{b}.mp4", fps=25, qp=4,
                               **{"x264-params": f"bframes={b}:b-adapt=0:b-pyramid=none:keyint=250"})
    return clips


def coded_index(frame: video.Frame) -> int:
    """Which frame of the index-coded clip this is, from its pixels (coded at a high quality: within 2 levels)."""
    return int(round(float(frame.image[..., 0].mean()) / CODE_STEP))


def test_unreferenced_frames_are_not_decoded_and_samples_move_to_the_next_decoded_frame(
        b_frame_clips: dict[int, Path]) -> None:
    """Every 4th frame is a reference frame: sampled 8 of 50 (6.25 frames apart), each sample is the first reference
    frame at or after its evenly spaced position, and says which frame it is (its number, its time, its pixels)."""
    info = video.probe(b_frame_clips[3])
    assert not info.variable_rate
    targets = video.sample_indices(info, frames=8)
    got = list(video.iter_frames(info, frames=8))
    assert len(got) == len(targets)
    assert [f.index for f in got] == [4 * math.ceil(t / 4) for t in targets]
    assert [coded_index(f) for f in got] == [f.index for f in got]
    assert all(f.time == pytest.approx(f.index / 25.0, abs=1e-3) for f in got)
    exact = list(video.iter_frames(info, frames=8, reference_only=False))
    assert [f.index for f in exact] == targets == [coded_index(f) for f in exact]


def test_a_reference_pass_that_runs_late_midway_hands_over_without_losing_a_sample(
        b_frame_clips: dict[int, Path]) -> None:
    """Reference frames 8 apart, samples about 7 apart: the first samples come from the next reference frame, until
    one (frame 32) would reach the next sample's position; from there a full decode gives the exact samples."""
    info = video.probe(b_frame_clips[7])
    assert video.sample_indices(info, frames=7) == [4, 11, 18, 25, 32, 39, 46]
    got = list(video.iter_frames(info, frames=7))
    assert [f.index for f in got] == [8, 16, 24, 25, 32, 39, 46]
    assert [coded_index(f) for f in got] == [f.index for f in got]


def test_dense_sampling_decodes_every_frame(b_frame_clips: dict[int, Path]) -> None:
    """Samples closer than REFERENCE_DECODE_MIN_STEP frames would share decoded frames: every frame is decoded."""
    info = video.probe(b_frame_clips[3])
    targets = video.sample_indices(info, frames=20)
    assert [coded_index(f) for f in video.iter_frames(info, frames=20)] == targets


def test_reference_frames_sparser_than_the_samples_still_give_every_sample(b_frame_clips: dict[int, Path]) -> None:
    """Reference frames 8 apart, samples 5 apart: the reference pass runs late at once, and a full decode supplies
    every sample at its exact position, with no false 'truncated' shortfall."""
    info = video.probe(b_frame_clips[7])
    got = list(video.iter_frames(info, frames=10))
    assert [f.index for f in got] == video.sample_indices(info, frames=10)
    assert [coded_index(f) for f in got] == [f.index for f in got]
    assert all(f.time == pytest.approx(f.index / 25.0, abs=1e-3) for f in got)


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


@pytest.mark.parametrize("seconds, frames, fps", [(2, None, 0.1), (1, None, 0.5), (None, 1, 1.0), (None, 1, 0.01)])
def test_a_sampling_interval_longer_than_the_clip_takes_its_middle_frame(tmp_path: Path, seconds: float | None,
                                                                          frames: int | None, fps: float) -> None:
    """--fps whose interval is longer than the clip (0.1 on a 2-s clip, 1 on a one-frame clip) samples one frame
    inside the clip instead of one past its end, which decoded nothing and turned a good video into an error."""
    path = tmp_path / "clip.mp4"
    limit = ["-t", str(seconds)] if seconds else ["-frames:v", str(frames)]
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", *limit, "-pix_fmt", "yuv420p", str(path))
    info = video.probe(path)
    indices = video.sample_indices(info, fps=fps)
    assert len(indices) == 1 and 0 <= indices[0] < info.frame_count
    assert abs(indices[0] - (info.frame_count - 1) / 2) <= 1  # the middle one
    assert [f.index for f in video.iter_frames(info, fps=fps, reference_only=False)] == indices
    # without unreferenced frames a sample may be the next decoded frame, but it is one, inside the clip
    decoded = [f.index for f in video.iter_frames(info, fps=fps, reference_only=True)]
    assert len(decoded) == 1 and indices[0] <= decoded[0] < info.frame_count


def test_misleading_ffmpeg_errors_are_said_plainly(tmp_path: Path, media: dict[str, Path]) -> None:
    """ffmpeg's last line is often only an errno text ('Device or resource busy' for a y4m without a frame size,
    'Operation not permitted' for a concat list naming an absolute path); the message says what is wrong instead."""
    y4m = tmp_path / "clip.y4m"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25", "-frames:v", "1", "-pix_fmt", "yuv420p", str(y4m))
    header, _, body = y4m.read_bytes().partition(b"\n")
    y4m.write_bytes(header.replace(b"W96 H64", b"W0 H0") + b"\n" + body)
    with pytest.raises(InputError) as exc:
        video.probe(y4m)
    assert "Device or resource busy" not in str(exc.value) and "Picture size 0x0 is invalid" in str(exc.value)
    assert "@ 0x" not in str(exc.value)
    for name, target in (("absolute.txt", media["clip.mp4"].resolve()), ("relative.txt", Path(media["clip.mp4"].name))):
        playlist = tmp_path / name
        playlist.write_text(f"ffconcat version 1.0\nfile '{target}'\n")
        shutil.copy(media["clip.mp4"], tmp_path / media["clip.mp4"].name)
        with pytest.raises(InputError) as exc:
            video.probe(playlist)
        message = str(exc.value)
        assert message.startswith(f"{playlist}: a playlist") and "scan the files it lists" in message, message
        assert "Operation not permitted" not in message and "zero-length" not in message


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


def cut(source: Path, target: Path, share: float) -> Path:
    """The first ``share`` of a file's bytes: a download or copy that broke off."""
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * share)])
    return target


def test_truncated_mp4_with_little_left_is_judged_with_a_weak_verdict_warning(media: dict[str, Path]) -> None:
    """A faststart mp4 cut at 40 % still probes as full length; the frame count check catches it, and with under
    half of the sampled frames decoded the one-line warning says the verdict is weak (a still is judged from one
    frame, so a broken-off download is judged from what it holds rather than refused)."""
    info = video.probe(media["truncated.mp4"])
    assert info.frame_count == 50
    requested = video.sample_indices(info, frames=8)
    frames = list(video.iter_frames(info, frames=8))
    assert 0 < len(frames) < len(requested) / 2
    [warning] = video.check_complete(info, len(requested), len(frames), frames[-1].time)
    assert "\n" not in warning and f"only {len(frames)} of {len(requested)} sampled frames decoded" in warning
    assert "weak verdict" in warning
    half = video.check_complete(info, len(requested), len(requested) // 2, frames[-1].time)
    assert half and "weak" not in half[0]  # half of them or more: judged without the weak mark


def test_a_video_of_which_nothing_decodes_is_an_error(media: dict[str, Path], tmp_path: Path) -> None:
    """Cut just after its index (the faststart moov box) and before any frame's bytes, an mp4 probes as a full video
    but yields no frame: a one-line error, not a verdict."""
    data, offset = media["truncated.mp4"].read_bytes(), 0
    while data[offset + 4:offset + 8] != b"mdat":  # top-level boxes: 4-byte size, 4-byte type
        offset += int.from_bytes(data[offset:offset + 4], "big")
    (tmp_path / "head.mp4").write_bytes(data[:offset + 16])
    info = video.probe(tmp_path / "head.mp4")
    with pytest.raises(InputError) as err:
        list(video.iter_frames(info, frames=8))
    assert "\n" not in str(err.value)


def test_truncated_video_is_judged_from_what_decodes(media: dict[str, Path], tmp_path: Path) -> None:
    """The first 80 % of a clip decodes: a verdict is possible, with a warning saying how much was read."""
    info = video.probe(cut(media["clip.mp4"], tmp_path / "cut.mp4", 0.8))
    frames = list(video.iter_frames(info, frames=32))
    assert 16 <= len(frames) < 31
    warnings = video.check_complete(info, 32, len(frames), frames[-1].time)
    assert len(warnings) == 1
    assert f"only {len(frames)} of 32 sampled frames decoded" in warnings[0]
    assert f"ends near {frames[-1].time:.1f} s of 2.0 s" in warnings[0]


def test_check_complete_thresholds(media: dict[str, Path]) -> None:
    info = video.probe(media["clip.mp4"])
    assert video.check_complete(info, 8, 8, 1.9) == []
    assert "last sampled frame" in video.check_complete(info, 8, 7, 1.9)[0]
    [half] = video.check_complete(info, 8, 4, 1.0)
    [under_half] = video.check_complete(info, 8, 3, 0.7)
    assert "4 of 8" in half and "weak" not in half
    assert "3 of 8" in under_half and "weak verdict" in under_half


def test_frame_times_are_the_decoded_timestamps_of_variable_frame_rate_video(tmp_path: Path) -> None:
    """Seven frames 1/30 s apart, then one every half second: index / average fps puts frame 6 at 1.3 s, its
    timestamp says 0.2 s."""
    path = tmp_path / "vfr.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30:duration=0.5", "-vf",
           "setpts='if(lte(N,6),N/30,0.2+(N-6)*0.5)/TB'", "-fps_mode", "passthrough", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(path))
    info = video.probe(path)
    assert info.frame_count == 15 and info.fps < 5  # the average rate is far from the first frames' 30 fps
    assert info.variable_rate  # so frames are counted by decoding them all, not from their times
    expected = [round(i / 30, 3) for i in range(7)] + [round(0.2 + 0.5 * (i - 6), 3) for i in range(7, 15)]
    frames = list(video.iter_frames(info, frames=15))
    assert [f.index for f in frames] == list(range(15))
    assert [f.time for f in frames] == pytest.approx(expected, abs=1e-3)
    assert frames[6].time == pytest.approx(0.2, abs=1e-3)
    sampled = list(video.iter_frames(info, frames=3))
    assert [f.time for f in sampled] == pytest.approx([expected[f.index] for f in sampled], abs=1e-3)


def test_frame_times_start_at_zero_when_the_stream_does_not(tmp_path: Path) -> None:
    """MPEG-TS streams start at 1.4 s or so; times are counted from the stream's start."""
    path = tmp_path / "clip.ts"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           str(path))
    info = video.probe(path)
    assert float(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=start_time", "-of", "csv=p=0",
                                 str(path)], capture_output=True, text=True).stdout) > 0.5
    frames = list(video.iter_frames(info, frames=5))
    assert [f.time for f in frames] == pytest.approx([f.index / 25 for f in frames], abs=0.021)


def test_animated_gif_is_flagged_as_palette_quantized(tmp_path: Path, media: dict[str, Path]) -> None:
    path = tmp_path / "clip.gif"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=10:duration=1", str(path))
    info = video.probe(path)
    assert not info.is_image and info.palette_quantized and info.to_dict()["palette_quantized"] is True
    warnings = video.input_warnings(info)
    assert len(warnings) == 1 and "palette-quantized" in warnings[0] and "weak" in warnings[0]
    assert len(list(video.iter_frames(info, frames=4))) == 4
    assert video.input_warnings(video.probe(media["clip.mp4"])) == []
    assert video.input_warnings(video.probe(media["still.png"])) == []


UPRIGHT_FROM_STORED = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                       4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                       6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}


def exif_still(upright: np.ndarray, orientation: int, path: Path) -> Path:
    """A JPEG whose stored pixels are ``upright`` turned as a camera stores them (sideways for 5-8), with the EXIF
    orientation that tells a viewer to turn them back."""
    image = Image.fromarray(upright)
    stored = image.transpose(UPRIGHT_FROM_STORED[orientation]) if orientation != 1 else image
    exif = Image.Exif()
    exif[video.EXIF_ORIENTATION] = orientation
    stored.save(path, exif=exif.tobytes(), quality=95)
    return path


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    """The astronaut, cropped to 4:3 landscape around her face, so a sideways copy has its width and height swapped."""
    return data.astronaut()[:384, :512].copy()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_to_stills(orientation: int, portrait: np.ndarray, tmp_path: Path) -> None:
    """Every EXIF orientation decodes as displayed: the same size and pixels as Pillow's exif_transpose shows."""
    path = exif_still(portrait, orientation, tmp_path / f"o{orientation}.jpg")
    info = video.probe(path)
    assert info.is_image and info.orientation == orientation
    assert (info.width, info.height) == (512, 384)
    frame = next(video.iter_frames(info))
    shown = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    assert frame.image.shape == shown.shape == (384, 512, 3)
    assert np.abs(frame.image.astype(int) - shown.astype(int)).mean() < 4
    assert np.abs(frame.image.astype(int) - portrait.astype(int)).mean() < 6


@pytest.fixture(scope="module")
def face_detector():
    from detector.face.faces import FaceDetector

    return FaceDetector()


@pytest.mark.e2e  # loads TensorFlow and MTCNN
def test_sideways_phone_photos_show_an_upright_unstretched_face(portrait: np.ndarray, face_detector,
                                                                tmp_path: Path) -> None:
    """Phone photos stored sideways (EXIF 3, 6, 8), large enough to be downscaled while decoding: the face is
    found where the upright photo has it, with the same box shape."""
    big = cv2.resize(portrait, (2048, 1536), interpolation=cv2.INTER_CUBIC)

    def face_of(path: Path) -> tuple[np.ndarray, np.ndarray]:
        frame = next(video.iter_frames(video.probe(path)))
        faces = face_detector.detect(frame.image)
        assert len(faces) == 1, path.name
        return frame.image, faces[0].box / frame.scale

    upright_image, upright_box = face_of(exif_still(big, 1, tmp_path / "upright.jpg"))
    assert upright_image.shape == (1440, 1920, 3)
    upright_aspect = (upright_box[2] - upright_box[0]) / (upright_box[3] - upright_box[1])
    for orientation in (3, 6, 8):
        image, box = face_of(exif_still(big, orientation, tmp_path / f"o{orientation}.jpg"))
        assert image.shape == upright_image.shape
        assert np.abs(image.astype(int) - upright_image.astype(int)).mean() < 6, orientation
        assert iou(box, upright_box) > 0.8, (orientation, box, upright_box)
        aspect = (box[2] - box[0]) / (box[3] - box[1])
        assert aspect == pytest.approx(upright_aspect, rel=0.1), orientation


@pytest.mark.parametrize("name", ["-x.mp4", "--help.mp4", "concat:clip.mp4", "a:b.mp4", "img%d.png", "star*.png",
                                  "spa ce's \"quoted\".mp4", "ünïcødé.mp4"])
def test_any_file_name_is_a_file_name(name: str, media: dict[str, Path], tmp_path: Path) -> None:
    """Names that look like ffmpeg options, protocols or image-sequence patterns are still just files."""
    source = media["still.png"] if name.endswith(".png") else media["clip.mp4"]
    path = tmp_path / name
    shutil.copy(source, path)
    info = video.probe(path)
    assert info.is_image is name.endswith(".png")
    frames = list(video.iter_frames(info, frames=2))
    assert len(frames) == (1 if info.is_image else 2) and frames[0].image.std() > 10


def test_links_and_special_files_get_a_clear_reason(tmp_path: Path, media: dict[str, Path]) -> None:
    (tmp_path / "dangling.mp4").symlink_to(tmp_path / "gone.mp4")
    (tmp_path / "loop_a.mp4").symlink_to(tmp_path / "loop_b.mp4")
    (tmp_path / "loop_b.mp4").symlink_to(tmp_path / "loop_a.mp4")
    (tmp_path / "good.mp4").symlink_to(media["clip.mp4"])
    os.mkfifo(tmp_path / "pipe.mp4")
    for name, words in (("dangling.mp4", "broken symbolic link"), ("loop_a.mp4", "symbolic link loop"),
                        ("pipe.mp4", "not a regular file")):
        with pytest.raises(InputError, match=words):
            video.probe(tmp_path / name)
    assert video.probe(tmp_path / "good.mp4").frame_count == 50


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
