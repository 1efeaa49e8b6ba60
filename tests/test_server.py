"""The web server as a client sees it: ``app.py serve`` runs as a subprocess on a free localhost port with a temporary
data folder, and every request goes over real HTTP (stdlib ``http.client``, so paths reach the server unnormalised).

One server serves all the ``e2e`` tests here (the model loads once); the last one stops it and starts a new one on
the same data folder to prove that jobs survive a restart. ``--frames 4`` and a 1 MB upload limit keep it to seconds.
The first few tests check the path and job-folder rules directly, without a server, so ``make test-fast`` runs them.
"""

from __future__ import annotations

import datetime as _dt
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from detector.jobs import Job, JobStore, Retention, display_name, folder_name, gave_up
from detector.model import ModelCard
from detector.pipeline import ScanResult
from detector.report import result_to_dict
from detector.server import safe_file

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
UPLOAD_LIMIT_MB = 1
#: The test server's queue limit, small enough for a burst of BURST uploads to hit it.
QUEUE_LIMIT = 10
BURST = 30
#: How fast /api/health must answer (95th percentile) while the burst is received and scans run; no answer may take
#: HEALTH_WORST_S (on a machine shared with other heavy jobs the OS alone can stall any process for a few 100 ms).
HEALTH_LATENCY_S = 0.2
HEALTH_WORST_S = 2.0
STARTUP_TIMEOUT = 180
SCAN_TIMEOUT = 180

if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
    pytest.skip("ffmpeg is not installed (apt-get install ffmpeg)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


class Server:
    """``python app.py serve`` in a subprocess; its output goes to a log file that failures print."""

    def __init__(self, data_dir: Path, log_path: Path):
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = 0
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.port = free_port()
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "app.py"), "serve", "--port", str(self.port), "--data-dir",
                 str(self.data_dir), "--frames", "4", "--max-upload-mb", str(UPLOAD_LIMIT_MB),
                 "--max-queued", str(QUEUE_LIMIT)],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if self.request("GET", "/api/health", timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        pytest.fail(f"server not ready after {STARTUP_TIMEOUT} s:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM (a graceful uvicorn shutdown), then SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def request(self, method: str, path: str, body: bytes | Iterable[bytes] | None = None,
                headers: dict[str, str] | None = None, timeout: float = 30, chunked: bool = False) -> Reply:
        """One request on a fresh connection. A server may answer (e.g. 413) and close before the whole body was
        sent: the send error is ignored and the answer read, as a browser would."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            try:
                conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
            except (BrokenPipeError, ConnectionResetError):
                pass
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    def upload(self, data: bytes, filename: str = "clip.mp4", field: str = "file") -> Reply:
        body, content_type = multipart(field, filename, data)
        return self.request("POST", "/api/scans", body, {"Content-Type": content_type})

    def wait_finished(self, scan_id: str) -> dict:
        """Poll until the scan is done or failed; every intermediate state must be a valid one."""
        deadline = time.monotonic() + SCAN_TIMEOUT
        while time.monotonic() < deadline:
            reply = self.request("GET", f"/api/scans/{scan_id}")
            assert reply.status == 200, reply.body
            doc = reply.json()
            assert doc["status"] in ("queued", "running", "done", "error")
            done, total = doc["progress"]["done"], doc["progress"]["total"]
            assert 0 <= done and (total == 0 or done <= total)
            if doc["status"] in ("done", "error"):
                return doc
            time.sleep(0.5)
        pytest.fail(f"scan {scan_id} did not finish in {SCAN_TIMEOUT} s:\n{self.log()}")


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with one file part, as a browser's FormData sends it."""
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def job_folders(data_dir: Path) -> set[str]:
    return {p.name for p in data_dir.iterdir() if p.is_dir()}


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


@pytest.mark.e2e
def test_unusable_model_is_a_one_line_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "app.py"), "serve", "--port", str(free_port()), "--data-dir",
                           str(tmp_path / "data"), "--model", str(tmp_path / "missing.keras")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {tmp_path / 'missing.keras'}: no such model file or folder"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("server")
    srv = Server(base / "data", base / "server.log")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def finished(server: Server, demo: Path) -> dict:
    """The demo clip uploaded and scanned to the end: the scan document as GET /api/scans/{id} returns it."""
    reply = server.upload((demo / "astronaut_pan.mp4").read_bytes(), "astronaut_pan.mp4")
    assert reply.status == 202, reply.body
    accepted = reply.json()
    assert accepted["status"] == "queued" and len(accepted["id"]) == 32
    assert reply.headers["location"] == f"/api/scans/{accepted['id']}"
    return server.wait_finished(accepted["id"])


