"""Suite stage: validation errors name file and row, sampling, hashes, resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_xsafety.core.text import sha256_file
from pytest_xsafety.setup.suites import (
    XSTEST_SHA256,
    SuiteError,
    load_suite,
    parse_suite,
)


def test_xstest_v2_loads_with_known_hash(xstest_csv: Path) -> None:
    suite = parse_suite(xstest_csv, name="xstest")
    assert suite.sha256 == XSTEST_SHA256
    assert suite.known_as == "XSTest v2"
    assert suite.hash_warning is None
    assert len(suite.prompts) == 450
    assert sum(p.label == "safe" for p in suite.prompts) == 250
    assert all(p.label == "unsafe" for p in suite.prompts if p.type.startswith("contrast_"))
    assert len({p.type for p in suite.prompts}) == 18


def test_sample_takes_first_ids_of_each_type(xstest_csv: Path) -> None:
    suite = parse_suite(xstest_csv)
    one = suite.sample(1)
    assert len(one.prompts) == 18
    for p in one.prompts:
        same_type = [int(q.id) for q in suite.prompts if q.type == p.type]
        assert int(p.id) == min(same_type)
    assert len(suite.sample(2).prompts) == 36
    assert suite.sample(None) is suite


def test_sample_orders_ids_numerically(tmp_path: Path) -> None:
    from tests.helpers import write_suite

    path = write_suite(tmp_path / "s.csv", [("10", "a b", "t", "safe"), ("9", "c d", "t", "safe")])
    assert [p.id for p in parse_suite(path).sample(1).prompts] == ["9"]


def test_changed_xstest_copy_is_flagged(tmp_path: Path, xstest_csv: Path) -> None:
    changed = tmp_path / "xstest_prompts.csv"
    changed.write_text(xstest_csv.read_text() + "\n")  # one extra byte changes the hash
    suite = load_suite(str(changed), tmp_path)
    assert suite.sha256 == sha256_file(changed) != XSTEST_SHA256
    assert suite.hash_warning is not None
    assert "not XSTest v2" in suite.hash_warning


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("id,prompt,type,label\n1,a,t,safe\n", "missing column(s) focus, note"),
        ("id,prompt,type,label,focus,note\n", "no prompts"),
        ("id,prompt,type,label,focus,note\n1,a,t,safe,,\n1,b,t,safe,,\n", ":3: duplicate id '1'"),
        ("id,prompt,type,label,focus,note\n1,a,t,maybe,,\n", ":2: label 'maybe'"),
        ("id,prompt,type,label,focus,note\n1,,t,safe,,\n", ":2: empty prompt"),
        ("id,prompt,type,label,focus,note\n1 2,a,t,safe,,\n", "may only use letters"),
    ],
)
def test_bad_suites_name_file_and_row(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(SuiteError, match="bad.csv") as info:
        parse_suite(path)
    assert message in str(info.value)


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="does not exist.*--xsafety-suite"):
        load_suite(str(tmp_path / "nope.csv"), tmp_path)


def test_xstest_by_name_uses_cache_then_download(tmp_path: Path, xstest_csv: Path) -> None:
    calls: list[Path] = []

    def fake_download(dest: Path) -> Path:
        calls.append(dest)
        dest.mkdir(parents=True)
        target = dest / "xstest_prompts.csv"
        target.write_bytes(xstest_csv.read_bytes())
        return target

    first = load_suite("xstest", tmp_path, download=fake_download)
    second = load_suite("xstest", tmp_path, download=fake_download)
    assert len(calls) == 1  # the second load came from the cache
    assert first.sha256 == second.sha256 == XSTEST_SHA256
    assert first.name == "xstest"


def test_download_failure_is_a_clear_error(tmp_path: Path) -> None:
    def offline(dest: Path) -> Path:
        raise SuiteError("Hub download failed: offline. Pass --xsafety-suite PATH")

    with pytest.raises(SuiteError, match="--xsafety-suite"):
        load_suite("xstest", tmp_path, download=offline)


def test_unknown_suite_name(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="unknown suite 'advbench'"):
        load_suite("advbench", tmp_path)
