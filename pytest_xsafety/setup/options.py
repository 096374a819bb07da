"""Run configuration: every ``--xsafety-*`` option, parsed once into a frozen config.

Each option has an ini twin (``xsafety_model`` ... in ``[tool.pytest.ini_options]``);
the command line wins. The option table lives here, free of pytest, so it is the
single source for the plugin's ``addoption`` calls and the README's option list.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pytest_xsafety.core.choices import (
    BACKENDS,
    DRIFT_POLICIES,
    DTYPES,
    GATES,
    MAX_NEW_TOKENS,
    UNSAFE_MODES,
    DriftPolicy,
    Gate,
    UnsafeMode,
)  # fmt: skip
from pytest_xsafety.core.text import UsageError
from pytest_xsafety.setup.models import nvidia_gpu_visible
from pytest_xsafety.setup.reviews import DEFAULT_FILE as DEFAULT_REVIEWS

T = TypeVar("T", bound=str)


@dataclass(frozen=True)
class OptionSpec:
    name: str  # flag without the prefix: "model" -> --xsafety-model / ini xsafety_model
    metavar: str
    help: str
    default: str | None = None
    switch: bool = False  # a flag without a value (ini: true/false)

    @property
    def flag(self) -> str:
        return f"--xsafety-{self.name}"

    @property
    def dest(self) -> str:
        return "xsafety_" + self.name.replace("-", "_")


# Default prompts per batch. Decoding on a GPU is memory-bandwidth-bound: a step
# reads all weights whatever the batch, so larger batches are nearly free until
# memory runs out (out-of-memory halving takes over from there). 512 holds a whole
# XSTest group (450 prompts) in one batch: on an H200, Llama-2-7B's shape in bf16
# peaked at 51.7 GB and ran 2.3x faster than at 256 (docs/reproduce.md). On a CPU
# the gain flattens past ~32 (docs: generation).
CPU_BATCH_SIZE = 32
CUDA_BATCH_SIZE = 512


def default_batch_size(device: str) -> int:
    """The batch size when none is given: larger on CUDA (``device`` as the option reads)."""
    if device.startswith("cuda") or (device == "auto" and nvidia_gpu_visible()):
        return CUDA_BATCH_SIZE
    return CPU_BATCH_SIZE


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("model", "NAME[,NAME]", "Models to test, by registry name (built-in or "
               "[tool.xsafety.models.NAME]); comma-separated. Turns the plugin on."),
    OptionSpec("strategy", "NAME[,NAME]", "Prompting strategies, comma-separated.", "baseline"),
    OptionSpec("suite", "NAME|PATH", "'xstest' (local cache, else the Hub at a pinned "
               "revision) or the path of a CSV with columns id,prompt,type,label,focus,note "
               "(and optionally pair).",
               "xstest"),
    OptionSpec("sample", "N", "Only the first N prompts (by id) of each prompt type."),
    OptionSpec("classifier", "NAME", "Response classifier: a built-in name (default, strmatch, "
               "judge), an entry point in 'pytest_xsafety.classifiers' or "
               "'package.module:attribute'.", "default"),
    OptionSpec("judge-model", "NAME", "Model (registry name) that grades each response with "
               "XSTest's rubric when the classifier is 'judge'; loaded on first use."),
    OptionSpec("thresholds", "PATH", "Budgets file (default: thresholds.toml in the rootdir, "
               "if present)."),
    OptionSpec("max-new-tokens", "N", f"Tokens generated per response, 1 to {MAX_NEW_TOKENS} "
               "(default: the model entry's max_new_tokens)."),
    OptionSpec("batch-size", "N", f"Prompts per generate() call (default: {CPU_BATCH_SIZE} on "
               f"a CPU, {CUDA_BATCH_SIZE} where an NVIDIA GPU is visible; halved and retried on "
               "a backend error such as out of memory, and after an out-of-memory error the "
               "group's later batches are halved up front). Batches are planned over the "
               "whole model x strategy group, whatever is selected."),
    OptionSpec("dtype", "DTYPE", f"Override every model's dtype ({', '.join(DTYPES)})."),
    OptionSpec("backend", "NAME", "Run every selected model with this backend instead of its "
               f"entry's ({', '.join(BACKENDS)})."),
    OptionSpec("device", "DEVICE", "'auto' (cuda if available, else cpu), 'cpu', 'cuda' or "
               "'cuda:N'.", "auto"),
    OptionSpec("seed", "N", "torch seed set before each batch (decoding is greedy).", "0"),
    OptionSpec("cache-dir", "DIR", "Where converted models, downloaded suites and the "
               "response cache (responses.sqlite) are kept (default: "
               "$XDG_CACHE_HOME/pytest-xsafety or ~/.cache/pytest-xsafety)."),
    OptionSpec("no-cache", "", "Neither read nor write the response cache: generate every "
               "response afresh.", switch=True),
    OptionSpec("snapshot-dir", "DIR", "Where case snapshots live, <DIR>/<model>/<strategy>/, "
               "relative to the rootdir. A model x strategy is checked when its directory "
               "exists; --snapshot-update records it.", "snapshots"),
    OptionSpec("drift", "{label,text}", "Snapshot drift that fails a case: 'label' (a label "
               "flip; text drift is reported) or 'text' (any change).", "label"),
    OptionSpec("snapshot-unsafe", "{full,redacted}", "How responses to unsafe prompts are "
               "stored: 'redacted' keeps their length and sha256, no text; 'full' the text.",
               "redacted"),
    OptionSpec("gate", "point|upper|estimate", "What breaches a budget: the observed rate "
               "('point'), only a rate whose whole Wilson 95% interval lies above it "
               "('upper'), or the estimated human rate of a reviewed random sample "
               "(`xsafety review --sample K`) whose whole 95% interval lies above it "
               "('estimate'; an interval across the budget, or no sample, leaves the group "
               "undecided, which fails the run and says how many more reviews would decide "
               "it). Group budgets only: per-type budgets keep the point rule.",
               "point"),
    OptionSpec("allow-no-budget", "", "Let a run pass when a model x strategy has no "
               "budget for a side (safe refusal or unsafe compliance) in thresholds.toml: "
               "that side is reported as not gated instead of failing the run.", switch=True),
    OptionSpec("report", "DIR", "Write summary.md, results.json, results.csv, types.csv and "
               "PNG plots into DIR (created; written by the controller only)."),
    OptionSpec("reviews", "PATH", "Human reviews (`xsafety review`) that pin labels to "
               "responses: used while a case's response is the one reviewed, whatever "
               "classifier runs; relative to the rootdir.", DEFAULT_REVIEWS),
    OptionSpec("baseline", "PATH", "A previous run's results.json: mark each case same or "
               "flipped and test each model x strategy's change (exact McNemar)."),
    OptionSpec("progress", "SECONDS", "Seconds of wall time between progress lines while a "
               "model loads or generates (the lines before and after are always shown); "
               "0 shows only those.", "10"),
    OptionSpec("report-unsafe", "full|redacted", "Responses to unsafe prompts in terminal "
               "reasons, JUnit XML and the report: 'redacted' shows their length and sha256, "
               "no text; 'full' shows the text.",
               "redacted"),
)  # fmt: skip


class ConfigError(UsageError):
    """An option value that cannot be used; the message names the option and the fix."""


@dataclass(frozen=True)
class XSafetyConfig:
    models: tuple[str, ...]
    strategies: tuple[str, ...]
    suite: str
    sample: int | None
    classifier: str
    judge_model: str | None
    thresholds: Path | None
    max_new_tokens: int | None
    batch_size: int
    dtype: str | None
    device: str
    seed: int
    cache_dir: Path
    rootpath: Path
    no_cache: bool = False
    backend: str | None = None
    snapshot_dir: Path = Path("snapshots")
    drift: DriftPolicy = "label"
    snapshot_unsafe: UnsafeMode = "redacted"
    gate: Gate = "point"
    report: Path | None = None
    baseline: Path | None = None
    report_unsafe_full: bool = False
    progress_interval: float = 10.0
    reviews: Path = Path(DEFAULT_REVIEWS)
    allow_no_budget: bool = False

    @property
    def report_unsafe(self) -> UnsafeMode:
        """How terminal reasons, JUnit XML and the report show unsafe prompts' answers."""
        return "full" if self.report_unsafe_full else "redacted"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pytest-xsafety"


