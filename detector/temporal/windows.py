"""Which runs of consecutive frames a video is read in, for the temporal evidence.

The frame model samples frames spread over the whole video; motion needs the opposite, frames that follow each other
at the video's own rate. So a video is read in a few windows of ``WINDOW_FRAMES`` consecutive frames, spread over its
length like the frame samples (the centres of equal segments), so a cut-in or a swap that only covers part of a
video still falls in one. Windows are counted in frames, not seconds: a variable-frame-rate video's window is the
decoded frames that follow each other, whatever their timestamps say.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from detector import config
from detector.ingest.video import VideoInfo


@dataclass(frozen=True)
class Window:
    """``length`` consecutive frames from frame ``start`` (counted in the stream), from ``start_time`` seconds."""

    start: int
    length: int
    start_time: float

    @property
    def stop(self) -> int:
        """One past the last frame."""
        return self.start + self.length


@dataclass(frozen=True)
class WindowPlan:
    """The windows of one input, or why it has none (a still, a video shorter than one window)."""

    windows: tuple[Window, ...]
    reason: str | None = None


def plan_windows(info: VideoInfo, count: int = config.TEMPORAL_WINDOWS, length: int = config.WINDOW_FRAMES,
                 keyframes: Callable[[list[float]], list[float] | None] | None = None) -> WindowPlan:
    """Up to ``count`` non-overlapping windows of ``length`` frames, centred in equal segments of the video.

    A video too short for ``count`` windows gets as many as fit; one shorter than a window gets none, with a reason.
    ``keyframes`` (e.g. :func:`detector.ingest.video.keyframes_before`) maps wanted start times to the keyframe at or
    before each: a window then starts at that keyframe, since decoding from there to the wanted start would cost as
    much as the window itself and tell nothing more; windows that would then overlap follow each other instead.
    """
    if count <= 0 or length <= 1:
        raise ValueError("a temporal plan needs at least one window of two frames or more")
    if info.is_image:
        return WindowPlan((), "a still has no motion: no temporal evidence")
    total = info.frame_count
    if total < length:
        return WindowPlan((), f"the video has {total} frames, fewer than one window of {length}: no temporal "
                              "evidence")
    count = min(count, total // length)
    segment = total / count
    starts = []
    for k in range(count):
        lowest, highest = int(k * segment), min(int((k + 1) * segment), total) - length
        starts.append(max(lowest, min(int(round(segment * (k + 0.5) - length / 2)), highest)))
    if keyframes is not None and info.fps:
        snapped = keyframes([s / info.fps for s in starts])
        if snapped is not None:
            starts = [min(int(round(t * info.fps)), s) for t, s in zip(snapped, starts)]
    windows: list[Window] = []
    for start in sorted(starts):
        if windows and start < windows[-1].stop:
            start = windows[-1].stop
        if start + length > total:
            continue
        windows.append(Window(start=start, length=length, start_time=round(start / info.fps, 6) if info.fps else 0.0))
    return WindowPlan(tuple(windows))


def runs(windows: tuple[Window, ...] | list[Window]) -> list[list[Window]]:
    """Windows that follow each other without a gap, grouped: each group is decoded in one pass."""
    groups: list[list[Window]] = []
    for window in sorted(windows, key=lambda w: w.start):
        if groups and groups[-1][-1].stop == window.start:
            groups[-1].append(window)
        else:
            groups.append([window])
    return groups
