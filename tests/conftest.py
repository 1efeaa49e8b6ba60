"""Fixtures and helpers shared by several test modules (helpers are imported with ``from conftest import ...``)."""

from __future__ import annotations

import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from detector import config
from detector.demo import make_demo

ROOT = Path(__file__).resolve().parents[1]

FACE_KPS = [[85, 100], [139, 100], [112, 130], [90, 160], [134, 160]]


def dense_face_landmarks() -> np.ndarray:
    """A face's 68 points in dlib's order, drawn around :data:`FACE_KPS` (eyes at row 100, mouth at 160, chin at
    190 of a 224-pixel crop): jaw, brows, nose, eyes, outer and inner lips."""
    t = np.linspace(0, np.pi, 17)
    jaw = np.c_[112 - 62 * np.cos(t), 110 + 80 * np.sin(t)]
    brows = np.r_[np.c_[np.linspace(65, 105, 5), np.full(5, 85)], np.c_[np.linspace(119, 159, 5), np.full(5, 85)]]
    nose = np.r_[np.c_[np.full(4, 112), np.linspace(95, 125, 4)], np.c_[np.linspace(100, 124, 5), np.full(5, 132)]]

    def ring(cx: float, cy: float, a: float, b: float, n: int) -> np.ndarray:
        u = np.linspace(0, 2 * np.pi, n, endpoint=False)
        return np.c_[cx - a * np.cos(u), cy - b * np.sin(u)]

    eyes = np.r_[ring(85, 100, 10, 4, 6), ring(139, 100, 10, 4, 6)]
    lips = np.r_[ring(112, 160, 22, 8, 12), ring(112, 160, 14, 4, 8)]
    return np.r_[jaw, brows, nose, eyes, lips].astype(np.float32)


@pytest.fixture(scope="session")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny training.pack: two crops per item of the astronaut's face, brightened or darkened per item. Pool
    fakes of two methods ("swap", sharing the "stream" group with a real; "talk"), two real-only pool groups (one
    per fold), a real still with landmarks (a self-blend source) and a labelled eval item."""
    import cv2
    from skimage import data

    root = tmp_path_factory.mktemp("pack")
    (root / "crops").mkdir()
    face = cv2.resize(np.ascontiguousarray(data.astronaut()[30:290, 100:360]), (224, 224))
    specs = [  # role, item, label, method, group, brightness
        ("pool", "stream_real", 0, "", "stream", 0), ("pool", "stream_fake", 1, "swap", "stream", 40),
        ("pool", "talk_fake", 1, "talk", "talk", 80), ("pool", "webcam_real", 0, "", "webcam", -30),
        ("pool", "studio_real", 0, "", "studio", -60),
        ("real", "lfw_a", 0, "", "lfw_a", 20), ("eval", "labelled", 1, "", "labelled", 0),
    ]
    crops = []
    for n, (role, item, label, method, group, shift) in enumerate(specs):
        for k in range(2):
            name = f"{n}_{k}.jpg"
            image = np.clip(face.astype(int) + shift, 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / "crops" / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            entry = {"file": name, "role": role, "dataset": role, "item": item, "label": label, "method": method,
                     "group": group, "track": 0, "counted": True}
            if label == 0 and role != "eval":
                entry["landmarks"] = FACE_KPS
            crops.append(entry)
    (root / "meta.json").write_text(json.dumps({"image_size": 224, "crops": crops}))
    return root


def ffmpeg(*args: str | Path) -> None:
    """Run ffmpeg quietly; a failure shows ffmpeg's own message."""
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True, capture_output=True)


def user_env() -> dict[str, str]:
    """The environment a user's shell gives app.py: no log-level variables (the test process sets one when it imports
    the package), so quietness is the app's own doing."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "ABSL", "GLOG"))}


def run_app(*args: str | Path, cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python app.py ARGS`` as the README tells users to run it."""
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *map(str, args)], cwd=cwd, env=user_env(),
                          capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit black PNG of any size in a few kilobytes (zlib squeezes the all-zero rows), built without
    allocating the image, so huge resolutions are cheap to test."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes((width + 7) // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


class ServerProcess:
    """``python app.py serve`` in a subprocess on a free localhost port; its output goes to a log file that failures
    print. ``start`` again after ``stop`` restarts it on the same data folder."""

    def __init__(self, data_dir: Path, log_path: Path, *options: str, startup_timeout: float = 180):
        self.data_dir = data_dir
        self.log_path = log_path
        self.options = options
        self.startup_timeout = startup_timeout
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = free_port()
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "app.py"), "serve", "--port", str(self.port), "--data-dir",
                 str(self.data_dir), *self.options],
                cwd=ROOT, env=user_env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        pytest.fail(f"server not ready after {self.startup_timeout} s:\n{self.log()}")

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


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's own demo media (astronaut clip and still), made once per test session."""
    folder = tmp_path_factory.mktemp("demo")
    make_demo(folder)
    return folder


