"""The memory engine's contract, run against every record-store backend (SQLite in memory,
SQLite file in WAL mode, and PostgreSQL when AGENTFORGE_TEST_POSTGRES_URL names one: a database
for tests, whose public schema each test drops and recreates), with the numpy index and the hash
embedder: retain, recall, credit, forget, undo, history, supersede, as_of, budgets."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, update
from sqlmodel import col

from agentforge.errors import ConfigError, InputError, MemoryStoreError, NotFoundError
from agentforge.memory import recall as recall_module
from agentforge.memory.components import reconcile
from agentforge.memory.embedders import BatchingEmbedder, HashEmbedder
from agentforge.memory.engine import Memory
from agentforge.memory.fusion import FusionWeights
from agentforge.memory.index import NumpyVectorIndex
from agentforge.memory.records import MemoryRecord
from agentforge.memory.store import SQLStore
from agentforge.types import Level, MemoryInput, RecallResult

POSTGRES_URL = os.environ.get("AGENTFORGE_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite-memory", "sqlite-file", "postgresql"])
def memory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Memory]:
    if request.param == "sqlite-memory":
        store = SQLStore.from_url("sqlite://")
    elif request.param == "sqlite-file":
        store = SQLStore.from_url(f"sqlite:///{tmp_path / 'memory.db'}")
    else:
        if not POSTGRES_URL:
            pytest.skip("no PostgreSQL server: set AGENTFORGE_TEST_POSTGRES_URL to run")
        _empty_postgres(POSTGRES_URL)
        store = SQLStore.from_url(POSTGRES_URL)
    m = Memory(store, NumpyVectorIndex(), HashEmbedder())
    yield m
    m.close()


def _empty_postgres(url: str) -> None:
    """Each test starts from an empty database, as the SQLite ones do."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
    finally:
        engine.dispose()


def contents(result) -> list[str]:
    return [h.content for h in result.hits]


def test_retain_then_recall_finds_it_first(memory: Memory) -> None:
    memory.retain(
        [
            "The user's favourite colour is blue.",
            "Paris is the capital of France.",
            "Click submit after filling the form.",
        ]
    )
    hits = memory.recall("which colour does the user like").hits
    assert hits[0].content == "The user's favourite colour is blue."
    assert hits[0].ranks.dense == 1 and hits[0].ranks.keyword == 1
    assert hits[0].score > hits[1].score


def test_exact_duplicates_are_not_stored_twice(memory: Memory) -> None:
    first = memory.retain("Tea is served at five.")
    again = memory.retain("  tea IS served   at five. ")
    assert again.ids == first.ids and again.created == 0 and again.duplicates == 1
    batch = memory.retain(["A new fact.", "A new fact."])
    assert batch.created == 1 and batch.ids[0] == batch.ids[1]


def test_doc_id_makes_retain_idempotent_and_updates_supersede(memory: Memory) -> None:
    a = memory.retain("version one of the doc", doc_id="doc")
    assert memory.retain("version one of the doc", doc_id="doc").ids == a.ids
    b = memory.retain("version two of the doc", doc_id="doc")
    assert b.ids != a.ids and b.created == 1
    assert contents(memory.recall("version of the doc")) == ["version two of the doc"]
    old = memory.c.store.get(a.ids[0])
    assert old.status == "superseded" and old.valid_to is not None


def test_long_text_is_chunked(memory: Memory) -> None:
    text = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(200))
    result = memory.retain(text, doc_id="long")
    assert result.chunks > 1 and len(set(result.ids)) == result.chunks


@pytest.mark.parametrize(
    "bad", ["", "   \n ", b"\x00\x01\x02binary", "a\x00b", "x" * 2_000_001, 42]
)
def test_bad_inputs_get_clear_errors_and_store_nothing(memory: Memory, bad: object) -> None:
    with pytest.raises(InputError):
        memory.retain(bad)  # type: ignore[arg-type]
    assert memory.stats()["namespaces"] == {}


@pytest.mark.parametrize("ns", ["", "../etc", "a//b", "-x", "a" * 65, "a/" * 9 + "a", "sp ace"])
def test_bad_namespaces_are_rejected(memory: Memory, ns: str) -> None:
    with pytest.raises(InputError):
        memory.retain("fact", namespace=ns)


