"""Evaluation of labelled media with the scanner's own rule: metrics, bootstrap intervals, reports and plots.
Above scan; below the command line and training."""
