"""Fixtures shared by several test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.demo import make_demo


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's own demo media (astronaut clip and still), made once per test session."""
    folder = tmp_path_factory.mktemp("demo")
    make_demo(folder)
    return folder


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
