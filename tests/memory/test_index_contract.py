"""One contract suite for every `VectorIndex` backend: numpy, chroma embedded, chroma server.

The chroma server is the real one, started from the venv's `chroma` CLI for this module.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agentforge.errors import ConfigError, InputError, MemoryStoreError
from agentforge.memory.index import ChromaVectorIndex, NumpyVectorIndex, VectorIndex
from agentforge.memory.index.chroma_index import collection_name

DIM = 32
SERVER_START_TIMEOUT = 60.0


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    """`n` random L2-normalised float32 rows."""
    raw = rng.standard_normal((n, dim)).astype(np.float32)
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


def basis(*indices: int, dim: int = DIM) -> np.ndarray:
    """Rows that are standard basis vectors e_i (structured, exactly known cosines)."""
    out = np.zeros((len(indices), dim), dtype=np.float32)
    out[np.arange(len(indices)), list(indices)] = 1.0
    return out


def exact_top(
    vectors: np.ndarray, ids: list[str], query: np.ndarray, k: int, allowed: set[str]
) -> list[str]:
    scores = vectors @ query
    order = [i for i in np.argsort(-scores) if ids[i] in allowed]
    return [ids[i] for i in order[:k]]


# -- backends ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _heartbeat(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    binary = Path(sys.executable).parent / "chroma"
    if not binary.exists():
        pytest.skip(f"chroma CLI not found at {binary}")
    data = tmp_path_factory.mktemp("chroma-server")
    port = _free_port()
    log_path = data.parent / f"{data.name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(binary), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not _heartbeat(port):
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-500:]
                pytest.skip(f"chroma server exited with {proc.returncode}: {tail}")
            if time.monotonic() > deadline:
                pytest.skip(f"chroma server gave no heartbeat within {SERVER_START_TIMEOUT:.0f} s")
            time.sleep(0.2)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _drop_all(index: VectorIndex) -> None:
    for namespace in await index.namespaces():
        await index.drop_namespace(namespace)


@pytest.fixture(
    params=[
        "numpy",
        pytest.param("chroma-persistent", marks=pytest.mark.integration),
        pytest.param("chroma-server", marks=pytest.mark.integration),
    ]
)
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    backend: VectorIndex
    if request.param == "numpy":
        backend = NumpyVectorIndex()
    elif request.param == "chroma-persistent":
        backend = ChromaVectorIndex.persistent(tmp_path / "chroma")
    else:
        host, port = request.getfixturevalue("chroma_server")
        backend = ChromaVectorIndex.http(host, port, timeout=30)
        asyncio.run(_drop_all(backend))  # the server is shared by the module's tests
    yield backend
    backend.close()
    if request.param == "chroma-server":  # with a new client: the test may have closed its own
        with ChromaVectorIndex.http(*request.getfixturevalue("chroma_server")) as cleaner:
            asyncio.run(_drop_all(cleaner))


# -- the contract ----------------------------------------------------------------------------


async def test_upsert_then_query_returns_the_item_itself_first(index: VectorIndex) -> None:
    rng = np.random.default_rng(1)
    vectors = unit(rng, 50)
    ids = [f"m{i}" for i in range(50)]
    await index.upsert("default", ids, vectors, [{"i": i} for i in range(50)])

    hits = await index.query("default", vectors, k=3)

    assert len(hits) == 50
    for item, row in zip(ids, hits, strict=True):
        assert 1 <= len(row) <= 3
        assert row[0][0] == item
        assert row[0][1] == pytest.approx(1.0, abs=1e-3)
        scores = [score for _, score in row]
        assert scores == sorted(scores, reverse=True)  # higher = more similar, best first
        assert scores[1] < 0.99


async def test_scores_are_cosine_similarity_higher_is_closer(index: VectorIndex) -> None:
    e0, e1 = basis(0, 1)
    between = (e0 + e1) / np.linalg.norm(e0 + e1)
    vectors = np.stack([e0, between, e1, -e0])
    await index.upsert("default", ["same", "between", "orthogonal", "opposite"], vectors, [{}] * 4)

    [row] = await index.query("default", e0[None, :], k=4)

    assert [item for item, _ in row] == ["same", "between", "orthogonal", "opposite"]
    expected = [1.0, 2**-0.5, 0.0, -1.0]
    assert [score for _, score in row] == pytest.approx(expected, abs=1e-3)


async def test_upsert_is_idempotent_and_overwrites_vector_and_metadata(
    index: VectorIndex,
) -> None:
    vectors = basis(0, 1)
    metas = [{"color": "red", "size": 1}, {"color": "red", "size": 2}]
    await index.upsert("default", ["a", "b"], vectors, metas)
    await index.upsert("default", ["a", "b"], vectors, metas)
    assert await index.count("default") == 2

    await index.upsert("default", ["a"], basis(2), [{"color": "blue"}])

    assert await index.count("default") == 2
    [row] = await index.query("default", basis(2), k=1)
    assert row[0][0] == "a"
    assert row[0][1] == pytest.approx(1.0, abs=1e-3)
    [row] = await index.query("default", basis(0), k=2)
    assert all(score < 0.5 for _, score in row)  # the old vector of "a" is gone
    assert await index.query("default", basis(0), k=5, where={"color": ["blue"]}) == [
        [("a", pytest.approx(0.0, abs=1e-3))]
    ]
    [row] = await index.query("default", basis(0), k=5, where={"color": ["red"]})
    assert [item for item, _ in row] == ["b"]
    [row] = await index.query("default", basis(0), k=5, where={"size": [1]})
    assert row == []  # the old metadata key of "a" is gone, not merged

    await index.upsert("default", ["b"], basis(1), [{}])
    [row] = await index.query("default", basis(1), k=5, where={"color": ["red"]})
    assert row == []


async def test_delete_removes_items(index: VectorIndex) -> None:
    rng = np.random.default_rng(2)
    vectors = unit(rng, 10)
    ids = [f"d{i}" for i in range(10)]
    await index.upsert("default", ids, vectors, [{} for _ in ids])

    await index.delete("default", ["d1", "d3", "d5", "never-existed"])
    await index.delete("unknown/namespace", ["d1"])

    assert await index.count("default") == 7
    assert await index.ids("default") == set(ids) - {"d1", "d3", "d5"}
    hits = await index.query("default", vectors, k=10)
    returned = {item for row in hits for item, _ in row}
    assert returned == set(ids) - {"d1", "d3", "d5"}
    assert hits[1][0][0] != "d1"


async def test_where_filters_by_metadata(index: VectorIndex) -> None:
    rng = np.random.default_rng(3)
    n = 60
    vectors = unit(rng, n)
    ids = [f"w{i}" for i in range(n)]
    kinds = ["fact", "lesson", "skill"]
    levels = ["episode", "experience"]
    metas: list[dict[str, str | int | float | bool]] = [
        {"kind": kinds[i % 3], "level": levels[i % 2], "tenant": i % 4, "pinned": i % 5 == 0}
        for i in range(n)
    ]
    await index.upsert("default", ids, vectors, metas)
    queries = unit(rng, 4)

    def allowed(test: Any) -> set[str]:
        return {item for item, meta in zip(ids, metas, strict=True) if test(meta)}

    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"kind": ["lesson"]}, allowed(lambda m: m["kind"] == "lesson")),
        ({"kind": ["lesson", "skill"]}, allowed(lambda m: m["kind"] in ("lesson", "skill"))),
        (
            {"kind": ["fact", "skill"], "level": ["experience"]},
            allowed(lambda m: m["kind"] in ("fact", "skill") and m["level"] == "experience"),
        ),
        ({"tenant": [1, 2]}, allowed(lambda m: m["tenant"] in (1, 2))),
        (
            {"pinned": [True], "level": ["episode"]},
            allowed(lambda m: m["pinned"] and m["level"] == "episode"),
        ),
    ]
    for where, expected in cases:
        assert expected, where
        hits = await index.query("default", queries, k=5, where=where)
        for query, row in zip(queries, hits, strict=True):
            assert [item for item, _ in row] == exact_top(vectors, ids, query, 5, expected), where

    assert await index.query("default", queries[:1], k=5, where={"kind": []}) == [[]]
    assert await index.query("default", queries[:1], k=5, where={"missing": ["x"]}) == [[]]
    assert await index.query("default", queries[:1], k=5, where={"kind": ["nope"]}) == [[]]


async def test_k_larger_than_count_returns_everything(index: VectorIndex) -> None:
    rng = np.random.default_rng(4)
    vectors = unit(rng, 5)
    ids = [f"k{i}" for i in range(5)]
    await index.upsert("default", ids, vectors, [{"even": i % 2 == 0} for i in range(5)])

    hits = await index.query("default", vectors[:2], k=50)
    assert [len(row) for row in hits] == [5, 5]
    assert {item for item, _ in hits[0]} == set(ids)
    [row] = await index.query("default", vectors[:1], k=50, where={"even": [True]})
    assert {item for item, _ in row} == {"k0", "k2", "k4"}
    assert await index.query("default", vectors[:2], k=0) == [[], []]


async def test_unknown_and_emptied_namespaces_give_empty_results(index: VectorIndex) -> None:
    rng = np.random.default_rng(5)
    queries = unit(rng, 2)
    assert await index.query("nobody/here", queries, k=3) == [[], []]
    assert await index.ids("nobody/here") == set()
    assert await index.count("nobody/here") == 0
    assert await index.namespaces() == []

    await index.upsert("emptied", ["x"], queries[:1], [{}])
    await index.delete("emptied", ["x"])

    assert await index.query("emptied", queries, k=3) == [[], []]
    assert await index.count("emptied") == 0
    assert await index.namespaces() == ["emptied"]  # exists until dropped


async def test_namespaces_are_isolated_and_listed(index: VectorIndex) -> None:
    vectors = basis(0, 1, 2)
    await index.upsert("default", ["same-id"], vectors[:1], [{"owner": "default"}])
    await index.upsert("acme/web-agent", ["same-id"], vectors[1:2], [{"owner": "acme"}])
    await index.upsert("acme/web.agent", ["other"], vectors[2:], [{"owner": "dot"}])

    assert await index.namespaces() == ["acme/web-agent", "acme/web.agent", "default"]
    [row] = await index.query("acme/web-agent", vectors[:1], k=5)
    assert [item for item, _ in row] == ["same-id"]
    assert row[0][1] == pytest.approx(0.0, abs=1e-3)  # acme's vector, not default's
    [row] = await index.query("default", vectors[:1], k=5)
    assert row[0][1] == pytest.approx(1.0, abs=1e-3)
    assert await index.ids("acme/web.agent") == {"other"}
    assert await index.query("acme", vectors[:1], k=5) == [[]]  # a prefix is not a parent

    await index.delete("default", ["same-id"])
    assert await index.ids("acme/web-agent") == {"same-id"}


async def test_batch_query_equals_single_queries(index: VectorIndex) -> None:
    rng = np.random.default_rng(6)
    vectors = unit(rng, 300)
    ids = [f"b{i}" for i in range(300)]
    await index.upsert("default", ids, vectors, [{"half": i % 2} for i in range(300)])
    queries = np.concatenate([vectors[:32], unit(rng, 32)])

    for where in (None, {"half": [1]}):
        batch = await index.query("default", queries, k=5, where=where)
        assert len(batch) == 64
        for query, batch_row in zip(queries, batch, strict=True):
            [single] = await index.query("default", query[None, :], k=5, where=where)
            assert [item for item, _ in batch_row] == [item for item, _ in single]
            assert [s for _, s in batch_row] == pytest.approx([s for _, s in single], abs=1e-5)
            assert len(batch_row) == 5


async def test_count_and_ids(index: VectorIndex) -> None:
    rng = np.random.default_rng(7)
    vectors = unit(rng, 30)
    ids = [f"c{i}" for i in range(30)]
    await index.upsert("default", ids[:20], vectors[:20], [{} for _ in range(20)])
    await index.upsert("default", ids[10:], vectors[10:], [{} for _ in range(20)])

    assert await index.count("default") == 30
    assert await index.ids("default") == set(ids)
    await index.upsert("default", [], np.empty((0, DIM), dtype=np.float32), [])
    assert await index.count("default") == 30


async def test_drop_namespace(index: VectorIndex) -> None:
    rng = np.random.default_rng(8)
    vectors = unit(rng, 4)
    await index.upsert("keep", ["k"], vectors[:1], [{}])
    await index.upsert("drop/me", ["a", "b"], vectors[1:3], [{}, {}])

    await index.drop_namespace("drop/me")
    await index.drop_namespace("never/existed")

    assert await index.namespaces() == ["keep"]
    assert await index.count("drop/me") == 0
    assert await index.query("drop/me", vectors, k=2) == [[], [], [], []]
    assert await index.ids("keep") == {"k"}
    await index.upsert("drop/me", ["c"], vectors[3:], [{}])  # usable again after the drop
    assert await index.ids("drop/me") == {"c"}


async def test_bad_input_is_rejected(index: VectorIndex) -> None:
    good = basis(0)
    with pytest.raises(ConfigError):
        await index.upsert("bad namespace!", ["a"], good, [{}])
    with pytest.raises(ConfigError):
        await index.query("a//b", good, k=1)
    with pytest.raises(InputError):
        await index.upsert("default", ["a"], good * 2, [{}])  # not normalised
    with pytest.raises(InputError):
        await index.upsert("default", ["a", "a"], basis(0, 1), [{}, {}])
    with pytest.raises(InputError):
        await index.upsert("default", ["a", "b"], good, [{}, {}])
    with pytest.raises(InputError):
        await index.upsert("default", ["a"], good, [{"nested": {"x": 1}}])  # type: ignore[dict-item]
    with pytest.raises(InputError):
        await index.query("default", good, k=-1)
    assert await index.namespaces() == []


async def test_dimension_mismatch_is_a_store_error(index: VectorIndex) -> None:
    await index.upsert("default", ["a"], basis(0), [{}])
    with pytest.raises(MemoryStoreError):
        await index.upsert("default", ["b"], basis(0, dim=DIM + 1), [{}])
    with pytest.raises(MemoryStoreError):
        await index.query("default", basis(0, dim=DIM + 1), k=1)
    assert await index.ids("default") == {"a"}


async def test_closed_index_refuses_work(index: VectorIndex) -> None:
    index.close()
    index.close()  # idempotent
    with pytest.raises(MemoryStoreError):
        await index.count("default")


# -- chroma specifics --------------------------------------------------------------------------


def test_importing_the_package_does_not_import_chromadb() -> None:
    code = "import sys, agentforge.memory.index; assert 'chromadb' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_collection_names_are_valid_and_distinct() -> None:
    names = {
        collection_name(ns)
        for ns in ["default", "acme/web-agent", "acme_web-agent", "a..b", "x" * 64]
    }
    assert len(names) == 5
    for name in names:
        assert 3 <= len(name) <= 512
        assert name[0].isalnum() and name[-1].isalnum()
        assert ".." not in name


class _SmallBatches:
    """A chroma client whose max batch size is tiny, to exercise chunked upserts."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def get_max_batch_size(self) -> int:
        return 16

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.mark.integration
async def test_chroma_upserts_in_chunks_of_the_max_batch_size(tmp_path: Path) -> None:
    import chromadb
    from chromadb.config import Settings

    path = tmp_path / "chroma"

    def factory() -> Any:
        settings = Settings(anonymized_telemetry=False)
        return _SmallBatches(chromadb.PersistentClient(path=str(path), settings=settings))

    rng = np.random.default_rng(9)
    vectors = unit(rng, 100)
    ids = [f"x{i}" for i in range(100)]
    with ChromaVectorIndex(None, lock_path=tmp_path / "chroma.lock", client_factory=factory) as idx:
        await idx.upsert("default", ids, vectors, [{"i": i} for i in range(100)])
        await idx.upsert("default", ids, vectors, [{"j": i} for i in range(100)])
        assert await idx.count("default") == 100
        hits = await idx.query("default", vectors, k=1, where={"j": list(range(100))})
        assert [row[0][0] for row in hits] == ids
        assert await idx.query("default", vectors[:1], k=1, where={"i": [0]}) == [[]]


