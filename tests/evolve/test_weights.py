"""Tuning the recall weights from logged recalls and outcomes (agentforge.evolve.weights).

The embedder is a table, so that the dense and keyword channels disagree on purpose: for topic i,
the "dense" item shares the query's vector but none of its words; the "keyword" item shares its
words but an unrelated vector. Runs explore (k=1 under weights that favour one item or the
other), and the test decides which item's runs succeed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from agentforge.evolve.weights import load_logs, tune_weights
from agentforge.memory.embedders import Embedder
from agentforge.memory.engine import Memory
from agentforge.memory.fusion import FusionWeights
from agentforge.memory.index import NumpyVectorIndex
from agentforge.memory.recall import RecallTuning, weights_key
from agentforge.memory.store import SQLStore

NS = "acme/agent"
TOPICS = 24
DIM = 128
FAVOUR_DENSE = FusionWeights(keyword=0.1, utility=0.0)  # the dense item first (exploring)


def query(i: int) -> str:
    return f"alpha{i} beta{i} question"


def dense_item(i: int) -> str:
    return f"remedy number {i}"


def keyword_item(i: int) -> str:
    return f"alpha{i} beta{i} notes"


class TableEmbedder(Embedder):
    """One-hot vectors from a table: query i and dense item i share dimension i."""

    model_id = "table"
    dim = DIM

    def __init__(self) -> None:
        self.table = {query(i): i for i in range(TOPICS)}
        self.table |= {dense_item(i): i for i in range(TOPICS)}
        self.table |= {keyword_item(i): TOPICS + i for i in range(TOPICS)}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row, self.table.get(text, DIM - 1)] = 1.0
        return out


@pytest.fixture
def memory() -> Iterator[Memory]:
    m = Memory.in_memory(TableEmbedder(), namespace=NS)
    m.retain([dense_item(i) for i in range(TOPICS)])
    m.retain([keyword_item(i) for i in range(TOPICS)])
    yield m
    m.close()


def run_topic(memory: Memory, i: int, *, dense_helps: bool) -> None:
    """Two runs on topic i: one recalls the dense item, one the keyword item; the helpful
    one succeeds, the other fails."""
    for name, weights in (("d", FAVOUR_DENSE), ("k", None)):
        run_id = f"{name}{i}-{dense_helps}"
        hit = memory.recall(query(i), k=1, run_id=run_id, weights=weights).hits[0]
        found_dense = hit.content == dense_item(i)
        assert found_dense == (name == "d")
        memory.record_outcome(run_id, "success" if found_dense == dense_helps else "failure")


def top(memory: Memory, i: int, **kwargs: object) -> str:
    hits = memory.recall(query(i), k=1, log=False, **kwargs).hits
    return hits[0].content if hits else ""


def tune(memory: Memory, **kwargs: object):  # type: ignore[no-untyped-def]
    return memory._run(tune_weights(memory, NS, **kwargs))  # type: ignore[arg-type]


def test_recall_logs_channel_ranks_of_more_candidates_than_it_returns(memory: Memory) -> None:
    memory.recall(query(0), k=2, run_id="r")
    log = memory.recall_log(limit=1)[0]
    assert len(log.result_ids) == 2 and len(log.ranks or {}) == 30
    first = log.ranks[log.result_ids[0]]  # type: ignore[index]
    assert first["keyword"] == 1 and first["dense"] == 2


def test_a_recall_outside_a_run_logs_no_channel_ranks(memory: Memory) -> None:
    """Only a run's outcome credits a recall log and only credited logs are tuned on: the ranks
    (~2.4 KB a log) of a recall without a run would never be read."""
    memory.recall(query(0), k=2)
    memory.recall(query(0), k=2, run_id="r")
    in_run, outside = memory.recall_log(limit=2)
    assert outside.run_id is None and outside.ranks is None and len(outside.result_ids) == 2
    assert in_run.run_id == "r" and len(in_run.ranks or {}) == 30


def test_tuning_moves_weight_to_the_useful_channel_and_recall_uses_it(memory: Memory) -> None:
    for i in range(TOPICS):
        run_topic(memory, i, dense_helps=True)
    assert top(memory, 0) == keyword_item(0)  # default weights put the keyword item first

    report = tune(memory)

    notes = report.notes
    assert report.op_id and report.changed == [weights_key(NS)], notes
    assert notes["heldout_after"] > notes["heldout_before"]
    assert notes["train_after"] > notes["train_before"]
    tuned = memory.tuning(NS)
    default = FusionWeights()
    assert tuned.weights.keyword / tuned.weights.dense < default.keyword / default.dense
    assert memory.c.store.read_meta_json(weights_key(NS)) == tuned.as_dict()
    assert top(memory, 0) == dense_item(0)  # recall now uses the tuned weights
    assert top(memory, 0, weights=FusionWeights()) == keyword_item(0)  # explicit weights win
    memory.reload_tuning()
    assert memory.tuning(NS) == tuned  # read back from the store


def test_history_shows_the_change_and_undo_restores_the_previous_weights(
    memory: Memory,
) -> None:
    for i in range(TOPICS):
        run_topic(memory, i, dense_helps=True)
    report = tune(memory)
    assert report.op_id

    entry = memory.history(namespace=NS, limit=1)[0]
    assert (entry.op_id, entry.record_id, entry.action) == (
        report.op_id,
        weights_key(NS),
        "tune-weights",
    )
    assert entry.before is None and entry.after == memory.tuning(NS).as_dict()
    assert memory.operations(namespace=NS, limit=1)[0].kind == "learn-weights"

    undo = memory.undo(report.op_id)
    assert memory.tuning(NS) == RecallTuning(memory.weights)
    assert memory.c.store.read_meta_json(weights_key(NS)) is None
    assert top(memory, 0) == keyword_item(0)
    restore = memory.history(op_id=undo.id)[0]
    assert restore.action == "restore" and restore.before == entry.after


def test_undo_of_a_second_tuning_restores_the_first(memory: Memory) -> None:
    for i in range(TOPICS):
        run_topic(memory, i, dense_helps=True)
    first = tune(memory)
    second_after = {**first.notes["tuned"], "min_score": 0.05}
    store = memory.c.store
    with store.write() as s:  # a later tuning, written the way tune_weights writes it
        op = store.begin_operation(s, "learn-weights", NS)
        store.set_meta_json(s, weights_key(NS), second_after)
        from agentforge.memory.records import HistoryEntry

        s.add(
            HistoryEntry(
                op_id=op.id,
                record_id=weights_key(NS),
                namespace=NS,
                action="tune-weights",
                before=first.notes["tuned"],
                after=second_after,
            )
        )
    memory.reload_tuning(NS)
    assert memory.tuning(NS).min_score == 0.05
    memory.undo(op.id)
    assert memory.tuning(NS).as_dict() == first.notes["tuned"]


def test_a_held_out_regression_keeps_the_current_weights(memory: Memory) -> None:
    # The oldest topics reward the dense item, the newest (held out) the keyword item.
    for i in range(18):
        run_topic(memory, i, dense_helps=True)
    for i in range(18, TOPICS):
        run_topic(memory, i, dense_helps=False)

    report = tune(memory, holdout=0.25)

    notes = report.notes
    assert report.op_id is None and report.changed == []
    assert notes["train_after"] > notes["train_before"]
    assert notes["heldout_after"] < notes["heldout_before"]
    assert report.rejected and "regress on the held-out logs" in report.rejected[0]
    assert "kept" in notes["reason"]
    assert memory.c.store.read_meta_json(weights_key(NS)) is None
    assert memory.tuning(NS) == RecallTuning(memory.weights)
    assert not [h for h in memory.history(namespace=NS) if h.action == "tune-weights"]


def test_too_few_logs_change_nothing_and_say_why(memory: Memory) -> None:
    for i in range(3):
        run_topic(memory, i, dense_helps=True)
    memory.recall(query(5), run_id="no-outcome")  # not credited: does not count
    report = tune(memory)
    assert report.op_id is None and report.notes["logs"] == 6
    assert "too few logged recalls" in report.notes["reason"]
    assert memory.c.store.read_meta_json(weights_key(NS)) is None


def test_min_score_gate_returns_nothing_below_it(memory: Memory) -> None:
    assert top(memory, 0, min_score=0.0) == keyword_item(0)
    assert top(memory, 0, min_score=0.99) == ""
    assert top(memory, 0, min_score=0.3) == keyword_item(0)  # 0.31/0.58 of the best possible


def test_tuning_learns_to_not_recall_when_nothing_helps(memory: Memory) -> None:
    """Queries whose candidates only ever led to failures: recalling nothing scores best."""
    for i in range(TOPICS):
        run_id = f"fail{i}"
        memory.recall(query(i), k=3, run_id=run_id, weights=FusionWeights(keyword=0))
        memory.record_outcome(run_id, "failure")
    report = tune(memory, min_logs=10)
    assert report.op_id, report.notes
    assert report.notes["heldout_after"] > report.notes["heldout_before"]
    assert memory.tuning(NS).min_score > 0


def test_old_schema_database_gains_the_ranks_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    SQLStore.from_url(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:  # as an older version left it, with one row
        conn.execute("ALTER TABLE recall_log DROP COLUMN ranks")
        conn.execute(
            "INSERT INTO recall_log(namespace, query, at, result_ids, scores, latency_ms, "
            "credited) VALUES (?, 'old query', '2024-01-01 00:00:00', '[]', '[]', 1.0, 1)",
            (NS,),
        )
    for _ in range(2):  # the migration is idempotent
        store = SQLStore.from_url(f"sqlite:///{path}")
        with sqlite3.connect(path) as conn:
            columns = [row[1] for row in conn.execute("PRAGMA table_info(recall_log)")]
        assert columns.count("ranks") == 1
        store.close()
    store = SQLStore.from_url(f"sqlite:///{path}")
    memory = Memory(store, NumpyVectorIndex(), TableEmbedder(), namespace=NS)
    memory.retain([dense_item(0), keyword_item(0)])
    memory.recall(query(0), run_id="new")
    memory.record_outcome("new", "success")
    old, new = sorted(store.recall_log(namespace=NS), key=lambda r: r.id or 0)
    assert old.ranks is None and new.ranks
    assert [log.log_id for log in load_logs(store, NS)] == [new.id]
    memory.close()
