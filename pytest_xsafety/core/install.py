"""The ``pip install`` that adds an extra to this installation of pytest-xsafety.

The package is not on PyPI yet, so ``pip install 'pytest-xsafety[hf]'`` fails for
everyone who installed it from a git URL or a checkout. pip records where a package
came from (PEP 610, ``direct_url.json``): the command names that same source.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

DIST = "pytest-xsafety"
FROM_REPOSITORY = (
    "from a checkout, pip install -e 'PATH/TO/pytest-xsafety[{extra}]'; or from its git "
    "repository, pip install 'pytest-xsafety[{extra}] @ git+URL'"
)


def direct_url() -> Mapping[str, Any] | None:
    """This installation's PEP 610 record, or None (an index install, or not installed)."""
    from importlib import metadata

    try:
        text = metadata.distribution(DIST).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    try:
        doc = json.loads(text) if text else None
    except ValueError:
        return None
    return doc if isinstance(doc, Mapping) else None


def install_command(extra: str, origin: Mapping[str, Any] | None = None) -> str:
    """``pip install -e '/src/pytest-xsafety[hf]'`` for a checkout, ``pip install
    'pytest-xsafety[hf] @ git+https://...@<commit>'`` for a git URL, else the package
    name with how to install from the repository until it is on PyPI."""
    origin = origin or {}
    url = str(origin.get("url") or "")
    vcs, folder = origin.get("vcs_info"), origin.get("dir_info")
    if isinstance(vcs, Mapping) and url:
        commit = vcs.get("requested_revision") or vcs.get("commit_id")
        at = f"@{commit}" if commit else ""
        return f"pip install '{DIST}[{extra}] @ {vcs.get('vcs', 'git')}+{url}{at}'"
    if isinstance(folder, Mapping) and url.startswith("file://"):
        editable = "-e " if folder.get("editable") else ""
        return f"pip install {editable}'{url.removeprefix('file://')}[{extra}]'"
    return (
        f"pip install '{DIST}[{extra}]' (until it is on PyPI: "
        + FROM_REPOSITORY.format(extra=extra)
        + ")"
    )


def pip_install(extra: str) -> str:
    """:func:`install_command` for this installation."""
    return install_command(extra, direct_url())
