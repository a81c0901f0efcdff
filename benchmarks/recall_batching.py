"""Batched recall, its forms side by side in one process, round by round in alternating order:
64 recalls one after another; 64 at once finished only after the whole batch is embedded
(`PIPELINE_CHUNK` = the batch); 64 at once finished as the embedder's micro-batches end (the
engine's form); the same inside a run (`run_id`: the recall log keeps channel ranks).

    .venv/bin/python -m benchmarks.recall_batching --items 10000 --rounds 20

A store of `--items` realistic short texts is built once with the real embedder in a temporary
home (or `--home`, kept and reused). Medians over rounds; every round uses fresh queries.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.texts import disjoint_query_sets, make_corpus

BATCH = 64
FORMS = ("sequential", "whole batch, then finish", "pipelined (engine)", "pipelined, in a run")


async def _form(memory: Any, recall_module: Any, form: str, queries: list[str]) -> None:
    if form == "sequential":
        for q in queries:
            await memory.arecall(q, k=10)
        return
    recall_module.PIPELINE_CHUNK = len(queries) if form.startswith("whole") else 16
    run_id = "bench-run" if form.endswith("in a run") else None
    await asyncio.gather(*(memory.arecall(q, k=10, run_id=run_id) for q in queries))


async def _measure(home: Path, items: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    from agentforge.memory import recall as recall_module
    from agentforge.memory.engine import Memory
    from agentforge.settings import Settings

    corpus = make_corpus(items, seed=7)
    warmup, queries = disjoint_query_sets(corpus, [BATCH, rounds * BATCH * len(FORMS)])
    memory = Memory.from_settings(Settings(home=home))
    default_chunk = recall_module.PIPELINE_CHUNK
    try:
        if (await memory.astats())["namespaces"].get("default", {}).get("total", 0) < items:
            for start in range(0, items, 256):
                await memory.aretain(corpus.texts[start : start + 256])
        store = memory.c.store
        for warm in (
            store.warm_keyword_index,
            store.warm_dense_mirror,
            store.warm_view_cache,
            store.warm_rank_columns,
        ):
            await asyncio.to_thread(warm)
        for q in warmup:
            await memory.arecall(q, k=10)
        out: dict[str, dict[str, list[float]]] = {f: {"s": [], "cpu": []} for f in FORMS}
        chunks = iter(range(0, len(queries), BATCH))
        for r in range(rounds):
            for form in FORMS if r % 2 == 0 else tuple(reversed(FORMS)):
                i = next(chunks)
                start, cpu0 = time.perf_counter(), time.process_time()
                await _form(memory, recall_module, form, queries[i : i + BATCH])
                out[form]["s"].append(time.perf_counter() - start)
                out[form]["cpu"].append((time.process_time() - cpu0) * 1000 / BATCH)
        return out
    finally:
        recall_module.PIPELINE_CHUNK = default_chunk
        memory.close()


def render(out: dict[str, dict[str, list[float]]], items: int, rounds: int) -> None:
    from rich.console import Console
    from rich.table import Table

    seq = out["sequential"]["s"]
    table = Table(title=f"{BATCH} recalls, {items:,} items, {rounds} rounds (medians)")
    for name in ("form", "q/s", "CPU ms per query", "× sequential (per round)"):
        table.add_column(name, justify="left" if name == "form" else "right")
    for form, m in out.items():
        ratio = statistics.median(a / b for a, b in zip(seq, m["s"], strict=True))
        table.add_row(
            form,
            f"{BATCH / statistics.median(m['s']):.0f}",
            f"{statistics.median(m['cpu']):.2f}",
            f"{ratio:.2f}",
        )
    Console().print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.recall_batching",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--home", type=Path, help="a home to build the store in and reuse")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="af-batching-") as tmp:
        home = args.home or Path(tmp)
        out = asyncio.run(_measure(home, args.items, args.rounds))
    render(out, args.items, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
