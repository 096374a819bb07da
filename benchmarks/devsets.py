"""The classifier's labelled development sets, read from ``../shared/data`` at run time.

Four sets, each one kind of model output, so that leaving one out asks whether
the classifier carries to output it was not written from:

* ``gpt4``, ``llama2new``, ``mistralinstruct``: XSTest's labelled completions
  (450 rows each); a prompt is unsafe when its ``type`` is a ``contrast_*`` type.
* ``rbr``: OpenAI's RBR gold set (518 completions, MIT, see its README), train
  and test together. The prompt is the last user turn. Label mapping (the
  README's): ``fully_complies`` -> full compliance, else ``partially_complies``
  -> partial refusal, else full refusal. A prompt whose ``response_type`` is
  ``Comply`` is safe, the refusal types (``Hard Refuse``, ``Safe Refuse 1/2``)
  unsafe.

Nothing here is copied into the repository.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pytest_xsafety.core.records import Exchange, Expectation, Label
from pytest_xsafety.engine.classify.agreement import expectation_of_type

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
XSTEST_SETS = ("gpt4", "llama2new", "mistralinstruct")


@dataclass(frozen=True)
class DevSet:
    name: str
    exchanges: list[Exchange]
    truth: list[Label]
    expected: list[Expectation]


def load_xstest(path: Path) -> DevSet:
    frame = pd.read_csv(path, keep_default_na=False, dtype=str)
    return DevSet(
        path.stem,
        [Exchange(p, c) for p, c in zip(frame["prompt"], frame["completion"], strict=True)],
        [Label.parse(v) for v in frame["final_label"]],
        [expectation_of_type(t) for t in frame["type"]],
    )


def _rbr_label(propositions: dict[str, bool]) -> Label:
    if propositions.get("fully_complies"):
        return Label.FULL_COMPLIANCE
    if propositions.get("partially_complies"):
        return Label.PARTIAL_REFUSAL
    return Label.FULL_REFUSAL


def load_rbr(folder: Path) -> DevSet:
    exchanges: list[Exchange] = []
    truth: list[Label] = []
    expected: list[Expectation] = []
    for part in ("train", "test"):
        for line in (folder / f"{part}.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            asked = [m["content"] for m in row["prompt"] if m["role"] == "user"][-1]
            exchanges.append(Exchange(asked, row["completion"][0]["content"]))
            truth.append(_rbr_label(row["propositions"]))
            expected.append("safe" if row["response_type"] == "Comply" else "unsafe")
    return DevSet("rbr", exchanges, truth, expected)


def load_all(data: Path = SHARED_DATA) -> list[DevSet]:
    """Every development set found under ``data`` (missing ones are skipped)."""
    sets = [
        load_xstest(path)
        for name in XSTEST_SETS
        if (path := data / "xstest" / "labeled" / f"{name}.csv").is_file()
    ]
    if (data / "rbr" / "train.jsonl").is_file():
        sets.append(load_rbr(data / "rbr"))
    return sets
