"""Snapshots: the per-case document, its file store and manifests."""