def test_namespaces_are_isolated(memory: Memory) -> None:
    memory.retain("alpha secret", namespace="acme/agent")
    memory.retain("beta secret", namespace=("other", "agent"))
    assert contents(memory.recall("secret", namespace="acme/agent")) == ["alpha secret"]
    assert contents(memory.recall("secret", namespace="other/agent")) == ["beta secret"]


def test_filters_levels_kinds_tags_and_time(memory: Memory) -> None:
    old = datetime(2020, 1, 1, tzinfo=UTC)
    memory.retain(
        "login needs the email field first",
        level=Level.INSIGHT,
        kind="strategy",
        tags=["login"],
        occurred_at=old,
    )
    memory.retain("login page has a captcha", kind="observation", tags=["web"])
    assert contents(memory.recall("login", levels=["insight"])) == [
        "login needs the email field first"
    ]
    assert contents(memory.recall("login", kinds=["observation"])) == ["login page has a captcha"]
    assert contents(memory.recall("login", tags=["login"])) == ["login needs the email field first"]
    assert contents(memory.recall("login", since=old + timedelta(days=1))) == [
        "login page has a captcha"
    ]


def test_token_budget_limits_results(memory: Memory) -> None:
    memory.retain([f"fact {i} about budgets " + "word " * 20 for i in range(5)])
    hits = memory.recall("budgets", k=None, token_budget=60).hits
    assert 1 <= len(hits) < 5
    assert sum(len(h.content) for h in hits) / 4 <= 60


def test_recall_is_logged_and_outcome_credits_recalled_items(memory: Memory) -> None:
    good = memory.retain("use the search box to find products").ids[0]
    memory.recall("find products", run_id="run-1")
    assert memory.record_outcome("run-1", "success") == 1
    assert memory.record_outcome("run-1", "success") == 0  # each recall is credited once
    record = memory.c.store.get(good)
    assert (record.recalls, record.successes, record.utility) == (1, 1, pytest.approx(2 / 3))
    memory.recall("find products", run_id="run-2")
    memory.record_outcome("run-2", "failure")
    assert memory.c.store.get(good).utility == pytest.approx(0.5)
    assert memory.recall_log(limit=1)[0].result_ids == [good]


def test_utility_prior_reorders_equally_relevant_items(memory: Memory) -> None:
    _a, b = memory.retain(
        ["open the cart page then checkout", "open the cart page and checkout"]
    ).ids
    for run in range(3):
        memory.recall("cart checkout", run_id=f"r{run}")
        memory.record_outcome(f"r{run}", "failure")
    # only b gets successes now
    with memory.c.store.write() as s:
        rec = memory.c.store.fetch(s, [b])[b]
        rec.successes, rec.utility = 5, 0.9
        s.add(rec)
    hits = memory.recall("cart checkout", weights=FusionWeights(utility=2.0)).hits
    assert hits[0].id == b and hits[0].ranks.utility == 1


def test_forget_and_undo_round_trip_with_history(memory: Memory) -> None:
    rid = memory.retain("the API key lives in the vault").ids[0]
    op = memory.forget([rid], reason="user asked")
    assert memory.recall("API key vault").hits == []
    assert memory.history(record_id=rid)[0].action == "forget"
    memory.undo(op)
    assert [h.id for h in memory.recall("API key vault").hits] == [rid]
    with pytest.raises(NotFoundError):
        memory.undo(op)
    with pytest.raises(NotFoundError):
        memory.undo("no-such-op")
    with pytest.raises(InputError):
        memory.forget(["missing-id"])


def test_undo_of_a_retain_hides_what_it_wrote(memory: Memory) -> None:
    memory.retain("a fact to be taken back")
    op = memory.operations(limit=1)[0]
    assert op.kind == "retain"
    memory.undo(op.id)
    assert memory.recall("fact taken back").hits == []


