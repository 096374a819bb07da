"""Budgets: ``thresholds.toml`` read and checked once, before any test runs.

A budget is a ceiling on a rate over one model x strategy group: the share of
safe prompts refused (fully or partially) and the share of unsafe prompts fully
complied with. Budgets are set per model, optionally per strategy and per prompt
type; a missing value falls back strategy -> model -> ``[defaults]``.

    [defaults]
    safe_refusal_max = 0.2
    [models.smollm2]
    unsafe_compliance_max = 0.9
    [models.smollm2.strategies.baseline]
    safe_refusal_max = 0.1
    [models.smollm2.types.homonyms]
    safe_refusal_max = 0.0

``overcautious_pairs_max`` caps the share of contrast pairs refused on both
sides (see :mod:`pytest_xsafety.engine.contrast`), with the same levels and fallbacks.

A model entry that ``extends`` a built-in falls back to that model's budgets
before ``[defaults]``: a value missing for ``smollm2-short`` is looked up under
``[models.smollm2]``. Every budget carries where it came from (file and table).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_xsafety.core.choices import BUDGET_KEYS, Metric
from pytest_xsafety.core.records import Prompt
from pytest_xsafety.core.text import UsageError, did_you_mean


class ThresholdsError(UsageError):
    """A thresholds file that cannot be used; the message names file, key and fix."""


@dataclass(frozen=True)
class Budget:
    """Ceilings (fractions in [0, 1]); ``None`` means not set at this level."""

    safe_refusal_max: float | None = None
    unsafe_compliance_max: float | None = None
    overcautious_pairs_max: float | None = None

    def get(self, metric: Metric) -> float | None:
        value: float | None = getattr(self, f"{metric}_max")
        return value


@dataclass(frozen=True)
class Level:
    """The budget at one level plus per-type overrides below it."""

    budget: Budget = Budget()
    types: Mapping[str, Budget] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelBudgets:
    level: Level = Level()
    strategies: Mapping[str, Level] = field(default_factory=dict)


@dataclass(frozen=True)
class Thresholds:
    source: str | None = None
    defaults: Budget = Budget()
    models: Mapping[str, ModelBudgets] = field(default_factory=dict)

    def _where(self, table: str) -> str:
        """``thresholds.toml [models.smollm2]``: the file (by name) and the table."""
        return f"{Path(self.source).name if self.source else 'thresholds'} [{table}]"

    def _levels(self, models: Sequence[str], strategy: str) -> Iterable[tuple[Level, str]]:
        """Levels in fallback order: per model (then its base): strategy, model."""
        for model in models:
            mb = self.models.get(model, ModelBudgets())
            yield mb.strategies.get(strategy, Level()), f"models.{model}.strategies.{strategy}"
            yield mb.level, f"models.{model}"

    def group_budget(
        self, model: str, strategy: str, metric: Metric, bases: Sequence[str] = ()
    ) -> tuple[float | None, str | None]:
        """The group's budget and where it was set; ``bases``: the models ``model``
        extends, nearest first."""
        levels = [*self._levels([model, *bases], strategy), (Level(self.defaults), "defaults")]
        for level, table in levels:
            if (value := level.budget.get(metric)) is not None:
                return value, self._where(table)
        return None, None

    def type_budget(
        self, model: str, strategy: str, ptype: str, metric: Metric, bases: Sequence[str] = ()
    ) -> tuple[float | None, str | None]:
        for level, table in self._levels([model, *bases], strategy):
            if ptype in level.types and (value := level.types[ptype].get(metric)) is not None:
                return value, self._where(f"{table}.types.{ptype}")
        return None, None

    def group_limit(self, model: str, strategy: str, metric: Metric) -> float | None:
        return self.group_budget(model, strategy, metric)[0]

    def type_limit(self, model: str, strategy: str, ptype: str, metric: Metric) -> float | None:
        return self.type_budget(model, strategy, ptype, metric)[0]

    def tables(self) -> Iterable[tuple[str, Level]]:
        """Every level that may hold per-type budgets, with its table's name."""
        for model, mb in self.models.items():
            yield f"models.{model}", mb.level
            for strategy, level in mb.strategies.items():
                yield f"models.{model}.strategies.{strategy}", level

    def names(self) -> tuple[set[str], set[str], set[str]]:
        """Models, strategies and prompt types the file mentions (for validation)."""
        strategies: set[str] = set()
        types: set[str] = set()
        for mb in self.models.values():
            strategies.update(mb.strategies)
            for level in (mb.level, *mb.strategies.values()):
                types.update(level.types)
        return set(self.models), strategies, types


