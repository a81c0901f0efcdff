"""The dense mirror on a real SQLite file: its answers equal an exact search over the active
records of the reader's snapshot, whoever wrote them (this process, another store on the same
file, a rolled-back write), and it stands aside (None) whenever it cannot answer cheaply."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from agentforge.memory import dense_mirror, dense_snapshot
from agentforge.memory.embedders import HashEmbedder
from agentforge.memory.engine import Memory
from agentforge.memory.index import NumpyVectorIndex
from agentforge.memory.store import SQLStore, blob_to_vector

EMBEDDER = HashEmbedder()
FACTS = [
    f"{topic} note {i}: the {colour} {thing} is kept in room {i}"
    for i, (topic, colour, thing) in enumerate(
        (t, c, x)
        for t in ("billing", "login", "export", "search")
        for c in ("red", "blue", "green")
        for x in ("key", "ledger", "badge", "laptop")
    )
]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "m.db"


def open_memory(db: Path) -> Memory:
    return Memory(SQLStore.from_url(f"sqlite:///{db}"), NumpyVectorIndex(), HashEmbedder())


@pytest.fixture
def memory(db: Path) -> Iterator[Memory]:
    m = open_memory(db)
    yield m
    m.close()


def mirror_search(memory: Memory, query: str, k: int = 10, namespace: str = "default"):
    vector = EMBEDDER.encode([query])
    with memory.c.store.read() as s:
        return memory.c.store.dense(s, namespace, vector, k)


def scored(db: Path, query: str, namespace: str = "default") -> dict[str, float]:
    """Every active record of the namespace and its cosine to the query, by plain sqlite3."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT id, embedding FROM memory WHERE namespace = ? AND status = 'active' "
            "AND valid_to IS NULL",
            (namespace,),
        ).fetchall()
    vector = EMBEDDER.encode([query])[0]
    return {i: float(blob_to_vector(b) @ vector) for i, b in rows}


def exact(db: Path, query: str, k: int = 10, namespace: str = "default") -> list[float]:
    """The scores of an exact top `k` (ids may differ among equal scores)."""
    return sorted(scored(db, query, namespace).values(), reverse=True)[:k]


def check(db: Path, hits, query: str, k: int = 10, namespace: str = "default") -> list[str]:
    """`hits` is an exact top `k`: distinct live ids, each with its true cosine, and the same
    scores as a brute-force search. Returns the ids."""
    assert hits is not None, "the mirror should answer"
    truth = scored(db, query, namespace)
    ids = [i for i, _ in hits[0]]
    assert len(set(ids)) == len(ids) and set(ids) <= truth.keys()
    for record_id, score in hits[0]:
        assert score == pytest.approx(truth[record_id], abs=1e-5)
    assert [s for _, s in hits[0]] == pytest.approx(exact(db, query, k, namespace), abs=1e-5)
    return ids


def test_answers_equal_an_exact_search_with_cosine_scores(memory: Memory, db: Path) -> None:
    memory.retain(FACTS)
    for query in ("red key in billing", "where is the green laptop", "search badge room 7"):
        check(db, mirror_search(memory, query), query)


def test_recall_through_the_mirror_equals_recall_through_chroma(tmp_path: Path) -> None:
    """The real components: packaged MiniLM, chroma on disk, then the same store and index
    opened with the mirror off."""
    from agentforge.memory.embedders import OnnxEmbedder
    from agentforge.memory.index.chroma_index import ChromaVectorIndex

    embedder = OnnxEmbedder.from_package(quantize=False)
    url = f"sqlite:///{tmp_path / 'm.db'}"

    def recall_all(m: Memory) -> list[list[tuple[str, int | None]]]:
        return [
            [(h.id, h.ranks.dense) for h in m.recall(q, k=8).hits]
            for q in ("blue ledger", "login laptop room", "the green badge")
        ]

    m = Memory(SQLStore.from_url(url), ChromaVectorIndex.persistent(tmp_path / "c"), embedder)
    try:
        m.retain(FACTS)
        mirrored = recall_all(m)
        assert m.c.store._dense_mirror._state == "ready"
    finally:
        m.close()
    plain = Memory(
        SQLStore.from_url(url, dense_mirror="off"),
        ChromaVectorIndex.persistent(tmp_path / "c"),
        embedder,
    )
    try:
        assert recall_all(plain) == mirrored
        assert any(rank is not None for hits in mirrored for _, rank in hits)
    finally:
        plain.close()


