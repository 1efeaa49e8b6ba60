"""Ingestion: which files a run scans and where results go, local or in a bucket; video facts and frames; label
manifests. Bottom layer: imports only detector.config and detector.errors."""
