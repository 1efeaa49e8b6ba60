"""One scan: frames -> faces -> scores -> the track rule -> a verdict, Grad-CAM, and the result files. Uses ingest,
face, models and origin; used by engines, serve and evaluate."""
