"""SQLModel tables of the record store.

`memory` holds every level of the hierarchy (episode, experience, insight, skill, tool lesson),
with provenance, a validity interval, usage statistics and the embedding (the vector index is
derived from it and can always be rebuilt). `history` records every change under an `operation`;
`recall_log` records every recall so outcomes can credit what was recalled.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import JSON, Column, Index, LargeBinary, Text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def utility(successes: int, failures: int) -> float:
    """Laplace-smoothed success rate: (s + 1) / (s + f + 2)."""
    return (successes + 1) / (successes + failures + 2)


def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class MemoryRecord(SQLModel, table=True):
    __tablename__ = "memory"
    __table_args__ = (
        Index("ix_memory_ns_hash", "namespace", "level", "content_hash"),
        Index("ix_memory_ns_doc", "namespace", "doc_id"),
        Index("ix_memory_ns_status_level", "namespace", "status", "level"),
        Index("ix_memory_index_state", "index_state"),
        Index("ix_memory_ns_source_step", "namespace", "source", "step"),
    )

    # An integer primary key keeps SQLite's rowid stable (VACUUM), which the FTS5 index relies on.
    seq: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True)
    namespace: str
    level: str
    kind: str = "fact"
    title: str | None = None
    content: str = Field(sa_column=Column(Text, nullable=False))
    content_hash: str
    doc_id: str | None = None
    chunk_index: int = 0
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column("metadata", JSON))
    key: str | None = Field(default=None, index=True)  # facts with one key supersede each other
    status: str = "active"
    created_at: datetime = Field(default_factory=utcnow)
    occurred_at: datetime = Field(default_factory=utcnow)
    valid_from: datetime = Field(default_factory=utcnow)
    valid_to: datetime | None = None
    superseded_by: str | None = None
    source: str | None = None
    step: int | None = None
    role: str | None = None
    trust: str = "observed"
    recalls: int = 0
    successes: int = 0
    failures: int = 0
    utility: float = 0.5
    last_recalled_at: datetime | None = None
    embedding: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    embedding_model: str = ""
    index_state: str = "pending"  # pending: the vector index must be brought in line; synced


class ToolRecord(SQLModel, table=True):
    """Tool memory: per namespace and tool, calls, outcomes, latency, cost, errors and fixes."""

    __tablename__ = "tool_memory"

    namespace: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    description: str = ""
    calls: int = 0
    successes: int = 0
    failures: int = 0
    total_latency_ms: float = 0.0
    total_cost: float = 0.0
    errors: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    examples: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    updated_at: datetime = Field(default_factory=utcnow)


class Operation(SQLModel, table=True):
    """One logical change (retain, reflect, forget, import, credit, undo) grouping history rows."""

    __tablename__ = "operation"

    id: str = Field(primary_key=True)
    kind: str
    namespace: str | None = None
    started_at: datetime = Field(default_factory=utcnow)
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    undone_by: str | None = None
    undoes: str | None = None


class HistoryEntry(SQLModel, table=True):
    __tablename__ = "history"

    id: int | None = Field(default=None, primary_key=True)
    op_id: str = Field(index=True)
    record_id: str = Field(index=True)
    namespace: str
    action: str  # create | update | merge | supersede | forget | credit | restore
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    reason: str = ""
    at: datetime = Field(default_factory=utcnow)


class RecallLog(SQLModel, table=True):
    __tablename__ = "recall_log"

    id: int | None = Field(default=None, primary_key=True)
    namespace: str
    query: str = Field(sa_column=Column(Text, nullable=False))
    run_id: str | None = Field(default=None, index=True)
    at: datetime = Field(default_factory=utcnow)
    result_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    scores: list[float] = Field(default_factory=list, sa_column=Column(JSON))
    latency_ms: float = 0.0
    credited: bool = False
    # channel ranks of the best fused candidates (not only the returned ones), for offline
    # tuning of the fusion weights: {record id: {channel: rank}}; None in rows logged before it
    ranks: dict[str, dict[str, int]] | None = Field(default=None, sa_column=Column(JSON))


class MetaKV(SQLModel, table=True):
    __tablename__ = "meta"

    key: str = Field(primary_key=True)
    value: str


class RecordView(NamedTuple):
    """A read-only record without its embedding, loaded with a plain column select: the recall
    path reads hundreds of candidates per query, and ORM objects cost ~20x more to build.

    Immutable all the way down: tags and the metadata's items are tuples (`dict(view.meta)`
    for a dict), so the process's view cache keeps a view as a plain tuple of the same values,
    which the garbage collector stops tracking (see view_cache.py), and gives it back as a
    view without copying anything."""

    id: str
    namespace: str
    level: str
    kind: str
    title: str | None
    content: str
    doc_id: str | None
    chunk_index: int
    tags: tuple[str, ...]
    meta: tuple[tuple[str, Any], ...]  # the metadata's items
    status: str
    created_at: datetime
    occurred_at: datetime
    valid_from: datetime
    valid_to: datetime | None
    source: str | None
    step: int | None
    role: str | None
    trust: str
    utility: float


VIEW_COLUMNS = tuple(getattr(MemoryRecord, name) for name in RecordView._fields)

Row = tuple[Any, ...]
"""A record view as the recall path reads it: a `RecordView`, or the plain tuple of its values
that the view cache keeps. Recall reads its ~100 candidates per query as the cache's own tuples,
by position (the constants below): building a view per candidate cost ~1 µs, and a batch's views
lived long enough to be promoted through the collector's generations (half of what a batch of
64 promoted at 100k items); a NamedTuple's attribute is also a property call."""

