"""The record view cache on a real SQLite file: a hit equals what SQL returns for the reader's
snapshot, whoever changed the row (this process, another connection, a rolled-back write)."""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from agentforge.memory import view_cache
from agentforge.memory.dense_mirror import DenseMirrorMode
from agentforge.memory.embedders import HashEmbedder
from agentforge.memory.engine import Memory
from agentforge.memory.index import NumpyVectorIndex
from agentforge.memory.records import RecordView
from agentforge.memory.store import SQLStore
from agentforge.memory.view_cache import ViewCache


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "m.db"


def open_memory(db: Path, mode: DenseMirrorMode = "snapshot") -> Memory:
    """'snapshot' (the fixture's): no background preload, so hits and misses are predictable;
    'on' preloads the views in a thread after the first fetch."""
    return Memory(
        SQLStore.from_url(f"sqlite:///{db}", dense_mirror=mode), NumpyVectorIndex(), HashEmbedder()
    )


@pytest.fixture
def memory(db: Path) -> Iterator[Memory]:
    m = open_memory(db)
    yield m
    m.close()


def views(memory: Memory, ids: list[str]) -> dict[str, RecordView]:
    with memory.c.store.read() as s:
        return memory.c.store.fetch_views(s, ids)


def other_connection(db: Path, sql: str, *params: object) -> None:
    with sqlite3.connect(db) as conn:  # another process's write, as far as SQLite can tell
        conn.execute(sql, params)


def cache(memory: Memory) -> ViewCache:
    assert memory.c.store.view_cache is not None
    return memory.c.store.view_cache


def test_a_second_fetch_is_served_from_the_cache_and_equals_sql(memory: Memory) -> None:
    ids = memory.retain(["alpha fact", "beta fact", "gamma fact"]).ids
    first = views(memory, ids)
    assert (cache(memory).hits, cache(memory).misses) == (0, 3)
    assert views(memory, ids) == first
    assert views(memory, [*ids, "no-such-id"]) == first
    assert cache(memory).hits == 6
    memory.recall("alpha")  # bumps recall counters, which are not in a view: nothing evicted
    misses = cache(memory).misses
    assert views(memory, ids) == first and cache(memory).misses == misses


def test_changes_from_anywhere_are_seen_at_once(memory: Memory, db: Path) -> None:
    a, b, c = memory.retain(["alpha fact", "beta fact", "gamma fact"]).ids
    before = views(memory, [a, b, c])
    other_connection(db, "UPDATE memory SET utility = 0.9 WHERE id = ?", a)
    other_connection(db, "DELETE FROM memory WHERE id = ?", b)
    memory.forget([c])  # this process, through the store
    after = views(memory, [a, b, c])
    assert after[a].utility == 0.9 and before[a].utility != 0.9
    assert b not in after
    assert after[c].status != before[c].status


def test_a_reader_behind_the_newest_change_reads_sql_and_caches_nothing(
    memory: Memory, db: Path
) -> None:
    (a,) = memory.retain(["alpha fact"]).ids
    old_utility = views(memory, [a])[a].utility
    with memory.c.store.read() as old:
        assert memory.c.store.fetch_views(old, [a])[a].utility == old_utility  # snapshot taken
        other_connection(db, "UPDATE memory SET utility = 0.8 WHERE id = ?", a)
        assert views(memory, [a])[a].utility == 0.8  # a fresh reader applies the log
        assert memory.c.store.fetch_views(old, [a])[a].utility == old_utility  # its snapshot
    assert views(memory, [a])[a].utility == 0.8  # the old snapshot's row was not cached


def test_a_write_transaction_bypasses_the_cache(memory: Memory) -> None:
    (a,) = memory.retain(["alpha fact"]).ids
    old_utility = views(memory, [a])[a].utility
    store = memory.c.store
    with pytest.raises(RuntimeError), store.write() as s:
        s.execute(text("UPDATE memory SET utility = 0.1 WHERE id = :i"), {"i": a})
        assert store.fetch_views(s, [a])[a].utility == 0.1  # its own uncommitted row
        raise RuntimeError("roll back")
    assert views(memory, [a])[a].utility == old_utility


def test_an_in_memory_store_has_no_cache() -> None:
    m = Memory(SQLStore.from_url("sqlite://"), NumpyVectorIndex(), HashEmbedder())
    try:
        (a,) = m.retain(["alpha fact"]).ids
        with m.c.store.read() as s:
            assert m.c.store.fetch_views(s, [a])[a].content == "alpha fact"
        assert m.c.store.view_cache is None
    finally:
        m.close()


