"""The window sampler: contiguous frames at the native rate, spread over the video; stills and short videos have
none and say why; variable-frame-rate video is read in consecutive decoded frames."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ffmpeg

from detector.ingest import video
from detector.temporal.windows import plan_windows, runs
from detector.ingest.video import VideoInfo


def _info(frames: int, fps: float = 30.0, is_image: bool = False) -> VideoInfo:
    return VideoInfo(path="x.mp4", width=640, height=480, codec="h264", container="mp4", fps=fps,
                     duration=frames / fps, frame_count=frames, rotation=0, is_image=is_image, has_audio=False)


def test_windows_are_contiguous_spread_and_disjoint():
    plan = plan_windows(_info(300), count=3, length=30)
    assert plan.reason is None and len(plan.windows) == 3
    starts = [w.start for w in plan.windows]
    assert starts == sorted(starts)
    for a, b in zip(plan.windows, plan.windows[1:]):
        assert a.stop <= b.start
    # one window per third of the video, each centred in its third
    for k, w in enumerate(plan.windows):
        assert k * 100 <= w.start and w.stop <= (k + 1) * 100
        assert abs((w.start + w.stop) / 2 - (k * 100 + 50)) <= 1
    assert plan.windows[1].start_time == pytest.approx(plan.windows[1].start / 30.0)


def test_a_still_and_a_too_short_video_have_no_windows_and_say_so():
    still = plan_windows(_info(1, is_image=True))
    assert still.windows == () and "still" in still.reason
    short = plan_windows(_info(20), length=30)
    assert short.windows == () and "20 frames" in short.reason


def test_a_short_video_gets_the_windows_that_fit():
    plan = plan_windows(_info(70), count=3, length=30)
    assert len(plan.windows) == 2
    assert all(0 <= w.start and w.stop <= 70 for w in plan.windows)


def test_windows_move_back_to_keyframes_and_then_follow_each_other():
    asked: list[list[float]] = []

    def keyframes(times: list[float]) -> list[float]:
        asked.append(times)
        return [4.0 * (t // 4) for t in times]  # a keyframe every 4 s

    plan = plan_windows(_info(300), count=3, length=30, keyframes=keyframes)
    assert len(asked) == 1 and len(asked[0]) == 3
    # wanted 35, 135, 235 -> keyframes at frames 0, 120, 120: the third follows the second
    assert [w.start for w in plan.windows] == [0, 120, 150]
    assert [len(r) for r in runs(plan.windows)] == [1, 2]


def test_keyframe_lookup_failure_keeps_the_wanted_starts():
    plain = plan_windows(_info(300))
    assert plan_windows(_info(300), keyframes=lambda times: None) == plain


@pytest.mark.slow
def test_decode_run_reads_consecutive_frames_at_native_rate(tmp_path):
    clip = tmp_path / "count.mp4"
    # frame k is filled with grey level 2k (0..238) at 25 fps, keyframes every 50 frames
    ffmpeg("-f", "lavfi", "-i", "nullsrc=s=64x48:r=25:d=4.8,geq=lum='2*N':cb=128:cr=128", "-c:v", "libx264",
           "-g", "50", "-crf", "0", "-pix_fmt", "yuv420p", clip)
    info = video.probe(clip)
    frames = video.decode_run(info, 60, 30, grey=True)
    assert [f.index for f in frames] == list(range(60, 90))
    assert np.allclose([f.time for f in frames], np.arange(60, 90) / 25.0, atol=0.002)
    levels = np.array([float(f.image.mean()) for f in frames])
    # the very frames, not a seek's neighbours (luma 2k in video range, expanded to full range by the grey pipe)
    assert np.allclose(levels, (2 * np.arange(60, 90) - 16) * 255 / 219, atol=2.0)
    assert frames[0].image.ndim == 2
    keys = video.keyframes_before(info, [0.5, 2.5, 4.1])
    assert keys == pytest.approx([0.0, 2.0, 4.0], abs=0.01)


@pytest.mark.slow
def test_variable_frame_rate_window_is_consecutive_decoded_frames(tmp_path):
    steady = tmp_path / "steady.mp4"
    ffmpeg("-f", "lavfi", "-i", "nullsrc=s=64x48:r=30:d=3,geq=lum='2*N':cb=128:cr=128", "-c:v", "libx264",
           "-crf", "0", "-pix_fmt", "yuv420p", steady)
    vfr = tmp_path / "vfr.mkv"
    # the first half at 30 fps, then every other frame dropped: timestamps no longer tell frame numbers
    ffmpeg("-i", steady, "-vf", "select='lt(n,45)+not(mod(n,2))'", "-fps_mode", "vfr", "-c:v", "libx264",
           "-crf", "0", vfr)
    info = video.probe(vfr)
    plan = plan_windows(info, count=2, length=20)
    assert len(plan.windows) == 2
    first = video.decode_run(info, plan.windows[0].start, plan.windows[0].length, grey=True)
    assert len(first) == plan.windows[0].length
    for window in plan.windows:
        frames = video.decode_run(info, window.start, window.length, grey=True)
        # consecutive decoded frames, whatever their spacing in time; a window past the real end (the container's
        # frame count is an estimate for such a file) comes back short, and the scanner then drops it
        assert 0 < len(frames) <= window.length
        times = [f.time for f in frames]
        assert times == sorted(times) and len(set(times)) == len(times)
        levels = np.array([float(f.image.mean()) for f in frames])
        assert np.all(np.diff(levels) > 0)