def sample_faces(size: int = config.IMAGE_SIZE) -> np.ndarray:
    """Five different real pictures at the model's input size (uint8): a face, a portrait, coffee, a cat, a rocket."""
    import cv2
    from skimage import data

    astro = data.astronaut()
    pictures = [astro[40:200, 150:300], astro, data.coffee(), data.chelsea(), data.rocket()]
    return np.stack([cv2.resize(p, (size, size), interpolation=cv2.INTER_AREA) for p in pictures])


def spread_head(model, images: np.ndarray, spread: float = 2.0) -> None:
    """Give an untrained task model (a :class:`detector.models.classifier.DeepfakeClassifier`) scores that differ
    between
    inputs. A freshly initialised head scores every input 0.5 +- 1e-4, so any "same probabilities" check would pass by
    accident: the head is rescaled until the logits of ``images`` have standard deviation ``spread`` around 0."""
    kernel, _ = model.head.get_weights()
    logits = np.asarray(model.embedder()(images.astype("float32"))) @ kernel
    scale = spread / (float(logits.std()) + 1e-12)
    model.head.set_weights([kernel * scale, -logits.mean(axis=0) * scale])


@dataclass
class SigningChain:
    """A certificate chain made for one test session: a test CA and an ES256 signing certificate it issued."""

    certificates: bytes  # leaf then CA, PEM
    private_key: bytes  # PEM (PKCS#8)
    ca: bytes  # the CA alone, PEM: what a trusted-signer list holds


