"""Recall's ranking columns on a real SQLite file: they hold what the rows hold for the reader's
snapshot, whoever changed a row, and recall ranks from them exactly as from the record views."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

from agentforge.memory.embedders import HashEmbedder
from agentforge.memory.engine import Memory
from agentforge.memory.index import NumpyVectorIndex
from agentforge.memory.rank_columns import microseconds
from agentforge.memory.ranking import Columns, ranks_from_columns, ranks_from_rows
from agentforge.memory.recall import RecallRequest
from agentforge.memory.records import sqlite_utc
from agentforge.memory.store import SQLStore
from agentforge.types import RecallResult


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "m.db"


@pytest.fixture
def memory(db: Path) -> Iterator[Memory]:
    # "on": the dense mirror builds, so both channels come from in-process indexes with seqs
    m = Memory(
        SQLStore.from_url(f"sqlite:///{db}", dense_mirror="on"), NumpyVectorIndex(), HashEmbedder()
    )
    yield m
    m.close()


def other_connection(db: Path, sql: str, *params: object) -> None:
    with sqlite3.connect(db) as conn:  # another process's write, as far as SQLite can tell
        conn.execute(sql, params)


def sql_columns(db: Path, seqs: list[int]) -> tuple[list[bool], list[int], list[float]]:
    """What the rows say (a seq without a row: inactive), read straight from the file."""
    with sqlite3.connect(db) as conn:
        rows = {
            seq: (status, occurred, utility)
            for seq, status, occurred, utility in conn.execute(
                "SELECT seq, status, occurred_at, utility FROM memory"
            )
        }
    active, occurred, utility = [], [], []
    for seq in seqs:
        status, when, value = rows.get(seq, ("gone", None, None))
        active.append(status == "active")
        occurred.append(microseconds(sqlite_utc(when)) if when else None)
        utility.append(value)
    return active, occurred, utility


def seqs_of(db: Path, ids: list[str]) -> list[int]:
    with sqlite3.connect(db) as conn:
        found = dict(conn.execute("SELECT id, seq FROM memory").fetchall())
    return [found[i] for i in ids]


def read_columns(memory: Memory, seqs: list[int]) -> tuple[Any, Any, Any] | None:
    with memory.c.store.read() as s:
        return memory.c.store.rank_columns(s, np.asarray(seqs))


def test_microseconds_keep_the_order_and_differences_of_datetimes() -> None:
    base = datetime(2026, 11, 30, 21, 54, 23, 123456, tzinfo=UTC)
    later = base + timedelta(seconds=1, microseconds=1)
    assert microseconds(later) - microseconds(base) == 1_000_001
    assert microseconds(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    before_epoch = datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert microseconds(before_epoch) == -1


def test_columns_follow_inserts_updates_and_deletes_by_any_writer(memory: Memory, db: Path) -> None:
    ids = memory.retain([f"fact number {i} about the garden" for i in range(6)]).ids
    seqs = seqs_of(db, ids)
    assert memory.c.store.warm_rank_columns()
    other_connection(db, "UPDATE memory SET utility = 0.875 WHERE id = ?", ids[0])
    other_connection(db, "UPDATE memory SET status = 'forgotten' WHERE id = ?", ids[1])
    other_connection(
        db, "UPDATE memory SET occurred_at = '2020-01-02 03:04:05.000006' WHERE id = ?", ids[2]
    )
    other_connection(db, "DELETE FROM memory WHERE id = ?", ids[3])
    added = memory.retain(["a record written after the columns were built"]).ids
    wanted = [*seqs, *seqs_of(db, added), max(seqs) + 1000]  # and a seq no row ever had
    found = read_columns(memory, wanted)
    assert found is not None
    active, occurred, utility = sql_columns(db, wanted)
    assert found[0].tolist() == active
    assert active == [True, False, True, False, True, True, True, False]
    for i, ok in enumerate(active):
        if occurred[i] is not None:  # a deleted row keeps what it last had; it is inactive
            assert found[1][i] == occurred[i] and found[2][i] == utility[i]
        else:
            assert not ok
    assert found[2][0] == 0.875
    assert found[1][2] == microseconds(datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=UTC))


def test_a_snapshot_older_than_the_columns_gets_none(memory: Memory, db: Path) -> None:
    ids = memory.retain(["alpha fact", "beta fact"]).ids
    seqs = seqs_of(db, ids)
    assert memory.c.store.warm_rank_columns()
    with memory.c.store.read() as old:
        old.execute(text("SELECT count(*) FROM memory"))  # the snapshot starts at the first read
        other_connection(db, "UPDATE memory SET utility = 0.25 WHERE id = ?", ids[0])
        newer = read_columns(memory, seqs)  # another snapshot: brings the columns up to it
        assert newer is not None and newer[2][0] == 0.25
        assert memory.c.store.rank_columns(old, np.asarray(seqs)) is None  # views answer
    current = read_columns(memory, seqs)
    assert current is not None and current[2][0] == 0.25


def test_an_in_memory_store_has_no_columns() -> None:
    m = Memory(SQLStore.from_url("sqlite://"), NumpyVectorIndex(), HashEmbedder())
    try:
        m.retain(["alpha fact"])
        assert read_columns(m, [1]) is None and not m.c.store.warm_rank_columns()
    finally:
        m.close()


TOPICS = ["garden", "kitchen", "invoice", "train", "password", "concert", "recipe", "server"]


def outcomes_and_times(memory: Memory, db: Path) -> None:
    """A store whose ranking columns vary: occurrence times with ties within a second and
    apart, utilities moved by outcomes, forgotten records."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for batch in range(6):
        memory.retain(
            [
                f"{TOPICS[(batch + i) % len(TOPICS)]} note {batch}-{i}: the {TOPICS[i % 3]} "
                f"needs attention on day {i}"
                for i in range(20)
            ],
            occurred_at=start + timedelta(seconds=0.6 * batch + (batch // 3) * 3600),
        )
    for n, topic in enumerate(TOPICS[:5]):
        memory.recall(f"what about the {topic}", k=5, run_id=f"run-{n}")
        memory.record_outcome(f"run-{n}", "success" if n % 2 else "failure")
    victims = [h.id for h in memory.recall("kitchen note", k=3, log=False).hits]
    memory.forget(victims)


def recall_all(memory: Memory, queries: list[str]) -> list[RecallResult]:
    one_by_one = [memory.recall(q, k=7) for q in queries]

    async def together() -> list[RecallResult]:
        return await asyncio.gather(*(memory.arecall(q, k=7) for q in queries))

    return one_by_one + memory._run(together())


def logged_ranks(db: Path) -> list[Any]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT ranks FROM recall_log ORDER BY id")]


def test_recall_ranks_from_columns_exactly_as_from_views(
    memory: Memory, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcomes_and_times(memory, db)
    store = memory.c.store
    assert store.warm_rank_columns() and store.warm_dense_mirror()
    queries = [f"the {t} needs attention" for t in TOPICS] + ["note 3-7 on day 7", "day"]
    real = store.rank_columns
    answered: list[bool] = []

    def spy(s: Any, seqs: Any) -> Any:
        found = real(s, seqs)
        answered.append(found is not None)
        return found

    monkeypatch.setattr(store, "rank_columns", spy)
    logged = len(logged_ranks(db))
    by_columns = recall_all(memory, queries)
    assert answered and all(answered)  # every recall above ranked from the columns
    from_columns_log = logged_ranks(db)[logged:]
    monkeypatch.setattr(store, "rank_columns", lambda s, seqs: None)
    by_views = recall_all(memory, queries)
    from_views_log = logged_ranks(db)[logged + len(from_columns_log) :]

    def hits(results: list[RecallResult]) -> list[Any]:
        return [[(h.id, h.score, h.ranks, h.content) for h in r.hits] for r in results]

    assert hits(by_columns) == hits(by_views)
    assert from_columns_log == from_views_log and len(from_columns_log) == 2 * len(queries)
    utilities = {h.utility for r in by_views for h in r.hits}
    assert len(utilities) > 1  # the outcomes moved some utilities: that channel ranked
    assert any(len(r.hits) == 7 for r in by_views)


def test_filtered_requests_still_rank_from_views(memory: Memory, db: Path) -> None:
    memory.retain(["an insight about gardens"], level="insight")
    memory.retain(["an episode in the garden"])
    assert memory.c.store.warm_rank_columns()
    found = memory.recall("garden", k=5, levels=["insight"])
    assert [h.content for h in found.hits] == ["an insight about gardens"]


def test_inactive_candidates_drop_out_of_the_columns_ranks_as_out_of_the_views(
    memory: Memory, db: Path
) -> None:
    """Both indexes return active records only, so an inactive candidate needs a write between
    snapshots; here the channels' hits are given, forgotten ones among them."""
    ids = memory.retain([f"note {i} on the {TOPICS[i % len(TOPICS)]}" for i in range(12)]).ids
    other_connection(db, "UPDATE memory SET utility = 0.9 WHERE id IN (?, ?)", ids[2], ids[7])
    other_connection(
        db, "UPDATE memory SET status = 'forgotten' WHERE id IN (?, ?)", ids[1], ids[8]
    )
    dense = [(i, 1.0 - n / 20) for n, i in enumerate(ids[:8])]
    keyword = [(i, 9.0 - n / 3) for n, i in enumerate(ids[5:])]  # overlaps dense on 5..7
    seqs = seqs_of(db, [i for i, _ in dense] + [i for i, _ in keyword])
    with memory.c.store.read() as s:
        found = memory.c.store.rank_columns(s, np.asarray(seqs))
        views = memory.c.store.fetch_rows(s, ids)
    assert found is not None and not found[0].all()
    by_columns = ranks_from_columns(dense, keyword, Columns(*found))
    by_views = ranks_from_rows(RecallRequest(query="q", namespace="default"), dense, keyword, views)
    assert by_columns == by_views
    assert ids[1] not in by_columns["dense"] and ids[8] not in by_columns["keyword"]
    assert len(set(by_columns["utility"].values())) == 2  # the two raised utilities rank first