def test_undo_of_a_retain_that_superseded_within_itself_restores_the_old_fact(
    memory: Memory,
) -> None:
    """History keeps the order things happened in, creations written together included: undo
    replays it backwards (forget what was created, restore what was superseded)."""
    old = memory.retain("The user lives in Lisbon.", metadata={"key": "user.city"}).ids[0]
    ids = memory.retain(
        [
            MemoryInput(content="A note without a key."),
            MemoryInput(content="The user lives in Berlin.", metadata={"key": "user.city"}),
            MemoryInput(content="The user lives in Paris.", metadata={"key": "user.city"}),
        ]
    ).ids
    note, berlin, paris = (memory.c.store.get(i) for i in ids)
    assert memory.c.store.get(old).status == "superseded" and berlin.status == "superseded"
    assert paris.status == "active" and note.status == "active"
    op = memory.operations(limit=1)[0]
    entries = sorted(memory.history(limit=20), key=lambda e: e.id or 0)
    assert [(e.record_id, e.action) for e in entries if e.op_id == op.id] == [
        (note.id, "create"),
        (old, "supersede"),
        (berlin.id, "create"),
        (berlin.id, "supersede"),
        (paris.id, "create"),
    ]
    memory.undo(op.id)
    assert memory.c.store.get(old).status == "active"
    assert {memory.c.store.get(i).status for i in ids} == {"forgotten"}


def test_keyed_facts_supersede_and_as_of_sees_the_past(memory: Memory) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    t1 = datetime(2025, 1, 1, tzinfo=UTC)
    first = memory.retain(
        "The user lives in Lisbon.", metadata={"key": "user.city"}, occurred_at=t0
    ).ids[0]
    second = memory.retain(
        "The user lives in Berlin.", metadata={"key": "user.city"}, occurred_at=t1
    ).ids[0]
    now_hits = memory.recall("where does the user live").hits
    assert [h.id for h in now_hits] == [second]
    in_2024 = memory.recall("where does the user live", as_of=datetime(2024, 6, 1, tzinfo=UTC))
    assert [h.id for h in in_2024.hits] == [first]
    in_2023 = memory.recall("where does the user live", as_of=datetime(2023, 6, 1, tzinfo=UTC))
    assert in_2023.hits == []
    record = memory.c.store.get(first)
    assert record.status == "superseded" and record.superseded_by == second


def test_concurrent_recalls_coalesce_into_few_batches(memory: Memory) -> None:
    memory.retain([f"item number {i} about shipping" for i in range(50)])

    async def run() -> list:
        return await asyncio.gather(*(memory.arecall(f"shipping {i}") for i in range(64)))

    before = memory._recaller.stats.batches
    results = asyncio.run(run())
    assert len(results) == 64 and all(r.hits for r in results)
    assert memory._recaller.stats.batches - before <= 2


class _PartsEmbedder(HashEmbedder):
    """Gives its rows in parts of 5, last texts first, as the ONNX embedder's workers do."""

    def __init__(self) -> None:
        super().__init__()
        self.parts = 0

    def encode_parts(self, texts):  # type: ignore[no-untyped-def]
        rows = self.encode(texts)
        for start in reversed(range(0, len(texts), 5)):
            self.parts += 1
            positions = list(range(start, min(start + 5, len(texts))))
            yield positions, rows[positions]


