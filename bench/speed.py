"""One clip, every path: where a scan's time goes, how it compares, and what it costs in memory.

    python -m bench.speed --clip ../shared/data/labeled/videos/weak_b_real.mp4 [--repeat 3] [--json out.json]

In one run, with the model loaded once and warm:

* ``naive``: one frame at a time: decode (every frame of the stream, keeping the sampled ones), MTCNN on the whole
  frame (eager, as the library ships), crop, score the crop alone (batch of one); no Grad-CAM.
* ``previous``: the previous release's settings: every frame decoded, eager MTCNN on every sampled frame whole, then
  the model on all crops, then Grad-CAM, one stage after another.
* ``current, in sequence``: today's face search, stages one after another.
* ``current``: today's defaults (unreferenced frames not decoded, face search, decode/search/scoring overlapped,
  Grad-CAM of the shown frames).
* ``current, every frame decoded``: today's defaults but ``exact_frames`` (what skipping unreferenced frames saves).
* ``current, no Grad-CAM``: like for like with ``naive``.
* the same with the other way of finding followed faces between whole-frame searches (``ScanOptions.refine_faces``):
  MTCNN's last network on each face's predicted box, or the exact window search, whichever is not the default.

Each path runs ``--repeat`` times, interleaved so that a burst of load on a shared machine hits them alike; the table
gives the median (and the fastest) wall seconds, CPU seconds (this process and ffmpeg), seconds per 10 s of video,
per-stage seconds and the peak memory the scan added. Stage seconds of the overlapped path are each stage's own time
and add up to more than the wall time. The ``previous`` path runs Grad-CAM eagerly every time, as that release did.
Then: the first scan's latency (cold: graphs are traced), the second's (Grad-CAM's graph is traced), memory on the same
clip looped to 6x its length (it must stay flat), the whole command line (``app.py``, TensorFlow import and model load
included), and the load average, since timings on a busy machine are not comparable with a quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from detector import config  # noqa: E402
from detector.ingest import video  # noqa: E402
from detector.face.faces import FaceDetector, crop_face  # noqa: E402
from detector.scan.explain import make_explainer  # noqa: E402
from detector.models.model import load_detector  # noqa: E402
from detector.scan.pipeline import ScanOptions, Scanner  # noqa: E402

STAGES = ("decode", "faces", "model", "gradcam")
REFINE = config.REFINE_FOLLOWED
#: the other way of finding followed faces again between whole-frame searches (detector.face.face_search), no Grad-CAM
OTHER_FOLLOWING = ("no Grad-CAM, followed faces searched in windows" if REFINE
                   else "no Grad-CAM, followed faces refined by ONet")


def naive_clip(path: Path, frames: int, detector, faces: FaceDetector) -> dict:
    """The naive per-frame path on one file; returns its stage seconds (nothing overlaps, so they add up)."""
    seconds = dict.fromkeys(("decode", "faces", "model"), 0.0)
    info = video.probe(path)
    iterator = video.iter_frames(info, frames, reference_only=False)
    while True:
        t = time.perf_counter()
        frame = next(iterator, None)
        seconds["decode"] += time.perf_counter() - t
        if frame is None:
            return seconds
        t = time.perf_counter()
        found = faces.detect(frame.image)
        crops = [crop_face(frame.image, d.box, d.keypoints, size=detector.image_size).image for d in found]
        seconds["faces"] += time.perf_counter() - t
        t = time.perf_counter()
        for crop in crops:
            detector.predict(crop[None], batch_size=1)
        seconds["model"] += time.perf_counter() - t


class RssSampler:
    """Resident memory of this process, sampled every few milliseconds in a thread, for the peak during a block."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def rss(self) -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * self._page

    @contextmanager
    def watch(self) -> Iterator["RssSampler"]:
        """Within the block, ``peak`` becomes the highest RSS seen minus the RSS at its start (bytes)."""
        base = self.rss()
        self.peak = 0
        self._stop.clear()

        def sample() -> None:
            while not self._stop.is_set():
                self.peak = max(self.peak, self.rss() - base)
                time.sleep(self.interval)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
            self.peak = max(self.peak, self.rss() - base)


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (ffmpeg decodes in a child process)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def measure(run: Callable[[], dict], sampler: RssSampler) -> dict:
    """Wall and CPU seconds, stage seconds and added peak memory (MB) of one run. CPU seconds barely depend on how
    busy the machine is, so they compare runs made under different load; wall seconds are what a user waits."""
    with sampler.watch():
        wall, cpu = time.perf_counter(), cpu_seconds()
        stages = run()
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return {"wall": wall, "cpu": cpu, "stages": stages, "added_mb": sampler.peak / 2**20}


