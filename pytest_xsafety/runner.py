"""One process's pipeline: suite -> strategy -> generate -> classify -> budget.

The runner is built once per process from the frozen config. It plans cases,
loads at most one model at a time (cases arrive grouped by model), generates a
group's selected cases on first demand, and judges each case against the group's
budgets. It knows nothing of pytest: the plugin passes in the selected cases.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pytest_xsafety.backends import Backend, Generation, LazyChat, Runtime, load_backend, pins
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
from pytest_xsafety.cache import ResponseCache, request_key
from pytest_xsafety.classify import Classifier, Exchange, get_classifier
from pytest_xsafety.config import XSafetyConfig
from pytest_xsafety.contrast import pair_checks, pair_results, with_pair_checks
from pytest_xsafety.generate import (
    Failure,
    ProgressFn,
    Request,
    plan_batches,
    run_batches,
    select_batches,
)
from pytest_xsafety.models import (
    BUILTIN_MODELS,
    ModelSpec,
    RegistryError,
    resolve_models,
    user_models,
)
from pytest_xsafety.records import Case, ChatMessage, Conversation, Label
from pytest_xsafety.results import ModelInfo, RunInfo
from pytest_xsafety.strategies import (
    BUILTIN_STRATEGIES,
    Strategy,
    resolve_strategies,
    user_strategies,
)
from pytest_xsafety.suites import Suite, id_order, load_suite, types_of

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class CaseResult:
    """A case's generated and classified outcome.

    ``conversation`` is what the model was last sent (for interactive cases: the
    first turn, its answer and the follow-up); ``responses`` holds every turn's
    answer, the last being the labelled one. ``first_label`` is the first
    answer's label when a second turn was sent. ``error`` is set, and nothing
    else is meaningful, when generation failed.
    """

    case: Case
    conversation: Conversation
    responses: tuple[Generation, ...]
    label: Label
    classifier: str
    classifier_version: str
    first_label: Label | None = None
    error: str | None = None

    @property
    def generation(self) -> Generation:
        return self.responses[-1]

    @property
    def transcript(self) -> Conversation:
        """Every message, ending with the final answer."""
        return (*self.conversation, ChatMessage("assistant", self.generation.text))

    @property
    def outcome(self) -> Outcome:
        p = self.case.prompt
        return Outcome(self.case.model, self.case.strategy, p.id, p.type, p.label, self.label)


Status = Literal["pass", "xfail", "fail", "error"]


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
    warnings: list[str] = field(default_factory=list)
    judge: LazyChat | None = None
    _backend: tuple[str, Backend] | None = None
    _cache: ResponseCache | None = None
    _pins: dict[str, dict[str, str]] = field(default_factory=dict)
    _done: dict[str, Generation | Failure] = field(default_factory=dict)  # by request key
    _verdicts: dict[tuple[str, str], dict[str, CaseVerdict]] = field(default_factory=dict)
    manifests: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls, config: XSafetyConfig, threads: int | None = None, worker: int | None = None
    ) -> Runner:
        """Resolve every name and file up front, so mistakes surface before any test runs."""
        tool = read_pyproject_tool(config.rootpath)
        registry = model_registry(config.rootpath)
        strategy_registry = dict(BUILTIN_STRATEGIES)
        strategy_registry.update(
            user_strategies(tool.get("strategies", {}), str(config.rootpath / "pyproject.toml"))
        )
        models = resolve_models(list(config.models), registry, backend=config.backend)
        strategies = resolve_strategies(list(config.strategies), strategy_registry)
        for model in models:
            for strategy in strategies:
                strategy.check(model)
        full_suite = load_suite(config.suite, config.cache_dir)
        suite = full_suite.sample(config.sample)
        thresholds_path = config.thresholds
        if thresholds_path is None and (config.rootpath / "thresholds.toml").is_file():
            thresholds_path = config.rootpath / "thresholds.toml"
        thresholds = load_thresholds(thresholds_path) if thresholds_path else Thresholds()
        validate_names(thresholds, registry, strategy_registry, types_of(full_suite.prompts))
        runtime = Runtime(
            cache_dir=config.cache_dir,
            device=config.device,
            dtype=config.dtype,
            threads=threads,
            seed=config.seed,
            worker=worker,
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

    def pins(self, model: str) -> dict[str, str]:
        """What pins ``model``'s responses, computed without loading it (cached per run)."""
        if model not in self._pins:
            self._pins[model] = pins(self.models[model], self.runtime)
        return self._pins[model]

    def manifest(self, model: str) -> dict[str, str]:
        """Pins, plus what the loaded backend reported if it was loaded in this process."""
        return {**self.pins(model), **self.manifests.get(model, {})}

    def backend(self, model: str) -> Backend:
        # One model under test in memory at a time (cases arrive grouped by
        # model); a judge model, if any, stays loaded beside it.
        if self._backend and self._backend[0] == model:
            return self._backend[1]
        self.close_backend()
        backend = load_backend(self.models[model], self.runtime)
        self._backend = (model, backend)
        self.manifests[model] = dict(backend.describe())
        return backend

    @property
    def cache(self) -> ResponseCache | None:
        if self.config.no_cache:
            return None
        if self._cache is None:
            self._cache = ResponseCache.open(self.config.cache_dir)
            if self._cache.warning:
                self.warnings.append(self._cache.warning)
        return self._cache

    def close_backend(self) -> None:
        if self._backend:
            self._backend[1].close()
            self._backend = None

    def close(self) -> None:
        self.close_backend()
        if self.judge:
            self.judge.close()
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def _generate(self, model: str, label: str, batches: list[list[Request]]) -> None:
        """Fill ``_done`` for ``batches``: from the cache, else from the backend."""
        wanted = [r for b in batches for r in b if r.key not in self._done]
        cache = self.cache
        if cache is not None:
            self._done.update(cache.get_many(r.key for r in wanted))
        todo = [[r for r in b if r.key not in self._done] for b in batches]
        model_pins = self.pins(model)

        def store(pairs: Sequence[tuple[Request, Generation]]) -> None:
            if cache is not None:
                cache.put_many([(r.key, g) for r, g in pairs], model_pins)

        self._done.update(
            run_batches(
                lambda: self.backend(model),
                label,
                [b for b in todo if b],
                max_new_tokens=self.max_new_tokens(model),
                store=store,
                progress=self.progress,
            )
        )

    def _request(self, case: Case, conversation: Conversation) -> Request:
        key = request_key(
            self.pins(case.model), conversation, self.max_new_tokens(case.model), self.config.seed
        )
        return Request(key, conversation, id_order(case.prompt.id))

    def _group_results(self, group: tuple[str, str], selected: Sequence[Case]) -> list[CaseResult]:
        model, strategy_name = group
        strategy = self.strategies[strategy_name]
        members = [c for c in self.cases() if c.group == group]
        first = {c.case_id: self._request(c, self.conversation(c)) for c in members}
        needed = {first[c.case_id].key for c in selected}
        plan = plan_batches(list(first.values()), self.config.batch_size)
        batches = [list(b) for b in select_batches(plan, needed, ())]
        self._generate(model, f"{model}/{strategy_name}", batches)

        second: dict[str, Request] = {}
        first_labels: dict[str, Label] = {}
        if strategy.interactive:
            # Second turns are planned per first-turn batch, so that which cases
            # share a batch never depends on what pytest selected.
            by_key = {first[c.case_id].key: c for c in members}
            turn2: list[list[Request]] = []
            for batch in batches:
                answered = [
                    (by_key[r.key], r, g)
                    for r in batch
                    if isinstance(g := self._done.get(r.key), Generation)
                ]
                labels = self.classifier.classify(
                    [Exchange(c.prompt.text, g.text) for c, _, g in answered]
                )
                follow = []
                for (c, r, g), lbl in zip(answered, labels, strict=True):
                    first_labels[c.case_id] = lbl
                    if lbl.is_refusal:
                        conv = strategy.follow_up(c.prompt.text, r.conversation, g.text)
                        second[c.case_id] = self._request(c, conv)
                        follow.append(second[c.case_id])
                if follow:
                    turn2.append(follow)
            self._generate(model, f"{model}/{strategy_name} (turn 2)", turn2)

        chosen = [c for c in members if first[c.case_id].key in needed]
        results: list[CaseResult] = []
        to_label: list[tuple[int, Case, Generation]] = []
        for c in chosen:
            turns = [first[c.case_id]] + ([second[c.case_id]] if c.case_id in second else [])
            got = [self._done.get(r.key) for r in turns]
            failure = next((g for g in got if not isinstance(g, Generation)), None)
            if failure is not None:
                cause = failure.cause if isinstance(failure, Failure) else "not generated"
                results.append(
                    CaseResult(
                        c,
                        turns[-1].conversation,
                        (),
                        Label.UNSCORED,
                        self.classifier.name,
                        self.classifier.version,
                        error=cause,
                    )
                )
                continue
            responses = tuple(g for g in got if isinstance(g, Generation))
            # An interactive case answered at once was already labelled (a judge is costly).
            known = first_labels.get(c.case_id) if len(turns) == 1 else None
            if known is None:
                to_label.append((len(results), c, responses[-1]))
            results.append(
                CaseResult(
                    c,
                    turns[-1].conversation,
                    responses,
                    known or Label.UNSCORED,
                    self.classifier.name,
                    self.classifier.version,
                    first_label=first_labels.get(c.case_id) if len(turns) > 1 else None,
                )
            )
        labels = self.classifier.classify([Exchange(c.prompt.text, g.text) for _, c, g in to_label])
        for (i, _, _), lbl in zip(to_label, labels, strict=True):
            results[i] = replace(results[i], label=lbl)
        return results

    def verdict(self, case: Case, selected: Sequence[Case]) -> CaseVerdict:
        """Judge ``case`` against its group's budgets over the ``selected`` cases."""
        if case.group not in self._verdicts:
            results = self._group_results(
                case.group, [c for c in selected if c.group == case.group]
            )
            summary = self.summarise([r.outcome for r in results if r.error is None])[0]
            self._verdicts[case.group] = {r.case.case_id: _judge(r, summary) for r in results}
        return self._verdicts[case.group][case.case_id]

    def cached_baseline(self, model: str, prompt_ids: set[str]) -> list[Outcome] | None:
        """``baseline`` outcomes of ``model`` on these prompts from the response cache
        alone (nothing is generated), or None unless every one is cached."""
        cache = self.cache
        if cache is None or "baseline" in self.strategies:
            return None
        base = BUILTIN_STRATEGIES["baseline"]
        prompts = [p for p in self.suite.prompts if p.id in prompt_ids]
        keys = [
            self._request(Case(model, "baseline", p), base.render(p.text, self.models[model])).key
            for p in prompts
        ]
        got = cache.get_many(keys)
        if not prompts or len(got) < len(set(keys)):
            return None
        labels = self.classifier.classify(
            [Exchange(p.text, got[k].text) for p, k in zip(prompts, keys, strict=True)]
        )
        return [
            Outcome(model, "baseline", p.id, p.type, p.label, label)
            for p, label in zip(prompts, labels, strict=True)
        ]

    def summarise(self, outcomes: Sequence[Outcome]) -> list[GroupSummary]:
        rates = summarise(outcomes, self.thresholds, self.config.gate)
        # The overcautious_pairs_max budget, where one is set, judged beside the rates.
        results, pairs = pair_results(outcomes, self.suite.pairs)
        return with_pair_checks(
            rates, pair_checks(results, pairs, self.thresholds, self.config.gate)
        )

    def run_info(self) -> RunInfo:
        """What the report says about the run: suite, classifier, pins, decoding, gate."""
        suite = self.suite
        return RunInfo(
            suite_name=suite.name,
            suite_source=suite.source,
            suite_sha256=suite.sha256,
            suite_known_as=suite.known_as,
            prompts=len(suite.prompts),
            classifier=f"{self.classifier.name}=={self.classifier.version}",
            strategies=tuple(self.strategies),
            models=tuple(
                ModelInfo(m, self.manifest(m), self.max_new_tokens(m)) for m in self.models
            ),
            seed=self.config.seed,
            batch_size=self.config.batch_size,
            thresholds=self.thresholds.source,
            gate=self.config.gate,
            unsafe_responses="full" if self.config.report_unsafe_full else "redacted",
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            warnings=tuple(self.warnings),
        )


def _judge(result: CaseResult, summary: GroupSummary) -> CaseVerdict:
    if result.error is not None:
        return CaseVerdict(result, "error")
    outcome = result.outcome
    if result.label is Label.UNSCORED:
        # Never a silent pass: shown as xfail and counted as unscored in the summary.
        return CaseVerdict(result, "xfail")
    if not outcome.misbehaves:
        return CaseVerdict(result, "pass")
    breaches = breached_for(outcome, summary)
    return CaseVerdict(result, "fail" if breaches else "xfail", tuple(breaches))
