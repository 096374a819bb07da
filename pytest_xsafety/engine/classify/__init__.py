"""Built-in classifiers beyond the paper's string match: ``default`` (rules) and ``judge``.

``pytest_xsafety.engine.classify.registry`` resolves them by name and imports these modules
lazily, so that looking up ``strmatch`` costs nothing.
"""