def scan_stages(scanner: Scanner, path: Path) -> Callable[[], dict]:
    def run() -> dict:
        result = scanner.scan(path)
        if result.verdict == "error":
            raise SystemExit(f"error: {result.error}")
        return {key: result.seconds.get(key, 0.0) for key in STAGES}

    return run


def looped(clip: Path, times: int, folder: Path) -> Path:
    """The clip played ``times`` times in a row, copied without re-encoding."""
    target = folder / f"looped{times}{clip.suffix}"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", str(times - 1), "-i", video.ffmpeg_url(clip),
                    "-c", "copy", "-an", str(target)], check=True)
    return target


def app_seconds(root: Path, clip: Path) -> float:
    """Wall seconds of ``python app.py --input CLIP`` in the checkout ``root``, as a user runs it."""
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "app.py", "--input", str(clip.resolve()), "--output", out, "--quiet"],
                              capture_output=True, text=True, cwd=root, check=False)
        seconds = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"error: app.py in {root} failed: {done.stderr.strip()[-300:]}")
    return seconds


def summary(runs: list[dict], duration: float) -> dict:
    walls = [r["wall"] for r in runs]
    wall = statistics.median(walls)
    return {"wall": wall, "fastest": min(walls), "cpu": statistics.median(r["cpu"] for r in runs),
            "per_10s_of_video": 10 * wall / duration,
            "stages": {k: statistics.median(r["stages"].get(k, 0.0) for r in runs) for k in STAGES},
            "added_mb": max(r["added_mb"] for r in runs), "walls": walls}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip", type=Path, required=True, help="the clip to time (the target: 10 s of 1080p)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each path (median reported)")
    p.add_argument("--frames", type=int, default=ScanOptions().frames)
    p.add_argument("--model", type=Path)
    p.add_argument("--skip-cli", action="store_true", help="do not time the app.py command line")
    p.add_argument("--previous-checkout", type=Path,
                   help="a checkout of the previous release: its app.py is timed on the clip too")
    p.add_argument("--json", type=Path, help="write every number here")
    args = p.parse_args(argv)
    load_start = os.getloadavg()
    info = video.probe(args.clip)
    print(f"{args.clip.name}: {info.width}x{info.height}, {info.duration:.1f} s, {args.frames} frames sampled; "
          f"{os.cpu_count()} CPUs, load average {load_start[0]:.1f} / {load_start[1]:.1f} / {load_start[2]:.1f}")

    t = time.perf_counter()
    detector = load_detector(args.model)
    load_seconds = time.perf_counter() - t
    sampler = RssSampler()
    opts = {"frames": args.frames}
    current = Scanner(detector, ScanOptions(**opts))
    t = time.perf_counter()
    current.scan(args.clip)
    cold = time.perf_counter() - t

    eager = FaceDetector(compiled=False)
    # the previous release ran Grad-CAM eagerly on every call
    never_compiled = make_explainer(ScanOptions().cam_method, detector.keras_model, eager_calls=sys.maxsize)
    paths: dict[str, Callable[[], dict]] = {
        "naive": lambda: naive_clip(args.clip, args.frames, detector, eager),
        "previous": scan_stages(Scanner(detector, ScanOptions(full_detect_every=1, overlap=False, exact_frames=True,
                                                              **opts), face_detector=eager,
                                        explainer=never_compiled), args.clip),
        "current, in sequence": scan_stages(Scanner(detector, ScanOptions(overlap=False, **opts),
                                                    face_detector=current.faces), args.clip),
        "current": scan_stages(current, args.clip),
        "current, every frame decoded": scan_stages(Scanner(detector, ScanOptions(exact_frames=True, **opts),
                                                            face_detector=current.faces), args.clip),
        "current, no Grad-CAM": scan_stages(Scanner(detector, ScanOptions(gradcam=False, **opts),
                                                    face_detector=current.faces), args.clip),
        OTHER_FOLLOWING: scan_stages(Scanner(detector, ScanOptions(gradcam=False, refine_faces=not REFINE, **opts),
                                             face_detector=current.faces), args.clip),
    }
    t = time.perf_counter()
    paths["current"]()  # the second scan: where Grad-CAM's graph is traced (explain.CamExplainer), once per process
    second = time.perf_counter() - t
    for run in paths.values():  # warm every path once (graph tracing, MTCNN weights), untimed
        run()
    runs: dict[str, list[dict]] = {name: [] for name in paths}
    for _ in range(args.repeat):
        for name, run in paths.items():
            runs[name].append(measure(run, sampler))
    table = {name: summary(r, info.duration) for name, r in runs.items()}

    print(f"\n{'path':46s} {'wall s':>7s} {'fastest':>7s} {'CPU s':>6s} {'s/10 s':>6s}  "
          + " ".join(f"{s:>7s}" for s in STAGES) + f" {'+MB':>5s}")
    for name, row in table.items():
        print(f"{name:46s} {row['wall']:7.2f} {row['fastest']:7.2f} {row['cpu']:6.2f} {row['per_10s_of_video']:6.2f}  "
              + " ".join(f"{row['stages'][s]:7.2f}" for s in STAGES) + f" {row['added_mb']:5.0f}")
    ratios = {"naive / current, no Grad-CAM": table["naive"]["wall"] / table["current, no Grad-CAM"]["wall"],
              "naive / current": table["naive"]["wall"] / table["current"]["wall"],
              "previous / current": table["previous"]["wall"] / table["current"]["wall"],
              "current, in sequence / current": table["current, in sequence"]["wall"] / table["current"]["wall"],
              "current, every frame decoded / current":
                  table["current, every frame decoded"]["wall"] / table["current"]["wall"],
              f"naive / {OTHER_FOLLOWING}": table["naive"]["wall"] / table[OTHER_FOLLOWING]["wall"]}
    cpu_ratios = {k: table[k.split(" / ")[0]]["cpu"] / table[k.split(" / ")[1]]["cpu"] for k in ratios}
    print("\nspeed-up (median wall): " + "; ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    print("CPU seconds ratio:      " + "; ".join(f"{k} {v:.2f}x" for k, v in cpu_ratios.items()))
    print(f"single clip, warm model: {table['current']['wall']:.2f} s (fastest {table['current']['fastest']:.2f} s); "
          f"first scan after loading (cold): {cold:.2f} s; second (Grad-CAM traced): {second:.2f} s; "
          f"model load {load_seconds:.2f} s")

    memory = {}
    with tempfile.TemporaryDirectory() as folder:
        long_clip = looped(args.clip, 6, Path(folder))
        long_info = video.probe(long_clip)
        for name, clip in (("1x", args.clip), ("6x", long_clip)):
            memory[name] = measure(scan_stages(current, clip), sampler)
            memory[name]["duration"] = (info if name == "1x" else long_info).duration
    print("memory added by one scan (current): " + "; ".join(
        f"{m['duration']:.0f} s of video {m['added_mb']:.0f} MB ({m['wall']:.2f} s)" for m in memory.values())
        + f"; process peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")

    cli = {}
    if not args.skip_cli:
        checkouts = {"current": Path(__file__).resolve().parent.parent}
        if args.previous_checkout:
            checkouts["previous"] = args.previous_checkout.resolve()
        for name, root in checkouts.items():
            cli[name] = app_seconds(root, args.clip)
            print(f"app.py --input CLIP ({name}: start-up, model load, scan, report): {cli[name]:.2f} s")
    load_end = os.getloadavg()
    print(f"load average at the end {load_end[0]:.1f} / {load_end[1]:.1f} / {load_end[2]:.1f} on {os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps({
            "clip": str(args.clip), "width": info.width, "height": info.height, "duration": info.duration,
            "frames": args.frames, "cpus": os.cpu_count(), "load_average": [load_start, load_end],
            "paths": table, "ratios": ratios, "cpu_ratios": cpu_ratios, "cold_scan": cold, "second_scan": second,
            "model_load": load_seconds,
            "memory": memory, "cli": cli}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
