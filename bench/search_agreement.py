"""Does the faster scan change what it finds? The previous release's decode and face search (every frame decoded,
MTCNN on every sampled frame whole, eager) against the current ones (unreferenced frames not decoded, so a sample may
be a frame or two later; whole frames only where needed, regions around followed faces between), with the shipped
model, on labelled videos. ``--exact-frames`` decodes every frame in the current scan too, to see the face search's
share of any change alone; ``--refine-faces`` measures the other way of finding followed faces
(``ScanOptions.refine_faces``).

    python -m bench.search_agreement --labels ../shared/data/labeled/labels.csv [--json out.json]

Per video: the video score both ways and its change, and the face tracks both ways. A track of the previous search
is found again when a track of the new one has a box overlapping its box (IoU >= 0.5) in at least 80 % of the sampled
frames either of them was seen in (frames are paired by their place in the sampling, not their number). Prints the
mean absolute score change and the track agreement; ``--json`` also writes every number. Grad-CAM is off (it does not
change scores).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from detector.face.faces import FaceDetector, FaceTrack, iou  # noqa: E402
from detector.models.model import load_detector  # noqa: E402
from detector.scan.pipeline import ScanOptions, Scanner  # noqa: E402

#: a track is found again when boxes overlap this much ...
MATCH_IOU = 0.5
#: ... in at least this share of the frames either track was seen in
MATCH_SHARE = 0.8


def same_track(a: FaceTrack, b: FaceTrack, place_a: dict[int, int], place_b: dict[int, int]) -> bool:
    """``place_*`` maps a frame number to its place in that scan's sampled frames."""
    boxes_a = {place_a[o.frame_index]: o.detection.box for o in a.observations}
    boxes_b = {place_b[o.frame_index]: o.detection.box for o in b.observations}
    shared = sum(1 for f, box in boxes_a.items() if f in boxes_b and iou(box, boxes_b[f]) >= MATCH_IOU)
    return shared >= MATCH_SHARE * max(len(boxes_a), len(boxes_b))


def places(result) -> dict[int, int]:
    return {frame["index"]: k for k, frame in enumerate(result.frames)}


def matched(old: list[FaceTrack], new: list[FaceTrack], place_old: dict[int, int], place_new: dict[int, int]) -> int:
    """How many of ``old`` have a partner in ``new`` (each new track partners one old track at most)."""
    free = list(range(len(new)))
    count = 0
    for track in old:
        partner = next((i for i in free if same_track(track, new[i], place_old, place_new)), None)
        if partner is not None:
            free.remove(partner)
            count += 1
    return count


def videos(labels: Path) -> list[Path]:
    with labels.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [labels.parent / row["path"] for row in rows if Path(row["path"]).suffix.lower() in (".mp4", ".mov",
                                                                                                ".avi", ".mkv")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labels", type=Path, required=True, help="labels.csv (path,label,...) beside the videos")
    p.add_argument("--frames", type=int, default=ScanOptions().frames)
    p.add_argument("--model", type=Path)
    p.add_argument("--exact-frames", action="store_true", help="the current scan decodes every frame too")
    p.add_argument("--refine-faces", action="store_true",
                   help="the current scan refines followed faces with ONet instead of window searches")
    p.add_argument("--json", type=Path, help="write every number here")
    args = p.parse_args(argv)
    files = videos(args.labels)
    if not files:
        print(f"error: no videos listed in {args.labels}", file=sys.stderr)
        return 2
    detector = load_detector(args.model)
    previous = Scanner(detector, ScanOptions(frames=args.frames, gradcam=False, full_detect_every=1, overlap=False,
                                             exact_frames=True), face_detector=FaceDetector(compiled=False))
    current = Scanner(detector, ScanOptions(frames=args.frames, gradcam=False, exact_frames=args.exact_frames,
                                            refine_faces=args.refine_faces))
    rows = []
    print(f"{'video':28s} {'previous':>8s} {'current':>8s} {'change':>7s}  tracks counted (prev/cur/matched)  "
          "all tracks (prev/cur/matched)  seconds (prev/cur)")
    for path in files:
        t = time.perf_counter()
        old = previous.scan(path)
        t_old = time.perf_counter() - t
        t = time.perf_counter()
        new = current.scan(path)
        t_new = time.perf_counter() - t
        if old.score is None or new.score is None:
            print(f"{path.name:28s} {old.verdict} / {new.verdict} {old.error or new.error or ''}")
            rows.append({"video": path.name, "previous": old.score, "current": new.score})
            continue
        old_counted = [tr for tr in old.tracks if tr.counted]
        new_counted = [tr for tr in new.tracks if tr.counted]
        at_old, at_new = places(old), places(new)
        row = {"video": path.name, "previous": old.score, "current": new.score,
               "change": abs(new.score - old.score), "verdict_same": old.verdict == new.verdict,
               "counted": [len(old_counted), len(new_counted), matched(old_counted, new_counted, at_old, at_new)],
               "tracks": [len(old.tracks), len(new.tracks), matched(old.tracks, new.tracks, at_old, at_new)],
               "seconds": [round(t_old, 2), round(t_new, 2)]}
        rows.append(row)
        print(f"{path.name:28s} {old.score:8.4f} {new.score:8.4f} {row['change']:7.4f}  "
              f"{'%d/%d/%d' % tuple(row['counted']):>31s}  {'%d/%d/%d' % tuple(row['tracks']):>27s}  "
              f"{t_old:5.1f}/{t_new:4.1f}", flush=True)
    scored = [r for r in rows if "change" in r]
    changes = np.array([r["change"] for r in scored])
    counted = np.array([r["counted"] for r in scored]).sum(axis=0)
    tracks = np.array([r["tracks"] for r in scored]).sum(axis=0)
    summary = {"videos": len(rows), "scored_both_ways": len(scored),
               "mean_abs_score_change": float(changes.mean()), "max_abs_score_change": float(changes.max()),
               "verdicts_same": sum(r["verdict_same"] for r in scored),
               "counted_tracks_previous_current_matched": counted.tolist(),
               "all_tracks_previous_current_matched": tracks.tolist(), "load_average_1min": os.getloadavg()[0]}
    print(f"mean |score change| {summary['mean_abs_score_change']:.4f} (max {summary['max_abs_score_change']:.4f}) "
          f"over {len(scored)} videos; same verdict in {summary['verdicts_same']}")
    print(f"counted tracks: previous {counted[0]}, current {counted[1]}, found again {counted[2]}; "
          f"all tracks: previous {tracks[0]}, current {tracks[1]}, found again {tracks[2]}")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "videos": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
