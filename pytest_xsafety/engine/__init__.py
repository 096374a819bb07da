"""Engine: backends, batching, cache, classifiers, the pipeline, budgets."""
