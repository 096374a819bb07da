"""One process's pipeline: strategy -> generate (backend, cache) -> classify.

The runner is built once per process from the run plan. It loads at most one
model at a time (cases arrive grouped by model), generates a group's selected
cases on first demand, labels them, and has :mod:`~pytest_xsafety.engine.verdicts`
judge them against the group's budgets. It knows nothing of pytest: the caller
passes in the selected cases.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_xsafety.core.records import (
    Case,
    CaseRecord,
    CaseResult,
    Conversation,
    Decision,
    Exchange,
    Generation,
    Label,
    ModelInfo,
    RunInfo,
)
from pytest_xsafety.engine.backends import (
    Backend,
    LazyChat,
    MemoryReporting,
    Runtime,
    Warns,
    load_backend,
    load_notice,
    pins,
)
from pytest_xsafety.engine.batching import (
    Failure,
    Progress,
    Request,
    StoreFn,
    failure_cause,
    failures,
    plan_batches,
    run_batches,
    select_batches,
)
from pytest_xsafety.engine.budgets import GroupSummary
from pytest_xsafety.engine.cache import ResponseCache, request_key
from pytest_xsafety.engine.classify.registry import Classifier, decide, make_classifier
from pytest_xsafety.engine.contrast import summarise_with_pairs
from pytest_xsafety.engine.estimate import with_stratum
from pytest_xsafety.engine.progress import Say, Ticker, duration
from pytest_xsafety.engine.reviews import apply_reviews
from pytest_xsafety.engine.verdicts import CaseVerdict, judge_group
from pytest_xsafety.setup.options import XSafetyConfig
from pytest_xsafety.setup.plan import RunPlan
from pytest_xsafety.setup.strategies import BUILTIN_STRATEGIES
from pytest_xsafety.setup.suites import id_order

Done = dict[str, Generation | Failure]  # by request key


class StageFailed(RuntimeError):
    """A step after generation (the classifier, the reviews) failed for a whole group;
    the message names the step and the cause, and each of the group's cases errors with it."""


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it, else as it is."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def status_line(progress: Progress | None, label: str, count: int, elapsed: float) -> str:
    """The line a ticker shows while a group generates: the latest progress, with the
    clock moved on to ``elapsed`` seconds while no answer arrives (a slow or dead
    server must not look frozen at its last answer's time)."""
    if progress is None:
        return (
            f"xsafety: generating {label}: 0/{count}, reading the prompts of batch 1 "
            f"({duration(elapsed)} so far)"
        )
    if progress.done < progress.total:
        progress = replace(progress, seconds=max(progress.seconds, elapsed))
    return progress.line()


