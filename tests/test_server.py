"""The web server, at three distances: the job store's and path rules directly; the HTTP API in-process through
FastAPI's TestClient; and ``app.py serve`` as a live subprocess over real HTTP, for what only a running process shows.

- Store and path rules, and the API with a worker that only queues (no model), are fast unit tests: requests,
  uploads, limits, errors, the page and the OpenAPI document.
- One scan end to end in-process (``e2e``): the real worker with the shipped model scans uploads (``--frames 4``);
  their results, report and files are served, and a finished scan can be deleted.
- The live server (``e2e``, one process for its tests): raw paths that an HTTP client library would normalise before
  sending, the server's own log, a burst of concurrent uploads while /api/health must stay fast, and jobs surviving a
  restart (SIGTERM mid-scan).
"""

from __future__ import annotations

import datetime as _dt
import http.client
import json
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest
from conftest import ServerProcess, ffmpeg, free_port, run_app
from fastapi.testclient import TestClient

from detector.serve.jobs import Job, JobStore, Retention, ScanWorker, display_name, folder_name, gave_up
from detector.scan.pipeline import ScanResult
from detector.scan.report import result_to_dict
from detector.models.scoring import ModelCard
from detector.serve.server import ServerSettings, create_app, safe_file

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
UPLOAD_LIMIT_MB = 1
#: The queue limit of the servers here, small enough for a burst of BURST uploads to hit it.
QUEUE_LIMIT = 10
BURST = 30
#: How fast /api/health must answer (95th percentile) while the burst is received and scans run; no answer may take
#: HEALTH_WORST_S (on a machine shared with other heavy jobs the OS alone can stall any process for a few 100 ms).
HEALTH_LATENCY_S = 0.2
HEALTH_WORST_S = 2.0
SCAN_TIMEOUT = 180

if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
    pytest.skip("ffmpeg is not installed (apt-get install ffmpeg)", allow_module_level=True)


def job_folders(data_dir: Path) -> set[str]:
    return {p.name for p in data_dir.iterdir() if p.is_dir()}


def settings(max_queued: int = QUEUE_LIMIT) -> ServerSettings:
    return ServerSettings(max_upload_bytes=UPLOAD_LIMIT_MB * 1_000_000, frames=4, max_queued=max_queued,
                          model={"name": "deepfake", "version": 1, "backbone": "test", "trained": True,
                                 "threshold": 0.5})


def upload(client: httpx.Client | TestClient, data: bytes, filename: str = "clip.mp4",
           field: str = "file") -> httpx.Response:
    return client.post("/api/scans", files={field: (filename, data, "application/octet-stream")})


def wait_finished(client: httpx.Client | TestClient, scan_id: str) -> dict:
    """Poll until the scan is done or failed; every intermediate state must be a valid one."""
    deadline = time.monotonic() + SCAN_TIMEOUT
    while time.monotonic() < deadline:
        reply = client.get(f"/api/scans/{scan_id}")
        assert reply.status_code == 200, reply.text
        doc = reply.json()
        assert doc["status"] in ("queued", "running", "done", "error")
        done, total = doc["progress"]["done"], doc["progress"]["total"]
        assert 0 <= done and (total == 0 or done <= total)
        if doc["status"] in ("done", "error"):
            return doc
        time.sleep(0.2)
    pytest.fail(f"scan {scan_id} did not finish in {SCAN_TIMEOUT} s")


# --------------------------------------------------------------------------------------------------- store and paths


def test_safe_file_stays_inside_its_folder(tmp_path: Path) -> None:
    base = tmp_path / "scan"
    (base / "gradcam").mkdir(parents=True)
    (base / "gradcam" / "a.png").write_bytes(PNG_MAGIC)
    (tmp_path / "job.json").write_text("{}")
    (base / "link.png").symlink_to(tmp_path / "job.json")
    assert safe_file(base, "gradcam/a.png") == (base / "gradcam" / "a.png").resolve()
    assert safe_file(base, "gradcam/../gradcam/a.png") == (base / "gradcam" / "a.png").resolve()
    for bad in ("../job.json", "gradcam/../../job.json", "/etc/passwd", str(tmp_path / "job.json"), "", "gradcam",
                "link.png", "nothing.png", "a\x00.png", "x" * 5000):
        assert safe_file(base, bad) is None, bad


