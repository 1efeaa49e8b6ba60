"""Engines that run scans over many inputs: the local batch runner (worker processes) and the Ray Data pipeline.
Above scan; below the command line."""
