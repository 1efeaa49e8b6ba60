"""``python -m detector``: the same command line as ``app.py`` and ``deepfake-detector``."""

import sys

from detector.cli import main

sys.exit(main())