def test_client_file_names_never_become_paths() -> None:
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name("C:\\Users\\me\\holiday.mp4") == "holiday.mp4"
    assert display_name("clip\x00\n.mp4") == "clip.mp4"
    assert display_name("") == display_name(None) == display_name("../") == "upload"
    for name in ("..", ".", "...", ".hidden.mp4", "a/../../b.mp4", "<script>.mp4", "x" * 500):
        folder = folder_name(display_name(name))
        assert folder and not folder.startswith(".") and "/" not in folder and len(folder) <= 80
        assert re.fullmatch(r"[A-Za-z0-9._-]+", folder), folder


def test_store_recovers_jobs_after_a_crash(tmp_path: Path) -> None:
    """What a restart finds: queued jobs come back in upload order, a running one is queued again (it was started
    once), one started twice already becomes an error, an upload that never got its job.json is removed, and
    unreadable or foreign folders are left alone."""
    store = JobStore(tmp_path, max_attempts=2)
    ids = []
    for status, created, attempts in (("queued", "2026-01-03T00:00:00+00:00", 0),
                                      ("running", "2026-01-01T00:00:00+00:00", 1),
                                      ("done", "2026-01-01T00:00:00+00:00", 1),
                                      ("queued", "2026-01-02T00:00:00+00:00", 0),
                                      ("running", "2026-01-01T00:00:00+00:00", 2)):
        job_id, _ = store.new_folder()
        store.add(Job(id=job_id, filename=f"{status}.mp4", upload="upload.mp4", size=1, media={}, status=status,
                      created=created, attempts=attempts, started=created if status == "running" else None,
                      progress={"done": 3, "total": 4} if status == "running" else {"done": 0, "total": 0}))
        ids.append(job_id)
    half_uploaded, _ = store.new_folder()
    broken, folder = store.new_folder()
    (folder / "job.json").write_text("{not json")
    (tmp_path / "notes").mkdir()

    reloaded = JobStore(tmp_path, max_attempts=2)
    assert reloaded.load() == [ids[1], ids[3], ids[0]]
    requeued = reloaded.get(ids[1])
    assert requeued.status == "queued" and requeued.attempts == 1 and requeued.error is None
    assert requeued.started is None and requeued.progress == {"done": 0, "total": 0}
    assert json.loads((tmp_path / ids[1] / "job.json").read_text())["status"] == "queued"
    given_up = reloaded.get(ids[4])
    assert given_up.status == "error" and given_up.error == gave_up(2) and given_up.finished
    assert "2 times" in given_up.error and "not retried" in given_up.error
    assert json.loads((tmp_path / ids[4] / "job.json").read_text())["status"] == "error"
    assert reloaded.get(ids[2]).status == "done"
    claimed = reloaded.claim(ids[1])
    assert claimed.status == "running" and claimed.attempts == 2
    assert json.loads((tmp_path / ids[1] / "job.json").read_text())["attempts"] == 2
    assert reloaded.claim(ids[1]) is None  # already running: a second claim must not start it twice
    assert not (tmp_path / half_uploaded).exists()
    assert reloaded.get(broken) is None and (tmp_path / broken).exists() and (tmp_path / "notes").exists()
    recent = [job.id for job in reloaded.recent(10)]
    assert recent[0] == ids[0] and set(recent) == set(ids)


@pytest.mark.parametrize("damage", [{"attempts": "1"}, {"progress": None}, {"status": "running", "attempts": "1"},
                                    {"size": "big"}, {"upload": "../../etc/passwd"}, {"media": []},
                                    {"created": None}, {"result_name": "../other"}])