def ids_of(hits) -> list[str]:
    assert hits is not None, "the mirror should answer"
    return [i for i, _ in hits[0]]


def test_writes_of_another_store_on_the_file_are_seen_at_once(memory: Memory, db: Path) -> None:
    memory.retain(FACTS[:10])
    check(db, mirror_search(memory, "export green badge"), "export green badge")
    other = open_memory(db)  # another process, as far as SQLite can tell
    try:
        new_ids = other.retain(FACTS[10:]).ids
        hits = check(db, mirror_search(memory, "export green badge"), "export green badge")
        assert set(hits) & set(new_ids)
        other.forget(hits[:3])
        after = check(db, mirror_search(memory, "export green badge"), "export green badge")
        assert not set(after) & set(hits[:3])
    finally:
        other.close()


def test_a_rolled_back_write_is_never_mirrored(memory: Memory, db: Path) -> None:
    memory.retain(FACTS[:5])
    before = ids_of(mirror_search(memory, "login red key"))
    conn = sqlite3.connect(db)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE memory SET status = 'forgotten'")
    assert ids_of(mirror_search(memory, "login red key")) == before  # not committed
    conn.rollback()
    conn.close()
    assert ids_of(mirror_search(memory, "login red key")) == before


def test_changes_made_outside_the_engine_are_followed(memory: Memory, db: Path) -> None:
    ids = memory.retain(FACTS).ids
    with sqlite3.connect(db) as conn:  # a namespace move and a hard delete, in raw SQL
        conn.execute("UPDATE memory SET namespace = 'elsewhere' WHERE id = ?", (ids[0],))
        conn.execute("DELETE FROM memory WHERE id = ?", (ids[1],))
    hits = check(db, mirror_search(memory, FACTS[0], k=len(FACTS)), FACTS[0], k=len(FACTS))
    assert ids[0] not in hits and ids[1] not in hits
    assert ids_of(mirror_search(memory, FACTS[0], namespace="elsewhere")) == [ids[0]]


def test_namespaces_are_kept_apart_and_unknown_ones_are_empty(memory: Memory) -> None:
    a = memory.retain(FACTS[:6], namespace="team/a").ids
    b = memory.retain(FACTS[6:12], namespace="team/b").ids
    assert set(ids_of(mirror_search(memory, "billing", namespace="team/a"))) <= set(a)
    assert set(ids_of(mirror_search(memory, "billing", namespace="team/b"))) <= set(b)
    assert mirror_search(memory, "billing", namespace="team/none") == [[]]


