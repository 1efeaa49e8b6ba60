"""The deploy/ files point TF Serving at the folder layout that training.export writes, and the Ray cluster
example runs a command the scanner accepts on the Ray version the project pins."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from detector import cli, config
from detector.ingest.storage import is_remote

ROOT = Path(__file__).resolve().parents[1]


def test_models_config_names_the_exported_model() -> None:
    text = (ROOT / "deploy" / "models.config").read_text()
    assert re.search(rf'name:\s*"{config.MODEL_NAME}"', text)
    assert re.search(rf'base_path:\s*"/models/{config.MODEL_NAME}"', text)


def test_compose_mounts_saved_model_and_config() -> None:
    text = (ROOT / "deploy" / "docker-compose.yml").read_text()
    assert "tensorflow/serving" in text
    assert "../saved_model:/models" in text and "--model_config_file=/config/models.config" in text
    assert "8501:8501" in text
    assert config.SAVED_MODEL_ROOT == ROOT / "saved_model"


def test_rayjob_runs_the_ray_engine_from_the_image_with_the_pinned_ray() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML comes with Ray ('make ray')")
    job = yaml.safe_load((ROOT / "deploy" / "ray" / "rayjob.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:2] == ["python", "/app/app.py"]
    parser = cli.scan_parser()
    args = parser.parse_args(argv[2:])
    cli._check(args, parser)  # the example's command is one the command line accepts
    assert args.engine == "ray" and args.ray_address == "auto" and is_remote(args.input) and is_remote(args.output)
    pinned = re.search(r"^ray\[data\]==(\S+)$", (ROOT / "requirements-ray.txt").read_text(), re.M).group(1)
    cluster = job["spec"]["rayClusterSpec"]
    assert cluster["rayVersion"] == pinned
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    images = {c["image"] for group in groups for c in group["template"]["spec"]["containers"]}
    assert len(images) == 1, "head and workers must run the same image"
    dockerfile = (ROOT / "deploy" / "ray" / "Dockerfile").read_text()
    assert "-r requirements-ray.txt" in dockerfile and "ffmpeg" in dockerfile
    for path in ("app.py", "detector", "saved_model"):
        assert re.search(rf"^COPY {path} ", dockerfile, re.M), path