@pytest.mark.e2e
def test_upload_is_scanned_and_result_follows_the_schema(server: Server, finished: dict) -> None:
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
    assert str(server.data_dir) not in json.dumps(finished), "server paths leak into the API"
    folder = server.data_dir / finished["id"]
    assert (folder / "upload.mp4").is_file() and json.loads((folder / "job.json").read_text())["status"] == "done"


@pytest.mark.e2e
def test_report_and_result_files_are_served(server: Server, finished: dict) -> None:
    links = finished["links"]
    report = server.request("GET", links["report"])
    assert report.status == 200 and report.headers["content-type"].startswith("text/html")
    assert b"astronaut_pan.mp4" in report.body and finished["verdict"].upper().encode() in report.body
    assert "script-src" not in report.headers["content-security-policy"]  # default-src 'none': no scripts run
    timeline = server.request("GET", links["files"] + "timeline.png")
    assert timeline.status == 200 and timeline.body.startswith(PNG_MAGIC)
    for cam in finished["result"]["gradcam"]:
        image = server.request("GET", links["files"] + cam["overlay"])
        assert image.status == 200 and image.headers["content-type"] == "image/png"
        assert image.body.startswith(PNG_MAGIC)
    result_json = server.request("GET", links["files"] + "result.json")
    assert result_json.status == 200 and result_json.json() == finished["result"]


@pytest.mark.e2e
def test_scan_list_shows_recent_scans(server: Server, finished: dict) -> None:
    reply = server.request("GET", "/api/scans")
    assert reply.status == 200
    listed = {scan["id"]: scan for scan in reply.json()["scans"]}
    assert listed[finished["id"]]["status"] == "done"
    assert listed[finished["id"]]["verdict"] == finished["verdict"]
    assert listed[finished["id"]]["credentials"] == "none"
    assert "result" not in listed[finished["id"]]


@pytest.mark.e2e
def test_type_comes_from_the_content_not_the_name(server: Server, demo: Path) -> None:
    """A JPEG named like a video is stored and scanned as the still image it is."""
    reply = server.upload((demo / "astronaut.jpg").read_bytes(), "../../holiday.mp4")
    assert reply.status == 202, reply.body
    scan_id = reply.json()["id"]
    stored = sorted(p.name for p in (server.data_dir / scan_id).iterdir())
    assert "upload.jpg" in stored and not any("holiday" in name for name in stored)
    doc = server.wait_finished(scan_id)
    assert doc["status"] == "done" and doc["filename"] == "holiday.mp4"
    assert doc["result"]["video"]["is_image"] is True and doc["media"]["is_image"] is True


@pytest.mark.e2e
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
def test_bad_uploads_get_a_json_4xx_and_leave_nothing(server: Server, tmp_path: Path, case: str, status: int,
                                                      words: str) -> None:
    before = job_folders(server.data_dir)
    too_big = os.urandom(int((UPLOAD_LIMIT_MB + 0.2) * 1_000_000))
    if case == "missing field":
        reply = server.upload(b"\x00" * 100, field="video")
    elif case == "not multipart":
        reply = server.request("POST", "/api/scans", b"{}", {"Content-Type": "application/json"})
    elif case == "empty file":
        reply = server.upload(b"")
    elif case == "text renamed .mp4":
        reply = server.upload(b"minutes of the meeting\n" * 10, "notes.mp4")
    elif case == "hls playlist":  # would make ffmpeg open the file it names, if it were probed unrestricted
        reply = server.upload(b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n/etc/passwd\n#EXT-X-ENDLIST\n",
                              "list.m3u8")
    elif case == "audio only":
        audio = tmp_path / "voice.m4a"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=duration=1", "-c:a",
                        "aac", str(audio)], check=True)
        reply = server.upload(audio.read_bytes(), "voice.mp4")
    elif case == "declared too large":  # refused from the Content-Length header alone, before any body is read
        body, content_type = multipart("file", "big.mp4", too_big)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.putrequest("POST", "/api/scans")
        conn.putheader("Content-Type", content_type)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        response = conn.getresponse()
        reply = Reply(response.status, {}, response.read())
        conn.close()
    else:  # chunked: no Content-Length to check, so the cap must hold while the body streams in
        body, content_type = multipart("file", "big.mp4", too_big)
        chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))
        reply = server.request("POST", "/api/scans", chunks, {"Content-Type": content_type}, chunked=True)
    assert reply.status == status, reply.body
    error = reply.json()["error"]
    assert isinstance(error, str) and words in error
    assert str(server.data_dir) not in error
    assert job_folders(server.data_dir) == before, "a refused upload left a job folder"
    assert server.request("GET", "/api/health").status == 200


