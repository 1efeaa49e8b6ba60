"""Command-line checks of the engine options: wrong combinations and a missing Ray give one-line errors at once."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from conftest import run_app

import app


def test_ray_engine_without_ray_installed_is_a_one_line_error(monkeypatch, capsys, tmp_path: Path) -> None:
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # what 'import ray' meets where Ray is not installed
    status = app.main(["--input", str(tmp_path), "--output", str(tmp_path / "out"), "--engine", "ray"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert err == ["error: --engine ray needs Ray Data, which is not installed: run 'make ray' "
                   "(or pip install -r requirements-ray.txt)"]


@pytest.mark.parametrize("argv, message", [
    (["--input", "s3://bucket/in", "--output", "out"], "s3:// and gs:// locations need --engine ray"),
    (["--input", "in", "--output", "gs://bucket/out"], "s3:// and gs:// locations need --engine ray"),
    (["--input", "in", "--ray-address", "auto"], "--ray-address needs --engine ray"),
    (["--input", "in", "--engine", "ray", "--serving-url", "http://x"], "drop --serving-url"),
    (["--input", "in", "--engine", "ray", "--file-timeout", "0"], "must be positive"),
])
def test_engine_option_mistakes_are_refused(argv: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        app.main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_an_unreachable_ray_address_fails_at_once(capsys, demo: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="Ray is optional: 'make ray' installs requirements-ray.txt (CI does)")
    assert not ray.is_initialized()
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # the inputs are fine (they are checked first, locally); only the cluster is missing
    status = app.main(["--input", str(demo), "--output", str(tmp_path / "out"), "--engine", "ray",
                       "--ray-address", f"127.0.0.1:{port}"])
    assert status == 2
    assert capsys.readouterr().err.strip() == f"error: cannot reach Ray at 127.0.0.1:{port}: Connection refused"


def test_a_pip_install_is_told_the_pip_way_to_add_ray(monkeypatch, capsys, tmp_path: Path) -> None:
    """Outside a checkout there is no Makefile and no requirements file: the hint names the package's extra, which
    pyproject.toml fills from requirements-ray.txt."""
    import tomllib

    from detector import config
    from detector.engines import engine_ray

    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setattr(config, "PROJECT_ROOT", tmp_path / "site-packages")  # an installed package's parent
    status = app.main(["--input", str(tmp_path), "--output", str(tmp_path / "out"), "--engine", "ray"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "make ray" not in err[0], err
    assert f"pip install '{engine_ray.PIP_EXTRA}'" in err[0]
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert engine_ray.PIP_EXTRA == f"{project['project']['name']}[ray]"
    extras = project["tool"]["setuptools"]["dynamic"]["optional-dependencies"]
    assert extras["ray"] == {"file": ["requirements-ray.txt"]}


@pytest.mark.e2e
def test_quiet_ray_engine_prints_only_its_own_lines(tmp_path: Path) -> None:
    """--quiet: no TensorFlow, absl or Ray log lines before or around the one-line messages."""
    pytest.importorskip("ray.data", reason="Ray is optional: 'make ray' installs requirements-ray.txt (CI does)")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.mp4").write_text("not a video")
    proc = run_app("--input", tmp_path / "in", "--output", tmp_path / "out", "--engine", "ray", "--quiet",
                   "--frames", "2", "--no-gradcam", cwd=tmp_path, timeout=600)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: {tmp_path / 'in' / 'bad.mp4'}: not a readable video or "
                                                "image (Invalid data found when processing input)"], proc.stderr
