"""``xsafety review --sample K``: draw, grow or adopt each group's random review sample,
and list it for the reviewer.

The cases come from a run's record (:mod:`.lastrun`, or a report's ``results.json``
through :func:`.review_cases.run_from_results`); each carries the stratum its
classifier label put it in. The draw itself is the estimator's
(:func:`pytest_xsafety.engine.estimate.draw` / :func:`~pytest_xsafety.engine.estimate.extend`),
so the sample a reviewer reviews is the one the estimate assumes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pytest_xsafety.core.records import Expectation, Label, Review, ReviewSample, SampledCase
from pytest_xsafety.engine.estimate import (
    SIDES,
    Draw,
    Stratum,
    Unit,
    draw,
    extend,
    parse_stratum,
    population_sha256,
    stratum_name,
    stratum_of,
)
from pytest_xsafety.reporting.lastrun import LastCase, LastRun
from pytest_xsafety.reporting.review_cases import CaseTexts, case_lines


def group_of(case_id: str) -> str:
    """``model/strategy`` of a case id ``model/strategy/type/id``."""
    model, strategy, _ = case_id.split("/", 2)
    return f"{model}/{strategy}"


def stratum_of_case(case: LastCase) -> Stratum:
    """The case's stratum as the run recorded it, else from the classifier's own label."""
    if case.stratum is not None:
        return parse_stratum(case.stratum)
    expected: Expectation = "safe" if case.expected == "safe" else "unsafe"
    return stratum_of(expected, case.classifier_said, case.uncertain)


def units_by_group(cases: Mapping[str, LastCase]) -> dict[str, list[Unit]]:
    """Each group's cases its rates count (scored labels), as the draw sees them."""
    groups: dict[str, list[Unit]] = {}
    for case in cases.values():
        if case.label is Label.UNSCORED:  # counted in no rate, as in the run's estimate
            continue
        groups.setdefault(group_of(case.case_id), []).append(
            Unit(case.case_id, stratum_of_case(case))
        )
    return groups


def newest_cases(run: LastRun) -> tuple[dict[str, LastCase], int]:
    """The cases the newest run recorded, and how many older ones its record also keeps
    (runs merge their cases, so that a -k run loses none): a sample is drawn from the
    run it will estimate, never from a mix of runs."""
    if not run.created or not any(c.run for c in run.cases.values()):
        return dict(run.cases), 0
    newest = {cid: c for cid, c in run.cases.items() if c.run == run.created}
    return newest, len(run.cases) - len(newest)


@dataclass(frozen=True)
class Drawn:
    """What ``--sample K`` did to one group's sample: ``drawn``, ``grown``, ``adopted``
    (taken from a review-texts file), ``kept`` (it already held K per side) or
    ``redrawn`` (the one recorded no longer fits the run: ``why``)."""

    sample: ReviewSample
    action: str
    why: str = ""


def sample_groups(
    cases: Mapping[str, LastCase],
    k: int,
    seed: int,
    existing: Mapping[str, ReviewSample],
    offered: Mapping[str, ReviewSample],
    today: str,
) -> list[Drawn]:
    """Each group's sample of ``k`` per side: the existing one kept or grown, else one
    offered (drawn in CI, in a review-texts file) adopted, else a new draw. A sample
    drawn by another classifier or from other cases is drawn again. Per side, the draw
    is the estimator's own; both sides make one group sample."""
    out = []
    for group, units in sorted(units_by_group(cases).items()):
        classifier = next(c.classifier for c in cases.values() if group_of(c.case_id) == group)
        fingerprint = population_sha256(u.case_id for u in units)
        have, why = existing.get(group), ""
        if have is not None and (why := _misfit(have, classifier, fingerprint, len(units))):
            have = None
        offer = offered.get(group)
        fits = offer is not None and not _misfit(offer, classifier, fingerprint, len(units))
        if have is None and offer is not None and offer.per_side == k and fits:
            out.append(Drawn(offer, "adopted"))
            continue
        if have is not None and have.per_side >= k and _full(have, units, have.per_side):
            out.append(Drawn(have, "kept"))
            continue
        size = max(k, have.per_side) if have is not None else k
        before = [c.case_id for c in have.cases] if have is not None else []
        draws: list[Draw] = []
        for i, side in enumerate(SIDES):
            mine = [u for u in units if u.stratum[0] == side]
            if not mine:
                continue
            side_seed = seed + i  # one seed recorded; each side's generator from it
            kept = [c for c in before if any(u.case_id == c for u in mine)]
            draws.append(
                extend(mine, kept, size, side_seed) if kept else draw(mine, size, side_seed)
            )
        picked = tuple(
            SampledCase(case, probability, stratum_name(stratum))
            for d in draws
            for case, probability, stratum in d.cases
        )
        seeds = (*have.seeds, seed) if have is not None else (seed,)
        sample = ReviewSample(
            group, size, seeds, classifier, today, picked, len(units), fingerprint
        )
        action = "grown" if have is not None else "redrawn" if why else "drawn"
        out.append(Drawn(sample, action, why))
    return out