def test_a_damaged_job_file_becomes_an_error_job_and_the_rest_are_served(tmp_path: Path, damage: dict) -> None:
    """One job.json with fields of the wrong type (hand-edited, or written by another version) used to stop
    start-up with a traceback or make the scan list answer 500 for everyone."""
    store = JobStore(tmp_path / "data")
    good, _ = store.new_folder()
    store.add(Job(id=good, filename="good.mp4", upload="upload.mp4", size=1, media={}))
    bad, folder = store.new_folder()
    store.add(Job(id=bad, filename="bad.mp4", upload="upload.mp4", size=1, media={}, status="done"))
    data = json.loads((folder / "job.json").read_text())
    (folder / "job.json").write_text(json.dumps({**data, **damage}))
    reloaded = JobStore(tmp_path / "data")
    assert reloaded.load() == [good]
    job = reloaded.get(bad)
    assert job.status == "error" and "job file was damaged" in job.error and job.filename == "bad.mp4"
    assert json.loads((folder / "job.json").read_text())["status"] == "error"
    with TestClient(create_app(reloaded, QueueOnly(), settings())) as client:
        listed = client.get("/api/scans")
        assert listed.status_code == 200 and {s["id"] for s in listed.json()["scans"]} == {good, bad}
        one = client.get(f"/api/scans/{bad}")
        assert one.status_code == 200 and one.json()["status"] == "error"


