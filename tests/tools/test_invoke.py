"""invoke_tool: unknown tools, Retry, exceptions, timeouts, truncation, and tool memory with the
fix that worked after an error; tool_lessons."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from agentforge.errors import Retry, ToolError
from agentforge.llm.types import ToolCall
from agentforge.memory.engine import Memory
from agentforge.tools import ToolContext, ToolRegistry, invoke_tool, tool, tool_lessons


@tool
def divide(a: float, b: float) -> float:
    """Divide a by b.

    Args:
        a: Dividend.
        b: Divisor (not zero).
    """
    if b == 0:
        raise Retry("b must not be zero: pick another divisor")
    return a / b


@tool
def explode(message: str) -> str:
    """Always fails.

    Args:
        message: The error message.
    """
    raise ValueError(f"{message}\nsecond line of noise")


@tool
def broken() -> str:
    """Fails in a way the model cannot fix."""
    raise ToolError("the backend is down")


@tool
def big(n: int) -> dict[str, str]:
    """Returns a large result.

    Args:
        n: Size.
    """
    return {"data": "x" * n}


@tool
async def slow(seconds: float) -> str:
    """Sleeps.

    Args:
        seconds: How long.
    """
    await asyncio.sleep(seconds)
    return "done"


@pytest.fixture
async def memory() -> AsyncIterator[Memory]:
    mem = Memory.in_memory()
    yield mem
    mem.close()


def registry() -> ToolRegistry:
    return ToolRegistry([divide, explode, broken, big, slow])


def call(name: str, **arguments: object) -> ToolCall:
    return ToolCall(id=f"c-{name}", name=name, arguments=arguments)


async def test_unknown_tool_lists_known_ones(tmp_path) -> None:
    result = await invoke_tool(registry(), ToolContext(workspace=tmp_path), call("multiply"))
    assert not result.ok and result.call_id == "c-multiply"
    assert result.error == (
        "unknown tool 'multiply'; known tools: divide, explode, broken, big, slow"
    )


async def test_success_retry_exception_and_timeout(tmp_path) -> None:
    ctx = ToolContext(workspace=tmp_path)
    reg = registry()
    ok = await invoke_tool(reg, ctx, call("divide", a=1, b=4))
    assert ok.ok and ok.content == "0.25" and ok.error is None and ok.latency_ms >= 0
    retry = await invoke_tool(reg, ctx, call("divide", a=1, b=0))
    assert not retry.ok and retry.error == "b must not be zero: pick another divisor"
    assert retry.content == retry.error
    bad_args = await invoke_tool(reg, ctx, call("divide", a=1))
    assert not bad_args.ok and "missing required argument 'b'" in (bad_args.error or "")
    boom = await invoke_tool(reg, ctx, call("explode", message="kaput"))
    assert boom.error == "explode failed: ValueError: kaput"  # one line
    down = await invoke_tool(reg, ctx, call("broken"))
    assert down.error == "broken failed: the backend is down"
    late = await invoke_tool(reg, ctx, call("slow", seconds=5), timeout_s=0.05)
    assert late.error == "slow timed out after 0.05 s"


async def test_results_are_stringified_and_truncated(tmp_path) -> None:
    ctx = ToolContext(workspace=tmp_path)
    small = await invoke_tool(registry(), ctx, call("big", n=3))
    assert json.loads(small.content) == {"data": "xxx"}
    large = await invoke_tool(registry(), ctx, call("big", n=20_000), max_chars=100)
    assert large.ok and large.content.startswith('{"data": "xxx')
    assert len(large.content) < 200 and "truncated: " in large.content


async def test_tool_memory_records_calls_and_the_fix_that_worked(tmp_path, memory: Memory) -> None:
    ctx = ToolContext(workspace=tmp_path, memory=memory, run_id="run-1", namespace="team/a")
    reg = registry()
    await invoke_tool(reg, ctx, call("divide", a=1, b=0))  # fails
    await invoke_tool(reg, ctx, call("divide", a=1, b=2))  # the fix
    await invoke_tool(reg, ctx, call("divide", a=3, b=3))  # plain success: no new error entry
    await invoke_tool(reg, ctx, call("explode", message="kaput"))
    records = {r.name: r for r in memory.c.store.tools("team/a")}
    divide_record = records["divide"]
    assert (divide_record.calls, divide_record.successes, divide_record.failures) == (3, 2, 1)
    assert [e["fix"] for e in divide_record.errors] == [None, '{"a":1,"b":2}']
    assert divide_record.errors[1]["error"] == "b must not be zero: pick another divisor"
    assert divide_record.examples == [{"a": 1, "b": 2}, {"a": 3, "b": 3}]
    assert divide_record.description == "Divide a by b."
    assert records["explode"].failures == 1
    assert memory.c.store.tools("default") == []  # the context's namespace was used

    lessons = await tool_lessons(memory, "divide", namespace="team/a")
    assert lessons == [
        "- divide (2/3 calls ok): error 'b must not be zero: pick another divisor' "
        '-> worked with arguments {"a":1,"b":2}'
    ]
    assert await tool_lessons(memory, "slow", namespace="team/a") == []
    assert len(await tool_lessons(memory, "explode", namespace="team/a")) == 1


async def test_fix_is_tracked_per_run(tmp_path, memory: Memory) -> None:
    reg = registry()
    first = ToolContext(workspace=tmp_path, memory=memory, run_id="a")
    await invoke_tool(reg, first, call("divide", a=1, b=0))
    second = ToolContext(workspace=tmp_path, memory=memory, run_id="b")
    await invoke_tool(reg, second, call("divide", a=1, b=1))  # another run: not a fix
    record = memory.c.store.tools("default")[0]
    assert [e["fix"] for e in record.errors] == [None]


async def test_unknown_tools_are_not_recorded(tmp_path, memory: Memory) -> None:
    ctx = ToolContext(workspace=tmp_path, memory=memory)
    await invoke_tool(registry(), ctx, call("nope"))
    assert memory.c.store.tools("default") == []