def _budget(table: Mapping[str, Any], where: str, allowed_tables: Sequence[str]) -> Budget:
    values: dict[str, float] = {}
    for key, value in table.items():
        if key in allowed_tables:
            continue
        if key not in BUDGET_KEYS:
            known = [*BUDGET_KEYS, *allowed_tables]
            raise ThresholdsError(
                f"{where}: unknown key {key!r}{did_you_mean(key, known)}; "
                f"allowed here: {', '.join(known)}"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ThresholdsError(
                f"{where}.{key}: {value!r} is not a number; use a fraction like 0.1"
            )
        if not 0.0 <= float(value) <= 1.0:
            raise ThresholdsError(
                f"{where}.{key} = {value}: rates are fractions in [0, 1] (10% is 0.1)"
            )
        values[key] = float(value)
    return Budget(**values)


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ThresholdsError(f"{where}: expected a table ([...]), got {value!r}")
    return value


def _level(table: Mapping[str, Any], where: str, nested: Sequence[str]) -> Level:
    budget = _budget(table, where, [*nested, "types"])
    types = {
        name: _budget(_table(t, f"{where}.types.{name}"), f"{where}.types.{name}", [])
        for name, t in _table(table.get("types", {}), f"{where}.types").items()
    }
    return Level(budget, types)


def parse_thresholds(text: str, source: str) -> Thresholds:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ThresholdsError(f"{source}: not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - {"defaults", "models"})
    if unknown:
        raise ThresholdsError(
            f"{source}: unknown top-level key {unknown[0]!r}"
            f"{did_you_mean(unknown[0], ['defaults', 'models'])}; use [defaults] and [models.NAME]"
        )
    defaults = _budget(_table(data.get("defaults", {}), f"{source} [defaults]"),
                       f"{source} [defaults]", [])  # fmt: skip
    models: dict[str, ModelBudgets] = {}
    for model, mt in _table(data.get("models", {}), f"{source} [models]").items():
        where = f"{source} [models.{model}]"
        mt = _table(mt, where)
        level = _level(mt, where, ["strategies"])
        strategies = {
            s: _level(_table(st, f"{where}.strategies.{s}"), f"{where}.strategies.{s}", [])
            for s, st in _table(mt.get("strategies", {}), f"{where}.strategies").items()
        }
        models[model] = ModelBudgets(level, strategies)
    return Thresholds(source, defaults, models)


def load_thresholds(path: Path) -> Thresholds:
    if path.is_dir():
        raise ThresholdsError(
            f"thresholds file {path} is a folder; remove it, or point --xsafety-thresholds "
            "at a file"
        )
    if not path.is_file():
        raise ThresholdsError(
            f"thresholds file {path} does not exist; create it or point --xsafety-thresholds at one"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ThresholdsError(f"{path}: not UTF-8 text ({exc}); save it as UTF-8") from None
    except OSError as exc:
        raise ThresholdsError(f"{path}: cannot be read ({exc.strerror})") from None
    return parse_thresholds(text, str(path))


def validate_names(
    thresholds: Thresholds,
    models: Iterable[str],
    strategies: Iterable[str],
    types: Iterable[str] | None,
) -> None:
    """Reject budgets for models, strategies or prompt types nobody knows (likely typos)."""
    known = {"model": set(models), "strategy": set(strategies), "prompt type": set(types or [])}
    used_models, used_strategies, used_types = thresholds.names()
    checks = [("model", used_models), ("strategy", used_strategies)]
    if types is not None:
        checks.append(("prompt type", used_types))
    for kind, used in checks:
        for name in sorted(used - known[kind]):
            raise ThresholdsError(
                f"{thresholds.source}: budget for unknown {kind} {name!r}"
                f"{did_you_mean(name, known[kind])}; known: {', '.join(sorted(known[kind]))}"
            )


# Which prompts each budget counts: a pair is counted under its safe prompt's type.
SIDES = {"safe_refusal_max": "safe", "overcautious_pairs_max": "safe",
         "unsafe_compliance_max": "unsafe"}  # fmt: skip


def validate_sides(thresholds: Thresholds, prompts: Sequence[Prompt]) -> None:
    """Reject a per-type budget that can count nothing: a safe-side budget under a
    type with no safe prompts of the suite, or ``unsafe_compliance_max`` under one
    with no unsafe prompts."""
    labels: dict[str, set[str]] = {}
    for p in prompts:
        labels.setdefault(p.type, set()).add(p.label)
    for table, level in thresholds.tables():
        for ptype, budget in level.types.items():
            for key, side in SIDES.items():
                if getattr(budget, key) is None or side in labels.get(ptype, {side}):
                    continue
                where = f"{thresholds.source} [{table}.types.{ptype}]"
                raise ThresholdsError(
                    f"{where}: {key} counts {side} prompts{_pair_note(key)}, and type "
                    f"{ptype!r} has none; set it under a type with {side} prompts"
                    f"{_twin(ptype, side, labels)} or under [{table}] for the whole group"
                )


def _pair_note(key: str) -> str:
    return " (a pair is counted under its safe prompt's type)" if "pairs" in key else ""


def _twin(ptype: str, side: str, labels: Mapping[str, set[str]]) -> str:
    """XSTest's naming: ``contrast_X`` holds the unsafe twins of type ``X``."""
    twin = ptype.removeprefix("contrast_") if side == "safe" else f"contrast_{ptype}"
    return f" (such as {twin!r})" if twin != ptype and side in labels.get(twin, set()) else ""
