"""Deepfake video detector: ingestion, faces, model, explanation and reports."""

from detector.logs import default_native_level

__version__ = "0.1.0"

# before any module of the package imports TensorFlow (it reads its log level once, when it loads)
default_native_level()
