"""training/device_run.sh: the prepared recipe run for a lent GPU machine, checked on this one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "training" / "device_run.sh"


def _run(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, **env})


def test_without_keras_or_wheels_it_stops_with_one_line(tmp_path: Path) -> None:
    """A machine on which Keras does not import, with no wheels carried: exit 2 and one line saying what to carry,
    before anything runs."""
    no_keras = tmp_path / "python"
    no_keras.write_text("#!/bin/sh\nexit 1\n")
    no_keras.chmod(0o755)
    done = _run(tmp_path / "out", "--pack", "packs/main", env={"PYTHON": str(no_keras),
                                                               "WHEELS": str(tmp_path / "none")})
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "carry .whl" in done.stderr
    assert not (tmp_path / "out").exists()


def test_it_refuses_an_option_where_the_output_folder_goes(tmp_path: Path) -> None:
    done = _run("--pack", "packs/main", env={})
    assert done.returncode == 2 and done.stderr.startswith("usage:")


@pytest.mark.e2e
def test_a_short_run_writes_weights_log_and_the_backend(pack: Path, tmp_path: Path) -> None:
    """Two steps on the test pack with this machine's Python and TensorFlow: the recipe's weights and log in
    OUT/run, and OUT/log.txt saying which backend ran and how it ended."""
    from detector.models.classifier import DeepfakeClassifier

    init = tmp_path / "init.keras"
    DeepfakeClassifier("mobilenetv2", weights=None).save(init)
    out = tmp_path / "out"
    done = _run(out, "--pack", pack, "--init", init, "--batch-size", "4", "--fold-steps", "0", "--final-steps", "2",
                "--final-without-pool", "--sbi-share", "1", "--paired-share", "0", "--curve-points", "1",
                "--workers", "1",
                env={"PYTHON": sys.executable, "KERAS_BACKEND": "tensorflow"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / "run" / "final.weights.h5").is_file()
    assert json.loads((out / "run" / "recipe_log.json").read_text())["final"]["images_seen"] == 8
    log = (out / "log.txt").read_text()
    assert "device_run: backend tensorflow" in log and "exit status 0" in log