def test_a_preload_holds_the_active_records_as_sql_has_them(memory: Memory) -> None:
    ids = memory.retain([f"fact number {i}" for i in range(10)]).ids
    other_connection(
        memory_db(memory), "UPDATE memory SET status = 'superseded' WHERE id = ?", ids[0]
    )
    assert memory.c.store.warm_view_cache() == 9  # the superseded one is not preloaded
    assert set(cache(memory)._views) == set(ids[1:])
    misses = cache(memory).misses
    found = views(memory, ids)
    assert cache(memory).misses == misses + 1  # only the superseded one, from SQL
    assert found[ids[0]].status == "superseded"
    assert [found[i].content for i in ids] == [f"fact number {i}" for i in range(10)]


def test_a_preload_meets_writes_between_its_chunks(
    memory: Memory, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each chunk is read in its own snapshot: a row changed by another process after its
    chunk was added is evicted by the log, one changed before is read as changed."""
    monkeypatch.setattr(view_cache, "PRELOAD_CHUNK", 2)
    ids = memory.retain([f"fact number {i}" for i in range(6)]).ids
    plain = Memory(
        SQLStore.from_url(f"sqlite:///{db}", dense_mirror="off"), NumpyVectorIndex(), HashEmbedder()
    )
    plain.c.store.view_cache = None  # the truth: SQL
    real_from_raw = view_cache.view_from_raw
    calls = 0

    def write_meanwhile(row: tuple[object, ...]) -> RecordView:
        nonlocal calls
        calls += 1
        if calls in (1, 3):  # within the first and the second chunk
            other_connection(
                db,
                "UPDATE memory SET utility = utility + 0.25 WHERE id IN (?, ?)",
                ids[calls - 1],
                ids[4],
            )
        return real_from_raw(row)

    monkeypatch.setattr(view_cache, "view_from_raw", write_meanwhile)
    try:
        assert memory.c.store.warm_view_cache() == 6
        monkeypatch.setattr(view_cache, "view_from_raw", real_from_raw)
        with plain.c.store.read() as s:
            truth = plain.c.store.fetch_views(s, ids)
        assert truth[ids[0]].utility == truth[ids[2]].utility == 0.75
        assert truth[ids[4]].utility == 1.0
        assert views(memory, ids) == truth
    finally:
        plain.close()


def test_a_long_lived_store_preloads_in_the_background_and_stops_on_close(db: Path) -> None:
    m = open_memory(db, "on")
    try:
        ids = m.retain([f"fact number {i}" for i in range(50)]).ids
        m.recall("fact number 7")  # the first fetch starts the preload
        preload = m.c.store._preload
        assert preload is not None and preload._thread is not None
        preload.wait()
        assert set(cache(m)._views) == set(ids)
        first_pass = cache(m)._preloaded
        more = m.retain([f"later fact {i}" for i in range(5)]).ids
        m.recall("fact number 8")  # within PASS_EVERY of the first pass: no new pass
        preload.wait()
        assert cache(m)._preloaded == first_pass
        preload._next = 0.0  # as if PASS_EVERY had passed
        m.recall("fact number 9")
        preload.wait()
        assert cache(m)._preloaded > first_pass
        assert set(cache(m)._views) == {*ids, *more}
    finally:
        m.close()
    assert not preload._thread.is_alive()


def test_short_commands_do_not_preload(memory: Memory) -> None:
    memory.retain(["alpha fact", "beta fact"])
    memory.recall("alpha")
    assert memory.c.store._preload is None


def memory_db(memory: Memory) -> Path:
    return Path(str(memory.c.store.engine.url.database))


def test_a_cache_of_plain_views_is_invisible_to_full_collections(memory: Memory) -> None:
    ids = memory.retain([f"fact number {i}" for i in range(20)], tags=["t"]).ids
    assert memory.c.store.warm_view_cache() == 20
    for _ in range(3):  # the collector untracks tuples, then the dict that holds only them
        gc.collect()
    assert not gc.is_tracked(cache(memory)._views)
    assert views(memory, ids)[ids[3]].tags == ("t",)


def test_an_overfull_cache_drops_its_oldest_entries(memory: Memory) -> None:
    ids = memory.retain([f"fact number {i}" for i in range(30)]).ids
    cache(memory).size = 20
    first = views(memory, ids[:20])
    assert set(cache(memory)._views) == set(ids[:20])
    views(memory, ids[20:25])  # 25 > 20: a tenth of the size (2) goes until it fits: 19
    assert len(cache(memory)._views) == 19 and set(ids[20:25]) <= set(cache(memory)._views)
    misses = cache(memory).misses
    assert views(memory, ids[:20]) == first
    assert cache(memory).misses == misses + 6  # the dropped ones, from SQL
