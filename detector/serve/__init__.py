"""The web page and REST API (app.py serve): upload handling, the job store and its scan worker. Above scan;
below the command line."""
