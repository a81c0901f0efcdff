"""The collaborators every memory operation works with, and keeping the vector index in line
with the record store (the store is the truth; the index is derived and reconcilable)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agentforge.memory.embedders import Embedder
from agentforge.memory.index import VectorIndex
from agentforge.memory.records import MemoryRecord
from agentforge.memory.store import SQLStore, blob_to_vector
from agentforge.types import Status


@dataclass
class Components:
    store: SQLStore
    index: VectorIndex
    embedder: Embedder


def index_metadata(record: MemoryRecord) -> dict[str, str]:
    return {"level": record.level, "kind": record.kind}


async def sync_records(
    c: Components, records: Sequence[MemoryRecord], vectors: dict[str, np.ndarray] | None = None
) -> None:
    """Bring the index in line with `records` (upsert active ones, remove the others), then mark
    them synced. Safe to repeat: a crash before the mark leaves them pending for `reconcile`.
    A record given twice (changed twice in one operation) counts once, as given last."""
    records = list({r.id: r for r in records}.values())
    by_ns: dict[str, list[MemoryRecord]] = {}
    for record in records:
        by_ns.setdefault(record.namespace, []).append(record)
    for namespace, group in by_ns.items():
        active = [r for r in group if r.status == Status.ACTIVE.value and r.valid_to is None]
        kept = {id(r) for r in active}
        gone = [r.id for r in group if id(r) not in kept]
        if active:
            matrix = np.stack(
                [
                    vectors[r.id] if vectors and r.id in vectors else blob_to_vector(r.embedding)
                    for r in active
                ]
            )
            await c.index.upsert(
                namespace, [r.id for r in active], matrix, [index_metadata(r) for r in active]
            )
        if gone:
            await c.index.delete(namespace, gone)
    await asyncio.to_thread(c.store.mark_synced, [r.id for r in records])


async def reconcile(c: Components, batch: int = 2000) -> int:
    """Apply the changes pending when it starts to the index (after a crash or a concurrent
    writer), each as its record is now. Records that become pending meanwhile are another
    writer's, which syncs them itself: chasing them, an open beside a process that retained
    without pause took as long as that process wrote (38 s in a test)."""
    ids = await asyncio.to_thread(c.store.pending_ids)
    done = 0
    for start in range(0, len(ids), batch):
        pending = await asyncio.to_thread(c.store.pending_records, ids[start : start + batch])
        if pending:
            await sync_records(c, pending)
            done += len(pending)
    return done
