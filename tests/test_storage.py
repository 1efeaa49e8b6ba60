"""Locations for the Ray engine: local paths keep the local engine's names, and s3:// works against a real
S3-compatible server on loopback (listing, download to a temporary file, upload of a result folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.engines import batch
from detector.ingest import storage
from detector.errors import DetectorError, InputError
from detector.ingest.inputs import unique_names


def test_remote_locations_are_recognised_and_joined() -> None:
    assert storage.is_remote("s3://bucket/key") and storage.is_remote("GS://bucket")
    assert not storage.is_remote("videos/s3:/x") and not storage.is_remote("/data/in") and not storage.is_remote("")
    assert storage.join("s3://b/out/", "clip.mp4", "result.json") == "s3://b/out/clip.mp4/result.json"
    assert storage.join("results", "clip.mp4") == str(Path("results") / "clip.mp4")


def test_local_listing_keeps_the_local_engines_names(tmp_path: Path) -> None:
    for rel in ("a.mp4", "sub/b.MOV", ".hidden/c.mp4", "notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    files, root = batch.list_inputs(tmp_path)
    listed = storage.list_inputs(str(tmp_path))
    assert [f.name for f in listed] == unique_names(files, root) == ["a.mp4", "sub__b.MOV"]
    assert [f.display for f in listed] == [str(p) for p in files]
    assert all(Path(f.source).is_absolute() for f in listed)
    with storage.local_copy(listed[0].source) as path:
        assert path == Path(listed[0].source), "a local file is opened in place"
    with pytest.raises(InputError, match="no such file"):
        storage.list_inputs(str(tmp_path / "missing"))


@pytest.fixture
def bucket(s3_server) -> str:
    pytest.importorskip("pyarrow", reason="pyarrow is installed with Ray Data by 'make ray'")
    import uuid

    import boto3

    name = f"t-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=name)
    for key, body in (("in/clip.mp4", b"video bytes"), ("in/sub/photo.JPG", b"jpeg"), ("in/.trash/old.mp4", b"x"),
                      ("in/readme.txt", b"text"), ("docs/readme.txt", b"text")):
        s3.put_object(Bucket=name, Key=key, Body=body)
    return name


def test_s3_listing_download_and_upload(bucket: str, tmp_path: Path) -> None:
    listed = storage.list_inputs(f"s3://{bucket}/in/")
    assert [(f.source, f.name) for f in listed] == [(f"s3://{bucket}/in/clip.mp4", "clip.mp4"),
                                                    (f"s3://{bucket}/in/sub/photo.JPG", "sub__photo.JPG")]
    assert [f.name for f in storage.list_inputs(f"s3://{bucket}/in/clip.mp4")] == ["clip.mp4"]
    with pytest.raises(InputError, match="no such file or folder"):
        storage.list_inputs(f"s3://{bucket}/nothing-here")
    with pytest.raises(InputError, match="no video or image files"):
        storage.list_inputs(f"s3://{bucket}/docs")

    with storage.local_copy(f"s3://{bucket}/in/clip.mp4") as path:
        assert path.read_bytes() == b"video bytes" and path.suffix == ".mp4"
        temp = path.parent
    assert not temp.exists(), "the temporary copy is deleted after the scan"
    with storage.local_copy(f"s3://{bucket}/in/clip.mp4") as path:
        storage.remove_copies()  # what a worker ended by the per-file watchdog does first
        assert not path.parent.exists()
    with pytest.raises(InputError, match="cannot download"), storage.local_copy(f"s3://{bucket}/in/gone.mp4"):
        pass

    out = f"s3://{bucket}/results"
    storage.prepare_output(out)
    with storage.output_folder(out, "clip.mp4") as root:
        (root / "clip.mp4" / "gradcam").mkdir(parents=True)
        (root / "clip.mp4" / "result.json").write_text('{"verdict": "real"}')
        (root / "clip.mp4" / "gradcam" / "montage.png").write_bytes(b"png")
    assert storage.read_text(storage.join(out, "clip.mp4", "result.json")) == '{"verdict": "real"}'
    assert storage.read_text(storage.join(out, "clip.mp4", "gradcam", "montage.png")) == "png"
    assert storage.read_text(storage.join(out, "missing", "result.json")) is None
    with pytest.raises(DetectorError, match="cannot write to output location"):
        storage.prepare_output("s3://no-such-bucket-here/results")
