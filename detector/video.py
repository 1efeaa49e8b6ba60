"""Ingestion with ffmpeg: probe a file, then stream only the sampled frames as RGB arrays through a pipe.

Nothing is decoded to disk and at most one frame is held at a time, so a two-hour video costs no more memory than a
two-second one. Still images take the same path (ffmpeg decodes JPEG/PNG/WebP too), so the scanner has one code path.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import ffmpeg
import numpy as np

from .config import MAX_PIXELS
from .errors import InputError

#: ffmpeg demuxers that mean "this is a still image".
_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif_pipe_single")
#: Longest side frames are decoded at; bigger videos are downscaled inside ffmpeg to keep memory bounded.
DECODE_MAX_SIDE = 1920


@dataclass
class VideoInfo:
    """What ffprobe says about a file, normalised. Width and height are as displayed (rotation applied)."""

    path: str
    width: int
    height: int
    codec: str
    container: str
    fps: float
    duration: float
    frame_count: int
    rotation: int
    is_image: bool
    has_audio: bool
    bit_rate: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Frame:
    """One decoded frame: its index in the stream, its time in seconds, and the RGB pixels (H, W, 3) uint8.

    ``scale`` is decoded size / displayed size (below 1 when a huge video was downscaled while decoding).
    """

    index: int
    time: float
    image: np.ndarray
    scale: float = 1.0


def _first_error_line(stderr: bytes | None) -> str:
    """The most telling line of ffmpeg's stderr, for a one-line error message."""
    if not stderr:
        return "no details from ffmpeg"
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    for keyword in ("Invalid data", "moov atom", "No such file", "Permission denied", "could not find codec",
                    "Decoder", "error", "Error"):
        for line in lines:
            if keyword in line:
                return line
    return lines[-1] if lines else "no details from ffmpeg"


def _parse_rate(rate: str | None) -> float:
    """ffprobe rates are fractions like '30000/1001'; '0/0' means unknown."""
    if not rate or rate in ("0/0", "N/A"):
        return 0.0
    num, _, den = rate.partition("/")
    try:
        value = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return 0.0
    return value if math.isfinite(value) and value > 0 else 0.0


def _rotation(stream: dict) -> int:
    """Display rotation in degrees (0, 90, 180, 270), from the display matrix or the legacy 'rotate' tag."""
    angle = 0.0
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            angle = float(side["rotation"])
            break
    else:
        tag = (stream.get("tags") or {}).get("rotate")
        if tag is not None:
            try:
                angle = -float(tag)
            except ValueError:
                angle = 0.0
    return int(round(-angle)) % 360


def _float(value, default: float = 0.0) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return default
    return result if math.isfinite(result) else default


