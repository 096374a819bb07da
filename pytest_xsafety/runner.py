"""One process's pipeline: suite -> strategy -> generate -> classify -> budget.

The runner is built once per process from the frozen config. It plans cases,
loads at most one model at a time (cases arrive grouped by model), generates a
group's selected cases on first demand, and judges each case against the group's
budgets. It knows nothing of pytest: the plugin passes in the selected cases.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pytest_xsafety.backends import Backend, Generation, LazyChat, Runtime, load_backend
from pytest_xsafety.budgets import (
    Check,
    GroupSummary,
    Outcome,
    Thresholds,
    breached_for,
    load_thresholds,
    summarise,
    validate_names,
)
from pytest_xsafety.classify import Classifier, Exchange, get_classifier
from pytest_xsafety.config import XSafetyConfig
from pytest_xsafety.generate import ProgressFn, Request, generate_group
from pytest_xsafety.models import (
    BUILTIN_MODELS,
    ModelSpec,
    RegistryError,
    resolve_models,
    user_models,
)
from pytest_xsafety.records import Case, Conversation, Label
from pytest_xsafety.strategies import BUILTIN_STRATEGIES, Strategy, resolve_strategies
from pytest_xsafety.suites import Suite, id_order, load_suite, types_of

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class CaseResult:
    case: Case
    conversation: Conversation
    generation: Generation
    label: Label
    classifier: str
    classifier_version: str

    @property
    def outcome(self) -> Outcome:
        p = self.case.prompt
        return Outcome(self.case.model, self.case.strategy, p.id, p.type, p.label, self.label)


Status = Literal["pass", "xfail", "fail"]


@dataclass(frozen=True)
class CaseVerdict:
    result: CaseResult
    status: Status
    breaches: tuple[Check, ...] = ()


def read_pyproject_tool(rootpath: Path) -> Mapping[str, Any]:
    """The ``[tool.xsafety]`` table of the rootdir's pyproject.toml, or empty."""
    path = rootpath / "pyproject.toml"
    if not path.is_file():
        return {}
    with path.open("rb") as f:
        data = tomllib.load(f)
    table = data.get("tool", {}).get("xsafety", {})
    return table if isinstance(table, Mapping) else {}


def model_registry(rootpath: Path) -> dict[str, ModelSpec]:
    """Built-in models plus the rootdir's ``[tool.xsafety.models.NAME]`` entries."""
    tool = read_pyproject_tool(rootpath)
    registry = dict(BUILTIN_MODELS)
    registry.update(user_models(tool.get("models", {}), str(rootpath / "pyproject.toml")))
    return registry


def make_classifier(
    name: str,
    judge_model: str | None,
    registry: Mapping[str, ModelSpec],
    runtime: Runtime,
    batch_size: int,
) -> tuple[Classifier, LazyChat | None]:
    """Resolve the classifier; for ``judge``, also the judge model's (lazy) chat
    function, which the caller closes. Nothing is loaded here."""
    if name != "judge":
        return get_classifier(name), None
    if judge_model is None:
        return get_classifier(name), None  # raises, naming --xsafety-judge-model
    try:
        (spec,) = resolve_models([judge_model], registry)
    except RegistryError as exc:
        raise RegistryError(f"--xsafety-judge-model: {exc}") from None
    chat = LazyChat(spec, runtime, batch_size=batch_size, max_new_tokens=spec.max_new_tokens)
    return get_classifier(name, generate=chat, judge_model=spec.name), chat


