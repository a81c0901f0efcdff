"""The in-process BM25 index gives FTS5's own ranking, stays exact as rows are inserted, changed,
forgotten and deleted (by this store or another one on the same file), and hands queries to SQL
while it is not ready."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, update
from sqlmodel import col

from agentforge.memory import bm25
from agentforge.memory.bm25_rows import RowFilter, top_candidates
from agentforge.memory.embedders import HashEmbedder
from agentforge.memory.engine import Memory
from agentforge.memory.index import NumpyVectorIndex
from agentforge.memory.keyword import keyword_search
from agentforge.memory.records import MemoryRecord
from agentforge.memory.store import SQLStore
from agentforge.types import MemoryInput

WORDS = (
    "export invoices download report cancel subscription shipping address password cart "
    "discount flight hotel billing repository meeting profile orders refund parcel course "
    "calendar folder colleague language settings button dialog tab menu checkbox login "
    "running runs runner exported exporting"
).split()


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))) + f" note {i}"
        for i in range(n)
    ]


def _queries(seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.sample(WORDS, rng.randint(1, 5))) for _ in range(40)] + [
        "How do I export the invoices?",
        "the runner's exported orders",
        "export export invoices",
        "nothing here matches zzz",
    ]


def _memory(path: Path) -> Memory:
    return Memory(SQLStore.from_url(f"sqlite:///{path}"), NumpyVectorIndex(), HashEmbedder())


def _fill(memory: Memory, texts: list[str], namespace: str = "default") -> None:
    memory.retain(
        [
            MemoryInput(content=t, title=t.split()[0], tags=[t.split()[1]], kind=f"k{i % 3}")
            for i, t in enumerate(texts)
        ],
        namespace=namespace,
    )


def _both(store: SQLStore, query: str, n: int = 25, **filters: object) -> tuple[list, list]:
    """(in-process hits, FTS5 hits) in one read transaction."""
    levels = filters.get("levels")
    kinds = filters.get("kinds")
    namespace = str(filters.get("namespace", "default"))
    with store.read() as s:
        found = store._keyword_index.search(  # type: ignore[union-attr]
            s.connection(), namespace, query, n, levels, kinds  # type: ignore[arg-type]
        )
        fast = None if found is None else found[0]
        slow = keyword_search(s, namespace, query, n, levels=levels, kinds=kinds)  # type: ignore[arg-type]
    return fast, slow


def _assert_same(fast: list | None, slow: list) -> None:
    assert fast is not None
    assert len(fast) == len(slow)
    assert [round(s, 9) for _, s in fast] == pytest.approx([round(s, 9) for _, s in slow])
    # equal scores may come in any order; everything above the last score is the same set
    if slow:
        cut = slow[-1][1] + 1e-9
        assert {i for i, s in fast if s > cut} == {i for i, s in slow if s > cut}


def test_scores_and_filters_are_fts5s(tmp_path: Path) -> None:
    memory = _memory(tmp_path / "m.db")
    _fill(memory, _texts(600, 1))
    _fill(memory, _texts(200, 2), namespace="other")
    store = memory.c.store
    for q in _queries(3):
        _assert_same(*_both(store, q))
        _assert_same(*_both(store, q, namespace="other", n=10))
        _assert_same(*_both(store, q, kinds=["k1"], levels=["experience"]))
    assert _both(store, "nothing here matches zzz")[0] == []
    memory.close()


def test_stays_exact_through_inserts_changes_forgetting_and_other_writers(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    memory = _memory(path)
    _fill(memory, _texts(300, 4))
    store = memory.c.store
    queries = _queries(5)
    _assert_same(*_both(store, queries[0]))  # built now

    _fill(memory, _texts(50, 6))  # inserts
    with store.write() as s:  # an edit of indexed text, and a hard delete
        s.exec(
            update(MemoryRecord)
            .where(col(MemoryRecord.seq) <= 20)  # type: ignore[call-overload]
            .values(content="export export export invoices", title="", tags=[])
        )
        s.exec(delete(MemoryRecord).where(col(MemoryRecord.seq).between(21, 40)))  # type: ignore[call-overload]
    hits = _both(store, "export invoices")[0] or []
    memory.forget([hits[0][0]])  # a status change: filtered, still counted by FTS5
    other = _memory(path)  # another writer on the same file
    _fill(other, _texts(40, 7))
    other.close()
    for q in queries:
        _assert_same(*_both(store, q))
    memory.close()


def test_filters_follow_namespace_level_and_kind_changes(tmp_path: Path) -> None:
    """The filters read per-row arrays in-process: a row moved to another namespace, level or
    kind (here by another connection, in raw SQL) is filtered by its new values at once."""
    import sqlite3

    path = tmp_path / "m.db"
    memory = _memory(path)
    _fill(memory, _texts(300, 8))
    _fill(memory, _texts(100, 9), namespace="other")
    store = memory.c.store
    _assert_same(*_both(store, "export invoices"))  # built now
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE memory SET namespace = 'other' WHERE seq % 7 = 0")
        conn.execute("UPDATE memory SET kind = 'moved' WHERE seq % 5 = 0")
        conn.execute("UPDATE memory SET level = 'insight' WHERE seq % 3 = 0")
        conn.execute("UPDATE memory SET status = 'superseded' WHERE seq % 11 = 0")
    for q in _queries(10)[:15]:
        _assert_same(*_both(store, q))
        _assert_same(*_both(store, q, namespace="other"))
        _assert_same(*_both(store, q, kinds=["moved"]))
        _assert_same(*_both(store, q, kinds=["k1", "moved"], levels=["insight"]))
        _assert_same(*_both(store, q, levels=["insight"], namespace="other"))
    assert _both(store, "export", namespace="nowhere") == ([], [])
    memory.close()


def test_sql_answers_until_the_background_build_is_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory = _memory(tmp_path / "m.db")
    _fill(memory, _texts(400, 8))
    memory.close()
    monkeypatch.setattr(bm25.KeywordIndex, "background_rows", 100)
    memory = _memory(tmp_path / "m.db")
    store = memory.c.store
    fast, slow = _both(store, "export invoices")
    assert fast is None and slow  # building in a thread: the caller asks FTS5
    deadline = time.monotonic() + 30
    while (fast := _both(store, "export invoices")[0]) is None:
        assert time.monotonic() < deadline, "the background build never finished"
        time.sleep(0.02)
    _assert_same(fast, slow)
    # far behind the log: a catch-up thread applies it while FTS5 answers
    monkeypatch.setattr(bm25.KeywordIndex, "sync_limit", 10)
    _fill(memory, _texts(100, 9))
    fast, slow = _both(store, "running exported orders")
    assert fast is None
    while (fast := _both(store, "running exported orders")[0]) is None:
        assert time.monotonic() < deadline, "the catch-up never finished"
        time.sleep(0.02)
    _assert_same(*_both(store, "running exported orders"))
    memory.close()


def test_memory_recall_uses_it(tmp_path: Path) -> None:
    memory = _memory(tmp_path / "m.db")
    _fill(memory, _texts(100, 10))
    memory.retain("The loyalty points page lists the refund parcel", namespace="default")
    hit = memory.recall("loyalty points", k=1).hits[0]
    assert "loyalty points" in hit.content and hit.ranks.keyword == 1
    assert memory.c.store._keyword_index._state == "ready"  # type: ignore[union-attr]
    memory.close()


def test_warm_builds_now_and_catches_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    memory = _memory(tmp_path / "m.db")
    _fill(memory, _texts(300, 11))
    memory.close()
    monkeypatch.setattr(bm25.KeywordIndex, "background_rows", 10)
    monkeypatch.setattr(bm25.KeywordIndex, "sync_limit", 10)
    memory = _memory(tmp_path / "m.db")
    store = memory.c.store
    assert store.warm_keyword_index()  # no background thread: ready on return
    _assert_same(*_both(store, "export the invoices"))
    _fill(memory, _texts(50, 12))  # 50 log entries: more than a search applies itself
    assert store.warm_keyword_index()
    _assert_same(*_both(store, "export the invoices"))
    memory.close()


def test_the_keyword_channel_can_search_another_text_than_is_embedded(tmp_path: Path) -> None:
    memory = _memory(tmp_path / "m.db")
    memory.retain(["the loyalty points page lists refunds", "the checkout dialog hides a button"])
    result = memory.recall("loyalty points", keyword_query="checkout dialog button", k=2)
    by_text = {h.content: h.ranks for h in result.hits}
    assert by_text["the checkout dialog hides a button"].keyword == 1
    assert by_text["the loyalty points page lists refunds"].keyword is None
    memory.close()


def test_cached_contributions_stay_within_their_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's queries share their stems' contributions; over the bound the cache starts
    afresh, and the answers stay FTS5's."""
    monkeypatch.setattr(bm25.KeywordIndex, "cache_postings", 200)
    memory = _memory(tmp_path / "m.db")
    _fill(memory, _texts(400, 13))
    store = memory.c.store
    index = store._keyword_index
    assert index is not None
    for q in _queries(14) * 2:
        _assert_same(*_both(store, q))
        assert index._cached_postings <= 200
    assert index._contributions  # it did cache
    memory.close()


