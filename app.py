"""Deepfake video detector: scan videos and images for manipulated faces.

    python app.py --input VIDEO_OR_FOLDER --output RESULTS_DIR
    python app.py --input s3://bucket/videos --output s3://bucket/results --engine ray   # on Ray Data
    python app.py serve --port 8000          # web page and REST API (see detector/serve/server.py)

The command line lives in :mod:`detector.cli` (installed with pip it is the ``deepfake-detector`` command); this file
keeps ``python app.py`` working in a checkout.
"""

import sys

from detector.cli import main

if __name__ == "__main__":
    sys.exit(main())
