"""Option parsing: one frozen config, clear errors naming the option."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_xsafety.setup.options import OPTIONS, ConfigError, parse_config


def test_defaults_and_lists(tmp_path: Path) -> None:
    cfg = parse_config({"model": "a, b,a", "strategy": None}, tmp_path)
    assert cfg.models == ("a", "b")
    assert cfg.strategies == ("baseline",)
    assert (cfg.suite, cfg.classifier, cfg.batch_size, cfg.seed) == ("xstest", "default", 32, 0)
    assert cfg.sample is None
    assert cfg.thresholds is None
    assert cfg.backend is None
    assert parse_config({"model": "a", "backend": "openai"}, tmp_path).backend == "openai"
    assert (cfg.snapshot_dir, cfg.drift, cfg.snapshot_unsafe) == (
        tmp_path / "snapshots", "label", "redacted",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"sample": "1"}, "without --xsafety-model"),
        ({"model": "m", "sample": "0"}, "--xsafety-sample=0: must be at least 1"),
        ({"model": "m", "sample": "-2"}, "--xsafety-sample=-2: must be at least 1"),
        ({"model": "m", "sample": "a few"}, "--xsafety-sample='a few': not a whole number"),
        ({"model": "m", "batch-size": "0"}, "--xsafety-batch-size=0"),
        ({"model": "m", "dtype": "fp8"}, "--xsafety-dtype='fp8'"),
        ({"model": "m", "device": "tpu"}, "--xsafety-device='tpu'"),
        (
            {"model": "m", "backend": "tgi"},
            "--xsafety-backend='tgi': use one of hf, vllm, openai, fake",
        ),
        ({"model": " , "}, "--xsafety-model: give at least one name"),
        ({"model": "m", "classifier": "judge"}, "needs a judge model: add --xsafety-judge-model"),
        ({"model": "m", "drift": "labels"}, "--xsafety-drift='labels': use label or text"),
        ({"model": "m", "snapshot-unsafe": "none"}, "use full or redacted"),
        ({"model": "m", "gate": "lower"}, "--xsafety-gate='lower': use point, upper or estimate"),
        ({"model": "m", "report-unsafe": "some"}, "--xsafety-report-unsafe='some'"),
        ({"model": "m", "baseline": "/nowhere/results.json"}, "--xsafety-baseline=/nowhere/"),
    ],
)
def test_bad_values(tmp_path: Path, values: dict[str, str | None], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(values, tmp_path)
    assert message in str(info.value)


def test_every_option_is_documented_in_readme() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for opt in OPTIONS:
        assert f"`{opt.flag}" in readme, opt.flag


def test_judge_model(tmp_path: Path) -> None:
    cfg = parse_config({"model": "m", "classifier": "judge", "judge-model": "j"}, tmp_path)
    assert (cfg.classifier, cfg.judge_model) == ("judge", "j")


def test_default_batch_size_is_larger_on_cuda(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pytest_xsafety.setup.options as config

    def batch(**values: str) -> int:
        return parse_config({"model": "m", **values}, tmp_path).batch_size

    assert batch(device="cpu") == 32
    # On CUDA, a whole XSTest group (450 prompts) in one batch.
    assert batch(device="cuda") == batch(device="cuda:1") == 512
    assert batch(device="cuda", **{"batch-size": "8"}) == 8  # given: kept
    monkeypatch.setattr(config, "nvidia_gpu_visible", lambda: True)
    assert batch() == batch(device="auto") == 512
    assert batch(device="cpu") == 32
    monkeypatch.setattr(config, "nvidia_gpu_visible", lambda: False)
    assert batch() == 32
