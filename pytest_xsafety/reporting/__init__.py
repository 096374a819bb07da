"""Reporting: the wire codec, the report model and its renderings."""
