"""`retain`, the fast write path (no LLM): normalise → chunk → hash → dedupe → embed → near-dup
→ persist (one transaction) → index.

A crash after the transaction leaves records marked `pending`; `reconcile` indexes them on the next
open, so records and vectors never disagree for long and nothing committed is lost.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlmodel import Session

from agentforge.memory.components import Components, sync_records
from agentforge.memory.index.base import Hits
from agentforge.memory.keyword import STOPWORDS
from agentforge.memory.normalize import chunk, content_hash, normalize
from agentforge.memory.records import MemoryRecord, RecordView, as_utc, utcnow
from agentforge.memory.store import new_id, vector_to_blob
from agentforge.types import Level, MemoryInput, RetainResult, Status

NEAR_DUPLICATE = 0.97  # cosine above which a new item is taken as a restatement of an old one
# Metadata key of an item's context: text that situates it (the message a reply answers, the
# heading of a section), embedded with each of its chunks but not stored as their content.
EMBED_CONTEXT = "embed_context"


@dataclass
class Piece:
    """One chunk of one input item on its way into the store."""

    item: MemoryInput
    text: str
    chunk_index: int
    hash: str
    existing_id: str | None = None  # set when de-duplicated onto a stored record
    same_as: Piece | None = None  # an earlier piece of the same call with the same content
    vector: np.ndarray | None = None
    record: MemoryRecord | None = None
    replaces: list[MemoryRecord] = field(default_factory=list)


def prepare(items: Sequence[MemoryInput]) -> list[Piece]:
    """Normalise and chunk every item; raises InputError before anything is written."""
    pieces: list[Piece] = []
    for item in items:
        text = normalize(item.content)
        parts = chunk(text) if item.level != Level.EPISODE else [text]
        for i, part in enumerate(parts):
            pieces.append(Piece(item=item, text=part, chunk_index=i, hash=content_hash(part)))
    return pieces


def embedding_text(p: Piece) -> str:
    """What is embedded for a piece: its title and text, then the item's `embed_context`, last
    so that an embedder truncating long input cuts the context, not the content."""
    text = p.text if not p.item.title else f"{p.item.title}. {p.text}"
    context = p.item.metadata.get(EMBED_CONTEXT)
    if isinstance(context, str) and context.strip():
        text = f"{text}\n{context.strip()}"
    return text


def _dedupes(piece: Piece) -> bool:
    # episodes are append-only; a document's chunks are governed by its doc_id
    return piece.item.level != Level.EPISODE and piece.item.doc_id is None


def _mark_exact_duplicates(c: Components, namespace: str, pieces: list[Piece]) -> None:
    first_by_hash: dict[tuple[str, str], Piece] = {}
    with c.store.read() as s:
        for level in {p.item.level.value for p in pieces}:
            group = [p for p in pieces if p.item.level.value == level and _dedupes(p)]
            known = c.store.active_hashes(s, namespace, level, [p.hash for p in group])
            for p in group:
                p.existing_id = known.get(p.hash)
        for p in pieces:
            if p.existing_id or not _dedupes(p):
                continue
            first = first_by_hash.setdefault((p.item.level.value, p.hash), p)
            if first is not p:
                p.same_as = first
        _unchanged_documents(c, s, namespace, pieces)


def _unchanged_documents(c: Components, s: object, namespace: str, pieces: list[Piece]) -> None:
    """A document retained again with the same content is a no-op; with new content, its old
    chunks are superseded by the new ones."""
    docs: dict[str, list[Piece]] = {}
    for p in pieces:
        if p.item.doc_id:
            docs.setdefault(p.item.doc_id, []).append(p)
    for doc_id, group in docs.items():
        old = c.store.active_where(s, namespace, doc_id=doc_id)  # type: ignore[arg-type]
        if [r.content_hash for r in old] == [p.hash for p in group]:
            for p, r in zip(group, old, strict=True):
                p.existing_id = r.id
        else:
            group[0].replaces = old


async def _mark_near_duplicates(c: Components, namespace: str, pieces: list[Piece]) -> None:
    """A new item within NEAR_DUPLICATE cosine of a stored item of its level is a restatement.
    One unfiltered index query for the batch (filtered chroma queries are slow); the levels of
    the candidates come from the store."""
    group = [p for p in pieces if p.existing_id is None and _dedupes(p) and p.vector is not None]
    if not group:
        return
    matrix = np.stack([p.vector for p in group])

    def mirrored() -> tuple[Hits | None, dict[str, RecordView]]:
        with c.store.read() as s:
            hits = c.store.dense(s, namespace, matrix, 3)
            return hits, _close_views(c, s, hits)

    hits, found = await asyncio.to_thread(mirrored)  # SQL off the event loop, like every read
    if hits is None:  # no mirror (or it cannot answer now): the vector index
        hits = await c.index.query(namespace, matrix, 3)

        def views() -> dict[str, RecordView]:
            with c.store.read() as s:
                return _close_views(c, s, hits)

        found = await asyncio.to_thread(views)
    for p, row in zip(group, hits, strict=True):
        for record_id, score in row:
            other = found.get(record_id)
            if (
                score >= NEAR_DUPLICATE
                and other is not None
                and other.status == "active"
                and other.level == p.item.level.value
                and specifics(other.content) == specifics(p.text)
            ):
                p.existing_id = record_id
                break


def _close_views(c: Components, s: Session, hits: Hits | None) -> dict[str, RecordView]:
    """The records of the hits within NEAR_DUPLICATE cosine."""
    close = sorted({i for row in hits or [] for i, score in row if score >= NEAR_DUPLICATE})
    return c.store.fetch_views(s, close) if close else {}


def specifics(text: str) -> list[str]:
    """The content words and numbers of a text. Two texts are one fact restated only if these
    match: cosine alone merges "5 calls" with "40 calls", or "dark mode" with "light mode"."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return sorted({w for w in words if w.isdigit() or w not in STOPWORDS})


