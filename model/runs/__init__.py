"""model.runs: the registry of trained runs on disk (``$SMDS_HOME/runs/<model>/<run>``).

See :mod:`.folders`: a new run's folder, the ``LATEST`` pointer, the newest run of a model,
the models with a run, and whether a run belongs to an analysis-ready store.
"""
