"""Command-line checks of the engine options: wrong combinations and a missing Ray give one-line errors at once."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

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