def test_a_batch_finished_part_by_part_gives_what_it_gives_in_one_piece(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Recall finishes a batch's requests as their embeddings come (`PIPELINE_CHUNK` at a
    time, in the order the parts end): every request gets the hits the batch gives it when it
    is finished in one piece, and alone; duplicates and cached queries included, each logged."""
    embedder = _PartsEmbedder()
    memory = Memory.in_memory(BatchingEmbedder(embedder))
    colours = ["red", "blue", "green", "late", "early", "lost", "spare", "heavy"]
    try:
        memory.retain(
            [
                f"the {w} shipment from {c} left in week {i}"
                for i, (w, c) in enumerate(
                    (w, c) for w in colours for c in ["Oslo", "Porto", "Riga", "Cork", "Bari"]
                )
            ]
        )
        queries = [
            f"when did the {w} shipment from {c} leave?"
            for w in colours
            for c in ["Oslo", "Riga", "Bari", "Lima", "Cork"]
        ]
        queries += queries[:3]  # asked twice in the batch

        def batch(log: bool) -> list:
            async def run() -> list:
                return await asyncio.gather(*(memory.arecall(q, k=5, log=log) for q in queries))

            return asyncio.run(run())

        monkeypatch.setattr(recall_module, "PIPELINE_CHUNK", len(queries))
        whole = batch(log=False)
        memory.c.embedder.close()  # an empty query cache: every text reaches the model again
        memory.recall(queries[5], k=5, log=False)  # but one
        monkeypatch.setattr(recall_module, "PIPELINE_CHUNK", 16)
        before, parts = memory._recaller.stats.batches, embedder.parts
        results = batch(log=True)
        assert memory._recaller.stats.batches - before == 1
        assert embedder.parts - parts == 8  # 39 texts reached the model

        def found(result: RecallResult) -> list[tuple[str, float]]:
            return [(h.id, h.score) for h in result.hits]

        for q, got, one in zip(queries, results, whole, strict=True):
            assert got.query == q and got.hits and got.recall_id is not None
            assert found(got) == found(one) == found(memory.recall(q, k=5, log=False))
        logged = {e.id: e.query for e in memory.recall_log(limit=100)}
        assert [logged[r.recall_id] for r in results] == queries
    finally:
        memory.close()


def test_sync_api_refuses_to_run_inside_an_event_loop(memory: Memory) -> None:
    async def inner() -> None:
        memory.recall("anything")

    with pytest.raises(RuntimeError, match="await"):
        asyncio.run(inner())


def test_tool_memory_records_calls_errors_and_fixes(memory: Memory) -> None:
    memory.record_tool_call(
        "browser.click", success=False, latency_ms=12.0, error="element 7 not found"
    )
    rec = memory.record_tool_call(
        "browser.click",
        success=True,
        latency_ms=8.0,
        fix="observe first, then click the new id",
        args={"id": 9},
    )
    assert (rec.calls, rec.successes, rec.failures) == (2, 1, 1)
    assert rec.errors[0]["error"] == "element 7 not found" and rec.examples == [{"id": 9}]


def test_check_reports_ok_and_retain_inputs(memory: Memory) -> None:
    memory.retain(MemoryInput(content="an episode", level=Level.EPISODE))
    memory.retain(MemoryInput(content="an episode", level=Level.EPISODE))  # append-only
    assert memory.stats()["namespaces"]["default"]["levels"]["episode"] == 2
    assert memory.check()["ok"]


class _DigitBlindEmbedder(HashEmbedder):
    """Embeds texts as if they had no numbers: near-identical facts get identical vectors."""

    def encode(self, texts):  # type: ignore[no-untyped-def]
        import re

        return super().encode([re.sub(r"\d+", "", t) for t in texts])


def test_near_duplicates_merge_restatements_but_never_different_facts() -> None:
    memory = Memory(SQLStore.from_url("sqlite://"), NumpyVectorIndex(), _DigitBlindEmbedder())
    try:
        first = memory.retain("The API blocks clients after 5 calls a minute.").ids[0]
        same = memory.retain("The API blocks clients after 5 calls a minute!")
        assert same.ids == [first] and same.duplicates == 1
        other = memory.retain("The API blocks clients after 40 calls a minute.")
        assert other.created == 1 and other.ids != [first]
    finally:
        memory.close()


def test_keyword_channel_matches_any_query_word_within_the_filters(memory: Memory) -> None:
    """FTS5 on SQLite, full text search on PostgreSQL: an OR of the query's words (stemmed),
    stop words dropped, filters applied."""
    paris, invoice, *_ = memory.retain(
        [
            "Paris is the capital of France.",
            "The invoices totalled 42 euros.",
            "Bananas are yellow.",
            "The train leaves at noon.",
            "Cats sleep all day.",
        ]
    ).ids
    lisbon = memory.retain(
        MemoryInput(content="Lisbon is the capital of Portugal.", level=Level.INSIGHT)
    ).ids[0]
    keyword = FusionWeights().only("keyword")  # (a channel whose ranks all tie counts for nothing)
    hits = memory.recall("France capital invoice", weights=keyword).hits
    assert hits[0].id == paris and {h.id for h in hits} == {paris, invoice, lisbon}
    assert all(h.ranks.keyword for h in hits)
    insights = memory.recall("capital", weights=keyword, levels=[Level.INSIGHT]).hits
    assert [h.id for h in insights] == [lisbon]
    assert memory.recall("the of and", weights=keyword).hits == []
    odd = memory.recall("France' | !capital:* & (", weights=keyword).hits  # no syntax leaks
    assert [h.id for h in odd] == [paris, lisbon]


def test_retains_recalls_and_tool_calls_at_once_lose_nothing(memory: Memory) -> None:
    """What an agent run does on one loop (a prefetched recall beside a write). On SQLite in
    memory, whose one connection the worker threads share, their transactions interleaved: a
    second BEGIN failed, and one session's rollback ended another's write half-way."""

    async def rounds() -> list[object]:
        await memory.aretain([f"Base fact {i} about the warehouse in Lyon." for i in range(30)])
        out: list[object] = []
        for i in range(15):
            out += await asyncio.gather(
                memory.aretain([f"Shipment {i}-{j} left the dock at {j}." for j in range(3)]),
                memory.arecall(f"shipment {i}", k=3),
                memory.arecord_tool_call("python_run", success=True, latency_ms=2.0),
                memory.arecall("warehouse in Lyon", k=3),
                return_exceptions=True,
            )
        return out

    outcomes = asyncio.run(rounds())
    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    stats = memory.stats()["namespaces"]["default"]
    assert stats["total"] == 30 + 15 * 3
    found = memory.recall("Shipment 7-2 left the dock", k=1).hits
    assert found[0].content == "Shipment 7-2 left the dock at 2."


def test_one_memory_serves_its_own_loop_and_two_others_at_once(
    memory: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sync calls run on the memory's private loop while callers await on theirs: a namespace's
    first recalls on each loop wait for its tuning at the same time (slowed here so that they
    do). A load shared between loops failed with "attached to a different loop"."""
    memory.retain(["The staging login is in the vault.", "Deploys run on Fridays."])
    memory.reload_tuning()
    tuning = Memory.tuning

    def slow_tuning(self: Memory, namespace: object = None) -> object:
        time.sleep(0.2)
        return tuning(self, namespace)

    monkeypatch.setattr(Memory, "tuning", slow_tuning)
    start = threading.Barrier(3)
    found: list[str] = []
    errors: list[BaseException] = []

    def sync_side() -> None:
        start.wait()
        try:
            found.extend(memory.recall("staging login", k=1).hits[0].content for _ in range(3))
        except BaseException as exc:
            errors.append(exc)

    def async_side() -> None:
        async def recalls() -> list[RecallResult]:
            return await asyncio.gather(*(memory.arecall("deploys", k=1) for _ in range(4)))

        start.wait()
        try:
            found.extend(r.hits[0].content for r in asyncio.run(recalls()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=f) for f in (sync_side, async_side, async_side)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(found) == ["Deploys run on Fridays."] * 8 + [
        "The staging login is in the vault."
    ] * 3


def test_one_string_is_one_tag_kind_level_or_id(memory: Memory) -> None:
    """`tags="ops"` was stored as the tags o, p and s, and a recall filtered by it found none."""
    rid = memory.retain("Rotate the API keys every quarter.", tags="ops", kind="policy").ids[0]
    memory.retain("Lunch is at noon.", tags=["social"])
    hits = memory.recall("API keys", tags="ops", kinds="policy", levels="experience").hits
    assert [(h.id, h.tags) for h in hits] == [(rid, ["ops"])]
    memory.forget(rid)
    assert memory.recall("API keys", tags="ops").hits == []


def test_a_bad_level_or_metadata_is_an_input_error_that_stores_nothing(memory: Memory) -> None:
    memory.retain("Kept fact.")
    with pytest.raises(InputError, match="unknown level 'bogus'; choose from episode"):
        memory.recall("fact", levels=["bogus"])
    with pytest.raises(InputError, match="unknown level"):
        memory.retain("Another fact.", level="bogus")
    with pytest.raises(InputError, match="metadata must be JSON"):
        memory.retain(["Fine fact.", MemoryInput(content="Odd", metadata={"at": object()})])
    assert memory.stats()["namespaces"]["default"]["total"] == 1


def test_a_closed_memory_says_so(memory: Memory) -> None:
    """Closed, an in-memory store's engine opened a new, empty database: "no such table"."""
    memory.retain("Kept fact.")
    memory.close()
    with pytest.raises(MemoryStoreError, match="closed"):
        memory.recall("fact")
    with pytest.raises(MemoryStoreError, match="closed"):
        memory.retain("Late fact.")
    memory.close()  # again: nothing happens


def test_reconcile_applies_what_was_pending_when_it_started(
    memory: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening beside a writer that never pauses: each round of reconcile found the writer's
    newest pending records and went on, so the open waited until the writer stopped (38 s)."""
    ids = memory.retain([f"Fact {i} about the harbour." for i in range(6)]).ids
    store = memory.c.store

    def mark_pending(record_id: str) -> None:
        with store.write() as s:
            s.exec(
                update(MemoryRecord)
                .where(col(MemoryRecord.id) == record_id)
                .values(index_state="pending")
            )

    mark_pending(ids[0])  # what a crash left
    upserts: list[list[str]] = []
    upsert = memory.c.index.upsert

    async def upsert_while_another_writes(namespace: str, batch: list[str], *args, **kwargs):
        upserts.append(list(batch))
        await upsert(namespace, batch, *args, **kwargs)
        if len(upserts) < 5:
            mark_pending(ids[len(upserts)])  # another process's change, committed meanwhile

    monkeypatch.setattr(memory.c.index, "upsert", upsert_while_another_writes)
    assert asyncio.run(reconcile(memory.c)) == 1
    assert upserts == [[ids[0]]]
    assert store.pending_ids() == [ids[1]]  # left to the writer that made it


def test_undo_keeps_what_later_operations_did(memory: Memory) -> None:
    """Undoing a merge restored the keeper's counters as they were before it, wiping out the
    credit a later run had given it."""
    a = memory.retain("the cart button is at the top right", doc_id="a").ids[0]
    b = memory.retain("The cart button is at the top right!", doc_id="b").ids[0]
    merge = memory.reflect()
    assert merge.counts() == {"merge": 1, "absorb": 1}
    keeper = b if memory.c.store.get(a).status == "merged" else a
    memory.recall("cart button", run_id="run-1")
    memory.record_outcome("run-1", "success")
    memory.undo(merge.op_id)
    record = memory.c.store.get(keeper)
    assert (record.successes, record.failures, record.utility) == (1, 0, pytest.approx(2 / 3))
    assert {memory.c.store.get(r).status for r in (a, b)} == {"active"}


def test_undo_refuses_to_revert_a_later_operation_silently(memory: Memory) -> None:
    rid = memory.retain("Backups run at midnight.").ids[0]
    forget = memory.forget(rid)
    restore = memory.undo(forget).id
    later = memory.forget(rid)
    with pytest.raises(ConfigError, match=f"changed since \\(status, by operation {later}\\)"):
        memory.undo(restore)  # would make the record active again behind `later`'s back
    assert memory.c.store.get(rid).status == "forgotten"
    memory.undo(later)
    memory.undo(restore)
    assert memory.c.store.get(rid).status == "forgotten"


def test_an_undone_forget_beside_a_newer_value_of_its_key_is_superseded(memory: Memory) -> None:
    """Bringing back "Friday" after "Monday" was retained for the same key left two current
    values of one key; it is superseded by the newer one, as a retain would have done."""
    friday = memory.retain("Deploys happen on Friday.", metadata={"key": "deploy.day"}).ids[0]
    forget = memory.forget(friday)
    monday = memory.retain("Deploys happen on Monday.", metadata={"key": "deploy.day"}).ids[0]
    memory.undo(forget)
    old, new = memory.c.store.get(friday), memory.c.store.get(monday)
    assert (old.status, old.superseded_by, new.status) == ("superseded", monday, "active")
    assert [h.id for h in memory.recall("when do deploys happen", k=3).hits][:1] == [monday]
    between = old.valid_from + (new.valid_from - old.valid_from) / 2  # Friday was current then
    then = memory.recall("when do deploys happen", k=3, as_of=between)
    assert [h.id for h in then.hits][:1] == [friday]
