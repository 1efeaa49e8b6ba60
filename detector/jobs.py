"""Scan jobs for the web server: one folder per job on disk, and a single worker thread that runs them in order.

Layout under the data folder (``--data-dir``)::

    <id>/job.json            status, progress, timestamps, the upload's facts (rewritten atomically)
    <id>/upload.<ext>        the uploaded bytes; <ext> comes from probing the content, never from the client
    <id>/scan/<name>/        result.json, report.html, timeline.png, gradcam/*.png (detector.report's layout)

The ids are random UUIDs (hex) made here, so a client never names a path. Everything a client may see is in
job.json, which is also what makes the job list survive a restart: on start-up queued jobs are queued again, and a
job that was running when the server stopped is marked ``error`` rather than retried, because a file that crashed
or hung the scanner would otherwise crash it again at every start.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import os
import queue
import re
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import report
from .model import ModelCard
from .pipeline import Scanner, result_name

log = logging.getLogger(__name__)

JOB_FILE = "job.json"
SCAN_DIR = "scan"
STATUSES = ("queued", "running", "done", "error")
#: Job ids are uuid4().hex; anything else in a URL is rejected before the filesystem is touched.
ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
INTERRUPTED = "the server stopped while this scan was running; upload the file again"
#: Progress is kept in memory on every frame and written to job.json at most this often (frames).
_PERSIST_EVERY = 8


def now() -> str:
    """UTC timestamp in ISO 8601, seconds precision (sortable as text)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def display_name(client_name: str | None) -> str:
    """The client's file name, for display only: last path component, no control characters, at most 200 chars."""
    name = (client_name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip()
    return name[:200] or "upload"


def folder_name(display: str) -> str:
    """A result folder name derived from the display name: only ``[A-Za-z0-9._-]``, no leading dot (so never
    ``.`` or ``..``), at most 80 chars. It becomes result.json's ``name`` and the report's title."""
    return result_name(Path(display), None).lstrip(".")[:80] or "upload"


@dataclass
class Job:
    """One uploaded file and what became of it; ``to_dict`` is job.json and the API's view of a scan."""

    id: str
    filename: str
    upload: str
    size: int
    media: dict[str, Any]
    status: str = "queued"
    created: str = field(default_factory=now)
    started: str | None = None
    finished: str | None = None
    progress: dict[str, int] = field(default_factory=lambda: {"done": 0, "total": 0})
    verdict: str | None = None
    fake_probability: float | None = None
    error: str | None = None
    result_name: str | None = None
    credentials: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class JobStore:
    """Jobs in memory, mirrored to ``<root>/<id>/job.json``. Thread-safe: the request handlers and the worker
    thread share it, and every read returns a copy so a response never sees a half-applied update."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def load(self) -> list[str]:
        """Read every job folder; mark interrupted jobs as errors; return the ids still queued, oldest first.

        A job folder without job.json is an upload that was cut off before it was accepted: it is removed. Call
        this before serving, while no upload can be in progress."""
        for folder in sorted(self.root.iterdir()):
            if folder.is_dir() and ID_PATTERN.match(folder.name) and not (folder / JOB_FILE).exists():
                log.info("removing unfinished upload %s", folder.name)
                self.discard(folder)
        for path in sorted(self.root.glob(f"*/{JOB_FILE}")):
            if not ID_PATTERN.match(path.parent.name):
                continue
            try:
                job = Job.from_dict(json.loads(path.read_text()))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("skipping unreadable job file %s: %s", path, exc)
                continue
            if job.id != path.parent.name or job.status not in STATUSES:
                log.warning("skipping inconsistent job file %s", path)
                continue
            if job.status == "running":
                job.status, job.error, job.finished = "error", INTERRUPTED, now()
                self._write(job)
            self._jobs[job.id] = job
        queued = [j for j in self._jobs.values() if j.status == "queued"]
        return [j.id for j in sorted(queued, key=lambda j: j.created)]

    def new_folder(self) -> tuple[str, Path]:
        """A fresh job id and its (new, empty) folder."""
        job_id = uuid.uuid4().hex
        folder = self.root / job_id
        folder.mkdir()
        return job_id, folder

    def folder(self, job_id: str) -> Path:
        if not ID_PATTERN.match(job_id):
            raise KeyError(job_id)
        return self.root / job_id

    def add(self, job: Job) -> None:
        with self._lock:
            self._write(job)
            self._jobs[job.id] = job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return dataclasses.replace(job, progress=dict(job.progress)) if job else None

    def recent(self, limit: int) -> list[Job]:
        """Newest first."""
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: (j.created, j.id), reverse=True)[:limit]
            return [dataclasses.replace(j, progress=dict(j.progress)) for j in jobs]

    def count(self, status: str) -> int:
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.status == status)

    def update(self, job_id: str, persist: bool = True, **changes: Any) -> None:
        with self._lock:
            job = self._jobs[job_id]
            for key, value in changes.items():
                setattr(job, key, value)
            if persist:
                self._write(job)

    def result_dir(self, job: Job) -> Path | None:
        """The folder with result.json, report.html and the images, once the scan wrote it."""
        if not job.result_name:
            return None
        path = self.folder(job.id) / SCAN_DIR / job.result_name
        return path if path.is_dir() else None

    def _write(self, job: Job) -> None:
        """Atomic rewrite, so a crash mid-write never leaves a job.json that fails to load."""
        path = self.folder(job.id) / JOB_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(job.to_dict(), indent=2) + "\n")
        os.replace(tmp, path)

    @staticmethod
    def discard(folder: Path) -> None:
        """Remove a folder of an upload that was refused (it never became a job)."""
        shutil.rmtree(folder, ignore_errors=True)


class ScanWorker:
    """Runs queued jobs one at a time in a background thread with the one loaded model and face detector.

    One thread is enough: a scan already keeps the CPU busy (TensorFlow and ffmpeg use every core), and a single
    consumer means the model is never used from two threads at once. The request handlers only enqueue ids.
    """

    def __init__(self, store: JobStore, scanner: Scanner, card: ModelCard, model_source: str):
        self.store = store
        self.scanner = scanner
        self.card = card
        self.model_source = model_source
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="scan-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish after the current job; the thread is a daemon, so a scan in progress does not block exit (the
        job then stays ``running`` on disk and the next start marks it interrupted)."""
        self._queue.put(None)

    def submit(self, job_id: str) -> None:
        self._queue.put(job_id)

    def _loop(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            try:
                self.run_job(job_id)
            except Exception as exc:  # never let one job kill the worker: the queue would stall for good
                log.exception("scan job %s failed", job_id)
                self.store.update(job_id, status="error", finished=now(),
                                  error=f"internal error ({type(exc).__name__}: {exc})")

    def run_job(self, job_id: str) -> None:
        """Scan the job's upload and write its results into ``<id>/scan/<name>/``."""
        job = self.store.get(job_id)
        if job is None or job.status != "queued":
            return
        folder = self.store.folder(job_id)
        upload = folder / job.upload
        self.store.update(job_id, status="running", started=now())

        def progress(done: int, total: int) -> None:
            self.store.update(job_id, persist=done % _PERSIST_EVERY == 0, progress={"done": done, "total": total})

        result = self.scanner.scan(upload, folder_name(job.filename), progress)
        # the server's own paths are nobody's business: reports name the file as the user named it
        result.path = job.filename
        if result.info is not None:
            result.info.path = job.filename
        if result.error:
            result.error = result.error.replace(str(upload), job.filename)
        report.write_result(result, folder / SCAN_DIR, self.card, self.model_source)
        final = self.store.get(job_id)
        total = final.progress["total"] if final else 0
        self.store.update(job_id, status="error" if result.verdict == "error" else "done", finished=now(),
                          verdict=result.verdict, error=result.error,
                          fake_probability=None if result.score is None else round(float(result.score), 4),
                          result_name=result.name, progress={"done": len(result.frames), "total": total},
                          credentials=result.provenance.short if result.provenance else None)