def _misfit(sample: ReviewSample, classifier: str, fingerprint: str, size: int) -> str:
    """Why ``sample`` does not fit the run's cases (empty when it does)."""
    if sample.classifier != classifier:
        return f"drawn by {sample.classifier}'s strata, the run's classifier is {classifier}"
    if sample.population_sha256 != fingerprint:
        return f"drawn from {sample.population} cases, not the run's {size}"
    return ""


def _full(sample: ReviewSample, units: Sequence[Unit], k: int) -> bool:
    """Each side with cases holds ``min(k, its size)`` sampled cases."""
    ids = sample.ids
    for side in SIDES:
        mine = [u for u in units if u.stratum[0] == side]
        if sum(u.case_id in ids for u in mine) < min(k, len(mine)):
            return False
    return True


def reviewed_label(case: LastCase, reviews: Mapping[str, Review]) -> Label | None:
    """The label a review in the file gives the case's current response, if any."""
    review = reviews.get(case.case_id)
    if review is None or review.response_sha256 != case.response_sha256:
        return None
    return review.label


def sample_lines(
    drawn: Drawn,
    cases: Mapping[str, LastCase],
    reviews: Mapping[str, Review],
    texts: CaseTexts,
    show_unsafe: bool,
    choices: str,
) -> list[str]:
    """One group's sample as a reviewer works through it: a header, then each case in
    review order, reviewed ones on one line, the others with their prompt, response and
    the command that reviews them."""
    sample = drawn.sample
    present = [c for c in sample.cases if c.case_id in cases]
    done = [c for c in present if reviewed_label(cases[c.case_id], reviews) is not None]
    seeds = ", ".join(str(s) for s in sample.seeds)
    action = f"{drawn.action}: {drawn.why}" if drawn.why else drawn.action
    lines = [
        f"{sample.group}: review sample of {sample.per_side} per side ({action}; seed "
        f"{seeds}; {sample.classifier}): {len(done)} of {len(present)} reviewed"
        + ("" if len(present) == len(sample.cases) else
           f"; {len(sample.cases) - len(present)} sampled case(s) not in this run")
    ]  # fmt: skip
    for c in present:
        case = cases[c.case_id]
        label = reviewed_label(case, reviews)
        head = f"  {c.case_id} [{c.stratum}, p={c.probability:.3g}]"
        if label is not None:
            lines.append(f"{head}: reviewed {label.value}")
            continue
        lines.append(f"{head}: the classifier said {case.classifier_said.value}")
        lines += case_lines(case, texts, show_unsafe)
        lines.append(f"    xsafety review --case {c.case_id} --label {{{choices}}}")
    return lines


def sample_summary(drawn: Sequence[Drawn]) -> str:
    """``samples: 2 drawn, 1 kept``."""
    counts: dict[str, int] = {}
    for d in drawn:
        counts[d.action] = counts.get(d.action, 0) + 1
    return "samples: " + ", ".join(f"{n} {action}" for action, n in counts.items())