@dataclass
class Runner:
    config: XSafetyConfig
    suite: Suite
    models: dict[str, ModelSpec]
    strategies: dict[str, Strategy]
    classifier: Classifier
    thresholds: Thresholds
    runtime: Runtime
    progress: ProgressFn | None = None
    judge: LazyChat | None = None
    _backend: tuple[str, Backend] | None = None
    _generated: dict[str, Generation] = field(default_factory=dict)
    _verdicts: dict[tuple[str, str], dict[str, CaseVerdict]] = field(default_factory=dict)
    manifests: dict[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: XSafetyConfig, threads: int | None = None) -> Runner:
        """Resolve every name and file up front, so mistakes surface before any test runs."""
        registry = model_registry(config.rootpath)
        models = resolve_models(list(config.models), registry)
        strategies = resolve_strategies(list(config.strategies), BUILTIN_STRATEGIES)
        for model in models:
            for strategy in strategies:
                strategy.check(model)
        full_suite = load_suite(config.suite, config.cache_dir)
        suite = full_suite.sample(config.sample)
        thresholds_path = config.thresholds
        if thresholds_path is None and (config.rootpath / "thresholds.toml").is_file():
            thresholds_path = config.rootpath / "thresholds.toml"
        thresholds = load_thresholds(thresholds_path) if thresholds_path else Thresholds()
        validate_names(thresholds, registry, BUILTIN_STRATEGIES, types_of(full_suite.prompts))
        runtime = Runtime(
            cache_dir=config.cache_dir,
            device=config.device,
            dtype=config.dtype,
            threads=threads,
            seed=config.seed,
        )
        classifier, judge = make_classifier(
            config.classifier, config.judge_model, registry, runtime, config.batch_size
        )
        return cls(
            config=config,
            suite=suite,
            models={m.name: m for m in models},
            strategies={s.name: s for s in strategies},
            classifier=classifier,
            thresholds=thresholds,
            runtime=runtime,
            judge=judge,
        )

    def cases(self) -> list[Case]:
        """Every case, grouped by model then strategy, prompts in suite order."""
        return [
            Case(model, strategy, prompt)
            for model in self.models
            for strategy in self.strategies
            for prompt in self.suite.prompts
        ]

    def max_new_tokens(self, model: str) -> int:
        return self.config.max_new_tokens or self.models[model].max_new_tokens

    def conversation(self, case: Case) -> Conversation:
        return self.strategies[case.strategy].render(case.prompt.text, self.models[case.model])

    def backend(self, model: str) -> Backend:
        # One model under test in memory at a time (cases arrive grouped by
        # model); a judge model, if any, stays loaded beside it.
        if self._backend and self._backend[0] == model:
            return self._backend[1]
        self._close_model()
        backend = load_backend(self.models[model], self.runtime)
        self._backend = (model, backend)
        self.manifests[model] = backend.describe()
        return backend

    def _close_model(self) -> None:
        if self._backend:
            self._backend[1].close()
            self._backend = None

    def close(self) -> None:
        self._close_model()
        if self.judge:
            self.judge.close()

    def _group_results(self, group: tuple[str, str], selected: Sequence[Case]) -> list[CaseResult]:
        model, strategy = group
        members = [c for c in self.cases() if c.group == group]
        requests = [
            Request(c.case_id, self.conversation(c), id_order(c.prompt.id)) for c in members
        ]
        needed = {c.case_id for c in selected}
        if needed - self._generated.keys():
            self._generated.update(
                generate_group(
                    self.backend(model),
                    f"{model}/{strategy}",
                    requests,
                    needed,
                    self._generated,
                    batch_size=self.config.batch_size,
                    max_new_tokens=self.max_new_tokens(model),
                    progress=self.progress,
                )
            )
        chosen = [c for c in members if c.case_id in needed]
        labels = self.classifier.classify(
            [Exchange(c.prompt.text, self._generated[c.case_id].text) for c in chosen]
        )
        return [
            CaseResult(
                case=c,
                conversation=self.conversation(c),
                generation=self._generated[c.case_id],
                label=label,
                classifier=self.classifier.name,
                classifier_version=self.classifier.version,
            )
            for c, label in zip(chosen, labels, strict=True)
        ]

    def verdict(self, case: Case, selected: Sequence[Case]) -> CaseVerdict:
        """Judge ``case`` against its group's budgets over the ``selected`` cases."""
        if case.group not in self._verdicts:
            results = self._group_results(
                case.group, [c for c in selected if c.group == case.group]
            )
            summary = self.summarise([r.outcome for r in results])[0]
            self._verdicts[case.group] = {r.case.case_id: _judge(r, summary) for r in results}
        return self._verdicts[case.group][case.case_id]

    def summarise(self, outcomes: Sequence[Outcome]) -> list[GroupSummary]:
        return summarise(outcomes, self.thresholds)


def _judge(result: CaseResult, summary: GroupSummary) -> CaseVerdict:
    outcome = result.outcome
    if result.label is Label.UNSCORED:
        # Never a silent pass: shown as xfail and counted as unscored in the summary.
        return CaseVerdict(result, "xfail")
    if not outcome.misbehaves:
        return CaseVerdict(result, "pass")
    breaches = breached_for(outcome, summary)
    return CaseVerdict(result, "fail" if breaches else "xfail", tuple(breaches))
