"""`python_run`: run model-written Python in a separate, isolated interpreter (`python -I -c`) in
the workspace, with a wall-clock timeout and kernel resource limits (address space, CPU time,
file size), and a minimal environment (no API keys inherited)."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import os
import resource
import signal
import sys
from collections.abc import Callable

from agentforge.errors import Retry
from agentforge.tools.base import ToolContext
from agentforge.tools.decorator import tool

MEMORY_MB = 512
TIMEOUT_S = 30.0
MAX_TIMEOUT_S = 120.0
FILE_MB = 64
OUTPUT_CHARS = 10_000


def _limits(memory_mb: int, cpu_s: int, file_mb: int) -> Callable[[], None]:
    def apply() -> None:  # runs in the child between fork and exec
        mem = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_mb * 1024 * 1024,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


async def run_python(
    code: str,
    *,
    cwd: str,
    timeout_s: float = TIMEOUT_S,
    memory_mb: int = MEMORY_MB,
    file_mb: int = FILE_MB,
) -> tuple[int | None, str, str]:
    """(exit code or None on timeout, stdout, stderr) of `code` run in a limited subprocess."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": cwd,
        "LANG": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-c",
        code,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_limits(memory_mb, int(timeout_s) + 1, file_mb),
        start_new_session=True,  # its own process group: a timeout kills children too
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        _kill_group(proc.pid)
        out, err = await proc.communicate()
        return None, _text(out), _text(err)
    except asyncio.CancelledError:  # the caller gave up (its own timeout): leave nothing running
        _kill_group(proc.pid)
        raise
    return proc.returncode, _text(out), _text(err)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _text(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    if len(text) > OUTPUT_CHARS:
        half = OUTPUT_CHARS // 2
        text = f"{text[:half]}\n…({len(text) - OUTPUT_CHARS} characters cut)…\n{text[-half:]}"
    return text


def _report(code: int | None, out: str, err: str) -> str:
    parts = [f"exit code: {code}"]
    if out:
        parts.append(f"stdout:\n{out.rstrip()}")
    if err:
        parts.append(f"stderr:\n{err.rstrip()}")
    if not out and not err:
        parts.append("(no output: print() what you want to see)")
    return "\n".join(parts)


@tool
async def python_run(ctx: ToolContext, code: str, timeout_s: float = TIMEOUT_S) -> str:
    """Run Python code in a fresh, isolated interpreter and return its exit code and output.

    The code runs as a script in the workspace directory (files it writes stay there), with a
    memory limit and a time limit; only the standard library is guaranteed. Print what you want
    to see: only stdout and stderr come back (a bare expression on the last line has its value
    printed, as in a notebook).

    Args:
        code: The complete Python program to run.
        timeout_s: Wall-clock seconds before the program is killed (at most 120).
    """
    timeout_s = max(1.0, min(float(timeout_s), MAX_TIMEOUT_S))
    memory_mb = int(ctx.extras.get("python_memory_mb", MEMORY_MB))
    ctx.workspace.mkdir(parents=True, exist_ok=True)
    code_rc, out, err = await run_python(
        echo_last_expression(code), cwd=str(ctx.workspace), timeout_s=timeout_s,
        memory_mb=memory_mb,
    )
    if code_rc is None:
        raise Retry(
            f"python_run: killed after {timeout_s:g} s wall time (timeout); make the program "
            f"faster or print partial results.\n{_report(code_rc, out, err)}"
        )
    if code_rc == 0:
        return _report(code_rc, out, err)
    hint = _diagnose(code_rc, err, memory_mb, timeout_s)
    raise Retry(f"python_run: the program failed{hint}.\n{_report(code_rc, out, err)}")


def echo_last_expression(code: str) -> str:
    """`code` with the value of a bare expression on its last line printed, as a notebook cell
    shows it (the local model wrote `sum(i**2 for i in range(1, 21))`, saw no output, and
    guessed). Code that does not parse, ends otherwise, or already prints is left as it is."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code  # the interpreter reports it, with its line numbers
    last = tree.body[-1] if tree.body else None
    if not isinstance(last, ast.Expr) or last.col_offset != 0 or _is_print(last.value):
        return code
    expression = ast.get_source_segment(code, last)
    if expression is None:
        return code
    head = "".join(code.splitlines(keepends=True)[: last.lineno - 1])
    # on the expression's own line, so tracebacks keep the model's line numbers
    return (f"{head}__value = ({expression})\n"
            "if __value is not None:\n    print(repr(__value))\n")


def _is_print(node: ast.expr) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "print")


def _diagnose(code: int, err: str, memory_mb: int, timeout_s: float) -> str:
    if "MemoryError" in err or code == -signal.SIGSEGV:
        return f": it ran out of memory (limit {memory_mb} MB)"
    if code in (-signal.SIGXCPU, -signal.SIGKILL):
        return f": killed at the CPU time limit ({int(timeout_s) + 1} s)"
    if code == -signal.SIGXFSZ:
        return ": a file it wrote exceeded the size limit"
    if code < 0:
        return f": killed by signal {signal.Signals(-code).name}"
    return ""


PYTHON_TOOLS = [python_run]