(
    ID, NAMESPACE, LEVEL, KIND, TITLE, CONTENT, DOC_ID, CHUNK_INDEX, TAGS, META, STATUS,
    CREATED_AT, OCCURRED_AT, VALID_FROM, VALID_TO, SOURCE, STEP, ROLE, TRUST, UTILITY,
) = (RecordView._fields.index(name) for name in (
    "id", "namespace", "level", "kind", "title", "content", "doc_id", "chunk_index", "tags",
    "meta", "status", "created_at", "occurred_at", "valid_from", "valid_to", "source", "step",
    "role", "trust", "utility",
))  # fmt: skip


def as_view(row: Row) -> RecordView:
    """The `RecordView` of a row (itself if it is one)."""
    return row if type(row) is RecordView else tuple.__new__(RecordView, row)  # type: ignore[type-var]


_VIEW_NAMES = list(RecordView._fields)
_DATETIMES = {
    i
    for i, n in enumerate(_VIEW_NAMES)
    if n in {"created_at", "occurred_at", "valid_from", "valid_to"}
}
_INTERNED = tuple(
    i for i, n in enumerate(_VIEW_NAMES) if n in {"namespace", "level", "kind", "status", "trust"}
)
_TAGS = _VIEW_NAMES.index("tags")
_META = _VIEW_NAMES.index("meta")
VIEW_SQL_COLUMNS = ", ".join("metadata" if n == "meta" else n for n in _VIEW_NAMES)


def views(rows: Any) -> list[RecordView]:
    """Views from rows of VIEW_COLUMNS (the JSON columns give a list and a dict)."""
    return [
        RecordView(
            *row[:_TAGS],
            tuple(row[_TAGS] or ()),
            tuple((row[_META] or {}).items()),
            *row[_META + 1 :],
        )
        for row in rows
    ]


def view_from_raw(row: Sequence[Any]) -> RecordView:
    """A view from a raw SQLite row of VIEW_SQL_COLUMNS (SQLite keeps UTC without an offset).

    Recall builds ~100 views per query, so the common cases take shortcuts (0.15 instead of
    0.55 ms per 100 rows): empty tags and metadata skip `json.loads`, and see `sqlite_utc`.
    """
    values = list(row)
    for i in _INTERNED:  # few distinct values: one shared copy each (the view cache holds many)
        if values[i] is not None:
            values[i] = sys.intern(values[i])
    for i in _DATETIMES:
        if values[i] is not None:
            values[i] = sqlite_utc(values[i])
    tags, meta = values[_TAGS], values[_META]
    if tags is not None:
        values[_TAGS] = () if tags == "[]" else tuple(json.loads(tags))
    if meta is not None:
        values[_META] = () if meta == "{}" else tuple(json.loads(meta).items())
    return RecordView(*values)


def sqlite_utc(text: str) -> datetime:
    """An aware UTC datetime from SQLite's text. SQLAlchemy writes 'YYYY-MM-DD HH:MM:SS.ffffff'
    (UTC, no offset); appending the offset then is ~6x cheaper than `.replace(tzinfo=UTC)`.
    Any other text is read as before (a wall time taken as UTC)."""
    if len(text) in _NAIVE_LENGTHS:
        try:
            return datetime.fromisoformat(text + "+00:00")
        except ValueError:  # it carried an offset already
            pass
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


_NAIVE_LENGTHS = (26, 19)  # with and without microseconds


# Fields of MemoryRecord that history snapshots carry (everything but the embedding blob).
SNAPSHOT_FIELDS: tuple[str, ...] = tuple(
    name for name in MemoryRecord.model_fields if name not in {"embedding", "seq"}
)
