"""The store calls on recall's hot path: the recall log write, the neighbour lookup and the raw
row → view conversion. Their fast forms must give exactly what the plain ones gave."""

from __future__ import annotations

import gc
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentforge.memory import neighbours
from agentforge.memory.embedders import HashEmbedder
from agentforge.memory.engine import Memory
from agentforge.memory.index import NumpyVectorIndex
from agentforge.memory.neighbours import records_at
from agentforge.memory.recall_log_write import RecallEntry
from agentforge.memory.records import (
    VIEW_SQL_COLUMNS,
    RecallLog,
    RecordView,
    as_view,
    view_from_raw,
)
from agentforge.memory.store import SQLStore
from agentforge.types import MemoryInput, Provenance


@pytest.fixture(params=["sqlite-memory", "sqlite-file"])
def memory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Memory]:
    url = "sqlite://" if request.param == "sqlite-memory" else f"sqlite:///{tmp_path / 'm.db'}"
    m = Memory(SQLStore.from_url(url), NumpyVectorIndex(), HashEmbedder())
    yield m
    m.close()


@pytest.mark.parametrize("entry", [RecallLog, RecallEntry])
def test_log_recalls_returns_ids_in_order_and_bumps_each_recalled_record(
    memory: Memory, entry: type[RecallLog] | type[RecallEntry]
) -> None:
    a, b, c = memory.retain(["alpha fact", "beta fact", "gamma fact"]).ids
    entries = [
        entry(namespace="default", query="q1", run_id="r", result_ids=[a, b], scores=[2, 1]),
        entry(namespace="default", query="q2", result_ids=[b], ranks={b: {"dense": 1}}),
        entry(namespace="default", query="q3", result_ids=[]),
    ]
    ids = memory.c.store.log_recalls(entries)
    assert ids == [e.id for e in entries] and ids == sorted(ids) and len(set(ids)) == 3
    logged = {log.id: log for log in memory.recall_log(limit=10)}
    assert [(logged[i].query, logged[i].result_ids, logged[i].ranks) for i in ids] == [
        ("q1", [a, b], None),
        ("q2", [b], {b: {"dense": 1}}),
        ("q3", [], None),
    ]
    assert logged[ids[0]].run_id == "r" and logged[ids[0]].scores == [2, 1]
    def counters() -> list[tuple[int, bool]]:
        records = [memory.c.store.get(i) for i in (a, b, c)]
        return [(r.recalls, r.last_recalled_at is not None) for r in records]

    assert counters() == [(0, False)] * 3  # the log only, until a fold
    assert memory.c.store.fold_recall_counters() == 3
    assert counters() == [(1, True), (2, True), (0, False)]  # one per entry naming the record
    assert memory.c.store.fold_recall_counters() == 0 and counters()[1] == (2, True)
    assert memory.c.store.log_recalls([]) == []