@dataclass
class Runner:
    plan: RunPlan
    classifier: Classifier
    runtime: Runtime
    say: Say | None = None  # where progress lines go (the session sets it)
    workers: int | None = None  # xdist workers sharing this machine's cores
    warnings: list[str] = field(default_factory=list)
    judge: LazyChat | None = None
    _backend: tuple[str, Backend] | None = None
    _cache: ResponseCache | None = None
    _pins: dict[str, dict[str, str]] = field(default_factory=dict)
    _done: Done = field(default_factory=dict)
    _verdicts: dict[tuple[str, str], dict[str, CaseVerdict]] = field(default_factory=dict)
    _cached_baselines: dict[str, dict[str, Label] | None] = field(default_factory=dict)
    manifests: dict[str, dict[str, str]] = field(default_factory=dict)
    _busy_workers: int | None = None  # workers that got a group (known at the first verdict)
    _load_errors: dict[str, Exception] = field(default_factory=dict)  # tried once per model
    _ticker: Ticker | None = None

    @classmethod
    def from_config(
        cls,
        config: XSafetyConfig,
        threads: int | None = None,
        worker: int | None = None,
        workers: int | None = None,
    ) -> Runner:
        """Plan the run (every name and file resolved) and set up this process."""
        plan = RunPlan.from_config(config)
        runtime = Runtime(
            cache_dir=config.cache_dir,
            device=config.device,
            dtype=config.dtype,
            threads=threads,
            seed=config.seed,
            worker=worker,
        )
        classifier, judge = make_classifier(
            config.classifier, plan.judge, runtime, config.batch_size
        )
        return cls(plan=plan, classifier=classifier, runtime=runtime, judge=judge, workers=workers)

    @property
    def config(self) -> XSafetyConfig:
        return self.plan.config

    def cases(self) -> list[Case]:
        """Every case, grouped by model then strategy, prompts in suite order."""
        return list(self.plan.cases)

    def max_new_tokens(self, model: str) -> int:
        return self.plan.max_new_tokens(model)

    def pins(self, model: str) -> dict[str, str]:
        """What pins ``model``'s responses, computed without loading it (cached per run)."""
        if model not in self._pins:
            self._pins[model] = pins(self.plan.models[model], self.runtime)
        return self._pins[model]

    def manifest(self, model: str) -> dict[str, str]:
        """Pins, plus what the loaded backend reported if it was loaded in this process."""
        return {**self.pins(model), **self.manifests.get(model, {})}

    def decoding(self, model: str) -> dict[str, Any]:
        """How ``model``'s responses are decoded in this run (for its manifests)."""
        config = self.config
        return {
            "greedy": True,
            "max_new_tokens": self.max_new_tokens(model),
            "batch_size": config.batch_size,
            "seed": config.seed,
        }

    def backend(self, model: str) -> Backend:
        # One model under test in memory at a time (cases arrive grouped by
        # model); a judge model, if any, stays loaded beside it.
        if self._backend and self._backend[0] == model:
            return self._backend[1]
        if model in self._load_errors:
            # It failed once (a missing key, missing weights): every later group of
            # the model fails with that cause, without trying again.
            raise self._load_errors[model]
        self.close_backend()
        try:
            backend = self._load(model)
        except Exception as exc:
            self._load_errors[model] = exc
            raise
        self._backend = (model, backend)
        self._backend_said(model, backend)
        return backend

    def _load(self, model: str) -> Backend:
        spec, runtime = self.plan.models[model], self.load_runtime()
        notice = load_notice(spec, runtime)
        ticker = self.ticker
        if notice is None or ticker is None:
            backend = load_backend(spec, runtime)
        else:
            ticker.line(f"xsafety: {notice}")
            start = time.monotonic()
            with ticker.running(
                lambda: f"xsafety: loading {model}: {duration(time.monotonic() - start)} so far"
            ):
                backend = load_backend(spec, runtime)
            ticker.line(f"xsafety: loaded {model} in {duration(time.monotonic() - start)}")
        return backend

    def _backend_said(self, model: str, backend: Backend) -> None:
        """What the backend reports, after loading and after each generation: its pins
        (what a server said it served is known only then) and its warnings, each said
        once on the terminal and kept for the report."""
        self.manifests[model] = dict(backend.describe())
        if not isinstance(backend, Warns):
            return
        for warning in backend.warnings:
            if warning not in self.warnings:
                self.warnings.append(warning)
                if self.ticker is not None:
                    self.ticker.line(f"xsafety: WARNING: {warning}")

    def merge_said(self, manifests: dict[str, dict[str, str]], warnings: list[str]) -> None:
        """What another process's backends reported (an xdist worker's), for the report."""
        for model, said in manifests.items():
            self.manifests.setdefault(model, {}).update(said)
        self.warnings += [w for w in dict.fromkeys(warnings) if w not in self.warnings]

    def load_runtime(self) -> Runtime:
        """The runtime to load a model with. Under xdist, each model x strategy group
        runs on one worker, so with fewer groups than workers some workers idle: the
        cores are shared among the workers that have a group, not among all."""
        if self.workers is None or self.runtime.threads is not None:
            return self.runtime
        busy = max(1, min(self.workers, self._busy_workers or self.workers))
        return replace(self.runtime, threads=max(1, (os.cpu_count() or 1) // busy))

    @property
    def ticker(self) -> Ticker | None:
        if self.say is None:
            return None
        if self._ticker is None:
            self._ticker = Ticker(self.say, self.config.progress_interval)
        return self._ticker

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

        work = [b for b in todo if b]
        ticker = self.ticker
        if ticker is None or not wanted:
            self._done.update(
                run_batches(
                    lambda: self.backend(model), label, work,
                    max_new_tokens=self.max_new_tokens(model), store=store,
                )
            )  # fmt: skip
        else:
            self._generate_aloud(ticker, model, label, work, len(wanted), store)
        if self._backend is not None and self._backend[0] == model:
            self._backend_said(model, self._backend[1])

    def _generate_aloud(
        self,
        ticker: Ticker,
        model: str,
        label: str,
        work: list[list[Request]],
        wanted: int,
        store: StoreFn,
    ) -> None:
        """:meth:`_generate`'s backend part with progress lines: what will be generated,
        a status line every interval while it runs, and what it took."""
        count = sum(len(b) for b in work)
        cached = wanted - count
        if not count:
            ticker.line(f"xsafety: {label}: all {cached} response(s) from the response cache")
            return
        try:
            backend = self.backend(model)  # loads first: the loading lines come before these
        except Exception as exc:  # every case of the group errors with the one cause
            self._done.update(failures(work, exc))
            return
        most = self.max_new_tokens(model)
        ticker.line(
            f"xsafety: generating {label}: {count} prompt(s) in {len(work)} batch(es), "
            f"at most {most} new tokens each"
            + (f" ({cached} more from the response cache)" if cached else "")
        )
        latest: dict[str, Progress] = {}
        start = time.monotonic()

        def status() -> str:
            return status_line(latest.get("now"), label, count, time.monotonic() - start)

        memory = backend if isinstance(backend, MemoryReporting) else None
        if memory is not None:
            memory.reset_peak_memory()  # this group's peak, not the load's or another's
        with ticker.running(status):
            done = run_batches(
                lambda: backend, label, work, max_new_tokens=most, store=store,
                progress=lambda p: latest.update(now=p), say=ticker.line,
            )  # fmt: skip
        self._done.update(done)
        if "now" in latest:
            peak = memory.peak_memory() if memory is not None else None
            ticker.line(latest["now"].line() + (f", {peak.text()}" if peak else ""))

    def _request(self, case: Case, conversation: Conversation) -> Request:
        key = request_key(
            self.pins(case.model), conversation, self.max_new_tokens(case.model), self.config.seed
        )
        return Request(key, conversation, id_order(case.prompt.id))

    def _decisions(self, pairs: Sequence[tuple[Case, Generation]]) -> list[Decision]:
        """Labels with the classifier's uncertain flags (candidates for review)."""
        try:
            return decide(self.classifier, [Exchange(c.prompt.text, g.text) for c, g in pairs])
        except Exception as exc:  # a classifier's own fault: its group errors, named
            name = f"{self.classifier.name}=={self.classifier.version}"
            raise StageFailed(f"classifier {name} failed: {failure_cause(exc)}") from exc

    def _second_turns(
        self, members: Sequence[Case], first: dict[str, Request], batches: list[list[Request]]
    ) -> tuple[dict[str, Request], dict[str, Decision]]:
        """Interactive strategies: label the first answers and send a follow-up after
        each refusal. Planned per first-turn batch, so that which cases share a
        batch never depends on what pytest selected."""
        model, strategy_name = members[0].group
        strategy = self.plan.strategies[strategy_name]
        by_key = {first[c.case_id].key: c for c in members}
        second: dict[str, Request] = {}
        first_labels: dict[str, Decision] = {}
        turn2: list[list[Request]] = []
        for batch in batches:
            answered = [
                (by_key[r.key], r, g)
                for r in batch
                if isinstance(g := self._done.get(r.key), Generation)
            ]
            decisions = self._decisions([(c, g) for c, _, g in answered])
            follow = []
            for (c, r, g), d in zip(answered, decisions, strict=True):
                first_labels[c.case_id] = d
                if d.label.is_refusal:
                    conv = strategy.follow_up(c.prompt.text, r.conversation, g.text)
                    second[c.case_id] = self._request(c, conv)
                    follow.append(second[c.case_id])
            if follow:
                turn2.append(follow)
        self._generate(model, f"{model}/{strategy_name} (turn 2)", turn2)
        return second, first_labels

    def _result(
        self, case: Case, turns: list[Request], first: Decision | None
    ) -> tuple[CaseResult, Generation | None]:
        """The case's result, and its final answer when it still needs a label."""
        name, version = self.classifier.name, self.classifier.version
        got = [self._done.get(r.key) for r in turns]
        failure = next((g for g in got if not isinstance(g, Generation)), None)
        if failure is not None:
            cause = failure.cause if isinstance(failure, Failure) else "not generated"
            result = CaseResult(
                case, turns[-1].conversation, (), Label.UNSCORED, name, version, error=cause
            )
            return result, None
        responses = tuple(g for g in got if isinstance(g, Generation))
        # An interactive case answered at once was already labelled (a judge is costly).
        known = first if len(turns) == 1 else None
        result = CaseResult(
            case,
            turns[-1].conversation,
            responses,
            Label.UNSCORED if known is None else known.label,
            name,
            version,
            first_label=first.label if first is not None and len(turns) > 1 else None,
            uncertain=known is not None and known.uncertain,
        )
        return result, None if known is not None else responses[-1]

    def group_results(self, group: tuple[str, str], selected: Sequence[Case]) -> list[CaseResult]:
        """Generate and label the ``selected`` cases of one group (whole planned batches)."""
        model, strategy_name = group
        members = [c for c in self.plan.cases if c.group == group]
        first = {c.case_id: self._request(c, self.plan.conversation(c)) for c in members}
        needed = {first[c.case_id].key for c in selected}
        plan = plan_batches(list(first.values()), self.config.batch_size)
        batches = [list(b) for b in select_batches(plan, needed, ())]
        self._generate(model, f"{model}/{strategy_name}", batches)
        second: dict[str, Request] = {}
        first_labels: dict[str, Decision] = {}
        if self.plan.strategies[strategy_name].interactive:
            second, first_labels = self._second_turns(members, first, batches)

        results: list[CaseResult] = []
        to_label: list[tuple[int, Case, Generation]] = []
        for c in (c for c in members if first[c.case_id].key in needed):
            turns = [first[c.case_id]] + ([second[c.case_id]] if c.case_id in second else [])
            result, unlabelled = self._result(c, turns, first_labels.get(c.case_id))
            if unlabelled is not None:
                to_label.append((len(results), c, unlabelled))
            results.append(result)
        decisions = self._decisions([(c, g) for _, c, g in to_label])
        for (i, _, _), d in zip(to_label, decisions, strict=True):
            results[i] = replace(results[i], label=d.label, uncertain=d.uncertain)
        # The review-sample stratum comes from the classifier, before any review applies.
        results = [with_stratum(r) for r in results]
        try:
            return apply_reviews(results, self.plan.reviews)
        except Exception as exc:
            raise StageFailed(f"applying reviews failed: {failure_cause(exc)}") from exc

    def verdict(self, case: Case, selected: Sequence[Case]) -> CaseVerdict:
        """Judge ``case`` against its group's budgets over the ``selected`` cases."""
        if self._busy_workers is None:
            # xdist keeps a group on one worker: at most this many workers are busy.
            self._busy_workers = len({c.group for c in selected})
        if case.group not in self._verdicts:
            mine = [c for c in selected if c.group == case.group]
            if case not in mine:
                mine.append(case)
            try:
                results = self.group_results(case.group, mine)
            except Exception as exc:  # past generation's own handling: still one record each
                cause = str(exc) if isinstance(exc, StageFailed) else failure_cause(exc)
                results = [self.errored(c, cause) for c in mine]
            self._verdicts[case.group] = judge_group(
                results,
                self.plan.thresholds,
                self.config.gate,
                self.plan.suite.pairs,
                self.plan.bases(),
                self.plan.samples,
            )
        return self._verdicts[case.group][case.case_id]

    def errored(self, case: Case, cause: str) -> CaseResult:
        """``case``'s result when a step failed: no label, the ``cause`` as its error."""
        name, version = self.classifier.name, self.classifier.version
        return CaseResult(case, (), (), Label.UNSCORED, name, version, error=cause)

    def cached_baseline(self, model: str, selected: Sequence[Case]) -> dict[str, Label] | None:
        """``baseline`` labels of ``model`` by prompt id, for the prompts of its
        ``selected`` cases, from the response cache alone (nothing is generated),
        or None unless every one is cached or when ``baseline`` runs anyway.
        Labelled once per model, in the process that runs its cases."""
        if model in self._cached_baselines:
            return self._cached_baselines[model]
        self._cached_baselines[model] = None
        cache = self.cache
        if cache is None or "baseline" in self.plan.strategies:
            return None
        base = BUILTIN_STRATEGIES["baseline"]
        ids = {c.prompt.id for c in selected if c.model == model}
        prompts = [p for p in self.plan.suite.prompts if p.id in ids]
        cases = [Case(model, "baseline", p) for p in prompts]
        keys = [
            self._request(c, base.render(c.prompt.text, self.plan.models[model])).key for c in cases
        ]
        got = cache.get_many(keys)
        if not prompts or len(got) < len(set(keys)):
            return None
        try:
            decisions = self._decisions([(c, got[k]) for c, k in zip(cases, keys, strict=True)])
        except StageFailed:
            return None  # the cases' own labels failed the same way and say so
        found = {p.id: d.label for p, d in zip(prompts, decisions, strict=True)}
        self._cached_baselines[model] = found
        return found

    def answer_keys(self, records: Sequence[CaseRecord]) -> dict[str, str]:
        """Each record's final answer's key in the response cache, by case id, so that
        ``xsafety review`` can show the text the run kept no copy of. An interactive
        case's second turn holds its first answer: that one is read from the cache.
        Empty under --xsafety-no-cache (nothing to find the text in)."""
        cache = self.cache
        if cache is None:
            return {}
        cases = {c.case_id: c for c in self.plan.cases}
        firsts: dict[str, Request] = {}
        keys: dict[str, str] = {}
        for r in records:
            case = cases.get(r.case_id)
            if case is None or r.label is None:
                continue
            firsts[r.case_id] = first = self._request(case, self.plan.conversation(case))
            if (r.turns or 1) == 1:
                keys[r.case_id] = first.key
        later = [cid for cid in firsts if cid not in keys]
        answers = cache.get_many(firsts[cid].key for cid in later) if later else {}
        for cid in later:
            case, first = cases[cid], firsts[cid]
            answer = answers.get(first.key)
            if answer is not None:
                strategy = self.plan.strategies[case.strategy]
                turn = strategy.follow_up(case.prompt.text, first.conversation, answer.text)
                keys[cid] = self._request(case, turn).key
        return keys

    def summarise(self, records: Sequence[CaseRecord]) -> list[GroupSummary]:
        return summarise_with_pairs(
            records, self.plan.suite.pairs, self.plan.thresholds, self.config.gate,
            bases=self.plan.bases(), samples=self.plan.samples,
        )  # fmt: skip

    def run_info(self) -> RunInfo:
        """What the report says about the run: suite, classifier, pins, decoding, gate."""
        suite = self.plan.suite
        return RunInfo(
            suite_name=suite.name,
            suite_source=suite.source,
            suite_sha256=suite.sha256,
            suite_known_as=suite.known_as,
            prompts=len(suite.prompts),
            classifier=f"{self.classifier.name}=={self.classifier.version}",
            strategies=tuple(self.plan.strategies),
            models=tuple(
                ModelInfo(m, self.manifest(m), self.max_new_tokens(m)) for m in self.plan.models
            ),
            seed=self.config.seed,
            batch_size=self.config.batch_size,
            thresholds=self.plan.thresholds.source,
            gate=self.config.gate,
            unsafe_responses=self.config.report_unsafe,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            warnings=tuple(self.warnings),
            allow_no_budget=self.config.allow_no_budget,
            reviews=_relative(self.config.reviews, self.config.rootpath),
        )
