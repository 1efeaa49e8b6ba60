"""Web page and REST API for scans (``python app.py serve``): upload a file, poll the job, read the result.

FastAPI (on Starlette, served by uvicorn) because it gives the OpenAPI document and typed responses for free with a
small, well-kept dependency set. The HTTP side only validates uploads and reads job folders; all model work happens
in :class:`detector.serve.jobs.ScanWorker`'s one background thread, so the server answers while a scan runs.

Uploads are trusted for nothing: the body size is capped while it streams in, the content is probed with ffprobe
restricted to a list of media demuxers (so a playlist or other indirection cannot make ffmpeg open other files), and
the file is stored as ``upload.<ext>`` with the extension taken from the probe, in a folder named by a random id.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import anyio
import ffmpeg
from fastapi import FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

from detector import config
from detector.ingest import video
from detector.errors import DetectorError, InputError
from detector.scan.options import ScanOptions
from detector.serve.jobs import ID_PATTERN, Job, JobStore, Retention, ScanWorker, display_name

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Demuxers ffprobe may use on an upload (``-format_whitelist``). Audio containers are allowed so that an audio
#: file is refused as "audio-only" rather than as an unknown format; playlists (hls, concat) never are.
ALLOWED_DEMUXERS = ("mov", "mp4", "matroska", "webm", "avi", "mpegts", "flv", "asf", "mpeg", "gif", "jpeg_pipe",
                    "png_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "mp3", "wav", "ogg", "flac", "aac")
#: Stored file extension by the probed container (the first matching prefix wins); anything else is ``.bin``.
EXTENSIONS = (("mov,mp4", "mp4"), ("matroska", "mkv"), ("avi", "avi"), ("mpegts", "ts"), ("flv", "flv"),
              ("asf", "wmv"), ("mpeg", "mpg"), ("gif", "gif"), ("jpeg_pipe", "jpg"), ("png_pipe", "png"),
              ("webp_pipe", "webp"), ("bmp_pipe", "bmp"), ("tiff_pipe", "tif"))
#: Uploads stored and probed at the same time (each runs ffprobe); more wait their turn, so a burst of uploads cannot
#: starve the event loop of CPU and health checks keep answering at once.
UPLOAD_WORKERS = 2
#: Room for the multipart framing around the file (boundaries and part headers) when capping the request body.
MULTIPART_SLACK = 64 * 1024
PAGE_CSP = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'")
#: Scan outputs are static: no scripts at all, images inline or from this server, inline styles for the report.
FILE_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'self'; sandbox"


@dataclass
class ServerSettings:
    """What the HTTP layer needs to know about the configuration (the worker holds the model)."""

    max_upload_bytes: int
    frames: int
    model: dict[str, Any]
    max_queued: int = config.MAX_QUEUED_SCANS


class ApiError(HTTPException):
    """A client error answered as ``{"error": message}`` with its status code."""


class ErrorBody(BaseModel):
    error: str


class Progress(BaseModel):
    done: int
    total: int


class ScanSummary(BaseModel):
    """A job as listed: status, progress and, once done, the verdict. ``links`` holds the URLs to follow."""

    id: str
    status: Literal["queued", "running", "done", "error"]
    filename: str
    size: int
    created: str
    started: str | None
    finished: str | None
    progress: Progress
    verdict: str | None
    fake_probability: float | None
    error: str | None
    media: dict[str, Any]
    attempts: int
    links: dict[str, str]
    credentials: str | None = None


class ScanDetail(ScanSummary):
    """A job with its ``result``: the scan's result.json document (schema_version 1) once the scan has finished."""

    result: dict[str, Any] | None = None


class ScanList(BaseModel):
    scans: list[ScanSummary]


class ScanAccepted(BaseModel):
    id: str
    status: Literal["queued"]
    links: dict[str, str]


class Health(BaseModel):
    status: Literal["ok"]
    model: dict[str, Any]
    max_upload_bytes: int
    frames: int
    queued: int
    running: int
    max_queued: int


