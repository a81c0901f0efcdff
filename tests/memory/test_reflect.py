"""reflect without an LLM: merge near-duplicates, supersede keyed conflicts, forget by utility
and age; dry run, budget, history and undo of each kind of change."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from agentforge.memory.engine import Memory
from agentforge.memory.records import utcnow
from agentforge.memory.reflect import ReflectBudget, ReflectPolicy, utility


@pytest.fixture
def memory() -> Iterator[Memory]:
    m = Memory.in_memory()
    yield m
    m.close()


def _set(memory: Memory, record_id: str, **fields: object) -> None:
    with memory.c.store.write() as s:
        record = memory.c.store.fetch(s, [record_id])[record_id]
        for key, value in fields.items():
            setattr(record, key, value)
        s.add(record)


def _status(memory: Memory, record_id: str) -> str:
    return memory.c.store.get(record_id).status


def test_utility_is_laplace_smoothed() -> None:
    assert utility(0, 0) == 0.5 and utility(3, 1) == pytest.approx(4 / 6)


def test_merges_near_duplicates_into_the_more_useful_one_and_undo_restores(memory: Memory) -> None:
    # documents bypass retain-time de-duplication, so both restatements are stored
    a = memory.retain("the cart button is at the top right", doc_id="a").ids[0]
    b = memory.retain("The cart button is at the top right!", doc_id="b").ids[0]
    other = memory.retain("checkout needs a shipping address", doc_id="c").ids[0]
    _set(memory, b, successes=2, utility=0.75, recalls=3, tags=["ui"])
    report = memory.reflect()
    assert report.counts() == {"merge": 1, "absorb": 1}
    assert _status(memory, a) == "merged" and memory.c.store.get(a).superseded_by == b
    keeper = memory.c.store.get(b)
    assert keeper.recalls == 3 and keeper.status == "active"
    assert _status(memory, other) == "active"
    assert [h.id for h in memory.recall("cart button").hits][:1] == [b]
    assert {h.action for h in memory.history(op_id=report.op_id)} == {"merge", "absorb"}
    memory.undo(report.op_id)
    assert _status(memory, a) == "active" and memory.c.store.get(b).recalls == 3
    assert memory.check()["ok"]


def test_a_keeper_of_three_near_duplicates_sums_all_of_their_usage(memory: Memory) -> None:
    """The second absorb was computed from the keeper as stored, so it overwrote the first
    (the first duplicate's recalls, successes and tags were lost), and the keeper reached the
    index twice in one upsert: reflect failed after its commit, the index left stale."""
    a = memory.retain("the cart button is at the top right", doc_id="a").ids[0]
    b = memory.retain("The cart button is at the top right!", doc_id="b").ids[0]
    c = memory.retain("The cart button is at the top right.", doc_id="c").ids[0]
    _set(memory, a, successes=1, recalls=2, tags=["x"], utility=utility(1, 0))
    _set(memory, b, successes=2, recalls=3, tags=["ui"], utility=utility(2, 0))
    _set(memory, c, failures=1, recalls=1, tags=["y"], utility=utility(0, 1))
    report = memory.reflect()
    assert report.counts() == {"merge": 2, "absorb": 2}
    assert {_status(memory, r) for r in (a, c)} == {"merged"} and _status(memory, b) == "active"
    keeper = memory.c.store.get(b)
    assert (keeper.recalls, keeper.successes, keeper.failures) == (6, 3, 1)
    assert keeper.tags == ["ui", "x", "y"] and keeper.utility == utility(3, 1)
    assert memory.check()["ok"]
    memory.undo(report.op_id)
    assert {_status(memory, r) for r in (a, b, c)} == {"active"}
    assert memory.c.store.get(b).successes == 2 and memory.check()["ok"]


def test_forgets_failing_and_stale_items_but_never_episodes(memory: Memory) -> None:
    failing = memory.retain("always click the first link").ids[0]
    stale = memory.retain("an old unused note about fonts").ids[0]
    fresh = memory.retain("a fresh note about colours").ids[0]
    episode = memory.retain("episode: task failed", level="episode").ids[0]
    _set(memory, failing, failures=4, utility=utility(0, 4))
    long_ago = utcnow() - timedelta(days=400)
    for rid in (stale, episode):
        _set(memory, rid, created_at=long_ago)
    report = memory.reflect()
    assert report.counts() == {"forget": 2}
    assert {_status(memory, failing), _status(memory, stale)} == {"forgotten"}
    assert _status(memory, fresh) == "active" and _status(memory, episode) == "active"
    assert failing not in [h.id for h in memory.recall("always click the first link").hits]
    memory.undo(report.op_id)
    assert _status(memory, failing) == "active" and _status(memory, stale) == "active"
    assert failing in [h.id for h in memory.recall("always click the first link").hits]


def test_dry_run_changes_nothing(memory: Memory) -> None:
    rid = memory.retain("stale thing").ids[0]
    _set(memory, rid, created_at=utcnow() - timedelta(days=400))
    report = memory.reflect(dry_run=True)
    assert report.counts() == {"forget": 1} and report.op_id is None
    assert _status(memory, rid) == "active" and memory.operations(limit=1)[0].kind == "retain"


def test_budget_caps_the_number_of_changes(memory: Memory) -> None:
    ids = memory.retain([f"stale note {i} about topic {i * 7}" for i in range(6)]).ids
    for rid in ids:
        _set(memory, rid, created_at=utcnow() - timedelta(days=400))
    report = memory.reflect(budget=ReflectBudget(max_changes=2))
    assert report.truncated and len(report.changes) == 2
    assert sum(_status(memory, r) == "forgotten" for r in ids) == 2


def test_keyed_conflicts_left_active_are_superseded_by_the_newest(memory: Memory) -> None:
    # two processes may write the same key concurrently; reflect resolves what is left
    old = memory.retain("plan is free", doc_id="x").ids[0]
    new = memory.retain("plan is pro", doc_id="y").ids[0]
    _set(memory, old, key="user.plan", valid_from=utcnow() - timedelta(days=2))
    _set(memory, new, key="user.plan")
    report = memory.reflect(policy=ReflectPolicy(merge_threshold=1.1))
    assert report.counts() == {"supersede": 1}
    assert _status(memory, old) == "superseded" and memory.c.store.get(old).superseded_by == new
    memory.undo(report.op_id)
    assert _status(memory, old) == "active"


def test_credit_can_be_undone(memory: Memory) -> None:
    rid = memory.retain("use the search box").ids[0]
    memory.recall("search box", run_id="r1")
    memory.record_outcome("r1", "success")
    op = memory.operations(limit=1)[0]
    assert op.kind == "credit" and memory.c.store.get(rid).successes == 1
    memory.undo(op.id)
    assert memory.c.store.get(rid).successes == 0 and memory.c.store.get(rid).utility == 0.5
