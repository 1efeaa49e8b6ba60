"""Engine comparison: the local engine against the Ray Data engine on the same folder, one run each, each run as a
user runs it (``python app.py ...`` in a fresh process, so start-up is included).

    python -m bench.engines --input ../shared/data/real_videos/voxceleb2 --workers 2

For each engine it prints the wall time, videos/min, the peak memory of the whole process tree (for Ray: the
driver, Ray's own services and every worker) and the start-up cost (the same command on one still image), then
whether the two summaries agree (same verdicts, probabilities within 1e-4). Linux only (memory is read from /proc).
Timings depend on the machine and on what else runs on it: run it where you will scan.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from detector.scan.options import ScanOptions

ROOT = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss(root_pid: int) -> int:
    """Resident bytes of ``root_pid`` and all its descendants (Ray's services and workers descend from the
    driver when it starts Ray itself)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    family, frontier = {root_pid}, [root_pid]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in family:
                family.add(pid)
                frontier.append(pid)
    total = 0
    for pid in family:
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            continue
    return total


def timed_run(argv: list[str]) -> tuple[float, float, int, str]:
    """Run ``app.py argv``; return wall seconds, peak tree memory (MB), exit status and stderr's last line."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(ROOT / "app.py"), *argv], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True)
    reader.start()
    while process.poll() is None:
        peak = max(peak, tree_rss(process.pid))
        time.sleep(0.25)
    seconds = time.perf_counter() - start
    reader.join(timeout=5)
    lines = [line.strip() for line in stderr if line.strip()]
    return seconds, peak / 2**20, process.returncode, lines[-1] if lines else ""


def rows(summary: Path) -> dict[str, dict]:
    with summary.open() as fh:
        return {row["name"]: row for row in csv.DictReader(fh)}


def agree(a: dict[str, dict], b: dict[str, dict]) -> tuple[int, list[str]]:
    """How many rows match, and the names of those that differ."""
    differ = []
    for name in sorted(set(a) | set(b)):
        x, y = a.get(name), b.get(name)
        same = x is not None and y is not None and x["verdict"] == y["verdict"] and (
            x["fake_probability"] == y["fake_probability"] == "" or
            (x["fake_probability"] != "" and y["fake_probability"] != "" and
             abs(float(x["fake_probability"]) - float(y["fake_probability"])) <= 1e-4))
        if not same:
            differ.append(name)
    return len(set(a) | set(b)) - len(differ), differ


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", type=Path, required=True, help="a folder of clips (the same set for both engines)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="decode-and-detect processes / tasks")
    p.add_argument("--frames", type=int, default=ScanOptions().frames)
    p.add_argument("--no-startup", action="store_true", help="skip the one-image start-up runs")
    args = p.parse_args(argv)
    from detector.demo import astronaut, write_image
    from detector.ingest.storage import list_inputs

    files = list_inputs(str(args.input))
    common = ["--frames", str(args.frames), "--workers", str(args.workers), "--quiet", "--overwrite"]
    print(f"{len(files)} files in {args.input}, {args.frames} frames each, {args.workers} workers, "
          f"{os.cpu_count()} CPUs")
    print(f"{'engine':<8} {'run':<10} {'wall s':>8} {'videos/min':>11} {'peak MB':>9}  status")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        still = Path(tmp) / "startup"
        write_image(astronaut(), still / "astronaut.jpg")
        for engine in ("local", "ray"):
            runs = [("folder", args.input)] if args.no_startup else [("one image", still), ("folder", args.input)]
            for label, source in runs:
                out = Path(tmp) / f"{engine}-{label.replace(' ', '_')}"
                seconds, peak, status, last = timed_run(
                    ["--input", str(source), "--output", str(out), "--engine", engine, *common])
                count = len(files) if label == "folder" else 1
                print(f"{engine:<8} {label:<10} {seconds:8.1f} {60 * count / seconds:11.2f} {peak:9.0f}  "
                      f"exit {status}{'  ' + last[:80] if status not in (0, 1) else ''}", flush=True)
                if label == "folder":
                    results[engine] = (seconds, out / "summary.csv")
        if all(summary.is_file() for _, summary in results.values()):
            same, differ = agree(rows(results["local"][1]), rows(results["ray"][1]))
            print(f"summaries agree on {same} of {same + len(differ)} inputs" +
                  (f"; differ: {', '.join(differ)}" if differ else ""))
            print(f"ray / local wall time: {results['ray'][0] / results['local'][0]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
