"""The command line in-process (detector.cli), and the packaging that installs it as ``deepfake-detector``.

app.py itself, run as a user runs it, is tested end to end in test_app_e2e.py and test_awkward_inputs.py."""

from __future__ import annotations

import importlib
import sys
import tomllib
from pathlib import Path

import pytest

from detector import cli
from detector import config

ROOT = Path(__file__).resolve().parents[1]


def test_the_installed_command_runs_the_same_main_as_app_py() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    module, _, name = project["project"]["scripts"][cli.COMMAND].partition(":")
    assert getattr(importlib.import_module(module), name) is cli.main
    assert "from detector.cli import main" in (ROOT / "app.py").read_text()


def test_dependencies_are_the_requirements_file_and_the_package_carries_its_data() -> None:
    """pip install . reads requirements.txt (one list of pins), and the wheel carries the web page and the shipped
    model, which the installed package finds inside itself (see detector.config)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    assert setuptools["dynamic"]["dependencies"] == {"file": ["requirements.txt"]}
    assert {"detector", "detector.serve.static", "detector.saved_model"} <= set(setuptools["packages"])
    assert setuptools["package-dir"]["detector.saved_model"] == "saved_model"
    patterns = setuptools["package-data"]["detector.saved_model"]
    shipped = [p.relative_to(ROOT / "saved_model") for p in (ROOT / "saved_model").rglob("*") if p.is_file()]
    assert shipped and all(any(path.match(pattern) for pattern in patterns) for path in shipped), shipped
    static = [p.name for p in (ROOT / "detector" / "serve" / "static").iterdir()]
    assert all(any(Path(name).match(p) for p in setuptools["package-data"]["detector.serve.static"]) for name in static)


@pytest.mark.parametrize("argv, words", [
    (["scan", "--input", "missing.mp4"], "missing.mp4: no such file or folder"),
    (["--input", "missing.mp4"], "missing.mp4: no such file or folder"),
    (["evaluate", "missing.csv", "--output", "eval"], "missing.csv: cannot read the manifest"),
    (["--evaluate", "missing.csv"], "missing.csv: cannot read the manifest"),
])
def test_subcommands_answer_a_bad_path_in_one_line(argv: list[str], words: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {words}"), lines


def test_evaluate_refuses_a_manifest_it_cannot_use(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for name, text, words in (("cols.csv", "file,lab\nx.mp4,real\n", "a manifest needs the columns path,label"),
                              ("label.csv", "path,label\nx.mp4,maybe\n", "unknown label 'maybe'"),
                              ("empty.csv", "path,label\n", "the manifest lists no files")):
        (tmp_path / name).write_text(text)
        assert cli.main(["evaluate", str(tmp_path / name), "-o", str(tmp_path / "out")]) == 2
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / name}: {words}"), lines
    assert not (tmp_path / "out").exists()


def test_usage_names_the_program_it_runs_as(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/somewhere/app.py"])
    assert cli.program_name() == "app.py"
    assert "'app.py serve --help'" in cli.scan_parser(cli.program_name()).format_help()
    monkeypatch.setattr(sys, "argv", ["/venv/bin/deepfake-detector"])
    assert cli.program_name() == "deepfake-detector"
    assert cli.serve_parser("deepfake-detector").format_usage().startswith("usage: deepfake-detector serve")
    assert f"(default {config.FRAMES_PER_VIDEO})" in cli.evaluate_parser().format_help()


def test_exact_frames_reaches_the_scan_options_and_the_resume_settings(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``--exact-frames`` changes which frames are judged, so the scan gets it and a folder rerun does not reuse
    results made without it."""
    from detector.engines import batch
    from detector.errors import DetectorError
    from detector.scan.pipeline import ScanOptions

    seen: list[ScanOptions] = []

    def run_locally(args, options: ScanOptions, detector) -> None:
        seen.append(options)
        raise DetectorError("stopped after the options were made")

    monkeypatch.setattr(cli, "check_inputs", lambda args: None)
    monkeypatch.setattr(cli, "open_detector", lambda args: None)
    monkeypatch.setattr(cli, "run_locally", run_locally)
    for flag in ([], ["--exact-frames"]):
        assert cli.main(["--input", str(tmp_path / "clip.mp4"), "--output", str(tmp_path / "out"), *flag]) == 2
    assert [o.exact_frames for o in seen] == [False, True]

    class Card:
        version, backbone, threshold = "1", "mobilenetv2", 0.5

    class Model:
        card, fingerprint = Card(), "abc"

    assert batch.scan_settings(Model(), seen[0]) != batch.scan_settings(Model(), seen[1])


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0"])
def test_fps_must_be_a_positive_finite_number(value: str, capsys: pytest.CaptureFixture) -> None:
    """--fps nan used to pass the check and fail after TensorFlow had loaded; --fps inf was accepted."""
    with pytest.raises(SystemExit) as exc:
        cli.main(["--input", "clip.mp4", f"--fps={value}"])
    assert exc.value.code == 2
    assert "--fps must be a positive number of frames per second" in capsys.readouterr().err


@pytest.mark.parametrize("option, long", [("--input", "--input"), ("-i", "--input"), ("--output", "--output")])
def test_a_value_that_starts_with_a_dash_gets_a_hint(option: str, long: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main([option, "-x.mp4"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exc.value.code == 2 and "expected one argument" in err
    assert f"{long}=-x.mp4" in err and "./-x.mp4" in err
