"""Running a scan over one file or a folder: progress, per-input outputs, the summary, and exit status.

One bad file never stops a batch: it gets an ``error`` row and its own result.json, and the rest carry on.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from detector import logs
from detector.scan import report
from detector.errors import DetectorError
from detector.ingest.inputs import check_output, list_inputs, local_identity, prepare_output, unique_names  # noqa: F401  (API)
from detector.scan.pipeline import ScanOptions, Scanner
from detector.origin.provenance import trust_fingerprint
from detector.models.scoring import Scorer

log = logging.getLogger(__name__)


@dataclass
class BatchOutcome:
    """What a run produced: one summary row per input and where the summary was written."""

    rows: list[dict]
    summary_path: Path | str

    @property
    def errors(self) -> list[dict]:
        return [r for r in self.rows if r["verdict"] == "error"]


def scan_settings(detector: Scorer, options: ScanOptions) -> dict:
    """Everything that changes a result: a stored result is reused on resume only when these match. The model is
    named by its fingerprint (a content hash), not its path: a checkout that moved still finds its results, and a
    model retrained in place is not taken for the old one."""
    card = detector.card
    return {"model": detector.fingerprint, "model_version": card.version, "backbone": card.backbone,
            "threshold": options.threshold if options.threshold is not None else card.threshold,
            "frames": None if options.fps else options.frames, "fps": options.fps,
            "aggregation": options.aggregation, "max_faces": options.max_faces, "min_face": options.min_face,
            "margin": options.margin, "full_detect_every": options.full_detect_every, "gradcam": options.gradcam,
            "cam": options.cam_method, "exact_frames": options.exact_frames,
            "trusted_signers": trust_fingerprint(options.trusted_signers)}


def _existing_row(out_dir: Path, name: str, settings: dict, identity: dict) -> dict | None:
    """The summary row of this very input already scanned into ``out_dir`` with the same settings, or None."""
    folder = out_dir / name
    try:
        text = (folder / "result.json").read_text()
    except (OSError, UnicodeDecodeError):
        return None
    return reusable_row(text, settings, identity, lambda rel: (folder / rel).is_file())


def reusable_row(result_json: str | None, settings: dict, identity: dict | None = None,
                 present: Callable[[str], bool] | None = None) -> dict | None:
    """The summary row of a stored result.json (its text) when a rerun may reuse it, else None.

    Inputs that failed last time are scanned again (the failure may have been transient, a file still being
    copied), and so are results made with another model or other options, results of another input (``identity``:
    another file now has this result folder's name, or the file changed since) and results whose folder lacks a file
    (``present(relative path)`` says whether one exists: a run cut off while writing). Reusing any of them would be
    a silent wrong answer. Shared by every engine, so each can resume the other's results."""
    if result_json is None:
        return None
    try:
        doc = json.loads(result_json)
        row = report.summary_row(doc)
    except (ValueError, KeyError, TypeError):
        return None
    if row["verdict"] == "error" or doc.get("scan_settings") != settings:
        return None
    if identity is not None and doc.get("input_identity") != identity:
        return None
    if present is not None and not all(present(rel) for rel in report.result_files(doc)):
        return None
    return row


def run(input_path: Path, out_dir: Path, detector: Scorer, options: ScanOptions, show_progress: bool = True,
        workers: int = 0, resume: bool = True, worker_stderr: bool = True) -> BatchOutcome:
    """Scan every input, writing ``out_dir/<name>/`` for each and ``out_dir/summary.csv`` as it goes.

    With ``resume`` an input whose complete result for this very file and these settings already exists is not
    scanned again (its row is reused, see :func:`reusable_row`), so an interrupted run over thousands of files picks
    up where it stopped. ``workers`` > 0 decodes and detects faces in
    that many processes while this process scores the crops (see :func:`_run_parallel`); ``worker_stderr=False``
    sends their stderr (TensorFlow's start-up lines in each of them) nowhere.
    """
    check_output(input_path, out_dir)
    files, root = list_inputs(input_path, out_dir)
    prepare_output(out_dir)
    scanner = Scanner(detector, options)
    rows: dict[int, dict] = {}
    todo: list[tuple[int, Path, str]] = []
    settings = json.loads(json.dumps(scan_settings(detector, options)))
    identities = [local_identity(path, root) for path in files]
    for i, (path, name) in enumerate(zip(files, unique_names(files, root))):
        row = _existing_row(out_dir, name, settings, identities[i]) if resume else None
        if row is not None:
            rows[i] = row
        else:
            todo.append((i, path, name))
    if rows:
        log.info("resuming: %d of %d inputs already have results", len(rows), len(files))
    bar = tqdm(total=len(files), initial=len(rows), desc="videos", unit="file",
               disable=not show_progress or len(files) == 1, file=sys.stderr)

    def save(i: int, result) -> None:
        try:
            doc = report.write_result(result, out_dir, detector.card, detector.source, settings, identities[i])
        except OSError as exc:
            # e.g. a file of the result folder's name is in the way: this input's row says so, the rest carry on
            result.verdict = "error"
            result.error = (f"cannot write results for {result.path} to {out_dir / result.name}: "
                            f"{exc.strerror or exc}")
            doc = report.result_to_dict(result, detector.card, detector.source)
        rows[i] = report.summary_row(doc)
        try:
            report.write_summary([rows[k] for k in sorted(rows)], out_dir)
        except OSError as exc:
            raise DetectorError(f"cannot write the summary to {out_dir}: {exc.strerror or exc}") from None
        bar.update(1)

    if workers > 0 and len(todo) > 1:
        _run_parallel(scanner, todo, save, workers, worker_stderr)
    else:
        for i, path, name in todo:
            frames_bar = tqdm(total=0, desc=f"{path.name[:30]}", unit="frame", leave=False,
                              disable=not show_progress, file=sys.stderr)

            def progress(done: int, total: int, fbar=frames_bar) -> None:
                fbar.total = total
                fbar.n = done
                fbar.refresh()

            result = scanner.scan(path, name, progress)
            frames_bar.close()
            save(i, result)
    bar.close()
    ordered = [rows[k] for k in sorted(rows)]
    summary = report.write_summary(ordered, out_dir)
    return BatchOutcome(rows=ordered, summary_path=summary)


_WORKER: dict = {}


def _worker_init(options: ScanOptions, image_size: int) -> None:
    """Each worker process loads MTCNN once (TensorFlow is imported in the worker, not shared)."""
    from detector.face.faces import FaceDetector

    _WORKER["faces"] = FaceDetector(min_face=options.min_face)
    _WORKER["options"] = options
    _WORKER["size"] = image_size


def _worker_extract(path: Path):
    """Decode + detect + crop + track one file in a worker; errors travel back as one-line messages."""
    from detector.scan.pipeline import extract_faces

    opts = _WORKER["options"]
    t0 = time.perf_counter()
    try:
        faces = extract_faces(path, _WORKER["faces"], opts.frames, opts.fps, opts.margin, _WORKER["size"],
                              opts.max_faces, search=opts.search_settings(), exact_frames=opts.exact_frames,
                              temporal=opts.temporal)
        return faces, None, time.perf_counter() - t0
    except DetectorError as exc:
        return None, str(exc), 0.0
    except Exception as exc:  # the main process reports it as this file's error row
        return None, f"{path}: internal error ({type(exc).__name__}: {exc})", 0.0


def _run_parallel(scanner: Scanner, todo: list[tuple[int, Path, str]], save, workers: int,
                  worker_stderr: bool = True) -> None:
    """Workers extract faces; this process scores crops of several videos per model call and writes results.

    At most ``2 * workers`` files are in flight, so memory stays flat however large the folder is; finished
    extractions are scored together once they fill a model batch (or nothing else is pending).
    """
    ctx = multiprocessing.get_context("spawn")
    pending: deque = deque()
    ready: list[tuple[int, Path, str, object, float]] = []
    queue = iter(todo)
    with logs.native_stderr_silenced(not worker_stderr):  # the workers inherit file descriptor 2 as it is now
        pool = ctx.Pool(workers, initializer=_worker_init, initargs=(scanner.options, scanner.detector.image_size))
    with pool:

        def refill() -> None:
            while len(pending) < 2 * workers:
                item = next(queue, None)
                if item is None:
                    return
                pending.append((item, pool.apply_async(_worker_extract, (item[1],))))

        def flush() -> None:
            good = [f for *_, f, _ in ready if not isinstance(f, str)]
            if good:
                scanner.score(good)
            for i, path, name, faces, seconds in ready:
                result = scanner.new_result(path, name)
                if isinstance(faces, str):
                    result.verdict, result.error = "error", faces
                else:
                    try:
                        scanner.finish(result, faces)
                        result.seconds["extract_wall"] = round(seconds, 3)
                    except Exception as exc:
                        scanner.fail(result, exc)
                save(i, result)
            ready.clear()

        refill()
        while pending:
            (i, path, name), handle = pending.popleft()
            faces, error, seconds = handle.get()
            ready.append((i, path, name, faces if error is None else error, seconds))
            refill()
            crops = sum(_crops(f) for *_, f, _ in ready if not isinstance(f, str))
            if crops >= scanner.options.batch_size or not pending:
                flush()
        flush()


def _crops(faces) -> int:
    return sum(len(track.observations) for track in faces.tracks)
