"""Retraining: turn labelled media into face crops, train, evaluate and export the detector."""