def test_queue_places_are_reserved_atomically(tmp_path: Path) -> None:
    """Many uploads asking at once get at most ``limit`` places, counting those still being read; a refused upload
    gives its place back, an accepted one turns it into a queued job."""
    store = JobStore(tmp_path)
    barrier = threading.Barrier(40)
    granted = []

    def ask() -> None:
        barrier.wait()
        granted.append(store.reserve(10))

    threads = [threading.Thread(target=ask) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert granted.count(True) == 10
    assert not store.reserve(10)
    store.release()
    job_id, _ = store.new_folder()
    assert store.reserve(10)
    store.add(Job(id=job_id, filename="a.mp4", upload="upload.mp4", size=1, media={}), reserved=True)
    assert store.count("queued") == 1 and not store.reserve(10)  # 9 reserved + 1 queued
    for _ in range(9):
        store.release()
    assert store.reserve(10)


def test_delete_and_retention(tmp_path: Path) -> None:
    """DELETE removes a job's folder unless it runs; retention keeps the newest finished jobs within the age, count
    and size limits and never touches queued or running ones."""
    store = JobStore(tmp_path)

    def job(status: str, finished: str | None, size: int = 10_000) -> str:
        job_id, folder = store.new_folder()
        (folder / "upload.mp4").write_bytes(b"x" * size)
        store.add(Job(id=job_id, filename="f.mp4", upload="upload.mp4", size=size, media={}, status=status,
                      created="2026-01-01T00:00:00+00:00", finished=finished))
        return job_id

    old = job("done", "2026-01-01T00:00:00+00:00")
    ids = [job("done" if i % 2 else "error", f"2026-01-20T00:00:{i:02d}+00:00") for i in range(5)]
    waiting, running = job("queued", None), job("running", None)
    at = _dt.datetime(2026, 1, 21, tzinfo=_dt.timezone.utc)

    assert store.prune(Retention(max_age_days=7, max_scans=100, max_gb=1), at) == [old]
    assert not (tmp_path / old).exists() and store.get(old) is None
    assert sorted(store.prune(Retention(max_age_days=7, max_scans=3, max_gb=1), at)) == sorted(ids[:2])
    assert store.prune(Retention(max_age_days=7, max_scans=3, max_gb=25e-6), at) == [ids[2]]  # two 10 kB uploads fit
    assert {j.id for j in store.recent(10)} == {ids[3], ids[4], waiting, running}
    assert sorted(store.prune(Retention(max_age_days=0, max_scans=1, max_gb=1), at)) == sorted(ids[3:])
    assert store.get(waiting) and store.get(running) and (tmp_path / running).exists()

    assert store.delete(running) == "running" and (tmp_path / running).exists()
    assert store.delete(waiting) == "deleted" and not (tmp_path / waiting).exists()
    assert store.delete(waiting) == "missing"
    assert store.claim(waiting) is None  # the worker finds a deleted job gone and skips it


# --------------------------------------------------------------------------------------------------- API in-process


class QueueOnly:
    """Stands in for :class:`detector.serve.jobs.ScanWorker` where only the HTTP layer is under test: it takes jobs and
    scans none (the real worker is tested end to end below)."""

    def __init__(self) -> None:
        self.submitted: list[str] = []

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def submit(self, job_id: str) -> None:
        self.submitted.append(job_id)


@dataclass
class Api:
    client: TestClient
    store: JobStore
    worker: QueueOnly
    data_dir: Path


@pytest.fixture()
def api(tmp_path: Path) -> Iterator[Api]:
    store, worker = JobStore(tmp_path / "data"), QueueOnly()
    with TestClient(create_app(store, worker, settings(max_queued=3))) as client:
        yield Api(client, store, worker, tmp_path / "data")


def test_health_reports_the_settings_and_the_queue(api: Api, demo: Path) -> None:
    health = api.client.get("/api/health")
    assert health.status_code == 200 and health.headers["x-content-type-options"] == "nosniff"
    assert health.json() == {"status": "ok", "model": settings().model, "max_upload_bytes": 1_000_000, "frames": 4,
                             "queued": 0, "running": 0, "max_queued": 3}
    assert upload(api.client, (demo / "astronaut.jpg").read_bytes(), "a.jpg").status_code == 202
    assert api.client.get("/api/health").json()["queued"] == 1


def test_an_accepted_upload_is_queued_listed_and_can_be_deleted(api: Api, demo: Path) -> None:
    reply = upload(api.client, (demo / "astronaut_pan.mp4").read_bytes(), "astronaut_pan.mp4")
    assert reply.status_code == 202, reply.text
    accepted = reply.json()
    scan_id = accepted["id"]
    assert accepted == {"id": scan_id, "status": "queued", "links": {"status": f"/api/scans/{scan_id}"}}
    assert re.fullmatch(r"[0-9a-f]{32}", scan_id) and reply.headers["location"] == f"/api/scans/{scan_id}"
    assert api.worker.submitted == [scan_id]
    doc = api.client.get(f"/api/scans/{scan_id}").json()
    assert doc["status"] == "queued" and doc["filename"] == "astronaut_pan.mp4" and doc["verdict"] is None
    assert doc["media"]["width"] == 480 and doc["media"]["is_image"] is False and "path" not in doc["media"]
    assert doc["links"] == {"status": f"/api/scans/{scan_id}"} and doc.get("result") is None
    assert str(api.data_dir) not in json.dumps(doc), "server paths leak into the API"
    assert [s["id"] for s in api.client.get("/api/scans").json()["scans"]] == [scan_id]
    report = api.client.get(f"/api/scans/{scan_id}/report")
    assert report.status_code == 404 and "no results yet" in report.json()["error"]
    assert (api.data_dir / scan_id / "upload.mp4").is_file()
    deleted = api.client.delete(f"/api/scans/{scan_id}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert not (api.data_dir / scan_id).exists() and api.client.get(f"/api/scans/{scan_id}").status_code == 404


def test_type_comes_from_the_content_not_the_name(api: Api, demo: Path) -> None:
    """A JPEG named like a video (and like a path) is stored as the still image it is, under our own name."""
    reply = upload(api.client, (demo / "astronaut.jpg").read_bytes(), "../../holiday.mp4")
    assert reply.status_code == 202, reply.text
    scan_id = reply.json()["id"]
    assert sorted(p.name for p in (api.data_dir / scan_id).iterdir()) == ["job.json", "upload.jpg"]
    doc = api.client.get(f"/api/scans/{scan_id}").json()
    assert doc["filename"] == "holiday.mp4" and doc["media"]["is_image"] is True


@pytest.mark.parametrize("case, status, words", [
    ("missing field", 400, "field named 'file'"),
    ("not multipart", 400, "multipart/form-data"),
    ("empty file", 400, "empty file"),
    ("text renamed .mp4", 415, "not a supported video or image"),
    ("hls playlist", 415, "not a supported video or image"),
    ("audio only", 415, "audio-only"),
    ("declared too large", 413, "larger than the limit"),
    ("streamed too large", 413, "larger than the limit"),
])
def test_bad_uploads_get_a_json_4xx_and_leave_nothing(api: Api, tmp_path: Path, case: str, status: int,
                                                      words: str) -> None:
    too_big = b"\x00" * int((UPLOAD_LIMIT_MB + 0.2) * 1_000_000)
    if case == "missing field":
        reply = upload(api.client, b"\x00" * 100, field="video")
    elif case == "not multipart":
        reply = api.client.post("/api/scans", content=b"{}", headers={"Content-Type": "application/json"})
    elif case == "empty file":
        reply = upload(api.client, b"")
    elif case == "text renamed .mp4":
        reply = upload(api.client, b"minutes of the meeting\n" * 10, "notes.mp4")
    elif case == "hls playlist":  # would make ffmpeg open the file it names, if it were probed unrestricted
        reply = upload(api.client, b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n/etc/passwd\n#EXT-X-ENDLIST\n",
                       "list.m3u8")
    elif case == "audio only":
        ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", tmp_path / "voice.m4a")
        reply = upload(api.client, (tmp_path / "voice.m4a").read_bytes(), "voice.mp4")
    elif case == "declared too large":  # refused from the Content-Length header alone
        reply = upload(api.client, too_big, "big.mp4")
    else:  # no Content-Length to go by: the cap must hold while the body streams in
        body = httpx.Request("POST", "http://x", files={"file": ("big.mp4", too_big)})
        chunks = body.read()
        reply = api.client.post("/api/scans", content=(chunks[i:i + 65536] for i in range(0, len(chunks), 65536)),
                                headers={"Content-Type": body.headers["content-type"]})
        assert "content-length" not in reply.request.headers
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert isinstance(error, str) and words in error and str(api.data_dir) not in error
    assert job_folders(api.data_dir) == set(), "a refused upload left a job folder"
    assert api.worker.submitted == [] and api.client.get("/api/health").json()["queued"] == 0


def test_a_full_queue_refuses_uploads_until_a_place_frees(api: Api, demo: Path) -> None:
    data = (demo / "astronaut.jpg").read_bytes()
    accepted = [upload(api.client, data, "a.jpg") for _ in range(3)]
    assert [r.status_code for r in accepted] == [202, 202, 202]
    refused = upload(api.client, data, "a.jpg")
    assert refused.status_code == 503 and refused.headers["retry-after"] == "60"
    assert "too many scans" in refused.json()["error"] and len(job_folders(api.data_dir)) == 3
    assert api.client.delete(f"/api/scans/{accepted[0].json()['id']}").status_code == 204
    assert upload(api.client, data, "a.jpg").status_code == 202


def test_unknown_scan_ids_are_404(api: Api) -> None:
    for path in (f"/api/scans/{uuid.uuid4().hex}", "/api/scans/not-an-id", f"/api/scans/{uuid.uuid4().hex}/report",
                 f"/api/scans/{uuid.uuid4().hex}/files/timeline.png"):
        reply = api.client.get(path)
        assert reply.status_code == 404 and reply.json()["error"], path
    for path in (f"/api/scans/{uuid.uuid4().hex}", "/api/scans/not-an-id", "/api/scans/..%2F..%2Fetc"):
        reply = api.client.delete(path)
        assert reply.status_code == 404 and reply.json()["error"], path


def test_openapi_document_describes_the_api(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    assert {"/api/scans", "/api/scans/{scan_id}", "/api/scans/{scan_id}/report",
            "/api/scans/{scan_id}/files/{file_path}", "/api/health"} <= set(doc["paths"])
    scans = doc["paths"]["/api/scans"]
    assert "file" in scans["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert {"202", "413", "415", "503"} <= set(scans["post"]["responses"])
    assert {"204", "404", "409"} <= set(doc["paths"]["/api/scans/{scan_id}"]["delete"]["responses"])
    assert api.client.get("/docs").status_code == 404  # its page would load scripts from a CDN


def test_openapi_documents_every_json_error_and_options_lists_every_method(api: Api) -> None:
    """The report's 404 is JSON like every error (not text/html, as its 200 is); OPTIONS answers with every method
    of the path, and a method a path lacks gets 405 with that same Allow list."""
    doc = api.client.get("/openapi.json").json()
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if code.startswith(("4", "5")):
                    assert set(response["content"]) == {"application/json"}, (path, method, code)
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.rsplit("/", 1)[-1] in doc["components"]["schemas"], ref
    scan = f"/api/scans/{uuid.uuid4().hex}"
    for path, methods in (("/api/scans", {"GET", "POST"}), (scan, {"GET", "DELETE"}), (f"{scan}/report", {"GET"}),
                          ("/api/health", {"GET"})):
        reply = api.client.options(path)
        allow = {m.strip() for m in reply.headers["allow"].split(",")}
        assert reply.status_code == 204 and methods | {"OPTIONS"} <= allow, (path, allow)
        refused = api.client.put(path)
        assert refused.status_code == 405 and refused.json()["error"]
        assert {m.strip() for m in refused.headers["allow"].split(",")} == allow, path


def test_page_and_its_script_are_served(api: Api) -> None:
    page = api.client.get("/")
    assert page.status_code == 200 and 'id="file-input"' in page.text and "/static/app.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    script = api.client.get("/static/app.js")
    assert script.status_code == 200 and "/api/scans" in script.text
    assert "http://" not in page.text + script.text and "https://" not in page.text + script.text  # no CDN


# ----------------------------------------------------------------------------------------------- one scan in-process


@dataclass
class Scanned:
    client: TestClient
    data_dir: Path
    clip: dict
    still: dict


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory, demo: Path) -> Iterator[Scanned]:
    """The real worker with the shipped model (or the untrained stand-in), in-process: the demo clip and still
    uploaded and scanned to the end."""
    from detector.models.model import load_detector
    from detector.scan.pipeline import ScanOptions, Scanner

    data_dir = tmp_path_factory.mktemp("server") / "data"
    detector = load_detector()
    store = JobStore(data_dir)
    worker = ScanWorker(store, Scanner(detector, ScanOptions(frames=4)), detector.card, detector.source)
    with TestClient(create_app(store, worker, settings())) as client:
        ids = [upload(client, (demo / name).read_bytes(), name).json()["id"]
               for name in ("astronaut_pan.mp4", "astronaut.jpg")]
        clip, still = (wait_finished(client, scan_id) for scan_id in ids)
        yield Scanned(client, data_dir, clip, still)


@pytest.mark.e2e
def test_upload_is_scanned_and_result_follows_the_schema(scanned: Scanned) -> None:
    finished = scanned.clip
    assert finished["status"] == "done", finished.get("error")
    assert finished["filename"] == "astronaut_pan.mp4"
    assert finished["progress"] == {"done": 4, "total": 4}
    result = finished["result"]
    schema = result_to_dict(ScanResult(path="x", name="x", verdict="no_face"), ModelCard())
    assert set(schema) <= set(result), f"missing keys: {set(schema) - set(result)}"
    assert result["schema_version"] == schema["schema_version"]
    assert result["verdict"] in ("real", "fake") and result["verdict"] == finished["verdict"]
    assert 0.0 <= result["fake_probability"] <= 1.0
    assert result["fake_probability"] == finished["fake_probability"]
    assert result["frames_sampled"] == 4 and len(result["tracks"]) == 1
    assert len(result["tracks"][0]["frames"]) == 4
    assert (result["video"]["width"], result["video"]["height"]) == (480, 360)
    assert result["input"] == "astronaut_pan.mp4" and result["error"] is None
    assert result["gradcam"] and result["timeline"] == "timeline.png"
    assert result["provenance"]["status"] == "absent" and finished["credentials"] == "none"
    assert str(scanned.data_dir) not in json.dumps(finished), "server paths leak into the API"
    assert scanned.still["status"] == "done" and scanned.still["result"]["video"]["is_image"] is True
    folder = scanned.data_dir / finished["id"]
    assert (folder / "upload.mp4").is_file() and json.loads((folder / "job.json").read_text())["status"] == "done"


@pytest.mark.e2e
def test_report_and_result_files_are_served(scanned: Scanned) -> None:
    client, finished = scanned.client, scanned.clip
    links = finished["links"]
    report = client.get(links["report"])
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "astronaut_pan.mp4" in report.text and finished["verdict"].upper() in report.text
    assert "script-src" not in report.headers["content-security-policy"]  # default-src 'none': no scripts run
    timeline = client.get(links["files"] + "timeline.png")
    assert timeline.status_code == 200 and timeline.content.startswith(PNG_MAGIC)
    for cam in finished["result"]["gradcam"]:
        image = client.get(links["files"] + cam["overlay"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        assert image.content.startswith(PNG_MAGIC)
    assert client.get(links["files"] + "result.json").json() == finished["result"]
    listed = {scan["id"]: scan for scan in client.get("/api/scans").json()["scans"]}
    assert listed[finished["id"]]["status"] == "done" and listed[finished["id"]]["verdict"] == finished["verdict"]
    assert listed[finished["id"]]["credentials"] == "none" and "result" not in listed[finished["id"]]


@pytest.mark.e2e
def test_a_finished_scan_can_be_deleted(scanned: Scanned) -> None:
    scan_id = scanned.still["id"]
    assert (scanned.data_dir / scan_id).is_dir()
    assert scanned.client.delete(f"/api/scans/{scan_id}").status_code == 204
    assert not (scanned.data_dir / scan_id).exists()
    assert scanned.client.get(f"/api/scans/{scan_id}").status_code == 404
    assert scan_id not in {scan["id"] for scan in scanned.client.get("/api/scans").json()["scans"]}


# --------------------------------------------------------------------------------------------------- the live server


@pytest.mark.e2e
def test_unusable_model_is_a_one_line_error(tmp_path: Path) -> None:
    proc = run_app("serve", "--port", str(free_port()), "--data-dir", tmp_path / "data", "--model",
                   tmp_path / "missing.keras", timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {tmp_path / 'missing.keras'}: no such model file or folder"]


class LiveServer(ServerProcess):
    """The live server with an HTTP client; ``raw`` sends a path byte for byte, as no client library would."""

    def client(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def raw(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    base = tmp_path_factory.mktemp("live")
    srv = LiveServer(base / "data", base / "server.log", "--frames", "4", "--max-upload-mb", str(UPLOAD_LIMIT_MB),
                     "--max-queued", str(QUEUE_LIMIT))
    srv.start()
    yield srv
    srv.stop()


@pytest.mark.e2e
def test_raw_paths_cannot_leave_a_scan_folder_and_the_log_stays_clean(server: LiveServer, demo: Path) -> None:
    with server.client() as client:
        finished = wait_finished(client, upload(client, (demo / "astronaut.jpg").read_bytes(), "a.jpg").json()["id"])
    assert finished["status"] == "done", server.log()
    base = f"/api/scans/{finished['id']}/files/"
    secret = (server.data_dir / finished["id"] / "job.json").read_bytes()
    for attack in ("../job.json", "../../" + finished["id"] + "/job.json", "..%2Fjob.json", "%2e%2e/job.json",
                   "..%2F..%2F..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "/etc/passwd", "gradcam/../../job.json",
                   "../upload.jpg", ""):
        status, body = server.raw(base + attack)
        assert status == 404, (attack, status)
        assert body != secret and b"root:" not in body and json.loads(body)["error"]
    assert server.raw(base + "gradcam/../timeline.png")[0] == 200  # inside the folder: fine
    # TensorFlow's absl and oneDNN notices are not the operator's business unless --verbose asks for them
    log = server.log()
    assert "serving on http://" in log
    assert "absl" not in log and "oneDNN" not in log and "cpu_feature_guard" not in log, log


@pytest.mark.e2e
def test_upload_burst_keeps_the_queue_limit_and_health_answers_fast(server: LiveServer, demo: Path) -> None:
    """A load test on loopback, bounded (BURST uploads, one each, then it stops): the queue never holds more than
    its limit, the surplus gets 503, and /api/health keeps answering fast (95 % within HEALTH_LATENCY_S, none
    beyond HEALTH_WORST_S) while the uploads are received and probed and the accepted ones are scanned."""
    data = (demo / "astronaut.jpg").read_bytes()
    latencies: list[float] = []
    queued_seen: list[int] = []
    replies: list[httpx.Response] = []
    done = threading.Event()
    start = threading.Barrier(BURST)

    def poll_health() -> None:
        with server.client(timeout=10) as client:
            while not done.is_set():
                began = time.perf_counter()
                health = client.get("/api/health")
                latencies.append(time.perf_counter() - began)
                assert health.status_code == 200
                queued_seen.append(health.json()["queued"])
                time.sleep(0.02)

    def send() -> None:
        with server.client(timeout=120) as client:
            start.wait(timeout=30)
            replies.append(upload(client, data, "burst.jpg"))

    poller = threading.Thread(target=poll_health)
    poller.start()
    uploaders = [threading.Thread(target=send) for _ in range(BURST)]
    for thread in uploaders:
        thread.start()
    for thread in uploaders:
        thread.join(timeout=120)
    time.sleep(0.5)
    done.set()
    poller.join(timeout=30)

    statuses = sorted(reply.status_code for reply in replies)
    assert len(statuses) == BURST and set(statuses) <= {202, 503}, statuses
    assert 503 in statuses and 202 in statuses
    assert all("too many scans" in r.json()["error"] for r in replies if r.status_code == 503)
    with server.client() as client:
        assert client.get("/api/health").json()["max_queued"] == QUEUE_LIMIT
        assert len(queued_seen) > 10 and max(queued_seen) <= QUEUE_LIMIT, queued_seen
        latencies.sort()
        p95 = latencies[int(0.95 * (len(latencies) - 1))]
        slowest = latencies[-1]
        assert p95 < HEALTH_LATENCY_S and slowest < HEALTH_WORST_S, f"95 %: {p95:.3f} s, slowest {slowest:.3f} s"
        accepted = [r.json()["id"] for r in replies if r.status_code == 202]
        for scan_id in accepted:  # leave no work behind: queued scans are deleted, the others waited for
            if client.delete(f"/api/scans/{scan_id}").status_code == 409:
                wait_finished(client, scan_id)
                assert client.delete(f"/api/scans/{scan_id}").status_code == 204
    assert not any((server.data_dir / scan_id).exists() for scan_id in accepted)


@pytest.mark.e2e
def test_jobs_survive_a_restart(server: LiveServer, demo: Path) -> None:
    """Finished scans are still listed and served after a restart; a queued job left on disk is scanned; the scan
    running at a graceful stop (SIGTERM) is queued again and finishes on its second attempt; a job that was already
    started twice is given up with a clear error (it might crash the server again)."""
    with server.client() as client:
        kept = upload(client, (demo / "astronaut.jpg").read_bytes(), "kept.jpg").json()["id"]
        finished = wait_finished(client, kept)
        live_id = upload(client, (demo / "astronaut_pan.mp4").read_bytes(), "cut_off.mp4").json()["id"]
        deadline = time.monotonic() + SCAN_TIMEOUT
        while client.get(f"/api/scans/{live_id}").json()["status"] != "running":
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.01)
    server.stop()
    assert json.loads((server.data_dir / live_id / "job.json").read_text())["status"] == "running"
    queued_id, running_id = uuid.uuid4().hex, uuid.uuid4().hex
    for job_id, status in ((queued_id, "queued"), (running_id, "running")):
        folder = server.data_dir / job_id
        folder.mkdir()
        shutil.copy(demo / "astronaut_pan.mp4", folder / "upload.mp4")
        job = Job(id=job_id, filename=f"{status}.mp4", upload="upload.mp4", size=1, media={}, status=status,
                  attempts=2 if status == "running" else 0)
        (folder / "job.json").write_text(json.dumps(job.to_dict()))
    server.start()

    with server.client() as client:
        listed = {scan["id"]: scan for scan in client.get("/api/scans").json()["scans"]}
        assert listed[finished["id"]]["status"] == "done"
        again = client.get(f"/api/scans/{finished['id']}").json()
        assert again["result"] == finished["result"]
        assert client.get(again["links"]["report"]).status_code == 200
        assert client.get(again["links"]["files"] + "timeline.png").content.startswith(PNG_MAGIC)

        given_up = client.get(f"/api/scans/{running_id}").json()
        assert given_up["status"] == "error" and given_up["error"] == gave_up(2) and given_up["attempts"] == 2
        retried = wait_finished(client, live_id)
        assert retried["status"] == "done" and retried["attempts"] == 2 and retried["result"]["frames_sampled"] == 4
        resumed = wait_finished(client, queued_id)
        assert resumed["status"] == "done" and resumed["result"]["frames_sampled"] == 4 and resumed["attempts"] == 1
