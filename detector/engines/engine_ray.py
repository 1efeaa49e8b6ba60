"""Folder and bucket scans on Ray Data (``app.py --engine ray``): the local engine's outputs, on one machine or many.

The pipeline streams (Ray Data keeps only a bounded number of blocks in flight, the driver receives one small
summary row per input)::

    listing (driver)
      -> extract: download if remote, decode, MTCNN, crop, track   Ray tasks on CPU workers; MTCNN loads once per
                                                                   worker process and a watchdog ends a process
                                                                   that overruns the per-file time limit
      -> score: a pool of model actors                             each loads the model once and scores the crops
                                                                   of several videos per call, then aggregates and
                                                                   makes Grad-CAM (which needs the model)
      -> write: result.json, report.html, PNGs                     Ray tasks; uploaded for a bucket
      -> summary.csv (driver)

Every stage is the project's own: :func:`detector.scan.pipeline.extract_faces`, :class:`detector.scan.pipeline.Scanner`
(``score``/``finish``), :func:`detector.scan.report.write_result` and the resume rule of :mod:`detector.engines.batch`.

Ray retries a crashed task forever by default, so one file that kills its worker could stall a run. Here a task is
tried ``1 + retries`` times and a failed block is dropped instead of failing the run; inputs whose row did not come
back are then scanned once more, one file per block and per model call so that a bad file cannot take others with
it, and whatever is still missing gets an ``error`` row. Every input thus ends with exactly one row. Model actors
are restarted whenever they die (with a bounded restart count, Ray Data 2.60 waits on a dead pool for minutes or for
ever: measured here), but a call is retried only ``retries`` times.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import pickle
import socket
import sys
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from detector.engines import batch
from detector import config
from detector import logs
from detector.scan import report
from detector.ingest import storage
from detector.errors import DetectorError, ModelError
from detector.face.faces import FaceDetector
from detector.models.model import Detector, ModelCard, load_detector
from detector.scan.pipeline import ExtractedFaces, ScanOptions, ScanResult, Scanner, extract_faces
from detector.origin.provenance import read_provenance

log = logging.getLogger(__name__)

#: Exit status of a worker process ended by the per-file watchdog.
OVERRUN_EXIT = 87


#: The extraction step a worker runs on a local file: ``(path, options, image_size) -> ExtractedFaces``.
Extract = Callable[[Path, ScanOptions, int], ExtractedFaces]


@dataclass
class RayOptions:
    """How the scan runs on Ray (what it computes is :class:`~detector.scan.pipeline.ScanOptions`)."""

    #: None starts Ray on this machine; ``auto`` joins the cluster this machine belongs to; ``ray://host:10001``
    #: connects a Ray Client.
    address: str | None = None
    #: Largest number of decode-and-detect tasks at once (None: as many as the cluster's CPUs allow).
    workers: int | None = None
    scorers: int = config.RAY_SCORERS
    retries: int = config.RAY_RETRIES
    file_timeout: float = config.RAY_FILE_TIMEOUT
    videos_per_call: int = config.RAY_VIDEOS_PER_CALL
    max_blocks: int = config.RAY_MAX_BLOCKS
    show_progress: bool = True
    #: The extraction step (default :func:`extract_file`); must be importable or picklable on the workers.
    extract: Extract | None = None


#: The pip extra that installs the engine (``[project.optional-dependencies]`` in pyproject.toml).
PIP_EXTRA = "deepfake-video-screener[ray]"


def install_hint() -> str:
    """How to install Ray Data here: ``make ray`` in a checkout, the package's extra where it was installed with pip
    (no Makefile or requirements file there)."""
    if (config.PROJECT_ROOT / "Makefile").is_file() and (config.PROJECT_ROOT / "requirements-ray.txt").is_file():
        return "run 'make ray' (or pip install -r requirements-ray.txt)"
    return f"run pip install '{PIP_EXTRA}'"


def import_ray():
    """Ray and Ray Data, or a one-line :class:`DetectorError` saying how to install them."""
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data is an extra: a bare 'ray' install lacks it)
    except ImportError:
        raise DetectorError(f"--engine ray needs Ray Data, which is not installed: {install_hint()}") from None
    return ray


# ---------------------------------------------------------------------------------------------------------------
# Stage 1: extract (Ray tasks)

_WORKER: dict = {}


def extract_file(path: Path, options: ScanOptions, image_size: int) -> ExtractedFaces:
    """Decode, detect, crop and track one local file with this worker process's MTCNN (loaded on first use)."""
    faces = _WORKER.get("faces")
    if faces is None or faces.min_face != options.min_face:
        faces = _WORKER["faces"] = FaceDetector(min_face=options.min_face)
    return extract_faces(path, faces, options.frames, options.fps, options.margin, image_size, options.max_faces,
                         exact_frames=options.exact_frames, temporal=options.temporal)


