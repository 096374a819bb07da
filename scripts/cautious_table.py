"""The README's "What the gate catches" table, measured: run the cautious-deployment
example and print, per strategy, the rates and the safe-refusal budget lines.

Runs ``pytest examples/cautious-deployment`` (SmolLM2 under the over-cautious
``strict`` system prompt and its mitigations, see that folder's pyproject.toml) with
a report, then prints a markdown table from its ``results.json``, the budget each
strategy breaches or holds, the command and its wall time. Responses come from the
response cache when present, so a rerun after a full run takes seconds.

    PYTHONPATH=. python scripts/cautious_table.py [--sample 2] [--suite CSV] \
        [--project DIR] [--report DIR] [-- EXTRA PYTEST ARGS]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SUITE = REPO.parent / "shared" / "data" / "xstest" / "xstest_prompts.csv"
DEFAULT_PROJECT = REPO / "examples" / "cautious-deployment"
# Contrast pairs (issue 17): each safe prompt with its unsafe twin, from results.json.
PAIR_COLUMNS = "XSTest pairs: calibrated / over-cautious / over-compliant / inverted"
NO_PAIRS = "n/a (no pair in the run)"


def rate(r: Mapping[str, Any]) -> str:
    if not r["total"]:
        return "n/a"
    return f"{100 * r['hits'] / r['total']:.1f}% ({r['hits']}/{r['total']})"


def pairs(g: Mapping[str, Any]) -> str:
    """A group's pair outcomes: ``1 / 7 / 0 / 0 (of 8)``."""
    p = g.get("pairs")
    if not p or not p["pairs"]:
        return NO_PAIRS
    counts = (p["calibrated"], p["over_cautious"], p["over_compliant"], p["inverted"])
    return f"{' / '.join(map(str, counts))} (of {p['pairs']})"


def table_lines(doc: Mapping[str, Any]) -> list[str]:
    """One markdown row per model x strategy of a ``results.json`` document."""
    several = len({g["model"] for g in doc["groups"]}) > 1
    lines = [
        f"| strategy | safe refusal | unsafe compliance | {PAIR_COLUMNS} |",
        "| --- | --- | --- | --- |",
    ]
    for g in doc["groups"]:
        name = f"{g['model']}/{g['strategy']}" if several else g["strategy"]
        lines.append(
            f"| {name} | {rate(g['safe_refusal'])} | {rate(g['unsafe_compliance'])} | {pairs(g)} |"
        )
    return lines


def budget_lines(doc: Mapping[str, Any]) -> list[str]:
    """Each safe-refusal budget: the breach as the run reported it, or that it holds."""
    lines = []
    for g in doc["groups"]:
        for c in g["checks"]:
            if c["metric"] != "safe_refusal" or c["limit"] is None:
                continue
            where = f"{g['model']}/{g['strategy']}" + (
                "" if c["scope"] is None else f" [type {c['scope']}]"
            )
            if c["breached"]:
                lines.append(
                    next(b for b in doc["verdict"]["breaches"] if b.startswith(where + ":"))
                )
            else:
                lines.append(
                    f"{where}: safe refusal {rate(c)} <= budget {100 * c['limit']:.1f}%: holds"
                )
    return lines


def shown(path: Path) -> str:
    """``path`` as typed from the repository root: relative when it is in the
    repository or beside it (``../shared``), else absolute."""
    if path.is_relative_to(REPO.parent):
        return os.path.relpath(path, REPO)
    return str(path)


def run(
    project: Path, suite: Path, sample: int | None, report: Path, extra: Sequence[str], temp: bool
) -> str:
    """Run the example from the repository root; return the command and its wall time
    (without the report option when the report goes to a temporary directory)."""
    args = [shown(project), f"--xsafety-suite={shown(suite)}"]
    args += [f"--xsafety-sample={sample}"] if sample else []
    args += [*extra, "-p", "no:cacheprovider", "-q"]
    report_arg = f"--xsafety-report={report}"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *args, report_arg],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    secs = time.perf_counter() - t0
    if proc.returncode not in (0, 1) or not (report / "results.json").is_file():
        sys.exit(f"pytest exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    args += [] if temp else [report_arg]
    return f"pytest {shlex.join(args)}  # exit {proc.returncode}, {secs:.1f} s"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, help="prompts per type (default: all)")
    parser.add_argument("--suite", type=Path, default=DEFAULT_SUITE)
    parser.add_argument("--project", type=Path, default=DEFAULT_PROJECT)
    parser.add_argument("--report", type=Path, help="keep the report here (default: a temp dir)")
    parser.add_argument("extra", nargs="*", help="more pytest arguments, after --")
    a = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        report = a.report or Path(tmp) / "report"
        command = run(
            a.project.absolute(), a.suite.absolute(), a.sample, report, a.extra, a.report is None
        )
        doc = json.loads((report / "results.json").read_text(encoding="utf-8"))
    print(command)
    print()
    print("\n".join(table_lines(doc)))
    print()
    print("\n".join(budget_lines(doc)))


if __name__ == "__main__":
    main()
