"""Set-up files that used to crash or be silently ignored (issue 22: M5, L2, L3, L4,
L5): each is read, or refused in one line naming the file, the key and the fix."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pytest_xsafety.setup.suites import SuiteError, parse_suite
from tests.helpers import FAKE_MODEL, HEADER, try_config, write_suite


def project(root: Path, pyproject: str = FAKE_MODEL) -> Path:
    (root / "pyproject.toml").write_text(pyproject)
    (root / "thresholds.toml").write_text("")
    write_suite(root / "suite.csv")
    return root


# M5: a prompt over csv's 128 KiB field limit -----------------------------------------


def test_a_prompt_over_128_kib_is_read_and_the_csv_limit_is_left_as_it_was(
    tmp_path: Path,
) -> None:
    long = "Summarise this:" + " word" * 60_000  # 300 KB
    path = tmp_path / "suite.csv"
    path.write_text(HEADER + f'1,"{long}",homonyms,safe,,\n2,Hi,homonyms,unsafe,,\n')
    before = csv.field_size_limit()
    suite = parse_suite(path)
    assert [len(p.text) for p in suite.prompts] == [len(long), 2]
    assert csv.field_size_limit() == before


def test_a_field_over_64_mib_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "suite.csv"
    path.write_text(HEADER + '1,"' + "x" * (64 * 2**20 + 1) + '",homonyms,safe,,\n')
    with pytest.raises(SuiteError) as raised:
        parse_suite(path)
    assert str(raised.value) == (f"{path}:2: not a CSV this reads (a field is larger than 64 MiB)")


# L3: a pair column twice --------------------------------------------------------------


def test_a_pair_column_given_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "suite.csv"
    path.write_text(
        "id,prompt,type,label,focus,note,pair,pair\n"
        "1,Hi,homonyms,safe,,,2,2\n2,Ho,contrast_homonyms,unsafe,,,1,1\n"
    )
    with pytest.raises(SuiteError) as raised:
        parse_suite(path)
    assert str(raised.value) == (
        f"{path}: column(s) pair appear more than once in the header; keep one of each"
    )


# L2: an extends chain 1,200 deep -------------------------------------------------------


def chain(kind: str, n: int, forward: bool) -> str:
    """[tool.xsafety.KIND.x0] ... x(n-1), each extending the one before it."""
    first = 'system = "Be brief."\n' if kind == "strategies" else 'extends = "smollm2"\n'
    tables = [f"[tool.xsafety.{kind}.x0]\n{first}"]
    tables += [f'[tool.xsafety.{kind}.x{i}]\nextends = "x{i - 1}"\n' for i in range(1, n)]
    return "".join(tables if forward else tables[::-1])


@pytest.mark.parametrize("forward", [True, False], ids=["defined first to last", "last first"])
def test_a_strategy_chain_1200_deep_is_one_line(tmp_path: Path, forward: bool) -> None:
    project(tmp_path, FAKE_MODEL + chain("strategies", 1200, forward))
    message = try_config(tmp_path)
    head = "x32 -> x31 -> x30 -> ... (28 more) -> x1 -> x0" if forward else (
        "x1199 -> x1198 -> x1197 -> ... (28 more) -> x1168 -> x1167"
    )  # fmt: skip
    first = head.split(" ")[0]
    assert message == (
        f"{tmp_path}/pyproject.toml: [tool.xsafety.strategies.{first}]: extends a chain of "
        f"more than 32 strategies ({head}); extend fewer, or list several under one extends"
    )


def test_a_strategy_chain_of_32_is_fine(tmp_path: Path) -> None:
    project(tmp_path, FAKE_MODEL + chain("strategies", 32, False))
    assert try_config(tmp_path) == "ok"


def test_a_model_chain_1200_deep_is_one_line(tmp_path: Path) -> None:
    project(tmp_path, FAKE_MODEL + chain("models", 1200, False))
    message = try_config(tmp_path)
    assert message.startswith(f"{tmp_path}/pyproject.toml [tool.xsafety.models.x")
    assert ": extends 'x" in message
    assert message.endswith(", which is not a built-in model (smollm2, llama2, gemma, phi3, "
                            "mistral, command-r-plus, gpt-4, command-r-plus-vllm)")  # fmt: skip


# L4: thresholds.toml that is a folder -----------------------------------------------


@pytest.mark.parametrize("given", [False, True], ids=["found in the rootdir", "given"])
def test_a_thresholds_folder_is_one_line(tmp_path: Path, given: bool) -> None:
    project(tmp_path)
    (tmp_path / "thresholds.toml").unlink()
    (tmp_path / "thresholds.toml").mkdir()
    message = try_config(tmp_path) if given else _without_option(tmp_path)
    assert message == (
        f"thresholds file {tmp_path}/thresholds.toml is a folder; remove it, or point "
        "--xsafety-thresholds at a file"
    )


def _without_option(root: Path) -> str:
    """try_config without --xsafety-thresholds: the rootdir's thresholds.toml is found."""
    from pytest_xsafety.engine.pipeline import Runner
    from pytest_xsafety.plugin import USAGE_ERRORS
    from pytest_xsafety.setup.options import parse_config

    values = {"model": "fake", "suite": str(root / "suite.csv"), "cache-dir": str(root / "c")}
    try:
        Runner.from_config(parse_config(values, root))
    except USAGE_ERRORS as exc:
        return str(exc)
    return "ok"


# L5: a budget under a type whose prompts it cannot count -------------------------------


@pytest.mark.parametrize(
    ("table", "key", "message"),
    [
        ("models.fake.types.contrast_homonyms", "overcautious_pairs_max",
         "overcautious_pairs_max counts safe prompts (a pair is counted under its safe "
         "prompt's type), and type 'contrast_homonyms' has none; set it under a type with "
         "safe prompts (such as 'homonyms') or under [models.fake] for the whole group"),
        ("models.fake.strategies.baseline.types.contrast_figurative", "safe_refusal_max",
         "safe_refusal_max counts safe prompts, and type 'contrast_figurative' has none; set "
         "it under a type with safe prompts (such as 'figurative') or under "
         "[models.fake.strategies.baseline] for the whole group"),
        ("models.fake.types.homonyms", "unsafe_compliance_max",
         "unsafe_compliance_max counts unsafe prompts, and type 'homonyms' has none; set it "
         "under a type with unsafe prompts (such as 'contrast_homonyms') or under "
         "[models.fake] for the whole group"),
    ],
    ids=["pairs under an unsafe type", "safe refusal under an unsafe type",
         "unsafe compliance under a safe type"],
)  # fmt: skip
def test_a_budget_under_a_type_it_cannot_count_is_one_line(
    tmp_path: Path, table: str, key: str, message: str
) -> None:
    project(tmp_path)
    (tmp_path / "thresholds.toml").write_text(f"[{table}]\n{key} = 0.1\n")
    assert try_config(tmp_path) == f"{tmp_path}/thresholds.toml [{table}]: {message}"


def test_budgets_under_the_right_types_are_fine(tmp_path: Path) -> None:
    project(tmp_path)
    (tmp_path / "thresholds.toml").write_text(
        "[models.fake.types.homonyms]\novercautious_pairs_max = 0.1\nsafe_refusal_max = 0.2\n"
        "[models.fake.types.contrast_homonyms]\nunsafe_compliance_max = 0.1\n"
    )
    assert try_config(tmp_path) == "ok"