def test_a_big_store_is_mirrored_in_the_background_meanwhile_the_index_answers(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    filler = open_memory(db)
    filler.retain(FACTS)
    filler.close()
    monkeypatch.setattr(dense_mirror.DenseMirror, "background_rows", 10)
    m = open_memory(db)
    try:
        first = mirror_search(m, "blue key")
        state = m.c.store._dense_mirror._state
        assert first is None or state == "ready"  # None while the thread builds
        deadline = time.monotonic() + 30
        while m.c.store._dense_mirror._state != "ready" and time.monotonic() < deadline:
            time.sleep(0.01)
        check(db, mirror_search(m, "blue key"), "blue key")
    finally:
        m.close()


def test_far_behind_it_stands_aside_and_catches_up_in_a_thread(
    memory: Memory, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory.retain(FACTS[:4])
    assert mirror_search(memory, "green laptop") is not None
    monkeypatch.setattr(dense_mirror.DenseMirror, "sync_limit", 5)
    memory.retain(FACTS[4:])  # more log entries than a search applies itself
    assert mirror_search(memory, "green laptop") is None
    deadline = time.monotonic() + 30
    hits = None
    while hits is None and time.monotonic() < deadline:
        time.sleep(0.01)
        hits = mirror_search(memory, "green laptop")
    check(db, hits, "green laptop")


def test_many_removals_rebuild_the_graph_without_losing_live_items(
    memory: Memory, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = memory.retain(FACTS).ids
    mirror_search(memory, "key")
    mirror = memory.c.store._dense_mirror
    graph = mirror._graphs["default"]
    for record_id in ids[:30]:  # churn: forget, then insert again under new ids
        memory.forget([record_id])
    memory.retain([f"{fact} (again)" for fact in FACTS[:30]])
    monkeypatch.setattr(
        dense_mirror, "_rebuilt", lambda g: pytest.fail("no rebuild below the threshold")
    )
    mirror_search(memory, "key")
    assert mirror._graphs["default"] is graph and len(graph.marked) == 30
    monkeypatch.undo()
    graph.marked.update(range(10**6, 10**6 + 2000))  # as if thousands had been removed
    memory.retain(["one more fact about the billing ledger"])
    mirror_search(memory, "key")
    rebuilt = mirror._graphs["default"]
    assert rebuilt is not graph and not rebuilt.marked and rebuilt.live == graph.live
    check(db, mirror_search(memory, "red ledger", k=20), "red ledger", k=20)


def test_a_namespace_with_mixed_dimensions_stands_aside(memory: Memory, db: Path) -> None:
    memory.retain(FACTS[:3])
    assert mirror_search(memory, "billing") is not None
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE memory SET embedding = ? WHERE seq = (SELECT min(seq) FROM memory)",
            (np.ones(8, np.float32).tobytes(),),
        )
    assert mirror_search(memory, "billing") is None
    assert mirror_search(memory, "billing", namespace="other") == [[]]


def test_near_duplicates_are_found_through_the_mirror(memory: Memory) -> None:
    first = memory.retain(["The staging login is admin, see the vault."])
    again = memory.retain(["The staging login is admin; see the vault"])
    assert memory.c.store._dense_mirror._state == "ready"
    assert again.duplicates == 1 and again.ids == first.ids


def test_in_memory_stores_and_the_setting_turn_it_off(db: Path) -> None:
    assert SQLStore.from_url("sqlite://")._dense_mirror is None
    assert SQLStore.from_url(f"sqlite:///{db}", dense_mirror="off")._dense_mirror is None
    assert SQLStore.from_url(f"sqlite:///{db}")._dense_mirror is not None


# --- snapshots ----------------------------------------------------------------------------------


@pytest.fixture
def small_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dense_mirror, "SNAPSHOT_MIN_ROWS", 10)
    monkeypatch.setattr(dense_mirror, "SNAPSHOT_AFTER", 5)


def snapshots(db: Path) -> list[Path]:
    root = db.parent / "dense-mirror" / db.name
    return sorted(root.glob("snapshot-*")) if root.is_dir() else []


def no_build_from_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        dense_mirror.DenseMirror,
        "_from_records",
        lambda self, raw: pytest.fail("built from the records instead of the snapshot"),
    )


