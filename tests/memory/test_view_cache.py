"""The record view cache on a real SQLite file: a hit equals what SQL returns for the reader's
snapshot, whoever changed the row (this process, another connection, a rolled-back write)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from agentforge.memory.embedders import HashEmbedder
from agentforge.memory.engine import Memory
from agentforge.memory.index import NumpyVectorIndex
from agentforge.memory.records import RecordView
from agentforge.memory.store import SQLStore
from agentforge.memory.view_cache import ViewCache


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "m.db"


@pytest.fixture
def memory(db: Path) -> Iterator[Memory]:
    m = Memory(SQLStore.from_url(f"sqlite:///{db}"), NumpyVectorIndex(), HashEmbedder())
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
