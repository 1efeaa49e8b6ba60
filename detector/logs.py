"""Log output of the command line: the project's own messages, and third-party lines only with ``--verbose``.

TensorFlow's own C++ log lines obey the ``TF_CPP_MIN_LOG_LEVEL`` environment variable, read once when TensorFlow
loads; this module is the one place that sets it (:func:`default_native_level`, called from ``detector/__init__.py``
so it runs before any module of the project imports TensorFlow, and :func:`setup` for the command line). TensorFlow
prints its start-up lines (absl's "All log messages before absl::InitializeLog()", oneDNN's notice) from C++ static
initialisers, before it reads that variable, so nothing silences them but :func:`native_stderr_silenced`, which points
file descriptor 2 at a scratch file while the heavy imports run. Standard library only: it runs before anything heavy
is imported.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator

#: Loggers whose records are shown at WARNING; every other library's only at ERROR unless --verbose.
OWN_LOGGERS = ("detector", "training", "bench", "__main__")
#: TensorFlow's C++ log threshold: 0 everything, 2 errors only, 3 nothing.
TF_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"
#: The threshold the user set in the environment, if any: it always wins.
_USER_TF_LOG_LEVEL = os.environ.get(TF_LOG_LEVEL)


def default_native_level() -> None:
    """TensorFlow's INFO and WARNING lines hidden (errors still shown) for every use of the package: library,
    training, tests. Must run before TensorFlow is imported; ``detector/__init__.py`` calls it."""
    os.environ.setdefault(TF_LOG_LEVEL, "2")


class _OwnRecords(logging.Filter):
    """Passes the project's warnings; other libraries' records only from ERROR up."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.split(".")[0] in OWN_LOGGERS or record.levelno >= logging.ERROR


def setup(verbose: bool = False, level: int = logging.WARNING) -> None:
    """Set the log environment once, before TensorFlow is imported: the project's messages from ``level`` up (the
    server logs INFO), other libraries' lines only with ``verbose``."""
    logging.basicConfig(level=logging.INFO if verbose else level, format="%(levelname)s: %(message)s")
    if _USER_TF_LOG_LEVEL is None:
        os.environ[TF_LOG_LEVEL] = "2" if verbose else "3"
    if verbose:
        return
    for handler in logging.getLogger().handlers:
        handler.addFilter(_OwnRecords())
    # libraries' deprecation and user warnings are for their developers, not for someone scanning a video
    warnings.filterwarnings("ignore")


@contextlib.contextmanager
def native_stderr_silenced(enabled: bool = True) -> Iterator[None]:
    """Send file descriptor 2 (what C/C++ libraries write to) to a scratch file for the duration, e.g. around
    ``import tensorflow``. Python exceptions still propagate as usual; ``--verbose`` is the way to see the lines."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)
