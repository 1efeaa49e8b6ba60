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
