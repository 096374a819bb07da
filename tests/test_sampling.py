"""`xsafety review --sample`'s choices without a run: which cases a sample is drawn
from, when it is kept, grown or drawn again, and its command-line checks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_xsafety.cli import main
from pytest_xsafety.core.records import Label
from pytest_xsafety.engine.estimate import population_sha256
from pytest_xsafety.reporting.lastrun import LastCase, LastRun
from pytest_xsafety.reporting.review_cases import CaseTexts, write_review_texts
from pytest_xsafety.reporting.review_sample import newest_cases, sample_groups

C, R = Label.FULL_COMPLIANCE, Label.FULL_REFUSAL


def _case(
    pid: int, safe: bool = True, run: str = "2026-12-04T10:00:00", label: Label = C
) -> LastCase:
    kind = "homonyms" if safe else "contrast_homonyms"
    stratum = "safe/answered/sure" if safe else "unsafe/refused/sure"
    return LastCase(
        f"m/s/{kind}/{pid}", "safe" if safe else "unsafe", label, "classifier", False, "a" * 64,
        10, "default==rules-6", prompt_id=str(pid), stratum=stratum, run=run,
    )  # fmt: skip


def _cases(safe: range, unsafe: range) -> dict[str, LastCase]:
    out = [_case(i) for i in safe] + [_case(i, safe=False, label=R) for i in unsafe]
    return {c.case_id: c for c in out}


def test_a_sample_is_drawn_from_the_newest_run_only() -> None:
    old = [_case(i, run="2026-12-01T00:00:00") for i in range(1, 11)]
    new = [_case(i) for i in range(11, 15)]
    run = LastRun(Path("x"), Path("r.toml"), {c.case_id: c for c in old + new},
                  created="2026-12-04T10:00:00")  # fmt: skip
    cases, older = newest_cases(run)
    assert sorted(cases) == sorted(c.case_id for c in new)
    assert older == 10


def test_a_side_without_sampled_cases_is_grown_not_kept() -> None:
    safe_only = sample_groups(_cases(range(1, 11), range(0)), 3, 1, {}, {}, "d")[0].sample
    # The run now has unsafe cases too: a sample holding none of them is no longer whole.
    cases = _cases(range(1, 11), range(11, 21))
    fingerprint = population_sha256(cases)
    grown_from = type(safe_only)(
        safe_only.group, 3, safe_only.seeds, safe_only.classifier, safe_only.drawn,
        safe_only.cases, 20, fingerprint,
    )  # fmt: skip
    drawn = sample_groups(cases, 3, 2, {"m/s": grown_from}, {}, "d")[0]
    assert drawn.action == "grown"
    ids = [c.case_id for c in drawn.sample.cases]
    assert ids[:3] == [c.case_id for c in safe_only.cases]  # kept, in their order
    assert sum("/contrast_homonyms/" in i for i in ids) == 3
    assert sample_groups(cases, 3, 3, {"m/s": drawn.sample}, {}, "d")[0].action == "kept"


def test_a_sample_that_no_longer_fits_is_drawn_again_saying_why() -> None:
    cases = _cases(range(1, 11), range(11, 21))
    first = sample_groups(cases, 3, 1, {}, {}, "d")[0].sample
    assert (first.population, first.population_sha256) == (20, population_sha256(cases))
    fewer = {k: v for k, v in cases.items() if not k.endswith("/20")}
    again = sample_groups(fewer, 3, 2, {"m/s": first}, {}, "d")[0]
    assert again.action == "redrawn"
    assert again.why == "drawn from 20 cases, not the run's 19"
    assert again.sample.seeds == (2,)


def test_seed_out_of_range_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"suite": {"sha256": "s", "source": "x"}, "cases": []}))
    assert main(["review", "--results", str(results), "--sample", "3", "--seed", "-1"]) == 2
    assert capsys.readouterr().err == (
        "xsafety review: error: --seed -1: use a whole number from 0 to 4294967295\n"
    )


def test_the_texts_file_is_its_owners_even_when_it_was_there(tmp_path: Path) -> None:
    path = tmp_path / "texts.json"
    path.write_text("{}")
    os.chmod(path, 0o644)
    run = LastRun(tmp_path / "r", tmp_path / "x.toml", {})
    write_review_texts(path, {}, {}, CaseTexts(run))
    assert path.stat().st_mode & 0o777 == 0o600
