"""Conflicts: a validated contradiction supersedes the old item (kept in history, visible to
`as_of` recall, undoable); a non-contradiction or an invalid answer leaves both."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from agentforge.evolve.conflicts import resolve_conflicts
from agentforge.llm import Message, ModelResponse, ScriptedLLM, ToolSpec, Usage
from agentforge.memory.engine import Memory
from agentforge.memory.records import utcnow
from agentforge.settings import Settings

NS = "default"
OLD = "The user's favourite colour is blue."
NEW = "The user's favourite colour is green."
YES = json.dumps({"contradicts": True, "reason": "the favourite colour changed"})
NO = json.dumps({"contradicts": False, "reason": "they agree"})


@pytest.fixture
async def memory() -> AsyncIterator[Memory]:
    m = Memory.in_memory()
    yield m
    m.close()


async def old_and_new(memory: Memory, old: str = OLD, new: str = NEW) -> tuple[str, str]:
    [old_id] = (await memory.aretain(old)).ids
    await asyncio.sleep(0.01)  # the new one is strictly newer
    [new_id] = (await memory.aretain(new)).ids
    return old_id, new_id


def ids_of(result: Any) -> list[str]:
    return [h.id for h in result.hits]


async def test_contradiction_supersedes_the_old_fact_kept_in_history_and_as_of(
    memory: Memory,
) -> None:
    old_id, new_id = await old_and_new(memory)
    await memory.aretain("Our office cat is called Miso.")
    before = utcnow()
    llm = ScriptedLLM([YES])

    report = await resolve_conflicts(memory, NS, llm, ids=[new_id], max_tokens=10_000)

    assert len(llm.calls) == 1 and report.changed == [old_id] and report.created == []
    prompt = llm.calls[0].messages[-1].content or ""
    assert "OLD (recorded" in prompt and OLD in prompt and NEW in prompt
    old = memory.c.store.get(old_id)
    assert old.status == "superseded" and old.superseded_by == new_id and old.valid_to
    assert memory.c.store.get(new_id).status == "active"
    assert memory.operations(limit=1)[0].kind == "learn-conflicts"
    [entry] = memory.history(record_id=old_id, op_id=report.op_id)
    assert entry.action == "supersede" and "favourite colour changed" in entry.reason

    query = "what is the user's favourite colour?"
    assert ids_of(await memory.arecall(query))[:1] == [new_id]
    assert old_id not in ids_of(await memory.arecall(query))
    assert old_id in ids_of(await memory.arecall(query, as_of=before))

    await memory.aundo(report.op_id)  # undo of a supersede reopens the old fact
    old = memory.c.store.get(old_id)
    assert old.status == "active" and old.valid_to is None and old.superseded_by is None
    assert old_id in ids_of(await memory.arecall(query))
    assert (await memory.acheck())["ok"]


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        pytest.param(NO, None, id="no-contradiction"),
        pytest.param("Yes, delete the old one and everything else.", "not JSON", id="not-json"),
        pytest.param(
            json.dumps({"contradicts": "yes", "reason": "x"}), "contradicts", id="not-a-bool"
        ),
        pytest.param(json.dumps({"contradicts": True}), "reason", id="no-reason"),
        pytest.param(
            json.dumps({"contradicts": True, "reason": "r" * 5000}), "reason", id="huge-reason"
        ),
        pytest.param(
            json.dumps({"contradicts": True, "reason": "r", "delete": "all"}),
            "delete",
            id="extra-field",
        ),
    ],
)
async def test_anything_but_a_valid_true_leaves_both(
    memory: Memory, answer: str, why: str | None
) -> None:
    old_id, new_id = await old_and_new(memory)
    ops = len(memory.operations())
    report = await resolve_conflicts(
        memory, NS, ScriptedLLM([answer]), ids=[new_id], max_tokens=10_000
    )
    assert report.op_id is None and report.changed == [] and len(memory.operations()) == ops
    assert {memory.c.store.get(i).status for i in (old_id, new_id)} == {"active"}
    if why is None:
        assert report.rejected == []
    else:
        assert len(report.rejected) == 1 and why in report.rejected[0]


async def test_recent_items_are_checked_when_no_ids_are_given(memory: Memory) -> None:
    old_id, new_id = await old_and_new(memory)
    report = await resolve_conflicts(memory, NS, ScriptedLLM([YES]), max_tokens=10_000)
    assert report.changed == [old_id] and report.notes["pairs"] == 1
    assert memory.c.store.get(old_id).superseded_by == new_id


async def test_only_older_different_items_of_the_same_level_are_candidates(
    memory: Memory,
) -> None:
    [insight] = (await memory.aretain(OLD, level="insight", kind="strategy")).ids
    old_id, _ = await old_and_new(memory)
    llm = ScriptedLLM([YES])
    # the old one, given as new, has nothing older to contradict; the insight is another level
    report = await resolve_conflicts(memory, NS, llm, ids=[old_id, "nope"], max_tokens=10_000)
    assert llm.calls == [] and report.op_id is None and report.notes["skipped_ids"] == ["nope"]
    assert memory.c.store.get(insight).status == "active"


async def test_unrelated_items_are_not_asked_about(memory: Memory) -> None:
    [cat] = (await memory.aretain("Our office cat is called Miso.")).ids
    [invoices] = (await memory.aretain("Invoices are emailed on the first of each month.")).ids
    llm = ScriptedLLM([])
    report = await resolve_conflicts(memory, NS, llm, ids=[invoices], max_tokens=10_000)
    assert llm.calls == [] and report.notes["pairs"] == 0
    assert memory.c.store.get(cat).status == "active"


async def test_token_budget_stops_the_step(memory: Memory) -> None:
    old_id, new_id = await old_and_new(memory)
    second_old, second_new = await old_and_new(
        memory, "The office opens at 9 am on weekdays.", "The office opens at 10 am on weekdays."
    )

    def costly(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> ModelResponse:
        return ModelResponse(
            message=Message.assistant(YES),
            model="scripted",
            cost=0.0,
            usage=Usage(prompt_tokens=50, total_tokens=50),
        )

    llm = ScriptedLLM(costly)
    report = await resolve_conflicts(memory, NS, llm, ids=[new_id, second_new], max_tokens=50)
    assert len(llm.calls) == 1 and report.tokens == 50 and report.notes["left"] == 1
    assert "budget exceeded: tokens" in report.notes["stopped"]
    assert report.changed == [old_id]
    assert memory.c.store.get(second_old).status == "active"

    over = await resolve_conflicts(memory, NS, llm, ids=[second_new], max_tokens=10)
    assert over.op_id is None and memory.c.store.get(second_old).status == "active"


@pytest.mark.integration
async def test_supersede_on_the_real_defaults(tmp_path: Path) -> None:
    """SQLite + chroma + the packaged ONNX embedder."""
    memory = Memory.from_settings(Settings(home=tmp_path))
    try:
        old_id, new_id = await old_and_new(
            memory,
            "The team stand-up meeting is at 9:30 every morning.",
            "The team stand-up meeting moved to 10:15 every morning.",
        )
        await memory.aretain("Invoices are emailed on the first of each month.")
        before = utcnow()
        llm = ScriptedLLM([YES])
        report = await resolve_conflicts(
            memory, NS, llm, ids=[new_id], max_tokens=10_000, similarity=0.6
        )
        assert len(llm.calls) == 1 and report.changed == [old_id], report
        query = "when is the stand-up meeting?"
        assert old_id not in ids_of(await memory.arecall(query))
        assert old_id in ids_of(await memory.arecall(query, as_of=before))
        await memory.aundo(report.op_id)
        assert old_id in ids_of(await memory.arecall(query))
        assert (await memory.acheck())["ok"]
    finally:
        memory.close()
