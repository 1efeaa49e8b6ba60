"""Training data library: crop packs, codec damage, self-blends and cross-identity blends, dense landmarks and
leave-one-method-out folds. Used by the steps in training/ and by the experiments; imports no step."""
