"""The build backend: setuptools' own, run on a copy of the sources in a temporary folder.

setuptools builds in the folder it is given, so ``pip install .``, ``pip wheel .`` and ``python -m build`` would
leave ``build/`` and ``*.egg-info`` in the checkout. Each hook here copies what the package is made of
(:data:`SOURCES`) to a temporary folder and runs setuptools' hook there, so building leaves the checkout as it was.
Editable installs (``pip install -e``) must point at the checkout itself, so they run in place (their
``*.egg-info`` is git-ignored).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import (  # noqa: F401  (editable installs run in place)
    build_editable, get_requires_for_build_editable, prepare_metadata_for_build_editable)

#: Everything pyproject.toml builds from: the package, the shipped model, the metadata files and the pinned lists
#: that the dependencies and extras read.
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "requirements.txt", "requirements-ray.txt",
           "requirements-train.txt", "requirements-dev.txt", "requirements-ray-test.txt", "detector", "saved_model",
           "tools")


@contextmanager
def _in_a_copy():
    root = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="deepfake-build-") as tmp:
        for name in SOURCES:
            source = root / name
            if source.is_dir():
                shutil.copytree(source, Path(tmp) / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif source.is_file():
                shutil.copy2(source, Path(tmp) / name)
        os.chdir(tmp)
        try:
            yield
        finally:
            os.chdir(root)


def _absolute(folder: str | None) -> str | None:
    return None if folder is None else os.path.abspath(folder)


def get_requires_for_build_wheel(config_settings=None):
    with _in_a_copy():
        return _setuptools.get_requires_for_build_wheel(config_settings)


def get_requires_for_build_sdist(config_settings=None):
    with _in_a_copy():
        return _setuptools.get_requires_for_build_sdist(config_settings)


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    metadata_directory = _absolute(metadata_directory)
    with _in_a_copy():
        return _setuptools.prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    wheel_directory, metadata_directory = _absolute(wheel_directory), _absolute(metadata_directory)
    with _in_a_copy():
        return _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory, config_settings=None):
    sdist_directory = _absolute(sdist_directory)
    with _in_a_copy():
        return _setuptools.build_sdist(sdist_directory, config_settings)
