"""The pytest-facing run: the session object, case checks, xdist and syrupy glue."""
