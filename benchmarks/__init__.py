"""Benchmarks: scripts that print speed and determinism figures (run from the repository root
with ``PYTHONPATH=.``). A package, so that one can reuse another's builders."""