@pytest.mark.parametrize("size", [2, 17, 100, 5000])
def test_top_candidates_hold_the_n_best_and_their_ties(size: int) -> None:
    rng = np.random.default_rng(size)
    for n in (1, 5, 60):
        if n >= size:
            continue
        for scores in (rng.integers(0, 30, size).astype(float), rng.random(size)):
            nth = np.sort(scores)[::-1][n - 1]
            found = set(top_candidates(scores, n).tolist())
            assert set(np.flatnonzero(scores >= nth).tolist()) <= found
            if size >= 1000:  # a cut from the sample, not all the scores
                assert len(found) < size // 10


def test_best_equals_filtering_everything_then_sorting() -> None:
    """`RowFilter.best` filters only the best few rows when enough of them pass, else all."""
    rng = random.Random(15)
    rows = RowFilter()
    spaces, levels, kinds = ("a", "b", "c"), ("episode", "insight"), ("k0", "k1", "k2")
    table = {
        seq: (rng.choice(spaces), rng.random() < 0.9, rng.choice(levels), rng.choice(kinds))
        for seq in range(1, 3000)
    }
    rows.set_rows(
        (seq, f"id{seq}", ns, "active" if on else "forgotten", level, kind)
        for seq, (ns, on, level, kind) in table.items()
    )
    for trial in range(60):
        seqs = np.array(rng.sample(sorted(table), rng.randint(1, 2500)), np.int64)
        scores = np.array([float(rng.randint(0, 40)) for _ in seqs])  # many ties
        ns, n = rng.choice(spaces), rng.choice([1, 5, 25, 60, 400])
        want_levels = [rng.choice(levels)] if trial % 3 == 0 else None
        want_kinds = [rng.choice(kinds)] if trial % 2 == 0 else None
        expected = sorted(
            (-score, seq)
            for seq, score in zip(seqs.tolist(), scores.tolist(), strict=True)
            if table[seq][0] == ns
            and table[seq][1]
            and (want_levels is None or table[seq][2] in want_levels)
            and (want_kinds is None or table[seq][3] in want_kinds)
        )[:n]
        got, _ = rows.best(seqs, scores, ns, n, want_levels, want_kinds)
        assert got == [(f"id{seq}", -neg) for neg, seq in expected]