def test_a_database_from_before_folding_counts_its_old_log_once(tmp_path: Path) -> None:
    """Older versions bumped the counters as they logged: a database they made has all its
    log entries counted already, so the fold mark starts after them."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    m = Memory(SQLStore.from_url(url), NumpyVectorIndex(), HashEmbedder())
    (a,) = m.retain(["alpha fact"]).ids
    m.c.store.log_recalls([RecallEntry(namespace="default", query="q", result_ids=[a])])
    m.close()
    with sqlite3.connect(tmp_path / "old.db") as conn:  # as an older version left it
        conn.execute("DELETE FROM meta WHERE key = 'recall_counters_folded'")
        conn.execute("UPDATE memory SET recalls = 1 WHERE id = ?", (a,))
    m = Memory(SQLStore.from_url(url), NumpyVectorIndex(), HashEmbedder())
    try:
        m.c.store.log_recalls([RecallEntry(namespace="default", query="q", result_ids=[a])])
        assert m.c.store.fold_recall_counters() == 1  # only the new entry
        assert m.c.store.get(a).recalls == 2
    finally:
        m.close()


def test_a_runs_outcome_and_reflect_fold_the_counters(memory: Memory) -> None:
    (a,) = memory.retain(["alpha fact about pears"]).ids
    memory.recall("pears", run_id="run-1")
    assert memory.c.store.get(a).recalls == 0
    memory.record_outcome("run-1", "success")
    assert memory.c.store.get(a).recalls == 1
    memory.recall("pears")
    memory.reflect(dry_run=True)
    assert memory.c.store.get(a).recalls == 2


def test_recall_sets_the_log_id_only_on_logged_results(memory: Memory) -> None:
    memory.retain("the parcel ships on monday")
    logged = memory.recall("when does the parcel ship")
    unlogged = memory.recall("when does the parcel ship", log=False)
    assert logged.recall_id == memory.recall_log(limit=1)[0].id
    assert unlogged.recall_id is None and unlogged.hits == logged.hits


def _turns_and_chunks(memory: Memory) -> dict[str, str]:
    turns = [
        MemoryInput(content=f"turn {i} of chat one", provenance=Provenance(source="chat", step=i))
        for i in range(4)
    ]
    other = MemoryInput(content="turn 1 elsewhere", provenance=Provenance(source="x", step=1))
    memory.retain([*turns, other])
    memory.retain(" ".join(f"Sentence {i} of the manual." for i in range(300)), doc_id="manual")
    rows = memory.c.store.active_ids("default")
    with memory.c.store.read() as s:
        views = memory.c.store.fetch_views(s, list(rows))
    return {
        (v.content if v.step is not None else f"chunk {v.chunk_index}"): v.id
        for v in views.values()
    }


def test_records_at_finds_steps_and_chunks_of_any_status(memory: Memory) -> None:
    ids = _turns_and_chunks(memory)
    memory.forget([ids["turn 2 of chat one"]])
    wanted = {
        ("default", "step", "chat", 1),
        ("default", "step", "chat", 2),  # forgotten: still found, the caller filters
        ("default", "step", "chat", 9),  # nothing there
        ("default", "chunk", "manual", 1),
        ("other", "step", "chat", 1),  # another namespace
    }
    with memory.c.store.read() as s:
        found = {r.id for r in records_at(s, wanted)}
    assert found == {ids["turn 1 of chat one"], ids["turn 2 of chat one"], ids["chunk 1"]}


def test_records_at_core_form_finds_what_the_sqlite_form_finds(memory: Memory) -> None:
    """The SQLAlchemy form serves the other databases; check it here against the driver one."""
    _turns_and_chunks(memory)
    cases = [  # kind, positions, how many records are there
        ("step", [("default", "chat", 1), ("default", "chat", 3), ("default", "x", 1)], 3),
        ("chunk", [("default", "manual", 0), ("default", "manual", 2), ("default", "chat", 1)], 2),
    ]
    with memory.c.store.read() as s:
        conn = s.connection()
        for kind, batch, count in cases:
            fast = sorted(neighbours._lookup_sqlite(conn, kind, batch), key=_id)
            assert len(fast) == count
            assert fast == sorted(neighbours._lookup_core(conn, kind, batch), key=_id)


def _id(view: RecordView) -> str:
    return view.id


def test_records_at_reads_steps_through_their_index(memory: Memory) -> None:
    """Searching an index on `namespace` alone scans the whole namespace: 90 ms for 20
    positions at 100k records."""
    _turns_and_chunks(memory)
    kinds = [("step", "chat"), ("chunk", "manual")]
    statements: list[str] = []
    with memory.c.store.read() as s:
        conn = s.connection()
        raw = conn.connection.dbapi_connection  # records_at reads through the driver
        raw.set_trace_callback(statements.append)  # statements with their values inlined
        try:
            # two positions of each kind: SQLite plans a one-row IN (VALUES …) as equalities
            records_at(s, [("default", kind, key, i) for kind, key in kinds for i in (1, 2)])
        finally:
            raw.set_trace_callback(None)
        plans = [
            " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
            for sql in statements
            if sql.startswith("SELECT")  # not the BEGIN
        ]
    assert len(plans) == 2
    assert "ix_memory_ns_source_step (namespace=? AND source=?)" in plans[0]
    assert "ix_memory_ns_doc (namespace=? AND doc_id=?)" in plans[1]


def test_view_from_raw_reads_sqlite_text_like_the_orm(tmp_path: Path) -> None:
    store = SQLStore.from_url(f"sqlite:///{tmp_path / 'm.db'}", dense_mirror="snapshot")
    memory = Memory(store, NumpyVectorIndex(), HashEmbedder())  # no background preload
    try:
        rid = memory.retain("tagged", tags=["a"], metadata={"k": 1}).ids[0]
        plain = memory.retain("plain").ids[0]
        records = {i: memory.c.store.get(i) for i in (rid, plain)}
    finally:
        memory.close()
    with sqlite3.connect(tmp_path / "m.db") as conn:
        rows = conn.execute(f"SELECT {VIEW_SQL_COLUMNS} FROM memory").fetchall()
    for view in map(view_from_raw, rows):
        record = records[view.id]
        assert (list(view.tags), dict(view.meta)) == (record.tags, record.meta)
        assert view.created_at == record.created_at and view.created_at.tzinfo is UTC
        assert view.valid_to is None


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-30 04:55:50.972043",
        "2026-11-30 04:55:50",
        "2026-11-30T04:55:50.123456",
        "2026-11-30 04:55:50.123",
        "2026-11-30 04:55:50+02:00",
        "2026-11-30 04:55:50.972+00",
        "2026-11-30",
    ],
)
def test_view_from_raw_datetimes_are_utc_wall_times(text: str) -> None:
    row = ["id", "ns", "experience", "fact", None, "c", None, 0, "[]", "{}", "active"]
    row += [text, text, text, None, None, None, None, "observed", 0.5]
    view = view_from_raw(row)
    expected = datetime.fromisoformat(text).replace(tzinfo=UTC)
    assert view.created_at == expected and view.created_at.tzinfo is UTC
    assert view.tags == () and view.meta == ()


def test_cached_views_of_plain_records_leave_the_garbage_collector(tmp_path: Path) -> None:
    """The view cache holds thousands of views; tracked by the collector, their churn set off
    full collections. It keeps plain tuples, untracked when their values are atomic."""
    store = SQLStore.from_url(f"sqlite:///{tmp_path / 'm.db'}", dense_mirror="snapshot")
    memory = Memory(store, NumpyVectorIndex(), HashEmbedder())  # no background preload
    try:
        plain = memory.retain("a fact with tags", tags=["x", "y"], metadata={"k": 1}).ids[0]
        nested = memory.retain("a fact with nested metadata", metadata={"k": [1, 2]}).ids[0]
        with memory.c.store.read() as s:
            first = memory.c.store.fetch_views(s, [plain, nested])
        with memory.c.store.read() as s:
            again = memory.c.store.fetch_views(s, [plain, nested])
        cache = memory.c.store.view_cache
        assert cache is not None and cache.hits == 2
        assert again == first and isinstance(again[plain], RecordView)
        assert again[plain].tags == ("x", "y")
        for _ in range(3):  # the collector untracks a tuple after the tuples inside it
            gc.collect()
        assert not gc.is_tracked(cache._views[plain])
        assert gc.is_tracked(cache._views[nested])  # a list inside: it must stay tracked
        with memory.c.store.read() as s:  # recall reads the cache's own tuples: no new object
            rows = memory.c.store.fetch_rows(s, [plain])
        assert rows[plain] is cache._views[plain] and type(rows[plain]) is tuple
        assert as_view(rows[plain]) == first[plain]
    finally:
        memory.close()


def test_the_sqlite_driver_path_writes_the_rows_core_writes(tmp_path: Path) -> None:
    from agentforge.memory import recall_log_write as rlw
    from agentforge.memory.records import utcnow

    def store_with_records(name: str) -> tuple[Memory, list[str]]:
        m = Memory(SQLStore.from_url(f"sqlite:///{tmp_path / name}"), NumpyVectorIndex(),
                   HashEmbedder())
        return m, m.retain(["alpha fact", "beta fact", "gamma fact"]).ids

    now = utcnow()
    entries = lambda ids: [  # noqa: E731
        RecallLog(namespace="default", query="q1 ünï", run_id="r", result_ids=ids[:2],
                  scores=[2.5, 1.0], latency_ms=1.25, at=now, ranks={ids[0]: {"dense": 1}}),
        RecallLog(namespace="default", query="q2", result_ids=[], at=now),
    ]
    fast, fast_ids = store_with_records("fast.db")
    core, core_ids = store_with_records("core.db")
    try:
        with fast.c.store._writer.begin() as conn:  # the driver path
            rlw.write_recall_log(conn, entries(fast_ids))
        with core.c.store._writer.begin() as conn:  # the Core statements, as on PostgreSQL
            conn.execute(rlw._INSERT, [rlw._row(e) for e in entries(core_ids)])
        for m in (fast, core):
            m.c.store.fold_recall_counters()

        def raw(m: Memory, ids: list[str]) -> tuple[list[Any], list[Any]]:
            path = m.c.store.engine.url.database
            with sqlite3.connect(path) as conn:
                logs = conn.execute("SELECT * FROM recall_log ORDER BY id").fetchall()
                stats = [conn.execute("SELECT recalls, last_recalled_at FROM memory WHERE id = ?",
                                      (i,)).fetchone() for i in ids]
            renamed = {a: b for a, b in zip(ids, ["A", "B", "C"], strict=True)}
            logs = [  # the JSON columns as values: orjson writes them without spaces
                tuple(json.loads(v) if n in _JSON_COLUMNS and v is not None else v
                      for n, v in zip(_LOG_COLUMNS, row, strict=True))
                for row in logs
            ]
            return [tuple(_rename(v, renamed) for v in row) for row in logs], stats

        assert raw(fast, fast_ids) == raw(core, core_ids)
        assert raw(fast, fast_ids)[1][0][0] == 1
    finally:
        fast.close()
        core.close()


_LOG_COLUMNS = tuple(c.key for c in RecallLog.__table__.columns)  # type: ignore[attr-defined]
_JSON_COLUMNS = {"result_ids", "scores", "ranks"}


def _rename(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for old, new in names.items():
            value = value.replace(old, new)
    elif isinstance(value, list):
        return [_rename(v, names) for v in value]
    elif isinstance(value, dict):
        return {_rename(k, names): _rename(v, names) for k, v in value.items()}
    return value


def test_the_log_writes_json_values_that_orjson_cannot_take_by_json_dumps() -> None:
    import numpy as np

    from agentforge.memory.recall_log_write import _json_text

    assert json.loads(_json_text({"a": {"dense": 1}, "ü": [0.1, 2]})) == {
        "a": {"dense": 1}, "ü": [0.1, 2]}
    assert _json_text(None) == "null"  # as SQLAlchemy's JSON type stores None
    assert json.loads(_json_text([np.float64(0.25), 3])) == [0.25, 3]  # a float subclass