def _overrun(display: str, seconds: float) -> None:
    """End this worker process: the file has run past its time limit (a hung decoder cannot be interrupted from
    Python). Ray counts it as a crash, retries within the bound, and the driver reports the file. Ray ends the
    children of a worker that exits (a hung ffmpeg with it: the tests check); a downloaded copy is deleted here."""
    print(f"deepfake-scan: {display}: still running after {seconds:.0f} s; ending this worker", file=sys.stderr,
          flush=True)
    storage.remove_copies()
    os._exit(OVERRUN_EXIT)


def extract_row(row: dict, options: ScanOptions, image_size: int, timeout: float, extract: Extract | None) -> dict:
    """One listing row -> its extracted faces (pickled) or a one-line error; input problems never raise.

    The file's own provenance (content credentials, metadata markers) is read here too, where the file (or the
    object's downloaded copy) is at hand, as the local engine reads it beside the decoding."""
    display = row["display"]
    out = {"index": row["index"], "display": display, "name": row["name"], "identity": row["identity"],
           "faces": b"", "error": "", "provenance": b""}
    watchdog = threading.Timer(timeout, _overrun, (display, timeout))
    watchdog.daemon = True
    watchdog.start()
    opened = display
    try:
        with storage.local_copy(row["source"]) as path:
            opened = str(path)
            out["provenance"] = pickle.dumps(read_provenance(path, options.trusted_signers),
                                             protocol=pickle.HIGHEST_PROTOCOL)
            faces = (extract or extract_file)(path, options, image_size)
        faces.info.path = display
        out["faces"] = pickle.dumps(faces, protocol=pickle.HIGHEST_PROTOCOL)
    except DetectorError as exc:
        out["error"] = str(exc).replace(opened, display)
    except Exception as exc:  # the row becomes this file's error row; the batch carries on
        out["error"] = f"{display}: internal error ({type(exc).__name__}: {exc})".replace(opened, display)
    finally:
        watchdog.cancel()
    return out


# ---------------------------------------------------------------------------------------------------------------
# Stage 2: score (an actor pool)

