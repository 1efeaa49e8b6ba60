"""Batch throughput: the naive path (one frame at a time through detection and the model) against the batched path
(worker processes decode and detect, the model scores crops of several videos per call).

    python -m bench.throughput --input ../shared/data/real_videos/voxceleb2 --workers 2 --frames 32

Prints videos/min, processing seconds per 10 s of video, peak memory and the speed-up. Grad-CAM is off in both
paths (it is the same work either way). Timings depend on the machine: run it on the one you care about.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.speed import naive_clip
from detector.ingest import video
from detector.engines.batch import list_inputs, run
from detector.errors import DetectorError
from detector.face.faces import FaceDetector
from detector.models.model import load_detector
from detector.scan.pipeline import ScanOptions


def naive(files: list[Path], frames: int, detector) -> float:
    """One frame at a time: decode, detect (eager MTCNN on the whole frame), crop, and score each crop alone."""
    faces = FaceDetector(compiled=False)
    start = time.perf_counter()
    for path in files:
        try:
            naive_clip(path, frames, detector, faces)
        except DetectorError:
            continue
    return time.perf_counter() - start


def peak_mb() -> tuple[float, float]:
    """Peak resident memory (MB) of this process and of its largest finished child."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", type=Path, required=True, help="a folder of clips (the same set for both paths)")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    p.add_argument("--frames", type=int, default=ScanOptions().frames)
    p.add_argument("--batch-size", type=int, default=ScanOptions().batch_size)
    p.add_argument("--model", type=Path)
    p.add_argument("--skip-naive", action="store_true")
    args = p.parse_args(argv)
    files, _ = list_inputs(args.input)
    duration = sum(video.probe(f).duration for f in files)
    detector = load_detector(args.model)
    detector.predict(np.zeros((1, detector.image_size, detector.image_size, 3), np.uint8))  # warm up

    print(f"{len(files)} files, {duration:.0f} s of video, {args.frames} frames each, {os.cpu_count()} CPUs")
    results = {}
    if not args.skip_naive:
        seconds = naive(files, args.frames, detector)
        results["naive"] = seconds
        print(f"naive   : {seconds:7.1f} s  {60 * len(files) / seconds:6.2f} videos/min  "
              f"{10 * seconds / duration:6.2f} s per 10 s of video  peak {peak_mb()[0]:.0f} MB")
    with tempfile.TemporaryDirectory() as out:
        options = ScanOptions(frames=args.frames, batch_size=args.batch_size, gradcam=False)
        start = time.perf_counter()
        run(args.input, Path(out), detector, options, show_progress=False, workers=args.workers, resume=False)
        seconds = time.perf_counter() - start
    results["batched"] = seconds
    own, child = peak_mb()
    print(f"batched : {seconds:7.1f} s  {60 * len(files) / seconds:6.2f} videos/min  "
          f"{10 * seconds / duration:6.2f} s per 10 s of video  peak {own:.0f} MB main + {child:.0f} MB per worker "
          f"({args.workers} workers)")
    if "naive" in results:
        print(f"speed-up: {results['naive'] / results['batched']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
