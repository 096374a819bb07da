"""The one wire codec: a case's record to and from test-report ``user_properties``.

Each case's test report carries ``xsafety_*`` user properties (strings, so that
they survive xdist and land in JUnit XML as they are). :func:`encode` writes
them on the process that ran the case; :func:`decode` reads them back on the
controller, so a serial run and an xdist run report the same records. Nothing
else reads or writes these names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal, TypeVar

from pytest_xsafety.core.choices import (
    LABEL_SOURCES,
    REVIEW_STATUSES,
    SnapshotStatus,
    Verdict,
)
from pytest_xsafety.core.records import CaseRecord, Label, Response
from pytest_xsafety.core.secrets import scrub
from pytest_xsafety.engine.estimate import Estimate

PROP = "xsafety_"  # prefix of every case property
VERDICTS: tuple[Verdict, ...] = ("pass", "xfail", "fail", "error")
SNAPSHOT_STATUSES: tuple[SnapshotStatus, ...] = ("unchanged", "drift", "flip", "new")
T = TypeVar("T", bound=str)


def encode(r: CaseRecord) -> list[tuple[str, str]]:
    """The record as ``(name, value)`` pairs, every value a string; None is left out."""
    values: list[tuple[str, Any]] = [
        ("model", r.model),
        ("strategy", r.strategy),
        ("prompt_id", r.prompt_id),
        ("type", r.prompt_type),
        ("expected", r.expected),
        ("classifier", r.classifier),
        ("verdict", r.verdict),
        ("error", r.error),
        ("label", r.label),
        ("label_source", r.label_source),
        ("review", r.review),
        ("classifier_label", r.classifier_label),
        ("turns", r.turns),
        ("truncated", r.truncated),
        ("empty", r.empty),
        ("first_label", r.first_label),
        ("uncertain", r.uncertain),
        ("stratum", r.stratum),
        ("cached_baseline", r.cached_baseline),
    ]
    out = [(PROP + name, _text(value)) for name, value in values if value is not None]
    # The properties reach JUnit XML as they are: no secret in an error or an answer.
    props = out + snapshot_properties(r) + response_properties(r.response)
    return [(name, scrub(value)) for name, value in props]


def snapshot_properties(r: CaseRecord) -> list[tuple[str, str]]:
    """The snapshot status alone: it is known only in the test call, after the fixture."""
    if r.snapshot is None:
        return []
    props: list[tuple[str, str]] = [(PROP + "snapshot", r.snapshot)]
    if r.snapshot == "flip":
        props.append((PROP + "snapshot_old_label", r.snapshot_old_label or ""))
    if r.snapshot_changed:
        props.append((PROP + "snapshot_changed", ",".join(r.snapshot_changed)))
    return props


def pair_properties(r: CaseRecord) -> list[tuple[str, str]]:
    """The contrast pair and its outcome: known on the controller only, once both
    sides ran, so they reach JUnit XML after the run (see :mod:`.junit`)."""
    values = (("pair_id", r.pair_id), ("pair_outcome", r.pair_outcome))
    return [(PROP + name, value) for name, value in values if value is not None]


def sample_properties(r: CaseRecord, estimate: Estimate | None) -> list[tuple[str, str]]:
    """Whether the case is in its group's review sample, and the estimated human rate of
    its group's side: known on the controller only, so they reach JUnit XML after the run."""
    props = [] if r.sampled is None else [(PROP + "sampled", _text(r.sampled))]
    if estimate is None:
        return props
    values = (
        ("estimate", f"{estimate.value:.6g}"),
        ("estimate_low", f"{estimate.low:.6g}"),
        ("estimate_high", f"{estimate.high:.6g}"),
        ("estimate_reviewed", str(estimate.reviewed)),
        ("estimate_method", estimate.method),
    )
    return props + [(PROP + name, value) for name, value in values]


def response_properties(response: Response | None) -> list[tuple[str, str]]:
    if response is None:
        return []
    # A withheld text (redacted, or no report) is left out rather than sent empty.
    text = [] if response.redacted and not response.text else [(PROP + "response", response.text)]
    return [
        *text,
        (PROP + "response_sha256", response.sha256),
        *([] if response.chars is None else [(PROP + "response_chars", str(response.chars))]),
        (PROP + "response_redacted", _text(response.redacted)),
    ]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Label):
        return value.value
    return str(value)


def decode(props: Mapping[str, Any]) -> CaseRecord | None:
    """The record a report's ``user_properties`` describe, or None if not a case."""
    if PROP + "model" not in props:
        return None

    def get(name: str) -> str | None:
        value = props.get(PROP + name)
        return None if value is None else str(value)

    error = get("error")
    record = CaseRecord(
        model=str(get("model")),
        strategy=str(get("strategy")),
        prompt_id=str(get("prompt_id")),
        prompt_type=str(get("type")),
        expected="safe" if get("expected") == "safe" else "unsafe",
        classifier=get("classifier") or "",
        verdict=_choice(get("verdict") or ("error" if error else ""), VERDICTS),
        label=_label(get("label")),
        turns=None if get("turns") is None else int(str(get("turns"))),
        first_label=_label(get("first_label")),
        truncated=_bool(get("truncated")),
        empty=_bool(get("empty")),
        error=error,
        snapshot=_choice(get("snapshot"), SNAPSHOT_STATUSES) or None,
        snapshot_old_label=get("snapshot_old_label"),
        snapshot_changed=tuple(filter(None, (get("snapshot_changed") or "").split(","))),
        cached_baseline=_label(get("cached_baseline")),
        uncertain=_bool(get("uncertain")),
        stratum=get("stratum"),
        label_source=_choice(get("label_source"), LABEL_SOURCES) or None,
        review=_choice(get("review"), REVIEW_STATUSES) or None,
        classifier_label=_label(get("classifier_label")),
    )
    if get("response_sha256") is not None:
        chars = get("response_chars")
        response = Response(
            get("response") or "",
            get("response_sha256") or "",
            get("response_redacted") == "true",
            None if chars is None else int(chars),
        )
        record = replace(record, response=response)
    return record


def _label(value: str | None) -> Label | None:
    return None if value is None else Label.parse(value)


def _bool(value: str | None) -> bool | None:
    return None if value is None else value == "true"


def _choice(value: str | None, choices: tuple[T, ...]) -> T | Literal[""]:
    return next((c for c in choices if c == value), "")
