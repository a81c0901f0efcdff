"""`invoke_tool`: run one tool call for the model, never raise for the tool's own failures, and
record every call in tool memory (outcome, latency, error, and the fix that worked after an
error). `tool_lessons` turns that memory into lines for the executor prompt."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from agentforge.errors import AgentForgeError, Retry
from agentforge.llm.types import ToolCall
from agentforge.tools.base import ToolContext
from agentforge.tools.registry import ToolRegistry

if TYPE_CHECKING:
    from agentforge.memory.engine import Memory

MAX_RESULT_CHARS = 8000
MAX_FIX_CHARS = 400
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class ToolResult:
    """The outcome of one tool call. `content` is what the model sees (the error when not ok)."""

    call_id: str
    name: str
    ok: bool
    content: str
    error: str | None
    latency_ms: float


async def invoke_tool(
    registry: ToolRegistry,
    ctx: ToolContext,
    call: ToolCall,
    *,
    timeout_s: float = 60.0,
    max_chars: int = MAX_RESULT_CHARS,
) -> ToolResult:
    """Validate and run `call`; failures come back as `ok=False` with a message for the model."""
    found = registry.get(call.name)
    if found is None:
        known = ", ".join(registry.names()) or "(none)"
        message = f"unknown tool {call.name!r}; known tools: {known}"
        return ToolResult(call.id, call.name, False, message, message, 0.0)
    start = time.perf_counter()
    error: str | None = None
    content = ""
    try:
        value = await asyncio.wait_for(found.invoke(ctx, call.arguments), timeout_s)
        content = truncate(render(value), max_chars)
    except Retry as exc:  # a correction for the model: kept whole (it may quote output)
        error = truncate(exc.message, max_chars)
    except TimeoutError:
        error = f"{call.name} timed out after {timeout_s:g} s"
    except AgentForgeError as exc:
        error = f"{call.name} failed: {_first_line(exc.message)}"
    except Exception as exc:
        error = f"{call.name} failed: {type(exc).__name__}: {_first_line(str(exc))}"
    latency_ms = (time.perf_counter() - start) * 1000
    await _record(ctx, found.name, found.description, call.arguments, error, latency_ms)
    if error is not None:
        return ToolResult(call.id, call.name, False, error, error, latency_ms)
    return ToolResult(call.id, call.name, True, content, None, latency_ms)


async def _record(
    ctx: ToolContext,
    name: str,
    description: str,
    arguments: dict[str, Any],
    error: str | None,
    latency_ms: float,
) -> None:
    """Tool memory for one call. After a failure, the next success of the same tool in the run
    is recorded with the failure's error and, as its fix, the arguments that worked."""
    key = f"{ctx.run_id}:{name}"
    previous = ctx.last_errors.pop(key, None)
    if error is not None:
        ctx.last_errors[key] = error
    if ctx.memory is None or not ctx.learn:
        return
    fix = None
    if error is None and previous is not None:
        fix = truncate(_compact(arguments), MAX_FIX_CHARS)
    await ctx.memory.arecord_tool_call(
        name,
        success=error is None,
        latency_ms=latency_ms,
        error=(error or previous or "")[:MAX_ERROR_CHARS] or None,
        fix=fix,
        args=arguments if error is None else None,
        description=description.split("\n\n")[0],
        namespace=ctx.namespace,
    )


async def tool_lessons(
    memory: Memory, tool_name: str, *, namespace: str | None = None, limit: int = 4
) -> list[str]:
    """Lines for the executor prompt: recent distinct errors of a tool and the fixes that worked
    (a fixed error first). Empty when the tool never failed."""
    ns = namespace or memory.namespace
    records = await asyncio.to_thread(memory.c.store.tools, ns)
    record = next((r for r in records if r.name == tool_name), None)
    if record is None or not record.errors:
        return []
    seen: dict[str, str | None] = {}
    for entry in reversed(record.errors):  # newest first; a known fix wins over a bare error
        text = _one_line(str(entry.get("error") or ""))[:200]
        if text and (text not in seen or (seen[text] is None and entry.get("fix"))):
            seen[text] = entry.get("fix")
    ordered = sorted(seen.items(), key=lambda item: item[1] is None)[:limit]
    rate = f"{record.successes}/{record.calls} calls ok"
    lines = []
    for error, fix in ordered:
        tail = f" -> worked with arguments {fix}" if fix else ""
        lines.append(f"- {tool_name} ({rate}): error {error!r}{tail}")
    return lines


def render(value: Any) -> str:
    """A tool's return value as text for the model."""
    if value is None:
        return "ok"
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n…(truncated: {len(text) - limit} more characters)"


def _compact(arguments: dict[str, Any]) -> str:
    return json.dumps(arguments, ensure_ascii=False, separators=(",", ":"), default=str)


def _first_line(text: str) -> str:
    return _one_line(text.strip().splitlines()[0]) if text.strip() else ""


def _one_line(text: str) -> str:
    return " ".join(text.split())[:MAX_ERROR_CHARS]