def test_a_build_leaves_a_snapshot_the_next_process_loads_and_brings_up_to_date(
    db: Path, small_snapshots: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = open_memory(db)
    first.retain(FACTS[:30])
    mirror_search(first, "key")  # brings the mirror up to date (close saves what it holds)
    first.close()
    assert len(snapshots(db)) == 1
    writer = open_memory(db)
    writer.c.store._dense_mirror = None  # this one only writes, after the snapshot
    later = writer.retain(FACTS[30:]).ids
    writer.forget(later[:2])
    writer.close()
    no_build_from_records(monkeypatch)
    second = open_memory(db)
    try:
        hits = check(db, mirror_search(second, "blue laptop", k=20), "blue laptop", k=20)
        assert set(hits) & set(later[2:]) and not set(hits) & set(later[:2])
    finally:
        second.close()


def test_a_snapshot_of_another_history_or_a_damaged_one_is_not_used(
    db: Path, tmp_path: Path, small_snapshots: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = []
    from_records = dense_mirror.DenseMirror._from_records

    def counted(self, raw):
        builds.append(1)
        return from_records(self, raw)

    monkeypatch.setattr(dense_mirror.DenseMirror, "_from_records", counted)
    m = open_memory(db)
    m.retain(FACTS[:30])
    backup = tmp_path / "backup.db"
    with sqlite3.connect(db) as src, sqlite3.connect(backup) as dst:
        src.backup(dst)  # the same store id and log so far
    m.retain(FACTS[30:])
    mirror_search(m, "key")
    m.close()
    (saved,) = snapshots(db)  # of a history the backup never saw
    restored = open_memory(backup)
    restored.c.store._dense_mirror = None
    restored.retain([f"restored note {i}" for i in range(40)])  # its log passes the snapshot's
    restored.close()
    backup.replace(db)  # the backup restored in place
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    builds.clear()
    again = open_memory(db)
    try:  # the log reaches the snapshot's head, but names another row there: rebuilt
        check(db, mirror_search(again, "restored note 7", k=15), "restored note 7", k=15)
        assert builds == [1]
    finally:
        again.close()
    (rebuilt,) = snapshots(db)  # the rebuild's own snapshot replaced the stranger's
    assert rebuilt != saved and not saved.exists()
    for path in snapshots(db):
        (path / "graph-0.bin").write_bytes(b"not an index")
    builds.clear()
    damaged = open_memory(db)
    try:
        check(db, mirror_search(damaged, "green key", k=15), "green key", k=15)
        assert builds == [1]
    finally:
        damaged.close()


def test_close_saves_only_after_enough_changes_and_keeps_the_newest(
    db: Path, small_snapshots: None
) -> None:
    m = open_memory(db)
    m.retain(FACTS[:20])
    mirror_search(m, "key")
    m.close()
    (first,) = snapshots(db)
    m = open_memory(db)
    m.retain(FACTS[20:22])  # 2 log entries: below SNAPSHOT_AFTER
    mirror_search(m, "key")
    m.close()
    assert snapshots(db) == [first]
    m = open_memory(db)
    m.retain(FACTS[22:])
    mirror_search(m, "key")
    m.close()
    (newer,) = snapshots(db)
    assert newer != first and not first.exists()


def test_a_save_removes_what_a_killed_save_left_but_not_a_save_under_way(
    db: Path, small_snapshots: None
) -> None:
    root = db.parent / "dense-mirror" / db.name
    root.mkdir(parents=True)
    dead, busy = root / ".tmp-snapshot-000000000003-dead", root / ".tmp-snapshot-000000000004-busy"
    for path in (dead, busy):
        path.mkdir()
        (path / "graph-0.bin").write_bytes(b"partial")
    old = time.time() - dense_snapshot.STALE_TMP_S - 60
    for path in (dead / "graph-0.bin", dead):
        os.utime(path, (old, old))
    m = open_memory(db)
    m.retain(FACTS[:20])
    mirror_search(m, "key")
    m.close()
    assert len(snapshots(db)) == 1
    assert not dead.exists() and busy.exists()


def test_snapshot_mode_loads_a_snapshot_but_never_builds(
    db: Path, small_snapshots: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What short CLI commands use: no snapshot, no mirror (the index answers); with one, the
    mirror as usual. (An empty store never builds, see the next test for a small one.)"""
    m = Memory(
        SQLStore.from_url(f"sqlite:///{db}", dense_mirror="snapshot"), NumpyVectorIndex(), EMBEDDER
    )
    m.retain(FACTS)
    assert mirror_search(m, "red key") is None
    assert m.c.store._dense_mirror._state == "off" and not m.c.store.warm_dense_mirror()
    assert m.recall("red key", k=3).hits  # the vector index answered
    m.close()
    assert snapshots(db) == []
    builder = open_memory(db)
    mirror_search(builder, "red key")
    builder.close()
    assert len(snapshots(db)) == 1
    no_build_from_records(monkeypatch)
    m = Memory(
        SQLStore.from_url(f"sqlite:///{db}", dense_mirror="snapshot"), NumpyVectorIndex(), EMBEDDER
    )
    try:
        check(db, mirror_search(m, "red key"), "red key")
    finally:
        m.close()


def test_snapshot_mode_builds_a_small_store(db: Path, small_snapshots: None) -> None:
    """A store of at most SMALL_BUILD_ROWS builds in a short command too: faster than the
    vector index's first query in a fresh process (chromadb is not even imported)."""
    assert len(FACTS) <= dense_mirror.SMALL_BUILD_ROWS
    writer = Memory(
        SQLStore.from_url(f"sqlite:///{db}", dense_mirror="off"), NumpyVectorIndex(), EMBEDDER
    )
    writer.retain(FACTS)
    writer.close()
    m = Memory(
        SQLStore.from_url(f"sqlite:///{db}", dense_mirror="snapshot"), NumpyVectorIndex(), EMBEDDER
    )
    try:
        check(db, mirror_search(m, "red key"), "red key")
        assert m.c.store._dense_mirror._state == "ready"
    finally:
        m.close()


@pytest.mark.parametrize(
    ("value", "mode"),
    [("on", "on"), ("snapshot", "snapshot"), ("off", "off"), ("1", "on"), ("false", "off")],
)
def test_the_setting_takes_modes_and_booleans(
    value: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentforge.settings import Settings

    monkeypatch.setenv("AGENTFORGE_DENSE_MIRROR", value)
    assert Settings().dense_mirror == mode