def probe(path: str | os.PathLike) -> VideoInfo:
    """Probe ``path`` and return its facts, or raise :class:`InputError` with a one-line reason."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not a video file")
    if not os.access(p, os.R_OK):
        raise InputError(f"{p}: permission denied")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: empty file (0 bytes)")
    try:
        meta = ffmpeg.probe(str(p))
    except FileNotFoundError:
        raise InputError("ffprobe not found: install ffmpeg (e.g. apt-get install ffmpeg)") from None
    except ffmpeg.Error as exc:
        raise InputError(f"{p}: not a readable video or image ({_first_error_line(exc.stderr)})") from None

    streams = meta.get("streams", [])
    fmt = meta.get("format", {})
    video = [s for s in streams if s.get("codec_type") == "video"
             and not (s.get("disposition") or {}).get("attached_pic")]
    has_audio = any(s.get("codec_type") == "audio" for s in streams)
    if not video:
        if has_audio:
            raise InputError(f"{p}: audio-only file (no video stream)")
        raise InputError(f"{p}: no video stream (not a video or image)")
    stream = video[0]
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    if width <= 0 or height <= 0:
        raise InputError(f"{p}: video stream has no frame size (corrupt header)")
    if width * height > MAX_PIXELS:
        raise InputError(f"{p}: frame size {width}x{height} is larger than supported ({MAX_PIXELS} pixels)")
    rotation = _rotation(stream)
    if rotation in (90, 270):
        width, height = height, width

    container = fmt.get("format_name", "")
    is_image = container in _IMAGE_FORMATS or (
        container.endswith("_pipe") and stream.get("codec_name") in ("mjpeg", "png", "webp", "bmp", "tiff"))
    fps = _parse_rate(stream.get("avg_frame_rate")) or _parse_rate(stream.get("r_frame_rate"))
    duration = _float(stream.get("duration")) or _float(fmt.get("duration"))
    nb_frames = int(_float(stream.get("nb_frames")))
    if is_image:
        fps, duration, nb_frames = 0.0, 0.0, 1
    else:
        if fps <= 0 or fps > 1000:
            fps = 25.0
        if nb_frames <= 0:
            nb_frames = int(round(duration * fps))
        if nb_frames <= 0 or duration <= 0 and nb_frames <= 1:
            if nb_frames <= 0:
                raise InputError(f"{p}: zero-length video (no frames)")
        if duration <= 0:
            duration = nb_frames / fps
    bit_rate = fmt.get("bit_rate")
    return VideoInfo(
        path=str(p),
        width=width,
        height=height,
        codec=str(stream.get("codec_name", "unknown")),
        container=container,
        fps=round(fps, 3),
        duration=round(duration, 3),
        frame_count=nb_frames,
        rotation=rotation,
        is_image=is_image,
        has_audio=has_audio,
        bit_rate=int(bit_rate) if bit_rate and str(bit_rate).isdigit() else None,
    )


def sample_indices(info: VideoInfo, frames: int | None = None, fps: float | None = None) -> list[int]:
    """Frame indices to analyse: ``frames`` evenly spaced (centre of equal segments) or one every 1/``fps`` s.

    The same arithmetic is given to ffmpeg's select filter (see :func:`_select_expr`), so the frames ffmpeg sends
    are the ones listed here.
    """
    if info.is_image:
        return [0]
    step, offset, count = _sampling(info, frames, fps)
    return [int(math.ceil(offset + k * step)) for k in range(count)]


def _sampling(info: VideoInfo, frames: int | None, fps: float | None) -> tuple[float, float, int]:
    total = max(info.frame_count, 1)
    if fps is not None:
        if fps <= 0:
            raise ValueError("--fps must be positive")
        step = max(info.fps / fps, 1.0)
    else:
        n = frames if frames is not None else 32
        if n <= 0:
            raise ValueError("--frames must be positive")
        step = max(total / n, 1.0)
    # nudged down, not up: ceil() of an exact integer must stay put, or frame 0 is never sampled (a one-frame
    # video decodes nothing); the nudge keeps Python and ffmpeg's select filter agreeing on float ties
    offset = (step - 1.0) / 2.0 - 1e-6
    count = max(1, int(math.floor((total - 1 - offset) / step)) + 1)
    return step, offset, count


def _select_expr(step: float, offset: float) -> str:
    """ffmpeg select expression that keeps frame n when n == ceil(offset + k*step) for some k >= 0."""
    return f"gte(n,{offset:.6f})*lt(mod(n-{offset:.6f},{step:.6f}),1)"


def decode_size(info: VideoInfo, max_side: int = DECODE_MAX_SIDE) -> tuple[int, int]:
    """Size frames are decoded at: the displayed size, shrunk if its longer side exceeds max_side."""
    scale = min(1.0, max_side / max(info.width, info.height))
    w = max(1, int(round(info.width * scale)))
    h = max(1, int(round(info.height * scale)))
    return w, h


def iter_frames(info: VideoInfo, frames: int | None = None, fps: float | None = None,
                max_side: int = DECODE_MAX_SIDE) -> Iterator[Frame]:
    """Yield the sampled frames one at a time from a single ffmpeg process.

    ffmpeg applies the display rotation itself (autorotate), then the select filter keeps only the sampled frames, so
    the pipe carries exactly those. Raises :class:`InputError` when ffmpeg fails before the first frame.
    """
    indices = sample_indices(info, frames, fps)
    width, height = decode_size(info, max_side)
    stream = ffmpeg.input(info.path)
    video = stream.video
    if not info.is_image:
        step, offset, _ = _sampling(info, frames, fps)
        video = video.filter("select", _select_expr(step, offset))
    video = video.filter("scale", width, height)
    out = video.output("pipe:", format="rawvideo", pix_fmt="rgb24", vsync="passthrough",
                       **{"frames:v": len(indices)})
    try:
        process = out.global_args("-nostdin", "-loglevel", "error").run_async(pipe_stdout=True, pipe_stderr=True)
    except FileNotFoundError:
        raise InputError("ffmpeg not found: install ffmpeg (e.g. apt-get install ffmpeg)") from None
    frame_bytes = width * height * 3
    scale = width / info.width
    produced = 0
    try:
        for index in indices:
            buf = _read_exact(process.stdout, frame_bytes)
            if buf is None:
                break
            image = np.frombuffer(buf, np.uint8).reshape(height, width, 3)
            time = index / info.fps if info.fps else 0.0
            produced += 1
            yield Frame(index=index, time=round(time, 3), image=image, scale=scale)
    finally:
        process.stdout.close()
        stderr = process.stderr.read()
        process.stderr.close()
        process.wait()
    if produced == 0:
        raise InputError(f"{info.path}: could not decode any frame ({_first_error_line(stderr)})")


def _read_exact(pipe, size: int) -> bytes | None:
    """Read exactly ``size`` bytes, or None at end of stream (a partial frame means the stream broke off)."""
    chunks, remaining = [], size
    while remaining:
        chunk = pipe.read(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def check_complete(info: VideoInfo, requested: int, decoded: int, last_time: float) -> list[str]:
    """Refuse truncated or corrupt videos; return warnings for harmless shortfalls.

    A truncated mp4 can probe as full length and simply yield fewer frames without any ffmpeg error, so the decoded
    count is compared with the requested one: more than one missing frame means the file is damaged.
    """
    missing = requested - decoded
    if missing > 1:
        raise InputError(
            f"{info.path}: truncated or corrupt video: decoded {decoded} of {requested} sampled frames "
            f"(stream ends near {last_time:.1f} s of {info.duration:.1f} s)")
    if missing == 1:
        return ["the last sampled frame could not be decoded (the frame count in the header is off by one)"]
    return []
