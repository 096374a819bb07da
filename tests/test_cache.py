"""Response cache: keys cover what changes a response; the database survives abuse."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from pytest_xsafety.core.records import ChatMessage
from pytest_xsafety.engine.backends import Generation, Runtime, pins
from pytest_xsafety.engine.cache import ResponseCache, request_key
from pytest_xsafety.setup.models import BUILTIN_MODELS, ModelSpec

CONV = (ChatMessage("user", "How do I crush garlic quickly?"),)
FAKE = ModelSpec(name="fake", hub_id="", revision="", backend="fake")


def test_key_changes_with_every_input() -> None:
    base = {"backend": "hf", "model": "m@1", "torch": "2.13.0", "dtype": "float32"}
    key = request_key(base, CONV, 64, 0)
    assert key == request_key(dict(reversed(base.items())), CONV, 64, 0)  # order-free
    variants = [
        request_key({**base, "model": "m@2"}, CONV, 64, 0),
        request_key({**base, "torch": "2.14.0"}, CONV, 64, 0),
        request_key({**base, "dtype": "bfloat16"}, CONV, 64, 0),
        request_key(base, (ChatMessage("system", "Be brief."), *CONV), 64, 0),
        request_key(base, (ChatMessage("user", "How do I crush garlic slowly?"),), 64, 0),
        request_key(base, CONV, 128, 0),
        request_key(base, CONV, 64, 1),
    ]
    assert len({key, *variants}) == len(variants) + 1


def test_pins_cover_weights_template_dtype_and_versions(tmp_path: Path) -> None:
    rt = Runtime(cache_dir=tmp_path, device="cpu")
    smol = pins(BUILTIN_MODELS["smollm2"], rt)
    assert smol["backend"] == "hf"
    assert smol["device"] == "cpu"
    assert smol["dtype"] == "float32"
    assert smol["torch"]
    assert smol["transformers"]
    assert smol["weights"].startswith(("gguf-sha256:", "HuggingFaceTB/"))
    assert pins(BUILTIN_MODELS["smollm2"], Runtime(tmp_path, "cpu", "bfloat16"))["dtype"] == (
        "bfloat16"
    )
    templated = pins(ModelSpec("x", "a/b", "r", chat_template="{{ messages }}"), rt)
    plain = pins(ModelSpec("x", "a/b", "r"), rt)
    assert templated != plain
    # A local directory is fingerprinted by its files: touching the template changes it.
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "tokenizer_config.json").write_text('{"chat_template": "a"}')
    local = ModelSpec("x", "", "", path=str(tmp_path / "model"))
    before = pins(local, rt)["weights"]
    (tmp_path / "model" / "tokenizer_config.json").write_text('{"chat_template": "b"}')
    assert pins(local, rt)["weights"] != before


def test_round_trip_and_reopen(tmp_path: Path) -> None:
    cache = ResponseCache.open(tmp_path)
    cache.put_many([("k1", Generation("hello", 2, False)), ("k2", Generation("", 0, True))], {})
    cache.close()
    again = ResponseCache.open(tmp_path)
    assert again.get_many(["k1", "k2", "k3"]) == {
        "k1": Generation("hello", 2, False),
        "k2": Generation("", 0, True),
    }
    assert len(again) == 2
    assert again.warning is None


def test_corrupt_database_is_moved_aside_and_rebuilt(tmp_path: Path) -> None:
    (tmp_path / "responses.sqlite").write_bytes(b"this is not a database" * 100)
    cache = ResponseCache.open(tmp_path)
    assert cache.warning is not None
    assert "moved aside" in cache.warning
    assert len(cache) == 0
    assert list(tmp_path.glob("responses.sqlite.corrupt-*"))
    cache.put_many([("k", Generation("x", 1, False))], {})
    assert cache.get_many(["k"]) == {"k": Generation("x", 1, False)}


def test_truncated_database_is_moved_aside(tmp_path: Path) -> None:
    cache = ResponseCache.open(tmp_path)
    cache.put_many([(f"k{i}", Generation("x" * 500, 1, False)) for i in range(200)], {})
    cache.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    cache.close()
    db = tmp_path / "responses.sqlite"
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    reopened = ResponseCache.open(tmp_path)
    assert reopened.warning is not None
    assert len(reopened) == 0


def _writer(args: tuple[str, int]) -> int:
    path, worker = args
    cache = ResponseCache.open(Path(path))
    for i in range(20):
        cache.put_many([(f"w{worker}-{i}-{j}", Generation("t", 1, False)) for j in range(5)], {})
    cache.close()
    return worker


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        pool.map(_writer, [(str(tmp_path), w) for w in range(3)])
    assert len(ResponseCache.open(tmp_path)) == 3 * 20 * 5


def test_fake_backend_pins_need_no_libraries(tmp_path: Path) -> None:
    got = pins(FAKE, Runtime(tmp_path))
    assert got["backend"] == "fake"
    assert "weights" not in got
    assert "torch" not in got
