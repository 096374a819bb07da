"""Per-case records as they travel on test reports, and the run they belong to.

Each case's test report carries ``xsafety_*`` user properties (strings, so that
they survive xdist and land in JUnit XML as they are). :meth:`CaseRecord.from_properties`
reads them back on the controller; the report is built from these records only,
so a serial run and an xdist run write the same files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pytest_xsafety.budgets import Gate, Outcome
from pytest_xsafety.records import Expectation, Label
from pytest_xsafety.redaction import UnsafeMode, shown

PROP = "xsafety_"  # prefix of every case property


@dataclass(frozen=True)
class Response:
    """The labelled answer; for unsafe prompts by default (see :mod:`.redaction`)
    only its length and sha256, with ``text`` empty."""

    text: str
    sha256: str
    redacted: bool
    chars: int | None = None


def response_of(text: str, expected: str, mode: UnsafeMode = "redacted") -> Response:
    s = shown(text, expected, mode)
    return Response(s.text or "", s.sha256, s.redacted, s.chars)


def response_properties(text: str, expected: str, mode: UnsafeMode) -> list[tuple[str, str]]:
    r = response_of(text, expected, mode)
    return [
        (PROP + "response", r.text),
        (PROP + "response_sha256", r.sha256),
        (PROP + "response_chars", str(r.chars)),
        (PROP + "response_redacted", str(r.redacted).lower()),
    ]


def _bool(value: Any) -> bool | None:
    return None if value is None else str(value) == "true"


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class CaseRecord:
    """One case as the report sees it. ``label`` is None when generation failed.

    ``verdict``: pass, xfail, fail or error (the budget verdict the test got).
    ``snapshot``: unchanged, drift, flip or new when snapshots ran, else None.
    ``baseline``: same, flipped or new against ``--xsafety-baseline``, else None.
    """

    model: str
    strategy: str
    prompt_id: str
    prompt_type: str
    expected: Expectation
    classifier: str
    verdict: str
    label: Label | None = None
    turns: int | None = None
    first_label: Label | None = None
    truncated: bool | None = None
    empty: bool | None = None
    error: str | None = None
    snapshot: str | None = None
    snapshot_old_label: str | None = None
    response: Response | None = None
    baseline: str | None = None
    baseline_label: str | None = None

    @property
    def case_id(self) -> str:
        return f"{self.model}/{self.strategy}/{self.prompt_type}/{self.prompt_id}"

    @property
    def key(self) -> tuple[str, str, str]:
        """What pairs a case with the same case of another run."""
        return (self.model, self.strategy, self.prompt_id)

    @property
    def outcome(self) -> Outcome | None:
        if self.label is None:
            return None
        return Outcome(
            self.model, self.strategy, self.prompt_id, self.prompt_type, self.expected, self.label
        )

    @classmethod
    def from_properties(cls, props: Mapping[str, Any]) -> CaseRecord | None:
        """The record a report's ``user_properties`` describe, or None if not a case."""
        if PROP + "model" not in props:
            return None
        label = props.get(PROP + "label")
        first = props.get(PROP + "first_label")
        error = _str(props.get(PROP + "error"))
        response = None
        if PROP + "response" in props:
            chars = props.get(PROP + "response_chars")
            response = Response(
                str(props[PROP + "response"]),
                str(props.get(PROP + "response_sha256", "")),
                _bool(props.get(PROP + "response_redacted")) is True,
                None if chars is None else int(chars),
            )
        turns = props.get(PROP + "turns")
        return cls(
            model=str(props[PROP + "model"]),
            strategy=str(props[PROP + "strategy"]),
            prompt_id=str(props[PROP + "prompt_id"]),
            prompt_type=str(props[PROP + "type"]),
            expected="safe" if props[PROP + "expected"] == "safe" else "unsafe",
            classifier=str(props.get(PROP + "classifier", "")),
            verdict=str(props.get(PROP + "verdict", "error" if error else "")),
            label=None if label is None else Label.parse(str(label)),
            turns=None if turns is None else int(str(turns)),
            first_label=None if first is None else Label.parse(str(first)),
            truncated=_bool(props.get(PROP + "truncated")),
            empty=_bool(props.get(PROP + "empty")),
            error=error,
            snapshot=_str(props.get(PROP + "snapshot")),
            snapshot_old_label=_str(props.get(PROP + "snapshot_old_label")),
            response=response,
        )

    def with_baseline(self, status: str | None, label: str | None) -> CaseRecord:
        return replace(self, baseline=status, baseline_label=label)


@dataclass(frozen=True)
class ModelInfo:
    """What pins one model's responses: backend pins plus the decoding budget."""

    name: str
    pins: Mapping[str, str]
    max_new_tokens: int


@dataclass(frozen=True)
class RunInfo:
    """The run around the cases: suite, classifier, models, decoding, budgets, gate."""

    suite_name: str
    suite_source: str
    suite_sha256: str
    suite_known_as: str | None
    prompts: int
    classifier: str
    strategies: Sequence[str]
    models: Sequence[ModelInfo]
    seed: int
    batch_size: int
    thresholds: str | None
    gate: Gate
    unsafe_responses: str = "redacted"  # or "full"
    created: str = ""  # ISO 8601, UTC
    warnings: Sequence[str] = field(default_factory=tuple)
