"""Deepfake video detector: ingestion, faces, model, explanation and reports."""

__version__ = "0.1.0"
