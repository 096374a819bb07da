"""Value types every layer shares; no project imports."""
