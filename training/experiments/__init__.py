"""Experiments: cheap probes of what a kind of training data teaches (feature_probe, synthetic_probe). Not part of
the recipe that rebuilds the shipped model (docs/training.md); nothing imports them."""
