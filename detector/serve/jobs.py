"""Scan jobs for the web server: one folder per job on disk, and a single worker thread that runs them in order.

Layout under the data folder (``--data-dir``)::

    <id>/job.json            status, progress, timestamps, the upload's facts (rewritten atomically)
    <id>/upload.<ext>        the uploaded bytes; <ext> comes from probing the content, never from the client
    <id>/scan/<name>/        result.json, report.html, timeline.png, gradcam/*.png (detector.scan.report's layout)

The ids are random UUIDs (hex) made here, so a client never names a path. Everything a client may see is in
job.json, which is also what makes the job list survive a restart: on start-up queued jobs are queued again, and so
is a job that was running when the server stopped (a restart, even a graceful one, kills the scan in progress). Each
start of a scan counts as an attempt; after ``MAX_SCAN_ATTEMPTS`` the job is marked ``error`` instead, because a
file that crashes or hangs the scanner would otherwise take the server down at every start.

Disk use is bounded twice over: uploads wait only while fewer than ``MAX_QUEUED_SCANS`` are queued (checked and
reserved atomically, see :meth:`JobStore.reserve`), and finished jobs are deleted by :class:`Retention` once they are
too old, too many or too big together.
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

from detector import config
from detector.scan import report
from detector.ingest.inputs import result_name
from detector.scan.pipeline import Scanner
from detector.models.scoring import ModelCard

log = logging.getLogger(__name__)

JOB_FILE = "job.json"
SCAN_DIR = "scan"
STATUSES = ("queued", "running", "done", "error")
#: Job ids are uuid4().hex; anything else in a URL is rejected before the filesystem is touched.
ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
FINISHED = ("done", "error")
#: Progress is kept in memory on every frame and written to job.json at most this often (frames).
_PERSIST_EVERY = 8
#: The worker applies the retention limits after every scan and, when idle, this often (seconds).
RETENTION_INTERVAL_S = 600.0


def gave_up(attempts: int) -> str:
    """The error of a job whose scan was cut off by a server stop or crash ``attempts`` times."""
    return (f"the server stopped or crashed during this scan {attempts} times; it is not retried again (the file may "
            "crash or hang the scanner)")


@dataclass
class Retention:
    """How long finished jobs (upload and results) are kept: the newest are kept while all three limits hold, so
    the defaults bound the disk a server fills on a laptop; queued and running jobs are never deleted."""

    max_age_days: float = config.KEEP_DAYS
    max_scans: int = config.KEEP_SCANS
    max_gb: float = config.KEEP_GB


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
    attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        """The job of a job.json document; raises ValueError naming the fields of the wrong type or value (a
        hand-edited file, or one of another version), so one bad file cannot break the start-up or the list."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        job = cls(**{k: v for k, v in data.items() if k in names})
        bad = [name for name, ok in job._checks().items() if not ok]
        if bad:
            raise ValueError(f"fields of the wrong type or value: {', '.join(bad)}")
        return job

    def _checks(self) -> dict[str, bool]:
        def text(value: Any, optional: bool = False) -> bool:
            return isinstance(value, str) or (optional and value is None)

        def count(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value >= 0

        def file_name(value: Any, optional: bool = False) -> bool:  # joined to the job's folder: no way out of it
            return (optional and value is None) or (text(value) and value not in ("", ".", "..") and "/" not in value
                                                    and "\\" not in value and "\x00" not in value)

        return {"id": text(self.id), "filename": text(self.filename), "upload": file_name(self.upload),
                "size": count(self.size), "media": isinstance(self.media, dict), "status": self.status in STATUSES,
                "created": text(self.created), "started": text(self.started, True),
                "finished": text(self.finished, True),
                "progress": isinstance(self.progress, dict) and set(self.progress) == {"done", "total"}
                and all(count(v) for v in self.progress.values()),
                "verdict": text(self.verdict, True),
                "fake_probability": self.fake_probability is None or (
                    isinstance(self.fake_probability, (int, float)) and not isinstance(self.fake_probability, bool)),
                "error": text(self.error, True), "result_name": file_name(self.result_name, True),
                "credentials": text(self.credentials, True), "attempts": count(self.attempts)}

    @classmethod
    def damaged(cls, job_id: str, data: Any, reason: str) -> Job:
        """An ``error`` job standing for a job.json that could not be used: what can be kept is kept (the file name
        shown), everything else gets a safe value, and the error says why."""
        data = data if isinstance(data, dict) else {}
        filename = data.get("filename") if isinstance(data.get("filename"), str) else "unknown"
        created = data.get("created") if isinstance(data.get("created"), str) else now()
        return cls(id=job_id, filename=filename, upload="", size=0, media={}, status="error", created=created,
                   finished=now(), error=f"this scan's job file was damaged ({reason}); upload the file again")


class JobStore:
    """Jobs in memory, mirrored to ``<root>/<id>/job.json``. Thread-safe: the request handlers and the worker
    thread share it, and every read returns a copy so a response never sees a half-applied update."""

    def __init__(self, root: Path, max_attempts: int = config.MAX_SCAN_ATTEMPTS):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_attempts = max_attempts
        self._jobs: dict[str, Job] = {}
        self._reserved = 0
        self._lock = threading.Lock()

    def load(self) -> list[str]:
        """Read every job folder; queue interrupted jobs again (or give up on them after ``max_attempts``); return
        the ids queued, oldest first.

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
                data = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                log.warning("skipping unreadable job file %s: %s", path, exc)
                continue
            try:
                job = Job.from_dict(data)
                if job.id != path.parent.name:
                    raise ValueError("its id is not its folder's")
            except (ValueError, TypeError) as exc:
                log.warning("job file %s is damaged (%s): the job is marked as an error", path, exc)
                job = Job.damaged(path.parent.name, data, str(exc))
                self._write(job)
            if job.status == "running":
                if job.attempts >= self.max_attempts:
                    job.status, job.error, job.finished = "error", gave_up(job.attempts), now()
                else:
                    log.info("queueing interrupted scan %s again (attempt %d ran)", job.id, job.attempts)
                    job.status, job.started, job.progress = "queued", None, {"done": 0, "total": 0}
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

    def reserve(self, limit: int) -> bool:
        """Take one of ``limit`` queue places for an upload about to be read, or return False when all are taken.

        Checked and taken under one lock, counting uploads still streaming in, so a burst of concurrent uploads can
        never queue more than ``limit``; :meth:`add` with ``reserved=True`` turns the place into the queued job and
        :meth:`release` gives it back when the upload is refused."""
        with self._lock:
            queued = sum(1 for j in self._jobs.values() if j.status == "queued")
            if queued + self._reserved >= limit:
                return False
            self._reserved += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._reserved = max(0, self._reserved - 1)

    def add(self, job: Job, reserved: bool = False) -> None:
        with self._lock:
            self._write(job)
            self._jobs[job.id] = job
            if reserved:
                self._reserved = max(0, self._reserved - 1)

    def claim(self, job_id: str) -> Job | None:
        """Mark a queued job ``running`` and count the attempt (persisted before the scan starts, so a crash during
        it is counted); None when the job is gone or not queued (e.g. deleted while it waited)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status != "queued":
                return None
            job.status, job.started, job.attempts = "running", now(), job.attempts + 1
            self._write(job)
            return dataclasses.replace(job, progress=dict(job.progress))

    def delete(self, job_id: str) -> str:
        """Delete a job and its folder unless its scan is running: returns ``deleted``, ``running`` or ``missing``."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return "missing"
            if job.status == "running":
                return "running"
            del self._jobs[job_id]
        self.discard(self.folder(job_id))
        return "deleted"

    def prune(self, retention: Retention, at: _dt.datetime | None = None) -> list[str]:
        """Delete the finished jobs beyond the retention limits (the newest are kept); returns their ids."""
        at = at or _dt.datetime.now(_dt.timezone.utc)
        with self._lock:
            finished = sorted((j for j in self._jobs.values() if j.status in FINISHED),
                              key=lambda j: (j.finished or j.created, j.id), reverse=True)
        keep_bytes = retention.max_gb * 1e9
        total, doomed = 0, []
        for rank, job in enumerate(finished):
            total += _folder_bytes(self.folder(job.id))
            age_days = (at - _parse_time(job.finished or job.created)).total_seconds() / 86400
            if rank >= retention.max_scans or age_days > retention.max_age_days or total > keep_bytes:
                doomed.append(job.id)
        removed = [job_id for job_id in doomed if self.delete(job_id) == "deleted"]
        if removed:
            log.info("retention: deleted %d finished scans", len(removed))
        return removed

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
        """Remove a job folder (a refused upload's, or a deleted job's)."""
        shutil.rmtree(folder, ignore_errors=True)


def _parse_time(stamp: str) -> _dt.datetime:
    try:
        value = _dt.datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return _dt.datetime.now(_dt.timezone.utc)
    return value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)


def _folder_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:
            continue
    return total


class ScanWorker:
    """Runs queued jobs one at a time in a background thread with the one loaded model and face detector.

    One thread is enough: a scan already keeps the CPU busy (TensorFlow and ffmpeg use every core), and a single
    consumer means the model is never used from two threads at once. The request handlers only enqueue ids.
    """

    def __init__(self, store: JobStore, scanner: Scanner, card: ModelCard, model_source: str,
                 retention: Retention | None = None):
        self.store = store
        self.scanner = scanner
        self.card = card
        self.model_source = model_source
        self.retention = retention or Retention()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="scan-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish after the current job; the thread is a daemon, so a scan in progress does not block exit (the
        job then stays ``running`` on disk and the next start queues it again)."""
        self._queue.put(None)

    def submit(self, job_id: str) -> None:
        self._queue.put(job_id)

    def _loop(self) -> None:
        while True:
            try:
                job_id = self._queue.get(timeout=RETENTION_INTERVAL_S)
            except queue.Empty:
                self._prune()
                continue
            if job_id is None:
                return
            try:
                self.run_job(job_id)
            except Exception as exc:  # never let one job kill the worker: the queue would stall for good
                log.exception("scan job %s failed", job_id)
                self.store.update(job_id, status="error", finished=now(),
                                  error=f"internal error ({type(exc).__name__}: {exc})")
            self._prune()

    def _prune(self) -> None:
        try:
            self.store.prune(self.retention)
        except OSError as exc:
            log.warning("retention sweep failed: %s", exc)

    def run_job(self, job_id: str) -> None:
        """Scan the job's upload and write its results into ``<id>/scan/<name>/``."""
        job = self.store.claim(job_id)
        if job is None:
            return
        folder = self.store.folder(job_id)
        upload = folder / job.upload

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
