"""Codec damage for training augmentation: real H.264, JPEG and resampling round trips.

Deepfake datasets differ in compression as much as in manipulation (a generator's demo is encoded once, a real
lip-reading clip several times). If training leaves that difference in, the detector learns "compressed = real" or
the reverse. Applying the same random damage to real and fake crops alike removes compression as a class signal.
H.264 is the real codec (ffmpeg, all-intra, random CRF), so its block and deblocking artefacts are the ones videos
carry, not a JPEG stand-in.
"""

from __future__ import annotations

import shutil
import subprocess

import cv2
import numpy as np

#: CRF range of the H.264 round trip: 18 is near-transparent, 40 is heavy streaming damage.
CRF_RANGE = (18, 40)


def ffmpeg_available() -> bool:
    return shutil.which("ffmpeg") is not None


def h264_roundtrip(images: np.ndarray, crf: int, preset: str = "veryfast") -> np.ndarray:
    """Encode a stack of same-size RGB crops (N, H, W, 3) as an all-intra H.264 stream at ``crf`` and decode it.

    All-intra (``-g 1``) because the crops are unrelated pictures: each one gets the intra-frame damage a video's
    frames get, and none borrows blocks from another. One ffmpeg process per stack keeps the cost per crop low.
    """
    images = np.ascontiguousarray(images, np.uint8)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) uint8 images, got {images.shape}")
    n, h, w, _ = images.shape
    if h % 2 or w % 2:
        raise ValueError("H.264 (yuv420p) needs even crop sides")
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-r", "25", "-i", "pipe:", "-c:v", "libx264", "-preset", preset, "-crf", str(int(crf)), "-g", "1",
           "-pix_fmt", "yuv420p", "-f", "h264", "pipe:"]
    encoded = subprocess.run(cmd, input=images.tobytes(), capture_output=True, check=True).stdout
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-f", "h264", "-i", "pipe:", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "pipe:"]
    decoded = subprocess.run(cmd, input=encoded, capture_output=True, check=True).stdout
    out = np.frombuffer(decoded, np.uint8)
    if out.size != images.size:
        raise RuntimeError(f"H.264 round trip returned {out.size} bytes for {images.size}")
    return out.reshape(n, h, w, 3).copy()


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def rescale_roundtrip(image: np.ndarray, factor: float) -> np.ndarray:
    """Downscale by ``factor`` then back up: the softness of a low-resolution source or a 360p re-encode."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(8, round(w * factor)), max(8, round(h * factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def damage_batch(images: np.ndarray, rng: np.random.Generator, p_h264: float = 0.5, p_rescale: float = 0.3,
                 p_jpeg: float = 0.3, use_h264: bool = True) -> np.ndarray:
    """Random codec damage for a batch, applied per crop with the same odds whatever its label.

    The H.264 share of the batch goes through one round trip at one random CRF (per batch, so the cost stays one
    ffmpeg pair per batch); rescaling and JPEG are drawn per crop.
    """
    out = np.array(images, np.uint8, copy=True)
    for i in range(len(out)):
        if rng.random() < p_rescale:
            out[i] = rescale_roundtrip(out[i], rng.uniform(0.35, 0.9))
    if use_h264 and len(out):
        chosen = np.flatnonzero(rng.random(len(out)) < p_h264)
        if chosen.size:
            out[chosen] = h264_roundtrip(out[chosen], int(rng.integers(CRF_RANGE[0], CRF_RANGE[1] + 1)))
    for i in range(len(out)):
        if rng.random() < p_jpeg:
            out[i] = jpeg_roundtrip(out[i], int(rng.integers(35, 96)))
    return out


def damaged(images: np.ndarray, kind: str) -> np.ndarray:
    """The crops as a robustness view scores them: ``crf35`` (H.264 at CRF 35; JPEG 30 where ffmpeg is missing) or
    ``half_res`` (halved and scaled back)."""
    if kind == "crf35":
        return h264_roundtrip(images, 35) if ffmpeg_available() else np.stack(
            [jpeg_roundtrip(x, 30) for x in images])
    return np.stack([rescale_roundtrip(x, 0.5) for x in images])
