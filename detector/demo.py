"""Demo media the project makes itself, so a fresh clone can be tried (and tested) without any downloaded data.

The source is scikit-image's bundled ``astronaut()`` (Eileen Collins, a public-domain NASA portrait), so nothing
needs a network. A virtual camera pans and zooms over it, which gives a real face that moves and changes size, the
way faces do in footage; frames are piped to ffmpeg as raw RGB, so no temporary image files are written.

    python -m detector.demo [OUT_DIR]      # default: demo/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import ffmpeg
import numpy as np

#: Centre of the astronaut's face in the 512x512 source image (x, y), measured with MTCNN.
FACE_CENTRE = (224.0, 118.0)


def astronaut() -> np.ndarray:
    """The 512x512 RGB astronaut portrait bundled with scikit-image."""
    from skimage import data

    return data.astronaut()


def pan_zoom_frames(count: int = 48, size: tuple[int, int] = (480, 360)) -> Iterator[np.ndarray]:
    """``count`` RGB frames of a camera that starts wide, then zooms in on the face while drifting across it.

    The crop window shrinks from 440 to 260 source pixels and its centre moves from left of the face to right of it,
    so a detector sees the face at different positions and scales, and a tracker has something to follow.
    """
    image = astronaut()
    out_w, out_h = size
    aspect = out_w / out_h
    for i in range(count):
        t = i / max(count - 1, 1)
        crop_h = 440 - 180 * t
        crop_w = min(crop_h * aspect, image.shape[1])
        cx = FACE_CENTRE[0] + (t - 0.5) * 60
        cy = FACE_CENTRE[1] + 60 - 40 * t
        x0 = float(np.clip(cx - crop_w / 2, 0, image.shape[1] - crop_w))
        y0 = float(np.clip(cy - crop_h / 2, 0, image.shape[0] - crop_h))
        # an affine warp gives sub-pixel camera motion (integer crops would judder)
        sx, sy = out_w / crop_w, out_h / crop_h
        matrix = np.array([[sx, 0, -x0 * sx], [0, sy, -y0 * sy]], np.float32)
        yield cv2.warpAffine(image, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def write_video(frames: Iterable[np.ndarray], path: str | Path, fps: float = 24.0, codec: str = "libx264",
                **output_args) -> Path:
    """Encode RGB uint8 frames (all the same size) into ``path`` by piping raw pixels into one ffmpeg process.

    ``output_args`` go to ffmpeg's output (e.g. ``movflags="+faststart"``). yuv420p is used for H.264 so every
    player can open the file; that needs even frame sizes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iterator = iter(frames)
    first = next(iterator)
    height, width = first.shape[:2]
    args = {"vcodec": codec, "r": fps, **output_args}
    if codec in ("libx264", "libx265", "libvpx", "libvpx-vp9", "mpeg4"):
        args.setdefault("pix_fmt", "yuv420p")
    process = (
        ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", r=fps)
        .output(str(path), **args)
        .global_args("-nostdin", "-loglevel", "error")
        .overwrite_output()
        .run_async(pipe_stdin=True, pipe_stderr=True)
    )
    try:
        for frame in (first, *iterator):
            process.stdin.write(np.ascontiguousarray(frame, np.uint8).tobytes())
    finally:
        process.stdin.close()
        stderr = process.stderr.read()
        process.stderr.close()
        code = process.wait()
    if code != 0:
        raise RuntimeError(f"ffmpeg could not write {path}: {stderr.decode('utf-8', 'replace').strip()}")
    return path


def write_image(image: np.ndarray, path: str | Path) -> Path:
    """Save an RGB image (format from the file suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise RuntimeError(f"could not write {path}")
    return path


def make_demo(out_dir: str | Path) -> list[Path]:
    """Write the demo set into ``out_dir``: a 2 s pan/zoom clip of the astronaut's face and the still portrait."""
    out = Path(out_dir)
    return [
        write_video(pan_zoom_frames(), out / "astronaut_pan.mp4", movflags="+faststart"),
        write_image(astronaut(), out / "astronaut.jpg"),
    ]


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (``make demo`` calls it); exit status 2 when ffmpeg is missing."""
    parser = argparse.ArgumentParser(prog="python -m detector.demo", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", type=Path, default=Path("demo"), help="folder to write (default demo/)")
    args = parser.parse_args(argv)
    try:
        written = make_demo(args.out_dir)
    except FileNotFoundError:
        print("error: ffmpeg not found: install it (e.g. apt-get install ffmpeg)", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
