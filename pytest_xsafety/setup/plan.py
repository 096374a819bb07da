"""The run plan: every name and file of the run resolved once, and the cases it holds.

Built from the frozen config before any test runs, so mistakes surface as usage
errors. The plan is the same in every process (controller and xdist workers) and
does not depend on ``-k`` or the xdist split: cases are grouped by model then
strategy, prompts in suite order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from pytest_xsafety.core.names import case_clashes
from pytest_xsafety.core.records import Case, Conversation, Review, ReviewSample
from pytest_xsafety.core.secrets import remember
from pytest_xsafety.setup.models import (
    ModelSpec,
    RegistryError,
    check_installed,
    resolve_models,
)
from pytest_xsafety.setup.options import ConfigError, XSafetyConfig
from pytest_xsafety.setup.project import model_registry, read_pyproject_tool, strategy_registry
from pytest_xsafety.setup.reviews import load_file
from pytest_xsafety.setup.strategies import Strategy, resolve_strategies
from pytest_xsafety.setup.suites import Suite, load_suite, types_of
from pytest_xsafety.setup.thresholds import (
    Thresholds,
    load_thresholds,
    validate_names,
    validate_sides,
)


@dataclass(frozen=True)
class RunPlan:
    config: XSafetyConfig
    suite: Suite  # the sampled suite this run tests
    full_suite: Suite  # every prompt, whatever --xsafety-sample keeps
    models: Mapping[str, ModelSpec]
    strategies: Mapping[str, Strategy]
    thresholds: Thresholds
    judge: ModelSpec | None = None  # the judge model, when the classifier is ``judge``
    reviews: Mapping[str, Review] = field(default_factory=dict)  # by case id
    samples: Mapping[str, ReviewSample] = field(default_factory=dict)  # by model/strategy
    cases: tuple[Case, ...] = field(default=(), compare=False)

    @classmethod
    def from_config(cls, config: XSafetyConfig) -> RunPlan:
        """Resolve every name and file up front, so mistakes surface before any test runs."""
        tool = read_pyproject_tool(config.rootpath)
        registry = model_registry(config.rootpath, tool)
        strategy_names = strategy_registry(config.rootpath, tool)
        models = resolve_models(list(config.models), registry, backend=config.backend)
        # Every configured secret is known before anything can print it.
        for spec in [*registry.values(), *models]:
            remember(spec.secrets(os.environ))
        strategies = resolve_strategies(list(config.strategies), strategy_names)
        for kind, names in (("models", config.models), ("strategies", config.strategies)):
            if clash := case_clashes(names):
                raise ConfigError(
                    f"{kind} {clash[0]!r} and {clash[1]!r} differ only in case: their "
                    "snapshot folders would be one on macOS and Windows; rename one"
                )
        for model in models:
            for strategy in strategies:
                strategy.check(model)
        full_suite = load_suite(config.suite, config.cache_dir)
        suite = full_suite.sample(config.sample)
        path = config.thresholds
        if path is None and (config.rootpath / "thresholds.toml").exists():
            path = config.rootpath / "thresholds.toml"  # a folder there is an error too
        thresholds = load_thresholds(path) if path else Thresholds()
        validate_names(thresholds, registry, strategy_names, types_of(full_suite.prompts))
        validate_sides(thresholds, full_suite.prompts)
        judge = None
        if config.classifier == "judge" and config.judge_model is not None:
            judge = resolve_judge(config.judge_model, registry)
        check_installed([*models, *([judge] if judge else [])])
        reviews_file = load_file(config.reviews)
        return cls(
            config=config,
            suite=suite,
            full_suite=full_suite,
            models={m.name: m for m in models},
            strategies={s.name: s for s in strategies},
            thresholds=thresholds,
            judge=judge,
            reviews=reviews_file.reviews,
            samples=reviews_file.samples,
            cases=tuple(
                Case(m.name, s.name, p) for m in models for s in strategies for p in suite.prompts
            ),
        )

    def groups(self) -> list[tuple[str, str]]:
        """Model x strategy groups in run order."""
        return [(m, s) for m in self.models for s in self.strategies]

    def bases(self) -> dict[str, tuple[str, ...]]:
        """Per model that ``extends`` a built-in, that base: its budgets apply too."""
        return {name: (m.extends,) for name, m in self.models.items() if m.extends}

    def max_new_tokens(self, model: str) -> int:
        return self.config.max_new_tokens or self.models[model].max_new_tokens

    def conversation(self, case: Case) -> Conversation:
        return self.strategies[case.strategy].render(case.prompt.text, self.models[case.model])


def resolve_judge(name: str, registry: Mapping[str, ModelSpec]) -> ModelSpec:
    """The judge model's entry; an unknown name is an error naming the option."""
    try:
        (spec,) = resolve_models([name], registry)
    except RegistryError as exc:
        raise RegistryError(f"--xsafety-judge-model: {exc}") from None
    return spec
