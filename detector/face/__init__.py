"""Faces: MTCNN detection (whole frame or windows around followed faces), aligned crops and tracks over frames.
Bottom layer beside ingest, models and origin: imports only detector.config and detector.errors."""
