"""python_run: output and exit codes, the wall timeout kill, the memory limit, isolation."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agentforge.errors import Retry
from agentforge.tools import ToolContext
from agentforge.tools.builtin.python_exec import python_run


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    return ToolContext(workspace=tmp_path / "ws", extras={"python_memory_mb": 256})


async def test_output_and_workspace(ctx: ToolContext) -> None:
    code = (
        "import os, sys\nprint(6 * 7)\nprint('warn', file=sys.stderr)\n"
        "open('out.txt', 'w').close()"
    )
    result = await python_run(ctx, {"code": code})
    assert result == "exit code: 0\nstdout:\n42\nstderr:\nwarn"
    assert (ctx.workspace / "out.txt").exists()
    quiet = await python_run(ctx, {"code": "x = 1"})
    assert "(no output" in quiet


async def test_environment_is_minimal(ctx: ToolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    result = await python_run(ctx, {"code": "import os; print(sorted(os.environ))"})
    assert "OPENAI_API_KEY" not in result and "PATH" in result


async def test_failure_is_a_retry_with_the_traceback(ctx: ToolContext) -> None:
    with pytest.raises(Retry) as info:
        await python_run(ctx, {"code": "print('before')\n1 / 0"})
    text = str(info.value)
    assert text.startswith("python_run: the program failed.\nexit code: 1")
    assert "before" in text and "ZeroDivisionError" in text


async def test_timeout_kills_the_program(ctx: ToolContext) -> None:
    start = time.monotonic()
    code = "import subprocess, sys, time\nprint('started', flush=True)\ntime.sleep(30)"
    with pytest.raises(Retry, match=r"killed after 1 s wall time \(timeout\)"):
        await python_run(ctx, {"code": code, "timeout_s": 1})
    assert time.monotonic() - start < 5


async def test_memory_limit_gives_a_clear_error(ctx: ToolContext) -> None:
    with pytest.raises(Retry, match=r"ran out of memory \(limit 256 MB\)") as info:
        await python_run(ctx, {"code": "x = bytearray(600 * 1024 * 1024)\nprint(len(x))"})
    assert "MemoryError" in str(info.value)


async def test_a_bare_last_expression_is_printed_as_in_a_notebook(ctx: ToolContext) -> None:
    out = await python_run(ctx, {"code": "x = 20\nsum(i**2 for i in range(1, x + 1))"})
    assert out == "exit code: 0\nstdout:\n2870"
    assert await python_run(ctx, {"code": "print(5)"}) == "exit code: 0\nstdout:\n5"
    nothing = await python_run(ctx, {"code": "def f():\n    pass\nf()"})  # None: not printed
    assert "no output" in nothing
    with pytest.raises(Retry, match="line 2") as info:  # the model's own line numbers
        await python_run(ctx, {"code": "a = 1\n1 / 0"})
    assert "ZeroDivisionError" in str(info.value)
