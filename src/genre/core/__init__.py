"""The method in normalised arrays: interface, task, pairs, network, training, sampling,
the GenRe estimator, persistence, presets and the plausibility flag."""
