"""Framework overhead per executor step, excluding model time, with N items in memory.

    .venv/bin/python -m benchmarks.runtime_overhead --items 100000 --steps 60 [--home DIR]

The model is the scripted LLM (it answers in microseconds, and its time is measured and
subtracted anyway); the tool is a no-op; memory is the real default stack (SQLite + embedded
chroma + the ONNX embedder) holding N realistic short texts. Per step it prints the median and
p90 of: the whole step (wall time between consecutive steps, minus model time), recall, tool
bookkeeping (invoke minus the tool's own time, incl. tool memory), persistence (checkpoint
writes), and the graph's remainder. `--home` keeps the filled store for reruns.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from agentforge.llm import Message, ScriptedLLM, ToolSpec
from agentforge.memory.engine import Memory
from agentforge.settings import Settings
from agentforge.types import MemoryInput
from benchmarks.texts import make_corpus


class Timer:
    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                self.spans.append((start, time.perf_counter()))

        return timed

    def within(self, lo: float, hi: float) -> float:
        return sum(min(b, hi) - max(a, lo) for a, b in self.spans if b > lo and a < hi)


def fill(memory: Memory, n: int) -> None:
    have = memory.stats()["namespaces"].get("default", {}).get("levels", {}).get("experience", 0)
    if have >= n:
        return
    corpus = make_corpus(n, seed=11)
    batch = 512
    for start in range(have, n, batch):
        memory.retain(
            [
                MemoryInput(content=t, doc_id=f"bench-{start + i}")
                for i, t in enumerate(corpus.texts[start : start + batch])
            ]
        )
        print(f"\rfilled {min(start + batch, n)}/{n}", end="", flush=True)
    print()


def scripted(steps: int) -> ScriptedLLM:
    def reply(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> str | Message:
        head = messages[0].content or ""
        if "You are the planner" in head:
            return json.dumps({"subgoals": ["echo the step number", "finish"]})
        if "You are the executor" in head:
            done = sum(1 for m in messages if m.role == "tool")
            if done >= steps:
                return ScriptedLLM.tool_call("finish", answer="done")
            return ScriptedLLM.tool_call("echo", text=f"step {done} of the overhead benchmark")
        if "You judge" in head:
            return json.dumps({"success": True, "reason": "benchmark"})
        return json.dumps({"items": []})

    return ScriptedLLM(reply)


async def measure(home: Path, n: int, steps: int) -> dict[str, Any]:
    import agentforge.runtime.execution as execution
    from agentforge.runtime.checkpoint import InlineSqliteSaver
    from agentforge.runtime.context import Limits
    from agentforge.sdk import Forge, RunResult
    from agentforge.tools import tool

    tool_time = Timer()

    @tool
    async def echo(text: str) -> str:
        """Echo the text back.

        Args:
            text: what to echo
        """
        start = time.perf_counter()
        out = f"echo: {text}"
        tool_time.spans.append((start, time.perf_counter()))
        return out

    settings = Settings(home=home)
    memory = Memory.from_settings(settings)
    await asyncio.to_thread(fill, memory, n)
    llm = scripted(steps)
    forge = Forge(
        model=llm,
        memory=memory,
        tools=[echo],
        settings=settings,
        limits=Limits(max_steps=steps + 1),
    )
    timers = {name: Timer() for name in ("model", "recall", "invoke", "persist")}
    llm.complete = timers["model"].wrap(llm.complete)  # type: ignore[method-assign]
    memory.arecall = timers["recall"].wrap(memory.arecall)  # type: ignore[method-assign]
    original_invoke = execution.invoke_tool
    execution.invoke_tool = timers["invoke"].wrap(original_invoke)
    saver_methods = {m: getattr(InlineSqliteSaver, m) for m in ("aput", "aput_writes")}
    for name, method in saver_methods.items():
        setattr(InlineSqliteSaver, name, timers["persist"].wrap(method))
    marks: list[float] = []
    try:
        await asyncio.to_thread(memory.c.store.warm_keyword_index)
        await asyncio.to_thread(memory.c.store.warm_dense_mirror)
        await asyncio.to_thread(memory.c.store.warm_view_cache)
        await asyncio.to_thread(memory.c.store.warm_rank_columns)
        await memory.arecall("warm up the embedder and index")
        async for item in forge.events("Echo the step numbers for the overhead benchmark"):
            if not isinstance(item, RunResult) and item.kind == "tool_called":
                marks.append(time.perf_counter())
    finally:
        execution.invoke_tool = original_invoke
        for name, method in saver_methods.items():
            setattr(InlineSqliteSaver, name, method)
        forge.close()
        memory.close()
    rows: dict[str, list[float]] = {
        k: [] for k in ("step", "recall", "tools", "persistence", "graph")
    }
    for lo, hi in itertools.pairwise(marks):
        model = timers["model"].within(lo, hi)
        step = hi - lo - model
        recall = timers["recall"].within(lo, hi)
        tools = timers["invoke"].within(lo, hi) - tool_time.within(lo, hi)
        persist = timers["persist"].within(lo, hi)
        for key, value in (
            ("step", step),
            ("recall", recall),
            ("tools", tools),
            ("persistence", persist),
            ("graph", step - recall - tools - persist),
        ):
            rows[key].append(value * 1000)
    return {"items": n, "steps": len(rows["step"]), "rows": rows}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--home", type=Path, default=None)
    args = parser.parse_args(argv)
    home = args.home or Path(tempfile.mkdtemp(prefix="af-overhead-"))
    result = asyncio.run(measure(home, args.items, args.steps))
    table = Table(
        title=f"Framework overhead per step, {result['items']:,} items in memory, "
        f"{result['steps']} steps (model time excluded)"
    )
    for col in ("part", "median ms", "p90 ms"):
        table.add_column(col, justify="right" if col != "part" else "left")
    for key, values in result["rows"].items():
        table.add_row(key, f"{statistics.median(values):.2f}", f"{_pct(values, 0.9):.2f}")
    console = Console()
    console.print(table)
    median = statistics.median(result["rows"]["step"])
    verdict = "PASS" if median <= 10 else "FAIL"
    console.print(f"target: median step overhead ≤ 10 ms → {median:.2f} ms {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