def make_test_chain(organisation: str, common_name: str = "Test Signer") -> SigningChain:
    """A fresh CA and signing certificate with the extensions C2PA requires of a signer (digitalSignature key usage,
    emailProtection extended key usage, subject and authority key identifiers); nothing is read from disk."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def usage(sign: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=not sign,
                             crl_sign=not sign, encipher_only=False, decipher_only=False)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)])

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = name(f"{organisation} Test CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(usage(sign=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name(common_name)).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(sign=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return SigningChain(certificates=leaf.public_bytes(pem) + ca.public_bytes(pem),
                     private_key=key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()),
                     ca=ca.public_bytes(pem))


#: IPTC digital source type URIs used by the fixtures
AI_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
CAMERA_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"


def sign_media(source: Path, target: Path, chain: SigningChain, manifest: dict,
               ingredient: tuple[Path, dict] | None = None) -> Path:
    """Sign ``source`` into ``target`` with c2pa-python (MIME type from the suffix); optionally with an ingredient
    (its file and its description)."""
    import c2pa

    mime = {".mp4": "video/mp4", ".jpg": "image/jpeg", ".png": "image/png"}[source.suffix]
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(b"es256", chain.certificates, chain.private_key, None))
    with c2pa.Builder(manifest) as builder, source.open("rb") as src, target.open("w+b") as dst:
        if ingredient is not None:
            path, description = ingredient
            with path.open("rb") as stream:
                builder.add_ingredient(description, mime, stream)
        builder.sign(signer, mime, src, dst)
    return target


def credentials_manifest(generator: str, source_type: str, **action: str) -> dict:
    """A minimal manifest: one claim generator and one c2pa.created action with the given digital source type."""
    name, _, version = generator.partition(" ")
    return {"claim_generator_info": [{"name": name, "version": version}],
            "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": source_type, **action}]}}]}


def flip_after(data: bytes, marker: bytes, offset: int, length: int) -> bytes:
    """``data`` with ``length`` bytes starting ``offset`` bytes after the first ``marker`` set to 0xFF."""
    start = data.index(marker) + offset
    return data[:start] + b"\xff" * length + data[start + length:]


def break_signature(data: bytes) -> bytes:
    """``data`` with four bytes of the signature itself inverted: the end of the content box of the last
    ``c2pa.signature`` box (its COSE signature), while the claim, the assertions and the pictures stay as signed."""
    label = data.rindex(b"c2pa.signature")
    content = data.index(b"cbor", label)
    end = content - 4 + int.from_bytes(data[content - 4:content], "big")
    at = end - 10
    return data[:at] + bytes(b ^ 0xFF for b in data[at:at + 4]) + data[at + 4:]


def xmp_packet(**properties: str) -> bytes:
    """An XMP packet with the given properties as attributes (prefix Iptc4xmpExt or dcterms as named)."""
    attributes = " ".join(f'{name}="{value}"' for name, value in properties.items())
    return ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
            f'xmlns:dcterms="http://purl.org/dc/terms/" {attributes}/></rdf:RDF></x:xmpmeta>').encode()


def with_xmp_box(mp4: bytes, xmp: bytes) -> bytes:
    """An MP4 with a top-level XMP ``uuid`` box appended, where Adobe tools and ffprobe look for it."""
    return mp4 + (24 + len(xmp)).to_bytes(4, "big") + b"uuid" + bytes.fromhex("be7acfcb97a942e89c71999491e3afac") + xmp


@dataclass
class CredentialedMedia:
    """The demo media signed and damaged in the ways the provenance tests need (see the fixture)."""

    folder: Path
    newsroom: SigningChain
    generator: SigningChain

    def __getitem__(self, name: str) -> Path:
        return self.folder / name


@pytest.fixture(scope="session")
def credentialed_media(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> CredentialedMedia:
    """The demo clip and still with content credentials, signed during the session by test chains made here.

    The five an end-to-end scan covers: ``ai_generated.mp4`` (a video generator's chain, digital source type
    trainedAlgorithmicMedia), ``camera.jpg`` (a newsroom's chain, digitalCapture), ``tampered.mp4`` (the AI clip with
    one byte of its container metadata changed after signing: its hash no longer matches, but it still plays),
    ``unsigned.mp4`` (the plain demo clip) and ``corrupt_manifest.mp4`` (bytes inside the AI clip's claim
    overwritten). Further cases for unit tests: ``truncated.mp4`` (cut inside the manifest), ``bad_signature.jpg``
    (the camera still with bytes of its signature changed, pictures and claim untouched), ``edited.jpg`` (the
    camera still as ingredient, edited with AI), ``oversized.mp4`` (a 600 kB assertion), ``remote.jpg`` (XMP points
    to credentials online), ``xmp_marked.mp4`` and ``generated.png`` (unsigned, AI markers in ordinary metadata)."""
    from PIL import Image, PngImagePlugin

    folder = tmp_path_factory.mktemp("credentials")
    clip, still = demo / "astronaut_pan.mp4", demo / "astronaut.jpg"
    media = CredentialedMedia(folder, newsroom=make_test_chain("Test Newsroom"),
                              generator=make_test_chain("Test Video Generator"))
    ai = sign_media(clip, folder / "ai_generated.mp4", media.generator,
                    credentials_manifest("TestVideoGen 2.1", AI_SOURCE, softwareAgent="TestVideoGen"))
    camera = sign_media(still, folder / "camera.jpg", media.newsroom,
                        credentials_manifest("TestCamera 1.0", CAMERA_SOURCE, when="2026-11-20T10:00:00Z"))
    data = ai.read_bytes()
    encoder = data.index(b"Lavf") + 4  # the muxer's version string in the movie's metadata, outside the pictures
    changed = b"8" if data[encoder:encoder + 1] != b"8" else b"7"
    (folder / "tampered.mp4").write_bytes(data[:encoder] + changed + data[encoder + 1:])
    (folder / "unsigned.mp4").write_bytes(clip.read_bytes())
    (folder / "corrupt_manifest.mp4").write_bytes(flip_after(data, b"c2pa.claim", 30, 60))

    (folder / "truncated.mp4").write_bytes(data[:data.index(b"c2pa.claim") + 100])
    (folder / "bad_signature.jpg").write_bytes(break_signature(camera.read_bytes()))
    edit = credentials_manifest("TestEditor 5", "http://cv.iptc.org/newscodes/digitalsourcetype/"
                                "compositeWithTrainedAlgorithmicMedia", softwareAgent="TestGenerativeFill")
    edit["assertions"][0]["data"]["actions"][0]["action"] = "c2pa.edited"
    edit["assertions"][0]["data"]["actions"].insert(0, {"action": "c2pa.opened",
                                                        "parameters": {"ingredientIds": ["parent"]}})
    sign_media(camera, folder / "edited.jpg", media.generator, edit,
               ingredient=(camera, {"title": "camera.jpg", "relationship": "parentOf", "label": "parent"}))
    big = credentials_manifest("TestVideoGen 2.1", AI_SOURCE)
    big["assertions"].append({"label": "org.example.padding", "data": {"padding": "x" * 600_000}})
    sign_media(clip, folder / "oversized.mp4", media.generator, big)
    with Image.open(still) as image:
        image.save(folder / "remote.jpg", xmp=xmp_packet(**{"dcterms:provenance": "https://example.com/m.c2pa"}))
        text = PngImagePlugin.PngInfo()
        text.add_text("parameters", "an astronaut, Steps: 20, Sampler: Euler a, Seed: 1")
        text.add_text("Software", "NovelAI")
        text.add_itxt("XML:com.adobe.xmp", xmp_packet(**{"Iptc4xmpExt:DigitalSourceType": AI_SOURCE}).decode())
        image.save(folder / "generated.png", pnginfo=text)
    (folder / "xmp_marked.mp4").write_bytes(with_xmp_box(clip.read_bytes(), xmp_packet(**{
        "Iptc4xmpExt:DigitalSourceType": AI_SOURCE, "Iptc4xmpExt:AISystemUsed": "TestVideoGen"})))
    return media


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server (moto in server mode) on loopback, with the environment pointing at it.

    The environment is set for the whole session so Ray workers started afterwards inherit it; pyarrow and boto3
    both read AWS_ENDPOINT_URL. Skips when moto is not installed ('make ray' installs it)."""
    server_module = pytest.importorskip("moto.server",
                                        reason="moto is installed by 'make ray' (requirements-ray-test.txt)")
    import logging
    import os

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    yield env["AWS_ENDPOINT_URL"]
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()