def test_chroma_setup_errors_say_whose_fault(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        ChromaVectorIndex(None)
    with pytest.raises(ConfigError):
        ChromaVectorIndex(object(), lock_path=tmp_path / "x.lock")
    with pytest.raises(ConfigError):
        ChromaVectorIndex.http("127.0.0.1", _free_port(), timeout=2)


@pytest.mark.integration
async def test_second_embedded_index_on_same_path_sees_writes(tmp_path: Path) -> None:
    """Two objects on one path behave like two processes: the generation file keeps them fresh.

    Interleaved writes catch a stale engine (it misses the other's later items); the preload
    makes the writes cross the HNSW sync threshold (see `MP_PRELOAD`), where a stale engine
    would also lose items on disk.
    """
    pre = 990
    rng = np.random.default_rng(10)
    vectors = unit(rng, pre + 60)
    ids = [f"g{i}" for i in range(pre + 60)]

    def metas(n: int) -> list[dict[str, str | int | float | bool]]:
        return [{} for _ in range(n)]

    path = tmp_path / "chroma"
    with ChromaVectorIndex.persistent(path) as first, ChromaVectorIndex.persistent(path) as second:
        assert await second.count("default") == 0  # second has loaded the (empty) store
        await first.upsert("default", ids[:pre], vectors[:pre], metas(pre))
        assert await second.count("default") == pre
        await first.upsert("default", ids[pre : pre + 20], vectors[pre : pre + 20], metas(20))
        await second.upsert(
            "default", ids[pre + 20 : pre + 40], vectors[pre + 20 : pre + 40], metas(20)
        )
        await first.upsert("default", ids[pre + 40 :], vectors[pre + 40 :], metas(20))

        with ChromaVectorIndex.persistent(path) as third:  # loads the state on disk
            for idx in (first, second, third):
                assert await idx.count("default") == len(ids)
                hits = await idx.query("default", vectors, k=1)
                assert [row[0][0] for row in hits] == ids

        await first.delete("default", ids[:5])
        assert await second.ids("default") == set(ids[5:])
        await second.upsert("other", ["o"], vectors[:1], [{}])
        await first.drop_namespace("default")
        assert await second.namespaces() == ["other"]
        assert await first.namespaces() == ["other"]


@pytest.mark.integration
async def test_repeated_queries_are_answered_from_cache_until_anyone_writes(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    vectors = unit(rng, 40)
    ids = [f"c{i}" for i in range(40)]
    path = tmp_path / "chroma"
    with ChromaVectorIndex.persistent(path) as idx, ChromaVectorIndex.persistent(path) as other:
        await idx.upsert("default", ids[:20], vectors[:20], [{}] * 20)
        probe = vectors[25:26]  # not stored yet: its nearest neighbour will change
        first = await idx.query("default", probe, k=3)
        assert idx._cache.hits == 0
        assert await idx.query("default", probe, k=3) == first
        assert idx._cache.hits == 1
        assert (await idx.query("default", probe, k=4))[0][:3] == first[0]  # another k: asked
        assert idx._cache.hits == 1

        await other.upsert("default", ids[25:26], vectors[25:26], [{}])  # another process
        assert (await idx.query("default", probe, k=3))[0][0][0] == "c25"
        await idx.delete("default", ["c25"])  # its own write
        assert await idx.query("default", probe, k=3) == first
        assert idx._cache.hits == 1


@pytest.mark.integration
async def test_closed_embedded_index_leaves_a_store_plain_chroma_can_open(tmp_path: Path) -> None:
    import chromadb
    from chromadb.config import Settings

    path = tmp_path / "chroma"
    with ChromaVectorIndex.persistent(path) as idx:
        await idx.upsert("acme/web-agent", ["a", "b"], basis(0, 1), [{"x": 1}, {}])
    settings = Settings(anonymized_telemetry=False)
    client = chromadb.PersistentClient(path=str(path), settings=settings)  # same process
    col = client.get_collection(collection_name("acme/web-agent"), embedding_function=None)
    assert col.count() == 2
    assert col.metadata["agentforge_namespace"] == "acme/web-agent"


MP_WORKERS = 4
MP_BATCHES = 10
MP_BATCH_SIZE = 20
# Items stored before the workers start: with them the run crosses chroma's HNSW sync threshold
# (1000 updates, when an embedded engine writes its in-memory graph to disk), which is where an
# engine that missed another process's writes would overwrite them (without the generation check
# this test then loses whole batches).
MP_PRELOAD = 900


def _mp_vectors(worker: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(1000 + worker)
    n = MP_BATCHES * MP_BATCH_SIZE
    return [f"w{worker}-{i}" for i in range(n)], unit(rng, n)


def _mp_worker(path: str, worker: int, barrier: Any) -> None:
    """Upsert this worker's batches into the shared store, checking each batch reads back."""
    import chromadb  # noqa: F401 - import first, so that the workers really collide

    async def run() -> None:
        ids, vectors = _mp_vectors(worker)
        with ChromaVectorIndex.persistent(Path(path)) as idx:
            barrier.wait(timeout=60)  # all start together, opening the store concurrently
            for b in range(MP_BATCHES):
                part = slice(b * MP_BATCH_SIZE, (b + 1) * MP_BATCH_SIZE)
                metas = [{"worker": worker}] * MP_BATCH_SIZE
                await idx.upsert("shared/space", ids[part], vectors[part], metas)
                hits = await idx.query("shared/space", vectors[part], k=1)
                assert [row[0][0] for row in hits] == ids[part]

    asyncio.run(run())


@pytest.mark.integration
async def test_embedded_chroma_is_safe_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "chroma"
    preload_ids = [f"pre-{i}" for i in range(MP_PRELOAD)]
    preload = unit(np.random.default_rng(11), MP_PRELOAD)
    with ChromaVectorIndex.persistent(path) as idx:
        await idx.upsert("shared/space", preload_ids, preload, [{"worker": -1}] * MP_PRELOAD)

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(MP_WORKERS)
    workers = [
        ctx.Process(target=_mp_worker, args=(str(path), w, barrier)) for w in range(MP_WORKERS)
    ]
    for proc in workers:
        proc.start()
    for proc in workers:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in workers] == [0] * MP_WORKERS

    written = [_mp_vectors(w) for w in range(MP_WORKERS)]
    all_ids = preload_ids + [item for ids, _ in written for item in ids]
    all_vectors = np.concatenate([preload, *(vectors for _, vectors in written)])
    with ChromaVectorIndex.persistent(path) as fresh:
        assert await fresh.count("shared/space") == len(all_ids)
        assert await fresh.ids("shared/space") == set(all_ids)
        hits = await fresh.query("shared/space", all_vectors, k=1)
        assert [row[0][0] for row in hits] == all_ids
        [row] = await fresh.query("shared/space", all_vectors[:1], k=500, where={"worker": [2]})
        assert len(row) == MP_BATCHES * MP_BATCH_SIZE


def test_closing_an_embedded_index_it_never_used_does_not_import_chromadb(tmp_path: Path) -> None:
    """A short command that the dense mirror answered closes the index without importing
    chromadb (~0.7 s) to clear a client cache it never filled."""
    code = (
        "import sys; from agentforge.memory.index import ChromaVectorIndex; "
        f"ChromaVectorIndex.persistent({str(tmp_path / 'chroma')!r}).close(); "
        "print('chromadb' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