@pytest.mark.e2e
def test_unknown_scan_ids_are_404(server: Server) -> None:
    for path in (f"/api/scans/{uuid.uuid4().hex}", "/api/scans/not-an-id", f"/api/scans/{uuid.uuid4().hex}/report",
                 f"/api/scans/{uuid.uuid4().hex}/files/timeline.png"):
        reply = server.request("GET", path)
        assert reply.status == 404, path
        assert "error" in reply.json()


@pytest.mark.e2e
def test_path_traversal_is_refused(server: Server, finished: dict) -> None:
    base = f"/api/scans/{finished['id']}/files/"
    secret = (server.data_dir / finished["id"] / "job.json").read_bytes()
    for attack in ("../job.json", "../../" + finished["id"] + "/job.json", "..%2Fjob.json", "%2e%2e/job.json",
                   "..%2F..%2F..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "/etc/passwd", "gradcam/../../job.json",
                   "../upload.mp4", ""):
        reply = server.request("GET", base + attack)
        assert reply.status == 404, (attack, reply.status)
        assert reply.body != secret and b"root:" not in reply.body and reply.json()["error"]
    assert server.request("GET", base + "gradcam/../timeline.png").status == 200  # inside the folder: fine


@pytest.mark.e2e
def test_openapi_document_describes_the_api(server: Server) -> None:
    reply = server.request("GET", "/openapi.json")
    assert reply.status == 200
    doc = reply.json()
    assert {"/api/scans", "/api/scans/{scan_id}", "/api/scans/{scan_id}/report",
            "/api/scans/{scan_id}/files/{file_path}"} <= set(doc["paths"])
    upload = doc["paths"]["/api/scans"]["post"]
    assert "file" in upload["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert {"202", "413", "415"} <= set(upload["responses"])


@pytest.mark.e2e
def test_page_and_its_script_are_served(server: Server) -> None:
    page = server.request("GET", "/")
    assert page.status == 200 and b'id="file-input"' in page.body and b"/static/app.js" in page.body
    assert "default-src 'self'" in page.headers["content-security-policy"]
    script = server.request("GET", "/static/app.js")
    assert script.status == 200 and b"/api/scans" in script.body
    assert b"http://" not in page.body + script.body and b"https://" not in page.body + script.body  # no CDN


@pytest.mark.e2e
def test_server_log_has_no_library_start_up_lines(server: Server, finished: dict) -> None:
    """TensorFlow's absl and oneDNN notices are not the operator's business unless --verbose asks for them."""
    log = server.log()
    assert "serving on http://" in log
    assert "absl" not in log and "oneDNN" not in log and "cpu_feature_guard" not in log, log


@pytest.mark.e2e
def test_delete_removes_a_scan(server: Server, demo: Path) -> None:
    reply = server.upload((demo / "astronaut.jpg").read_bytes(), "to_delete.jpg")
    assert reply.status == 202, reply.body
    scan_id = reply.json()["id"]
    assert server.wait_finished(scan_id)["status"] == "done"
    assert (server.data_dir / scan_id).is_dir()
    deleted = server.request("DELETE", f"/api/scans/{scan_id}")
    assert deleted.status == 204 and deleted.body == b""
    assert not (server.data_dir / scan_id).exists()
    assert server.request("GET", f"/api/scans/{scan_id}").status == 404
    assert scan_id not in {scan["id"] for scan in server.request("GET", "/api/scans").json()["scans"]}
    for path in (f"/api/scans/{scan_id}", "/api/scans/not-an-id", "/api/scans/..%2F..%2Fetc"):
        again = server.request("DELETE", path)
        assert again.status == 404 and again.json()["error"], path


@pytest.mark.e2e
def test_upload_burst_keeps_the_queue_limit_and_health_answers_fast(server: Server, demo: Path) -> None:
    """A load test on loopback, bounded (BURST uploads, one each, then it stops): the queue never holds more than
    its limit, the surplus gets 503, and /api/health keeps answering fast (95 % within HEALTH_LATENCY_S, none
    beyond HEALTH_WORST_S) while the uploads are received and probed and the accepted ones are scanned."""
    data = (demo / "astronaut.jpg").read_bytes()
    latencies: list[float] = []
    queued_seen: list[int] = []
    replies: list[Reply] = []
    done = threading.Event()
    start = threading.Barrier(BURST)

    def poll_health() -> None:
        while not done.is_set():
            began = time.perf_counter()
            health = server.request("GET", "/api/health", timeout=10)
            latencies.append(time.perf_counter() - began)
            assert health.status == 200
            queued_seen.append(health.json()["queued"])
            time.sleep(0.02)

    def upload() -> None:
        start.wait(timeout=30)
        replies.append(server.upload(data, "burst.jpg"))

    poller = threading.Thread(target=poll_health)
    poller.start()
    uploaders = [threading.Thread(target=upload) for _ in range(BURST)]
    for thread in uploaders:
        thread.start()
    for thread in uploaders:
        thread.join(timeout=120)
    time.sleep(0.5)
    done.set()
    poller.join(timeout=30)

    statuses = sorted(reply.status for reply in replies)
    assert len(statuses) == BURST and set(statuses) <= {202, 503}, statuses
    assert 503 in statuses and 202 in statuses
    assert all("too many scans" in r.json()["error"] for r in replies if r.status == 503)
    assert server.request("GET", "/api/health").json()["max_queued"] == QUEUE_LIMIT
    assert len(queued_seen) > 10 and max(queued_seen) <= QUEUE_LIMIT, queued_seen
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    slowest = latencies[-1]
    assert p95 < HEALTH_LATENCY_S and slowest < HEALTH_WORST_S, f"95 %: {p95:.3f} s, slowest {slowest:.3f} s"
    accepted = [r.json()["id"] for r in replies if r.status == 202]
    for scan_id in accepted:  # leave no work behind for the next tests: queued scans are deleted, others waited for
        if server.request("DELETE", f"/api/scans/{scan_id}").status == 409:
            server.wait_finished(scan_id)
            assert server.request("DELETE", f"/api/scans/{scan_id}").status == 204
    assert not any((server.data_dir / scan_id).exists() for scan_id in accepted)


@pytest.mark.e2e
def test_jobs_survive_a_restart(server: Server, finished: dict, demo: Path) -> None:
    """Finished scans are still listed and served after a restart; a queued job left on disk is scanned; the scan
    running at a graceful stop (SIGTERM) is queued again and finishes on its second attempt; a job that was already
    started twice is given up with a clear error (it might crash the server again)."""
    live = server.upload((demo / "astronaut_pan.mp4").read_bytes(), "cut_off.mp4")
    assert live.status == 202, live.body
    live_id = live.json()["id"]
    deadline = time.monotonic() + SCAN_TIMEOUT
    while server.request("GET", f"/api/scans/{live_id}").json()["status"] != "running":
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

    listed = {scan["id"]: scan for scan in server.request("GET", "/api/scans").json()["scans"]}
    assert listed[finished["id"]]["status"] == "done"
    again = server.request("GET", f"/api/scans/{finished['id']}").json()
    assert again["result"] == finished["result"]
    assert server.request("GET", again["links"]["report"]).status == 200
    assert server.request("GET", again["links"]["files"] + "timeline.png").body.startswith(PNG_MAGIC)

    given_up = server.request("GET", f"/api/scans/{running_id}").json()
    assert given_up["status"] == "error" and given_up["error"] == gave_up(2) and given_up["attempts"] == 2
    retried = server.wait_finished(live_id)
    assert retried["status"] == "done" and retried["attempts"] == 2 and retried["result"]["frames_sampled"] == 4
    resumed = server.wait_finished(queued_id)
    assert resumed["status"] == "done" and resumed["result"]["frames_sampled"] == 4 and resumed["attempts"] == 1
