"""Log output of the command line: the project's own messages, and third-party lines only with ``--verbose``.

TensorFlow prints its start-up lines (absl's "All log messages before absl::InitializeLog()", oneDNN's notice) from
C++ static initialisers, before it reads ``TF_CPP_MIN_LOG_LEVEL``, so no environment variable silences them: they are
written to file descriptor 2 while the heavy imports run, and :func:`native_stderr_silenced` points that descriptor at
a scratch file for exactly that time. Standard library only: it runs before anything heavy is imported.
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


class _OwnRecords(logging.Filter):
    """Passes the project's warnings; other libraries' records only from ERROR up."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.split(".")[0] in OWN_LOGGERS or record.levelno >= logging.ERROR


def setup(verbose: bool = False, level: int = logging.WARNING) -> None:
    """Set the log environment once, before TensorFlow is imported: the project's messages from ``level`` up (the
    server logs INFO), other libraries' lines only with ``verbose``."""
    logging.basicConfig(level=logging.INFO if verbose else level, format="%(levelname)s: %(message)s")
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
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
