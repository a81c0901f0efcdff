"""The shared mechanics of a budgeted, validated LLM learning step: a private token budget, a
model reply validated by pydantic (or a one-line reason why not), a stop note when the budget is
spent, and the step's changes applied as one undoable operation."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from agentforge.errors import BudgetExceeded
from agentforge.evolve.report import LearnReport
from agentforge.llm import LLM, Budget, Budgeted, BudgetMeter, Message, ModelResponse
from agentforge.memory.components import sync_records
from agentforge.memory.engine import Memory
from agentforge.memory.reflect import Change, apply
from agentforge.runtime.structured import ask_structured, parse_json_object

REPLY_TOKENS = 800

M = TypeVar("M", bound=BaseModel)


def budgeted(llm: LLM, max_tokens: int) -> Budgeted:
    """`llm` behind a private token budget: `BudgetExceeded` once it is spent."""
    return Budgeted(llm, BudgetMeter(Budget(max_tokens=max_tokens)))


def why_invalid(response: ModelResponse | None, model: type[BaseModel]) -> str:
    """A one-line reason why a reply did not validate as `model`."""
    if response is None:
        return "model call failed"
    data = parse_json_object(response.text)
    if data is None:
        return "reply is not JSON"
    try:
        model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "reply"
        return f"invalid reply ({exc.error_count()} errors): {where}: {first['msg']}"
    return "invalid reply"


async def ask_validated(
    llm: LLM, prompt: str, model: type[M], max_tokens: int = REPLY_TOKENS
) -> tuple[M | None, str | None]:
    """(value, None) for a reply that validates, else (None, why). Raises `BudgetExceeded`."""
    value, response = await ask_structured(
        llm, [Message.user(prompt)], model, max_tokens=max_tokens
    )
    return (value, None) if value is not None else (None, why_invalid(response, model))


def stop_for_budget(report: LearnReport, exc: BudgetExceeded, left: int) -> None:
    report.notes["stopped"] = str(exc)
    report.notes["left"] = left


async def apply_changes(
    memory: Memory, namespace: str, changes: list[Change], kind: str, report: LearnReport
) -> None:
    """Apply `changes` as one operation named `kind`, then bring the index in line."""
    if not changes:
        return
    op_id, touched = await asyncio.to_thread(apply, memory.c, namespace, changes, kind)
    await sync_records(memory.c, [r for r in touched if r.index_state == "pending"])
    report.op_id = op_id
    report.changed += [r.id for r in touched]