def _names(value: str, flag: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    if not names:
        raise ConfigError(f"{flag}: give at least one name")
    return names


def _int(value: str | None, flag: str, minimum: int, maximum: int | None = None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{flag}={value!r}: not a whole number") from None
    if number < minimum:
        raise ConfigError(f"{flag}={value}: must be at least {minimum}")
    if maximum is not None and number > maximum:
        raise ConfigError(f"{flag}={value}: must be at most {maximum}")
    return number


def parse_config(values: Mapping[str, str | None], rootpath: Path) -> XSafetyConfig:
    """Build the config from raw option values keyed by ``OptionSpec.name``."""

    def get(name: str) -> str | None:
        value = values.get(name)
        if value is None or value == "":
            spec = next(o for o in OPTIONS if o.name == name)
            return spec.default
        return value

    _check_values(get)
    model, dtype, backend = str(get("model")), get("dtype"), get("backend")
    device = get("device") or "auto"
    classifier, judge_model = get("classifier") or "default", get("judge-model")
    thresholds = get("thresholds")
    cache_dir = get("cache-dir")
    gate = _choice(get("gate") or "point", "--xsafety-gate", GATES)
    report_unsafe = get("report-unsafe")
    report, baseline = get("report"), get("baseline")
    return XSafetyConfig(
        models=_names(model, "--xsafety-model"),
        strategies=_names(get("strategy") or "baseline", "--xsafety-strategy"),
        suite=get("suite") or "xstest",
        sample=_int(get("sample"), "--xsafety-sample", 1),
        classifier=classifier,
        judge_model=judge_model,
        thresholds=Path(thresholds).expanduser() if thresholds else None,
        max_new_tokens=_int(get("max-new-tokens"), "--xsafety-max-new-tokens", 1, MAX_NEW_TOKENS),
        batch_size=_int(get("batch-size"), "--xsafety-batch-size", 1) or default_batch_size(device),
        dtype=dtype,
        device=device,
        seed=_int(get("seed"), "--xsafety-seed", 0) or 0,
        cache_dir=Path(cache_dir).expanduser() if cache_dir else default_cache_dir(),
        rootpath=rootpath,
        no_cache=_bool(get("no-cache"), "--xsafety-no-cache"),
        backend=backend,
        snapshot_dir=rootpath / Path(get("snapshot-dir") or "snapshots").expanduser(),
        drift=_choice(get("drift") or "label", "--xsafety-drift", DRIFT_POLICIES),
        snapshot_unsafe=_choice(
            get("snapshot-unsafe") or "redacted", "--xsafety-snapshot-unsafe", UNSAFE_MODES
        ),
        gate=gate,
        report=Path(report).expanduser() if report else None,
        baseline=Path(baseline).expanduser() if baseline else None,
        report_unsafe_full=report_unsafe == "full",
        progress_interval=_seconds(get("progress") or "10", "--xsafety-progress"),
        reviews=rootpath / Path(get("reviews") or DEFAULT_REVIEWS).expanduser(),
        allow_no_budget=_bool(get("allow-no-budget"), "--xsafety-allow-no-budget"),
    )


def _check_values(get: Callable[[str], str | None]) -> None:
    """The one-line usage errors of option values that need no file or registry."""
    model = get("model")
    if model is None:
        raise ConfigError(
            "pytest-xsafety options were given without --xsafety-model: name the model(s) "
            "to test, e.g. --xsafety-model smollm2"
        )
    dtype = get("dtype")
    if dtype is not None and dtype not in DTYPES:
        raise ConfigError(f"--xsafety-dtype={dtype!r}: use one of {', '.join(DTYPES)}")
    backend = get("backend")
    if backend is not None and backend not in BACKENDS:
        raise ConfigError(f"--xsafety-backend={backend!r}: use one of {', '.join(BACKENDS)}")
    device = get("device") or "auto"
    if not (device in ("auto", "cpu", "cuda", "mps") or device.startswith("cuda:")):
        raise ConfigError(f"--xsafety-device={device!r}: use auto, cpu, cuda or cuda:N")
    if (get("classifier") or "default") == "judge" and get("judge-model") is None:
        raise ConfigError(
            "--xsafety-classifier judge needs a judge model: add --xsafety-judge-model NAME "
            "(a built-in model or one under [tool.xsafety.models.NAME])"
        )
    if get("gate") not in GATES:
        raise ConfigError(f"--xsafety-gate={get('gate')!r}: use point, upper or estimate")
    report_unsafe = get("report-unsafe")
    if report_unsafe not in ("full", "redacted"):
        raise ConfigError(f"--xsafety-report-unsafe={report_unsafe!r}: use full or redacted")
    baseline = get("baseline")
    if baseline is not None and not Path(baseline).expanduser().is_file():
        raise ConfigError(
            f"--xsafety-baseline={baseline}: no such file; pass a previous run's results.json"
        )


def _seconds(value: str, flag: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"{flag}={value!r}: not a number of seconds") from None
    if not seconds >= 0:  # also rejects nan
        raise ConfigError(f"{flag}={value}: must be 0 or more seconds")
    return seconds


def _choice(value: str, flag: str, choices: tuple[T, ...]) -> T:
    for choice in choices:
        if value == choice:
            return choice
    raise ConfigError(f"{flag}={value!r}: use {' or '.join(choices)}")


def _bool(value: str | None, flag: str) -> bool:
    if value is None:
        return False
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{flag}={value!r}: use true or false")
