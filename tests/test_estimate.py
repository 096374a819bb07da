"""Estimated human rates from a review sample (issue 24): strata, allocation, the draw,
the estimate and its interval, "review N more", and the simulation that sizes a review."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_xsafety.core.records import Label
from pytest_xsafety.engine.estimate import (
    Stratum,
    Unit,
    allocate,
    draw,
    estimate,
    extend,
    parse_stratum,
    read_error_rates,
    reviews_needed,
    simulate,
    stratum_name,
    stratum_of,
)
from tests.helpers import SHARED

SURE_ANSWER: Stratum = ("safe", False, False)
UNSURE_ANSWER: Stratum = ("safe", False, True)
SURE_REFUSAL: Stratum = ("safe", True, False)
UNSURE_REFUSAL: Stratum = ("safe", True, True)


def population(
    spec: dict[Stratum, tuple[int, int]],
) -> tuple[list[Unit], dict[str, bool]]:
    """Safe-side units per stratum: (size, how many a person would count as refused)."""
    units, human = [], {}
    for stratum, (size, refused) in spec.items():
        for i in range(size):
            cid = f"m/s/{stratum_name(stratum)}/{i:03d}"
            units.append(Unit(cid, stratum))
            human[cid] = i < refused
    return units, human


def reviewed(
    units: list[Unit], human: dict[str, bool], ids: set[str], sampled: bool = True
) -> list[Unit]:
    return [
        Unit(u.case_id, u.stratum, human[u.case_id], sampled) if u.case_id in ids else u
        for u in units
    ]


# 200 safe prompts: the classifier misses 8 refusals among 160 sure answers (5%).
SPEC = {
    SURE_ANSWER: (160, 8),
    UNSURE_ANSWER: (10, 4),
    SURE_REFUSAL: (20, 18),
    UNSURE_REFUSAL: (10, 6),
}
TRUE_RATE = (8 + 4 + 18 + 6) / 200


def test_strata_follow_the_side_the_label_counts_in() -> None:
    assert stratum_of("safe", Label.FULL_COMPLIANCE, False) == ("safe", False, False)
    assert stratum_of("safe", Label.PARTIAL_REFUSAL, False) == (
        "safe",
        True,
        True,
    )  # partial: unsure
    assert stratum_of("unsafe", Label.PARTIAL_REFUSAL, False) == ("unsafe", False, True)
    assert stratum_of("unsafe", Label.FULL_COMPLIANCE, True) == ("unsafe", True, True)
    assert stratum_of("unsafe", Label.UNSCORED, False) == ("unsafe", False, True)
    assert stratum_name(("unsafe", True, False)) == "unsafe/complied/sure"
    assert stratum_name(("safe", False, True)) == "safe/answered/unsure"
    assert parse_stratum("safe/refused/unsure") == ("safe", True, True)
    with pytest.raises(ValueError, match="unknown stratum 'safe/maybe'"):
        parse_stratum("safe/maybe")


def test_allocation_reviews_every_stratum_and_puts_the_rest_where_errors_are() -> None:
    sizes = {SURE_ANSWER: 160, UNSURE_ANSWER: 10, SURE_REFUSAL: 20, UNSURE_REFUSAL: 1}
    alloc = allocate(sizes, 40)
    assert sum(alloc.values()) == 40
    assert alloc[UNSURE_REFUSAL] == 1  # a stratum of one case: reviewed whole
    assert all(alloc[s] >= 2 for s in (SURE_ANSWER, UNSURE_ANSWER, SURE_REFUSAL))
    # Built-in rates: 7% errors among sure answers, 30% among unsure ones. Per case,
    # the unsure stratum is sampled more densely; by count the large stratum gets most.
    assert alloc[UNSURE_ANSWER] / 10 > alloc[SURE_ANSWER] / 160
    assert alloc[SURE_ANSWER] == max(alloc.values())
    # Asking for more than there is reviews everything; too few for the minimum gives
    # one each to the strata with most expected errors.
    assert allocate(sizes, 500) == sizes
    # 3 strata, one of a single case: the minimum (5) is more than 4, so one each, and
    # the fourth review still goes where it cuts the variance most.
    three = allocate({SURE_ANSWER: 160, SURE_REFUSAL: 20, UNSURE_REFUSAL: 1}, 4)
    assert sum(three.values()) == 4
    assert min(three.values()) == 1
    small = allocate(sizes, 3)
    assert sum(small.values()) == 3
    assert max(small.values()) == 1
    assert small[UNSURE_REFUSAL] == 0


def test_the_draw_is_seeded_stratified_and_records_inclusion_probabilities() -> None:
    units, _ = population(SPEC)
    first, again, other = draw(units, 40, seed=7), draw(units, 40, seed=7), draw(units, 40, seed=8)
    assert first == again
    assert [c for c, _, _ in first.cases] != [c for c, _, _ in other.cases]
    assert len(first.cases) == 40 == len({c for c, _, _ in first.cases})
    alloc = allocate({s: n for s, (n, _) in SPEC.items()}, 40)
    for case, probability, stratum in first.cases:
        assert case.startswith(f"m/s/{stratum_name(stratum)}/")
        assert probability == pytest.approx(alloc[stratum] / SPEC[stratum][0])
    # Listed in a random order, not stratum by stratum.
    names = [stratum_name(s) for _, _, s in first.cases]
    assert names != sorted(names)


def test_no_reviewed_sample_means_no_estimate() -> None:
    units, human = population(SPEC)
    assert estimate(units, "safe") is None
    chosen = reviewed(units, human, {units[0].case_id}, sampled=False)
    assert estimate(chosen, "safe") is None  # reviews a person chose are not a sample


def test_a_full_review_gives_the_exact_rate_and_no_interval() -> None:
    units, human = population(SPEC)
    est = estimate(reviewed(units, human, {u.case_id for u in units}), "safe")
    assert est is not None
    assert est.value == est.low == est.high == pytest.approx(TRUE_RATE)
    assert est.classifier_rate == pytest.approx(30 / 200)
    assert (est.cases, est.reviewed, est.sample, est.known) == (200, 200, 200, 0)


def test_the_estimate_corrects_the_classifier_and_its_interval_covers_the_human_rate() -> None:
    units, human = population(SPEC)
    sample = draw(units, 40, seed=3)
    est = estimate(reviewed(units, human, {c for c, _, _ in sample.cases}), "safe")
    assert est is not None
    assert est.reviewed == est.sample == 40
    assert est.low <= TRUE_RATE <= est.high
    assert 0 < est.width < 0.25
    assert est.method == "stratified review sample, beta-binomial 95% interval"


def test_a_partly_reviewed_sample_gives_a_wider_interval_that_still_covers() -> None:
    units, human = population(SPEC)
    sample = [c for c, _, _ in draw(units, 40, seed=11).cases]
    whole = estimate(reviewed(units, human, set(sample)), "safe")
    half = estimate(reviewed(units, human, set(sample[:20])), "safe")
    assert whole is not None
    assert half is not None
    assert half.reviewed == 20
    assert half.width > whole.width
    assert half.low <= TRUE_RATE <= half.high


def test_an_unreviewed_stratum_leaves_its_cases_open_in_the_interval() -> None:
    units, human = population(SPEC)
    # Review every case but the unsure refusals: those 10 could be anything.
    ids = {u.case_id for u in units if u.stratum != UNSURE_REFUSAL}
    est = estimate(reviewed(units, human, ids), "safe")
    assert est is not None
    known = (8 + 4 + 18) / 200
    assert est.low == pytest.approx(known)
    assert est.high == pytest.approx(known + 10 / 200)


def test_reviews_outside_the_sample_count_exactly_and_are_not_extrapolated() -> None:
    units, human = population(SPEC)
    sample = {c for c, _, _ in draw(units, 40, seed=5).cases}
    base = estimate(reviewed(units, human, sample), "safe")
    # A person also reviews a refused case outside the sample, in the big stratum.
    extra = next(
        u.case_id
        for u in units
        if u.stratum == SURE_ANSWER and human[u.case_id] and u.case_id not in sample
    )
    both = reviewed(reviewed(units, human, sample), human, {extra}, sampled=False)
    est = estimate(both, "safe")
    assert base is not None
    assert est is not None
    assert est.known == 1
    assert est.reviewed == base.reviewed
    # Known exactly: it counts as one case, and the other 159 of its stratum are still
    # estimated at the sample's share (never extrapolated, as a sampled review would be).
    tally = next(t for t in base.strata if t.stratum == SURE_ANSWER)
    share = tally.hits / tally.reviewed
    assert est.value - base.value == pytest.approx((1 - share) / 200)


def test_decisions_against_a_budget_and_review_n_more() -> None:
    units, human = population(SPEC)
    sample = {c for c, _, _ in draw(units, 40, seed=3).cases}
    rev = reviewed(units, human, sample)
    est = estimate(rev, "safe")
    assert est is not None
    assert est.decides(est.low - 0.01) == "breached"
    assert est.decides(est.high) == "holds"
    assert est.decides((est.low + est.high) / 2) == "undecided"
    assert reviews_needed(rev, "safe", est.high + 0.01) == 0
    budget = est.value + 0.02  # close above the estimate: undecided now
    assert est.decides(budget) == "undecided"
    more = reviews_needed(rev, "safe", budget)
    assert 0 < more <= 200 - 40
    # Reviewing everything always decides.
    full = estimate(reviewed(units, human, {u.case_id for u in units}), "safe")
    assert full is not None
    assert full.decides(budget) != "undecided"


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 60), min_size=4, max_size=4),
    shares=st.lists(st.floats(0, 1), min_size=4, max_size=4),
    k=st.integers(1, 80),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_sample_gives_an_interval_inside_zero_one_around_its_estimate(
    sizes: list[int], shares: list[float], k: int, seed: int
) -> None:
    strata = (SURE_ANSWER, UNSURE_ANSWER, SURE_REFUSAL, UNSURE_REFUSAL)
    spec = {s: (n, round(n * p)) for s, n, p in zip(strata, sizes, shares, strict=True) if n}
    units, human = population(spec)
    if not units:
        return
    sample = {c for c, _, _ in draw(units, k, seed).cases}
    est = estimate(reviewed(units, human, sample), "safe")
    assert est is not None
    assert 0 <= est.low <= est.value <= est.high <= 1
    truth = sum(human.values()) / len(units)
    if len(sample) == len(units):
        assert est.low == est.high == pytest.approx(truth)


def test_simulated_reviews_cover_the_human_rate() -> None:
    # The classifier misses 5% of refusals among its sure answers, and over-calls
    # unsafe compliance: what the simulation must see through.
    expected = ["safe"] * 200 + ["unsafe"] * 100
    labels = (
        [Label.FULL_COMPLIANCE] * 170
        + [Label.FULL_REFUSAL] * 30
        + [Label.FULL_COMPLIANCE] * 60
        + [Label.FULL_REFUSAL] * 40
    )
    truth = list(labels)
    for i in range(0, 170, 20):  # 9 refusals the classifier took for answers
        truth[i] = Label.FULL_REFUSAL
    for i in range(200, 220):  # 20 of its 60 "complied" were refusals
        truth[i] = Label.FULL_REFUSAL
    result = simulate(expected, labels, [False] * 300, truth, k=40, repeats=200, seed=1)  # type: ignore[arg-type]
    safe, unsafe = result["safe"], result["unsafe"]
    assert safe.human_rate == pytest.approx(39 / 200)
    assert safe.classifier_rate == pytest.approx(30 / 200)
    assert unsafe.human_rate == pytest.approx(40 / 100)
    assert unsafe.classifier_rate == pytest.approx(60 / 100)
    assert safe.coverage >= 0.9
    assert unsafe.coverage >= 0.9
    # Far better than the classifier alone (4.5 and 20 points off).
    assert safe.mean_abs_error < 0.03
    assert unsafe.mean_abs_error < 0.06
    assert safe.reviews == unsafe.reviews == 40


def test_error_rates_file_is_checked(tmp_path: Path) -> None:
    good = tmp_path / "rates.json"
    good.write_text(json.dumps({"safe/answered/sure": 0.5}))
    assert read_error_rates(good)[("safe", False, False)] == 0.5
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"safe/answered/sure": 2}))
    with pytest.raises(
        ValueError, match="'safe/answered/sure' must be an error rate between 0 and 1"
    ):
        read_error_rates(bad)
    bad.write_text(json.dumps({"sure": 0.1}))
    with pytest.raises(ValueError, match="unknown stratum 'sure'"):
        read_error_rates(bad)


@pytest.mark.slow
def test_simulate_reviews_command_prints_json_and_text(tmp_path: Path) -> None:
    csv = SHARED / "labeled" / "gpt4.csv"
    if not csv.is_file():
        pytest.skip("the XSTest labelled sets are not beside the repository")
    base = [sys.executable, "-m", "pytest_xsafety.cli", "classify", str(csv), "-o", str(tmp_path / "o.csv"),
            "--simulate-reviews", "40", "--repeat", "50"]  # fmt: skip
    done = subprocess.run([*base, "--json"], capture_output=True, text=True, check=True)
    data = json.loads(done.stdout)  # nothing but the JSON object on stdout
    assert set(data) == {"safe", "unsafe"}
    for side in data.values():
        assert set(side) == {
            "human_rate",
            "classifier_rate",
            "mean_abs_error",
            "mean_width",
            "coverage",
            "reviews",
        }
        assert 0 <= side["coverage"] <= 1
        assert side["reviews"] == 40
    # gpt4's human rates: 8.4% of safe prompts refused, 0.5% of unsafe ones complied with.
    assert data["safe"]["human_rate"] == 8.4
    assert data["unsafe"]["human_rate"] == 0.5
    assert "three-class agreement" in done.stderr
    text = subprocess.run(base, capture_output=True, text=True, check=True).stdout
    assert "simulated review: 40 per side, 50 draws, seed 0" in text
    assert "safe (safe refusal, 250 cases): human 8.4%, classifier 8.8% (+0.4 points)" in text
    assert text.strip().splitlines()[-1].startswith("pooled: mean |error| ")


@pytest.mark.slow
def test_simulate_reviews_needs_human_labels_and_types(tmp_path: Path) -> None:
    csv = tmp_path / "x.csv"
    csv.write_text("prompt,completion\nhi,hello\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest_xsafety.cli", "classify", str(csv), "-o", str(tmp_path / "o.csv"),
         "--simulate-reviews", "10"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"xsafety classify: error: {csv}: --simulate-reviews needs human labels ('final_label') "
        "and XSTest's prompt types ('type'); missing: final_label, type"
    )


def test_a_sample_grows_by_random_cases_per_stratum_keeping_its_reviews() -> None:
    units, _ = population(SPEC)
    first = draw(units, 20, seed=1)
    ids = [c for c, _, _ in first.cases]
    grown = extend(units, ids, 40, seed=2)
    grown_ids = [c for c, _, _ in grown.cases]
    assert grown_ids[:20] == ids  # the first draw's cases, in their order, first
    assert len(grown_ids) == len(set(grown_ids)) == 40
    alloc = allocate({s: n for s, (n, _) in SPEC.items()}, 40)
    for _case, probability, stratum in grown.cases:
        assert probability == pytest.approx(alloc[stratum] / SPEC[stratum][0])
    counts = {s: sum(1 for _, _, t in grown.cases if t == s) for s in SPEC}
    assert counts == alloc
    # Growing to what it holds adds nothing.
    assert [c for c, _, _ in extend(units, grown_ids, 40, seed=3).cases] == grown_ids
