"""The run checkpointer: LangGraph's SQLite saver, with its async methods run inline.

LangGraph's `AsyncSqliteSaver` sends every statement through aiosqlite's own thread; each
executor step checkpoints once (`aput` + `aput_writes`), and while the next step's recall runs on
the other core those thread hops took 8-10 ms per call (measured in
`benchmarks.runtime_overhead`). The statements themselves take ~0.1-0.3 ms, so here they run on
the event loop's thread: a short block instead of a long wait. The connection is WAL with
`synchronous=NORMAL` (as the memory store): a commit survives a crash of the process; only a
power loss can drop the last commits.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.sqlite import SqliteSaver

BUSY_TIMEOUT_S = 60.0  # runs.db is shared with the run index and other processes' runs


class InlineSqliteSaver(SqliteSaver):
    """`SqliteSaver` whose async methods call the synchronous ones directly."""

    @classmethod
    @contextmanager
    def open(cls, path: str | Path) -> Iterator[InlineSqliteSaver]:
        """A saver on its own connection to `path`, closed on exit."""
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        with closing(conn):
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            yield cls(conn)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.get_tuple(config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        for item in self.list(config, filter=filter, before=before, limit=limit):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.delete_thread(thread_id)
