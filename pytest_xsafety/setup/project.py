"""The project's ``[tool.xsafety]`` table, read once, and the registries it extends.

Both the plugin and the ``xsafety`` command read models from here, so neither
needs the pipeline to find out which models exist.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_xsafety.core.text import read_toml
from pytest_xsafety.setup.models import BUILTIN_MODELS, ModelSpec, user_models
from pytest_xsafety.setup.options import ConfigError
from pytest_xsafety.setup.strategies import BUILTIN_STRATEGIES, Strategy, user_strategies


def read_pyproject_tool(rootpath: Path) -> Mapping[str, Any]:
    """The ``[tool.xsafety]`` table of the rootdir's pyproject.toml, or empty."""
    path = rootpath / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        data = read_toml(path)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    tool = data.get("tool")
    table = tool.get("xsafety", {}) if isinstance(tool, Mapping) else {}
    return table if isinstance(table, Mapping) else {}


def model_registry(rootpath: Path, tool: Mapping[str, Any] | None = None) -> dict[str, ModelSpec]:
    """Built-in models plus the rootdir's ``[tool.xsafety.models.NAME]`` entries."""
    tool = read_pyproject_tool(rootpath) if tool is None else tool
    registry = dict(BUILTIN_MODELS)
    registry.update(user_models(tool.get("models", {}), str(rootpath / "pyproject.toml")))
    return registry


def strategy_registry(rootpath: Path, tool: Mapping[str, Any]) -> dict[str, Strategy]:
    """Built-in strategies plus the rootdir's ``[tool.xsafety.strategies.NAME]`` entries."""
    registry = dict(BUILTIN_STRATEGIES)
    registry.update(user_strategies(tool.get("strategies", {}), str(rootpath / "pyproject.toml")))
    return registry
