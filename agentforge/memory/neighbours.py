"""The neighbour channel of recall: memories next to a strong hit.

The turn before or after a matching turn of a conversation, the step around a matching step of an
episode, the chunk beside a matching chunk of a document often hold what the hit only refers to
(the question a reply answers, the rest of an argument). After a first fusion of the other
channels, the records adjacent to the best `FusionWeights.neighbour_of` hits are looked up and
ranked by the fused score of the hit they sit next to; that ranking joins the fusion as one more
channel, weighted by `FusionWeights.neighbour`.

Adjacency comes from fields every record already has: the same provenance `source` (episode,
conversation, run) and a `step` one apart; or, for a record without a step, the same `doc_id` and
a `chunk_index` one apart. Records with neither have no neighbours.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import TypeVar

from sqlalchemy import tuple_
from sqlmodel import Session, col, select

from agentforge.memory.records import VIEW_COLUMNS, MemoryRecord, RecordView, views

# (namespace, "step" | "chunk", source or doc_id, step or chunk index)
Position = tuple[str, str, str, int]
T = TypeVar("T")

_LOOKUP_BATCH = 300  # positions per query (3 bound parameters each)


def position(r: RecordView) -> Position | None:
    """Where a record sits in its episode / conversation / document, if anywhere."""
    if r.source is not None and r.step is not None:
        return (r.namespace, "step", r.source, r.step)
    if r.doc_id is not None:
        return (r.namespace, "chunk", r.doc_id, r.chunk_index)
    return None


def adjacent(r: RecordView) -> list[Position]:
    """The positions just before and just after a record."""
    here = position(r)
    if here is None:
        return []
    ns, kind, key, i = here
    return [(ns, kind, key, i - 1), (ns, kind, key, i + 1)]


def _batches(items: Iterable[T]) -> Iterator[list[T]]:
    it = iter(items)
    while batch := list(islice(it, _LOOKUP_BATCH)):
        yield batch


def records_at(session: Session, positions: Iterable[Position]) -> list[RecordView]:
    """Every record (any status: the caller filters) at one of `positions`."""
    wanted = set(positions)
    steps = [(ns, key, i) for ns, kind, key, i in wanted if kind == "step"]
    chunks = [(ns, key, i) for ns, kind, key, i in wanted if kind == "chunk"]
    found: list[RecordView] = []
    # the plain IN on namespace (and doc_id) lets the store use its (namespace, doc_id) index
    for batch in _batches(steps):
        columns = tuple_(
            col(MemoryRecord.namespace), col(MemoryRecord.source), col(MemoryRecord.step)
        )
        found += views(
            session.connection().execute(
                select(*VIEW_COLUMNS).where(
                    col(MemoryRecord.namespace).in_(sorted({ns for ns, _, _ in batch})),
                    columns.in_(batch),
                )
            )
        )
    for batch in _batches(chunks):
        columns = tuple_(
            col(MemoryRecord.namespace), col(MemoryRecord.doc_id), col(MemoryRecord.chunk_index)
        )
        found += views(
            session.connection().execute(
                select(*VIEW_COLUMNS).where(
                    col(MemoryRecord.namespace).in_(sorted({ns for ns, _, _ in batch})),
                    col(MemoryRecord.doc_id).in_(sorted({key for _, key, _ in batch})),
                    columns.in_(batch),
                    col(MemoryRecord.step).is_(None),
                )
            )
        )
    return [r for r in found if position(r) in wanted]


def neighbour_scores(
    top: Sequence[tuple[str, float]],
    records: dict[str, RecordView],
    by_position: dict[Position, list[RecordView]],
) -> dict[str, float]:
    """For each record next to one of the `top` (id, fused score) hits: the best such score."""
    scores: dict[str, float] = {}
    for hit_id, score in top:
        for pos in adjacent(records[hit_id]):
            for r in by_position.get(pos, ()):
                if r.id != hit_id and score > scores.get(r.id, float("-inf")):
                    scores[r.id] = score
    return scores