def _make_record(namespace: str, p: Piece, model_id: str) -> MemoryRecord:
    item, now = p.item, utcnow()
    occurred = as_utc(item.occurred_at) if item.occurred_at else now
    key = item.metadata.get("key") if isinstance(item.metadata.get("key"), str) else None
    assert p.vector is not None
    return MemoryRecord(
        id=new_id(),
        namespace=namespace,
        level=item.level.value,
        kind=item.kind,
        title=item.title,
        content=p.text,
        content_hash=p.hash,
        doc_id=item.doc_id,
        chunk_index=p.chunk_index,
        tags=sorted(set(item.tags)),
        meta=item.metadata,
        key=key,
        created_at=now,
        occurred_at=occurred,
        valid_from=occurred,
        source=item.provenance.source or item.doc_id,
        step=item.provenance.step,
        role=item.provenance.role,
        trust=item.provenance.trust.value,
        embedding=vector_to_blob(p.vector),
        embedding_model=model_id,
    )


def _persist(
    c: Components, namespace: str, pieces: list[Piece], model_id: str, operation: str = "retain"
) -> tuple[list[MemoryRecord], str | None]:
    """One transaction: re-check hashes (another process may have written them meanwhile),
    insert, supersede replaced documents and keyed facts, write history."""
    new = [p for p in pieces if p.existing_id is None and p.same_as is None]
    if not new and not any(p.replaces for p in pieces):
        return [], None
    changed: list[MemoryRecord] = []
    with c.store.write() as s:
        op = c.store.begin_operation(s, operation, namespace, items=len(new))
        for level in {p.item.level.value for p in new}:
            group = [p for p in new if p.item.level.value == level and _dedupes(p)]
            known = c.store.active_hashes(s, namespace, level, [p.hash for p in group])
            for p in group:
                p.existing_id = known.get(p.hash)
        for p in pieces:
            for old in p.replaces:
                c.store.change(
                    s,
                    op,
                    old,
                    "supersede",
                    reason=f"document {old.doc_id} updated",
                    status=Status.SUPERSEDED.value,
                    valid_to=utcnow(),
                )
                changed.append(old)
        created: list[MemoryRecord] = []  # their history entries go in one INSERT
        for p in new:
            if p.existing_id is not None:
                continue
            p.record = record = _make_record(namespace, p, model_id)
            if record.key:
                for old in c.store.active_where(s, namespace, key=record.key):
                    c.store.records_created(s, op, created)  # history stays in order: undo
                    created.clear()  # replays it backwards
                    c.store.change(
                        s,
                        op,
                        old,
                        "supersede",
                        reason=f"new value for {record.key}",
                        status=Status.SUPERSEDED.value,
                        valid_to=max(record.valid_from, old.valid_from),
                        superseded_by=record.id,
                    )
                    changed.append(old)
            s.add(record)
            created.append(record)
            changed.append(record)
        c.store.records_created(s, op, created)
    return changed, op.id


async def retain_items(c: Components, namespace: str, items: Sequence[MemoryInput],
                       operation: str = "retain") -> RetainResult:
    """Retain `items`; the records created go to history under one operation named
    `operation` (learning steps name theirs, so `undo` takes back what one step made)."""
    pieces = prepare(items)
    await asyncio.to_thread(_mark_exact_duplicates, c, namespace, pieces)
    todo = [p for p in pieces if p.existing_id is None and p.same_as is None]
    if todo:
        vectors = await c.embedder.embed([embedding_text(p) for p in todo])
        for p, v in zip(todo, vectors, strict=True):
            p.vector = v
        await _mark_near_duplicates(c, namespace, todo)
    changed, op_id = await asyncio.to_thread(_persist, c, namespace, pieces,
                                             c.embedder.model_id, operation)
    if changed:
        vectors_by_id = {
            p.record.id: p.vector for p in pieces if p.record is not None and p.vector is not None
        }
        await sync_records(c, changed, vectors_by_id)
    ids = [_final_id(p) for p in pieces]
    created = sum(1 for p in pieces if p.record is not None)
    return RetainResult(
        ids=ids, created=created, duplicates=len(pieces) - created, chunks=len(pieces),
        op_id=op_id,
    )


def _final_id(p: Piece) -> str:
    if p.same_as is not None:
        return _final_id(p.same_as)
    if p.record is not None:
        return p.record.id
    assert p.existing_id is not None
    return p.existing_id
