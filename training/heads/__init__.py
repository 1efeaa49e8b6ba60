"""Heads fitted on a frozen backbone's features: shared by the statistics-head step (training.stats_head) and the
experiments. Imports no step."""