def _error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Errors as documented: JSON (``{"error": ...}``) whatever the route's own media type, since that is what
    :func:`create_app`'s handler answers (the report's 404 too, though its 200 is HTML)."""
    schema = {"$ref": "#/components/schemas/ErrorBody"}
    return {code: {"description": _ERROR_WORDS.get(code, "Error"), "content": {"application/json": {"schema": schema}}}
            for code in codes}


_ERROR_WORDS = {400: "Bad request", 404: "Not found", 409: "Conflict", 413: "Upload too large",
                415: "Not a supported video or image", 503: "Too many scans waiting"}


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method some route answers at ``path`` (Starlette's own 405 names only the first matching route's, so
    GET /api/scans/{id} hid DELETE), plus OPTIONS, which this server answers for every path."""
    methods = {"OPTIONS"}
    for route in app.routes:
        regex, route_methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and route_methods and regex.match(path):
            methods |= set(route_methods)
    return sorted(methods)


def _limited_receive(receive: Receive, limit: int, message: str) -> Receive:
    """Wrap the ASGI ``receive`` so reading more than ``limit`` body bytes fails with 413 while streaming (a
    missing or false Content-Length does not get around the cap, and nothing beyond it is read)."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        event = await receive()
        if event["type"] == "http.request":
            seen += len(event.get("body", b""))
            if seen > limit:
                raise ApiError(413, message, headers={"Connection": "close"})
        return event

    return wrapped


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:g} MB"


def copy_upload(source: BinaryIO, target: Path, limit: int) -> int:
    """Copy the spooled upload into the job folder; returns its size, or ``limit + 1`` as soon as it is too big."""
    size = 0
    with target.open("wb") as out:
        while chunk := source.read(1 << 20):
            size += len(chunk)
            if size > limit:
                return size
            out.write(chunk)
    return size


def check_media(path: Path, filename: str) -> video.VideoInfo:
    """Probe the upload's content; raise :class:`InputError` naming the client's file name (never our path)."""
    try:
        ffmpeg.probe(video.ffmpeg_url(path), format_whitelist=",".join(ALLOWED_DEMUXERS), protocol_whitelist="file")
    except ffmpeg.Error:
        raise InputError(f"{filename}: not a supported video or image format") from None
    except FileNotFoundError:
        raise InputError("ffprobe not found: install ffmpeg on the server") from None
    try:
        return video.probe(path)
    except InputError as exc:
        raise InputError(str(exc).replace(str(path), filename)) from None


def extension(info: video.VideoInfo) -> str:
    """The stored upload's extension, from what ffprobe found (a client's file name says nothing reliable)."""
    for prefix, ext in EXTENSIONS:
        if info.container.startswith(prefix):
            return "webm" if ext == "mkv" and info.codec in ("vp8", "vp9", "av1") else ext
    return "bin"


def media_facts(info: video.VideoInfo) -> dict[str, Any]:
    """What the job list shows about an upload before it is scanned (no server paths)."""
    facts = info.to_dict()
    facts.pop("path", None)
    return facts


def safe_file(base: Path, relative: str) -> Path | None:
    """``base/relative`` if it is a file inside ``base`` after resolving ``..`` and links; otherwise None."""
    if not relative or "\x00" in relative:
        return None
    try:
        root = base.resolve()
        target = (root / relative).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            return None
    except OSError:  # e.g. a name too long for the filesystem: no such file, as far as a client is concerned
        return None
    return target


def create_app(store: JobStore, worker: ScanWorker, settings: ServerSettings) -> FastAPI:
    """The ASGI application: page, static files and the ``/api`` routes over ``store``; ``worker`` starts and stops
    with the application's lifespan."""

    probing = anyio.CapacityLimiter(UPLOAD_WORKERS)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker.start()
        try:
            yield
        finally:
            worker.stop()

    # no /docs or /redoc: their pages load scripts from a CDN, and the server must work offline
    app = FastAPI(title="Deepfake detector", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Upload a video or image; a background worker scans it for manipulated faces. "
                              "Poll the scan until its status is `done` or `error`.")

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document, with the schema of the error body every error response refers to."""
        doc = generate()
        doc.setdefault("components", {}).setdefault("schemas", {})["ErrorBody"] = ErrorBody.model_json_schema()
        return doc

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(app, request.url.path))
            if request.method == "OPTIONS":  # what a client asks to learn the methods: answered, not refused
                return Response(status_code=204, headers=headers)
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors())
        return JSONResponse({"error": f"invalid request: {details}"}, status_code=422)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    def view(job: Job) -> dict[str, Any]:
        base = f"/api/scans/{job.id}"
        links = {"status": base}
        if store.result_dir(job) is not None:
            links |= {"report": f"{base}/report", "files": f"{base}/files/"}
        return {**job.to_dict(), "links": links}

    def find(job_id: str) -> Job:
        job = store.get(job_id) if ID_PATTERN.match(job_id) else None
        if job is None:
            raise ApiError(404, f"no scan with id {job_id!r}")
        return job

    def result_dir(job: Job) -> Path:
        folder = store.result_dir(job)
        if folder is None:
            raise ApiError(404, f"scan {job.id} has no results yet (status: {job.status})")
        return folder

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Content-Security-Policy": PAGE_CSP,
                                                                 "Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/health", response_model=Health, summary="Server status, model and limits")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": settings.model, "max_upload_bytes": settings.max_upload_bytes,
                "frames": settings.frames, "queued": store.count("queued"), "running": store.count("running"),
                "max_queued": settings.max_queued}

    @app.post("/api/scans", status_code=202, response_model=ScanAccepted, summary="Upload a video or image to scan",
              responses=_error_responses(400, 413, 415, 503),
              openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                  "type": "object", "required": ["file"],
                  "properties": {"file": {"type": "string", "format": "binary"}}}}}}})
    async def create_scan(request: Request, response: Response) -> dict[str, Any]:
        """Multipart upload in the field ``file``. The content must probe as a video or image; the scan is queued
        and runs in the background."""
        if not store.reserve(settings.max_queued):
            raise ApiError(503, "too many scans waiting; try again later", headers={"Retry-After": "60"})
        added = False
        try:
            job = await receive_upload(request)
            added = True
        finally:
            if not added:
                store.release()
        worker.submit(job.id)
        log.info("scan %s queued: %s (%d bytes)", job.id, job.filename, job.size)
        response.headers["Location"] = f"/api/scans/{job.id}"
        return {"id": job.id, "status": "queued", "links": {"status": f"/api/scans/{job.id}"}}

    async def receive_upload(request: Request) -> Job:
        """Read, store and probe the multipart upload of a request holding a queue place; the job is queued."""
        limit = settings.max_upload_bytes
        if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            raise ApiError(400, "send the file as multipart/form-data in a field named 'file'")
        too_large = f"upload larger than the limit of {_megabytes(limit)}"
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit + MULTIPART_SLACK:
            raise ApiError(413, too_large, headers={"Connection": "close"})
        limited = Request(request.scope, _limited_receive(request.receive, limit + MULTIPART_SLACK, too_large))
        try:
            form = await limited.form(max_files=1, max_fields=16)
        except ClientDisconnect:
            raise ApiError(400, "the upload was interrupted") from None
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ApiError(400, "missing file: send it in a multipart field named 'file'")
            filename = display_name(upload.filename)
            return await anyio.to_thread.run_sync(accept_upload, store, upload.file, filename, limit,
                                                  limiter=probing)
        finally:
            await form.close()

    @app.get("/api/scans", response_model=ScanList, summary="Recent scans, newest first")
    async def list_scans(limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
        return {"scans": [view(job) for job in store.recent(limit)]}

    @app.get("/api/scans/{scan_id}", response_model=ScanDetail, responses=_error_responses(404),
             summary="A scan's status, progress and (when finished) its result document")
    async def get_scan(scan_id: str) -> dict[str, Any]:
        job = find(scan_id)
        doc = view(job)
        folder = store.result_dir(job)
        if folder is not None and job.status in ("done", "error"):
            doc["result"] = await run_in_threadpool(_read_json, folder / "result.json")
        return doc

    @app.delete("/api/scans/{scan_id}", status_code=204, response_class=Response, responses=_error_responses(404, 409),
                summary="Delete a scan: its upload, job and results (not while it runs)")
    async def delete_scan(scan_id: str) -> Response:
        find(scan_id)
        outcome = await run_in_threadpool(store.delete, scan_id)
        if outcome == "running":
            raise ApiError(409, f"scan {scan_id} is running; delete it once it has finished")
        if outcome == "missing":
            raise ApiError(404, f"no scan with id {scan_id!r}")
        log.info("scan %s deleted", scan_id)
        return Response(status_code=204)

    @app.get("/api/scans/{scan_id}/report", response_class=HTMLResponse, responses=_error_responses(404),
             summary="The scan's self-contained report.html")
    async def get_report(scan_id: str) -> FileResponse:
        path = safe_file(result_dir(find(scan_id)), "report.html")
        if path is None:
            raise ApiError(404, f"scan {scan_id} has no report")
        return FileResponse(path, media_type="text/html", headers={"Content-Security-Policy": FILE_CSP})

    @app.get("/api/scans/{scan_id}/files/{file_path:path}", responses=_error_responses(404),
             summary="A file of the scan's results, e.g. timeline.png or gradcam/montage.png")
    async def get_file(scan_id: str, file_path: str) -> FileResponse:
        path = safe_file(result_dir(find(scan_id)), file_path)
        if path is None:
            raise ApiError(404, f"scan {scan_id} has no file {file_path!r}")
        return FileResponse(path, headers={"Content-Security-Policy": FILE_CSP})

    return app


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def accept_upload(store: JobStore, source: BinaryIO, filename: str, limit: int) -> Job:
    """Store and probe one upload in a new job folder and register the job; the folder is removed when the upload
    is refused, so refused uploads leave nothing behind."""
    job_id, folder = store.new_folder()
    try:
        part = folder / "upload.part"
        size = copy_upload(source, part, limit)
        if size == 0:
            raise ApiError(400, f"{filename}: empty file (0 bytes)")
        if size > limit:
            raise ApiError(413, f"upload larger than the limit of {_megabytes(limit)}")
        try:
            info = check_media(part, filename)
        except InputError as exc:
            raise ApiError(415, str(exc)) from None
        stored = part.rename(folder / f"upload.{extension(info)}")
        job = Job(id=job_id, filename=filename, upload=stored.name, size=size, media=media_facts(info))
        store.add(job, reserved=True)
        return job
    except BaseException:
        store.discard(folder)
        raise


@dataclass
class ServeConfig:
    """``app.py serve`` options."""

    host: str = config.SERVE_HOST
    port: int = config.SERVE_PORT
    data_dir: Path = config.SERVE_DATA_DIR
    model: Path | None = None
    max_upload_mb: float = config.MAX_UPLOAD_MB
    #: the settings of every scan, as the command line's scan takes them (the trusted signers come from the file
    #: named by ``trusted_signers``, read when the server starts)
    options: ScanOptions = field(default_factory=ScanOptions)
    trusted_signers: Path | None = None
    max_queued: int = config.MAX_QUEUED_SCANS
    retention: Retention = field(default_factory=Retention)


def _bind(host: str, port: int) -> socket.socket:
    """Bind before the slow model load, so a taken port fails at once; uvicorn starts listening on it later."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise DetectorError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def serve(cfg: ServeConfig) -> int:
    """Load the model once, re-queue unfinished jobs from ``cfg.data_dir`` and serve until interrupted."""
    import uvicorn

    from detector.ingest.inputs import prepare_output
    from detector.models.model import load_detector
    from detector.origin.provenance import load_trusted_signers
    from detector.scan.pipeline import Scanner

    trusted = load_trusted_signers(cfg.trusted_signers) if cfg.trusted_signers else None
    sock = _bind(cfg.host, cfg.port)
    prepare_output(cfg.data_dir)
    store = JobStore(cfg.data_dir)
    queued = store.load()
    store.prune(cfg.retention)
    detector = load_detector(cfg.model)
    scanner = Scanner(detector, dataclasses.replace(cfg.options, trusted_signers=trusted))
    scanner.faces.detect(_blank_frame())  # loads MTCNN now rather than during the first user's scan
    worker = ScanWorker(store, scanner, detector.card, detector.source, cfg.retention)
    for job_id in queued:
        worker.submit(job_id)
    card = detector.card
    settings = ServerSettings(max_upload_bytes=int(cfg.max_upload_mb * 1_000_000), frames=cfg.options.frames,
                              max_queued=cfg.max_queued,
                              model={"name": card.name, "version": card.version, "backbone": card.backbone,
                                     "trained": card.trained, "threshold": card.threshold})
    app = create_app(store, worker, settings)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    if not card.trained:
        print("note: no trained model is installed; verdicts are provisional", file=sys.stderr)
    if cfg.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {cfg.host}: the server has no authentication; anyone who can reach it can "
              "upload files", file=sys.stderr)
    print(f"serving on http://{shown}:{port}/ (data: {cfg.data_dir}, {len(queued)} queued scans resumed)",
          file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, ws="none", timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _blank_frame() -> Any:
    import numpy as np

    return np.zeros((64, 64, 3), np.uint8)