class ModelActor:
    """Holds the model once; scores the crops of several videos per call, then aggregates and explains them."""

    def __init__(self, model: str | None, options: ScanOptions, settings: dict):
        self.scanner = Scanner(load_detector(model), options)
        mine = json.loads(json.dumps(batch.scan_settings(self.scanner.detector, options)))
        if mine != settings:
            raise ModelError(f"the model loaded on this worker ({self.scanner.detector.source}) is not the one the "
                             "driver loaded: install the same model on every node")

    def __call__(self, rows: dict) -> dict:
        extracted: dict[int, ExtractedFaces] = {}
        for i, (payload, error) in enumerate(zip(rows["faces"], rows["error"])):
            if not error:
                extracted[i] = pickle.loads(payload)
        failures = self._score(extracted)
        out = []
        for i, (display, name, error) in enumerate(zip(rows["display"], rows["name"], rows["error"])):
            # the input's own path or URI, and the provenance its extraction task read from the file itself
            result = self.scanner.new_result(Path(str(display)), str(name), with_provenance=False)
            result.path = str(display)
            provenance = rows["provenance"][i]
            result.provenance = pickle.loads(provenance) if len(provenance) else None
            if error:
                result.error = str(error)
            elif i in failures:
                self.scanner.fail(result, failures[i])
            else:
                try:
                    self.scanner.finish(result, extracted[i])
                except Exception as exc:
                    self.scanner.fail(result, exc)
            out.append(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        return {"index": list(rows["index"]), "name": [str(n) for n in rows["name"]],
                "identity": [str(x) for x in rows["identity"]], "result": out}

    def _score(self, extracted: dict[int, ExtractedFaces]) -> dict[int, Exception]:
        """Score all videos in one pass; if that fails, one by one, so only the culprit gets an error row."""
        try:
            self.scanner.score(list(extracted.values()))
            return {}
        except Exception:
            failures = {}
            for i, faces in extracted.items():
                try:
                    self.scanner.score([faces])
                except Exception as exc:
                    failures[i] = exc
            return failures


# ---------------------------------------------------------------------------------------------------------------
# Stage 3: write (Ray tasks)

def write_row(row: dict, output: str, detector_card: dict, model_source: str, settings: dict) -> dict:
    """Write one result's files under ``output/<name>/`` and return its summary row (as JSON text)."""
    result: ScanResult = pickle.loads(row["result"])
    with storage.output_folder(output, result.name) as root:
        doc = report.write_result(result, root, ModelCard.from_dict(detector_card), model_source, settings,
                                  json.loads(row["identity"]))
    return {"index": row["index"], "row": json.dumps(report.summary_row(doc))}


# ---------------------------------------------------------------------------------------------------------------
# Driver

def run(input_location: str, output: str, options: ScanOptions, ray_options: RayOptions | None = None,
        model: Path | None = None, resume: bool = True) -> batch.BatchOutcome:
    """Scan every input under ``input_location`` (a path or an ``s3://``/``gs://`` URI) into ``output``.

    Inputs whose result.json was made with the same model and settings are reused unless ``resume`` is False.
    Uses the Ray session that is already initialised, if any (tests start their own), else starts or joins one.
    """
    ray_options = ray_options or RayOptions()
    ray = import_ray()
    if not ray.is_initialized():
        _check_reachable(ray_options.address)
    files = storage.list_inputs(input_location)
    storage.prepare_output(output)
    # as given, like the local engine, so both record the same settings (workers share the driver's working folder
    # on one machine; on a cluster the model ships in the image or the job's working_dir)
    model_path = str(model) if model is not None else None
    detector = load_detector(model_path)
    settings = json.loads(json.dumps(batch.scan_settings(detector, options)))
    rows: dict[int, dict] = {}
    if resume:
        rows = _reusable(files, output, settings)
        if rows:
            log.warning("resuming: %d of %d inputs already have results", len(rows), len(files))
    todo = [i for i in range(len(files)) if i not in rows]
    if todo:
        with _session(ray, ray_options):
            stages = _Stages(ray, files, output, options, ray_options, model_path, detector, settings)
            rows.update(stages.execute(todo, ray_options.retries, _blocks(len(todo), ray_options.max_blocks),
                                       ray_options.videos_per_call))
            missing = [i for i in todo if i not in rows]
            if missing:
                log.warning("%d input(s) lost their worker; scanning them again one at a time", len(missing))
                rows.update(stages.execute(missing, 0, len(missing), 1))
    attempts = ray_options.retries + 2
    for i in (i for i in todo if i not in rows):
        message = (f"{files[i].display}: the scan worker crashed or ran past the {ray_options.file_timeout:g} s "
                   f"per-file limit on all {attempts} attempts; file skipped")
        rows[i] = _error_row(files[i], message, output, detector, settings)
    ordered = [rows[i] for i in range(len(files))]
    return batch.BatchOutcome(rows=ordered, summary_path=_write_summary(ordered, output))


def _blocks(count: int, max_blocks: int) -> int:
    """One file per block (a crash then loses only that file) unless the listing is larger than ``max_blocks``."""
    return max(1, min(count, max_blocks))


class _Stages:
    """Builds and runs the Ray Data pipeline over a subset of the listing."""

    def __init__(self, ray, files: list[storage.InputFile], output: str, options: ScanOptions,
                 ray_options: RayOptions, model_path: str | None, detector: Detector, settings: dict):
        self.ray, self.files, self.output, self.options = ray, files, output, options
        self.ray_options, self.model_path, self.settings = ray_options, model_path, settings
        self.card, self.source, self.image_size = detector.card.to_dict(), detector.source, detector.image_size

    def execute(self, indices: list[int], retries: int, blocks: int,
                videos_per_call: int) -> Iterator[tuple[int, dict]]:
        """Run the pipeline over ``files[indices]``; yields ``(index, summary row)`` as rows stream back."""
        data = self.ray.data
        ro = self.ray_options
        items = [{"index": i, "source": self.files[i].source, "display": self.files[i].display,
                  "name": self.files[i].name, "identity": json.dumps(self.files[i].identity)} for i in indices]
        extract_compute = data.TaskPoolStrategy(size=ro.workers) if ro.workers else None
        with warnings.catch_warnings():
            # max_retries / max_restarts have no named parameter in Ray 2.60 (the pinned version): the generic
            # remote-args route is the documented one and warns about its removal in 2.64. An actor pool that gets
            # no input (every file of a pass failed before scoring) warns too; the rows say what happened.
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
            warnings.filterwarnings("ignore", message=".*minimum number of concurrent actors.*")
            ds = data.from_items(items, override_num_blocks=blocks)
            ds = ds.map(extract_row, num_cpus=1, compute=extract_compute, max_retries=retries,
                        fn_kwargs={"options": self.options, "image_size": self.image_size,
                                   "timeout": ro.file_timeout, "extract": ro.extract})
            ds = ds.map_batches(ModelActor, batch_size=videos_per_call, batch_format="numpy",
                                compute=data.ActorPoolStrategy(size=ro.scorers), num_cpus=config.RAY_SCORER_CPUS,
                                fn_constructor_kwargs={"model": self.model_path, "options": self.options,
                                                       "settings": self.settings},
                                max_restarts=-1, max_task_retries=retries)
            ds = ds.map(write_row, num_cpus=config.RAY_WRITER_CPUS, max_retries=retries,
                        fn_kwargs={"output": self.output, "detector_card": self.card, "model_source": self.source,
                                   "settings": self.settings})
            try:
                for row in ds.iter_rows():
                    yield int(row["index"]), json.loads(row["row"])
            except Exception as exc:  # the pipeline as a whole failed (not one file): say why in one line
                first = str(exc).strip().splitlines()
                raise DetectorError(
                    f"the Ray pipeline failed: {first[-1] if first else type(exc).__name__}") from None


@contextlib.contextmanager
def _session(ray, ray_options: RayOptions) -> Iterator[None]:
    """Start or join Ray unless the caller already did; let failed blocks be dropped (they are reconciled)."""
    started = False
    if not ray_options.show_progress:
        # --quiet: Ray's own log lines (its logger has a handler of its own) and its C++ core worker's lines (read
        # from the environment when Ray starts) are not shown; errors still come as the project's one line
        logging.getLogger("ray").setLevel(logging.ERROR)
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    if not ray.is_initialized():
        try:
            # --quiet also keeps the workers' own output (TensorFlow's start-up lines) off the terminal
            # --quiet: the processes Ray starts inherit a silenced stderr, and its start-up notes are not shown
            with logs.native_stderr_silenced(not ray_options.show_progress):
                ray.init(address=ray_options.address, num_cpus=_local_cpus(ray_options), include_dashboard=False,
                         logging_level=logging.WARNING, log_to_driver=ray_options.show_progress)
        except Exception as exc:
            where = ray_options.address or "this machine"
            raise DetectorError(f"cannot start or reach Ray on {where}: {str(exc).strip().splitlines()[0]}") from None
        started = True
    _quiet_dropped_blocks()
    context = ray.data.DataContext.get_current()
    data_log = logging.getLogger("ray.data")
    saved = (context.max_errored_blocks, context.enable_progress_bars, context.op_resource_reservation_enabled,
             data_log.level)
    context.max_errored_blocks = -1
    # Ray Data's default splits half the CPUs evenly between the three stages; here nearly all the work is the
    # first one (measured: one decode-and-detect task at a time on 3 CPUs, the local engine's speed halved)
    context.op_resource_reservation_enabled = False
    context.enable_progress_bars = ray_options.show_progress
    if not ray_options.show_progress:
        data_log.setLevel(logging.ERROR)  # --quiet: no execution plans and progress lines either
    try:
        yield
    finally:
        context.max_errored_blocks, context.enable_progress_bars, context.op_resource_reservation_enabled, level = saved
        data_log.setLevel(level)
        if started:
            ray.shutdown()


def _check_reachable(address: str | None) -> None:
    """Fail at once on a HOST:PORT (or ray://HOST:PORT) nobody answers at: Ray itself keeps retrying for minutes."""
    if not address or address == "auto":
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise DetectorError(f"--ray-address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise DetectorError(f"cannot reach Ray at {address}: {exc.strerror or exc}") from None


def _local_cpus(ray_options: RayOptions) -> int | None:
    """Logical CPUs for a Ray started here: one per decode-and-detect task plus the (mostly idle) model actors'
    and a writer's shares, so that a 2-core machine runs two detection tasks, as the local engine does. None when
    joining a cluster, whose nodes declare their own CPUs."""
    if ray_options.address is not None:
        return None
    workers = ray_options.workers or os.cpu_count() or 1
    return workers + math.ceil(ray_options.scorers * config.RAY_SCORER_CPUS + config.RAY_WRITER_CPUS)


class _NoTraceback(logging.Filter):
    """Keep Ray Data's one-line note about a dropped block but not its traceback: the file's error row says what
    happened, and a folder with a few bad files should not fill the terminal with stack traces."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        return True


def _quiet_dropped_blocks() -> None:
    target = logging.getLogger("ray.data._internal.execution.streaming_executor_state")
    if not any(isinstance(f, _NoTraceback) for f in target.filters):
        target.addFilter(_NoTraceback())


def _reusable(files: list[storage.InputFile], output: str, settings: dict) -> dict[int, dict]:
    """Rows of inputs whose stored result may be reused (read in parallel: a bucket answers slowly per object)."""
    def check(i: int) -> tuple[int, dict | None]:
        folder = storage.join(output, files[i].name)
        text = storage.read_text(storage.join(folder, "result.json"))
        return i, batch.reusable_row(text, settings, files[i].identity,
                                     lambda rel: storage.exists(storage.join(folder, *rel.split("/"))))

    with ThreadPoolExecutor(max_workers=16) as pool:
        return {i: row for i, row in pool.map(check, range(len(files))) if row is not None}


def _error_row(file: storage.InputFile, message: str, output: str, detector: Detector, settings: dict) -> dict:
    """Write the error result of an input whose worker never came back, and return its summary row."""
    result = ScanResult(path=file.display, name=file.name, verdict="error", error=message,
                        threshold=settings["threshold"])
    try:
        with storage.output_folder(output, file.name) as root:
            doc = report.write_result(result, root, detector.card, detector.source, settings, file.identity)
    except OSError as exc:
        raise DetectorError(f"cannot write results for {file.display} to {output}: {exc}") from None
    return report.summary_row(doc)


def _write_summary(rows: Iterable[dict], output: str) -> Path | str:
    """summary.csv in the output folder or bucket prefix."""
    rows = list(rows)
    if not storage.is_remote(output):
        return report.write_summary(rows, Path(output))
    with tempfile.TemporaryDirectory() as staging:
        local = report.write_summary(rows, Path(staging))
        target = storage.join(output, local.name)
        try:
            storage.write_bytes(target, local.read_bytes())
        except OSError as exc:
            raise DetectorError(f"cannot write {target}: {exc}") from None
    return target
