"""The record store: SQLModel over any SQLAlchemy URL (SQLite WAL by default).

All SQL of the memory engine lives here; the engine composes these calls into phases. Writes happen
in `write()` sessions (one transaction, write lock taken up front on SQLite); every change to a
record is made through `change()`, which writes its history row in the same transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, insert, update
from sqlmodel import Session, col, select

from agentforge.errors import ConfigError, MemoryStoreError, NotFoundError
from agentforge.memory.bm25 import KeywordIndex
from agentforge.memory.db import is_postgresql, is_sqlite, is_sqlite_file, make_engine
from agentforge.memory.dense_mirror import DenseMirror, DenseMirrorMode, available
from agentforge.memory.index.base import Hits
from agentforge.memory.keyword import keyword_search
from agentforge.memory.rank_columns import RankColumns
from agentforge.memory.recall_log_write import Entry, fold_recall_counters, write_recall_log
from agentforge.memory.records import (
    SNAPSHOT_FIELDS,
    VIEW_COLUMNS,
    VIEW_SQL_COLUMNS,
    HistoryEntry,
    MemoryRecord,
    MetaKV,
    Operation,
    RecallLog,
    RecordView,
    Row,
    ToolRecord,
    as_utc,
    as_view,
    utcnow,
    utility,
    view_from_raw,
    views,
)
from agentforge.memory.view_cache import Preloader, ViewCache
from agentforge.types import Status


def new_id() -> str:
    return uuid.uuid4().hex


def vector_to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def blob_to_vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


def snapshot(record: MemoryRecord) -> dict[str, Any]:
    """A JSON-able copy of a record's fields (not its embedding) for history."""
    out: dict[str, Any] = {}
    for name in SNAPSHOT_FIELDS:
        value = getattr(record, name)
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def _restore_value(name: str, value: Any) -> Any:
    if value is not None and name in {
        "created_at",
        "occurred_at",
        "valid_from",
        "valid_to",
        "last_recalled_at",
    }:
        return datetime.fromisoformat(value)
    return value


class SQLStore:
    """Records, tool memory, history and recall log in one SQL database."""

    def __init__(
        self,
        engine: Engine,
        keyword_index: KeywordIndex | None = None,
        dense_mirror: DenseMirror | None = None,
        *,
        preload_views: bool = False,
    ) -> None:
        self.engine = engine
        self._writer = engine.execution_options(immediate=True)
        self._closed = False
        self._keyword_index = keyword_index
        self._dense_mirror = dense_mirror
        # a database file only, as the view cache (below)
        self._rank_columns = RankColumns(engine) if is_sqlite_file(engine) else None
        # not on an in-memory database: its one shared connection lets a read see a write that
        # may still roll back
        self.view_cache = ViewCache() if is_sqlite_file(engine) else None
        # a background thread fills the view cache on the first fetch (see view_cache.py)
        self._preload: Preloader | None = (
            Preloader(self.view_cache, engine) if preload_views and self.view_cache else None
        )

    @classmethod
    def from_url(cls, url: str, *, dense_mirror: DenseMirrorMode = "on") -> SQLStore:
        """The store at `url`; on SQLite with the in-process BM25 index (memory/bm25.py) and,
        in a database file, the dense mirror (memory/dense_mirror.py): "on" builds it when no
        snapshot exists, "snapshot" only loads one, "off" has none."""
        engine = make_engine(url)
        if not is_sqlite(engine):
            return cls(engine)
        mirror = None
        if dense_mirror != "off" and is_sqlite_file(engine) and available():
            db = Path(str(engine.url.database))
            directory = db.parent / "dense-mirror" / db.name
            mirror = DenseMirror(engine, directory, build=dense_mirror == "on")
        # "on" is the mode of long-lived processes, which also preload the record views
        return cls(engine, KeywordIndex(engine), mirror, preload_views=dense_mirror == "on")

    @property
    def has_keyword_index(self) -> bool:
        return is_sqlite(self.engine) or is_postgresql(self.engine)

    def close(self) -> None:
        self._closed = True
        if self._preload is not None:
            self._preload.stop()
        if self._keyword_index is not None:
            self._keyword_index.close()
        if self._dense_mirror is not None:
            self._dense_mirror.close()
        self._rank_columns = None
        self.engine.dispose()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: committed on success, rolled back on any error."""
        self._check_open()
        with Session(self._writer, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except Exception:
                session.rollback()
                raise

    @contextmanager
    def read(self) -> Iterator[Session]:
        self._check_open()
        with Session(self.engine, expire_on_commit=False) as session:
            yield session  # closing the session ends its (read-only) transaction

    def _check_open(self) -> None:
        # after close() the engine would open a new connection: to an empty database in memory
        if self._closed:
            raise MemoryStoreError("the memory store is closed")

    # --- operations and history -------------------------------------------------------------

    def begin_operation(
        self, session: Session, kind: str, namespace: str | None, **summary: Any
    ) -> Operation:
        op = Operation(id=new_id(), kind=kind, namespace=namespace, summary=summary)
        session.add(op)
        return op

    def records_created(
        self, session: Session, op: Operation, records: Sequence[MemoryRecord], reason: str = ""
    ) -> None:
        """The history's "create" entries of `records`, in order, written now in one INSERT
        (after the session's pending changes, which it flushes first): a HistoryEntry object
        per record cost ~0.2 ms to build and flush, a fifth of a retain's write."""
        if not records:
            return
        at = utcnow()
        session.execute(
            insert(HistoryEntry),
            [
                {
                    "op_id": op.id,
                    "record_id": r.id,
                    "namespace": r.namespace,
                    "action": "create",
                    "before": None,
                    "after": {"status": r.status},
                    "reason": reason,
                    "at": at,
                }
                for r in records
            ],
        )

    def change(
        self,
        session: Session,
        op: Operation,
        record: MemoryRecord,
        action: str,
        reason: str = "",
        **fields: Any,
    ) -> None:
        """Apply `fields` to `record` and write the before/after of the changed fields."""
        before = {k: _jsonable(getattr(record, k)) for k in fields}
        for key, value in fields.items():
            setattr(record, key, value)
        if {"status", "valid_to"} & fields.keys():
            record.index_state = "pending"
        after = {k: _jsonable(getattr(record, k)) for k in fields}
        session.add(record)
        session.add(
            HistoryEntry(
                op_id=op.id,
                record_id=record.id,
                namespace=record.namespace,
                action=action,
                before=before,
                after=after,
                reason=reason,
            )
        )

    def history(
        self,
        *,
        namespace: str | None = None,
        record_id: str | None = None,
        op_id: str | None = None,
        limit: int = 50,
    ) -> list[HistoryEntry]:
        with self.read() as s:
            stmt = select(HistoryEntry).order_by(col(HistoryEntry.id).desc()).limit(limit)
            if namespace:
                stmt = stmt.where(HistoryEntry.namespace == namespace)
            if record_id:
                stmt = stmt.where(HistoryEntry.record_id == record_id)
            if op_id:
                stmt = stmt.where(HistoryEntry.op_id == op_id)
            return list(s.exec(stmt).all())

    def operations(self, *, namespace: str | None = None, limit: int = 50) -> list[Operation]:
        with self.read() as s:
            stmt = select(Operation).order_by(col(Operation.started_at).desc()).limit(limit)
            if namespace:
                stmt = stmt.where(Operation.namespace == namespace)
            return list(s.exec(stmt).all())

    def undo(self, op_id: str) -> Operation:
        """Restore every record an operation changed to its state before it, newest first.

        Later operations are kept, not silently reverted with it: usage counters are restored
        by the operation's own delta (credits since stay counted), and a record whose other
        changed fields moved since refuses the undo, naming the operation to undo first. A keyed
        fact brought back beside a value of its key written after the operation is superseded
        by it, as it would have been without the operation (two current values of one key
        contradict)."""
        with self.write() as s:
            op = s.get(Operation, op_id)
            if op is None:
                raise NotFoundError(f"no operation with id {op_id!r}")
            if op.undone_by:
                raise NotFoundError(f"operation {op_id} was already undone by {op.undone_by}")
            entries = s.exec(
                select(HistoryEntry)
                .where(HistoryEntry.op_id == op_id)
                .order_by(col(HistoryEntry.id).desc())
            ).all()
            self._check_unchanged_since(s, op_id, entries)
            undo_op = self.begin_operation(
                s, "undo", op.namespace, undoes=op_id, changes=len(entries)
            )
            undo_op.undoes = op_id
            for entry in entries:
                if is_meta_key(entry.record_id):
                    self._undo_meta(s, undo_op, entry, op_id)
                    continue
                record = self._by_id(s, entry.record_id)
                if record is None:
                    continue
                if entry.action == "create":
                    self.change(
                        s,
                        undo_op,
                        record,
                        "forget",
                        reason=f"undo {op_id}",
                        status=Status.FORGOTTEN.value,
                        valid_to=utcnow(),
                    )
                elif entry.before:
                    restored = _restored(record, entry)
                    self.change(s, undo_op, record, "restore", reason=f"undo {op_id}", **restored)
                    self._superseded_since(s, undo_op, record, op)
            op.undone_by = undo_op.id
            s.add(op)
            return undo_op

    def _check_unchanged_since(
        self, s: Session, op_id: str, entries: Sequence[HistoryEntry]
    ) -> None:
        """Refuse the undo if a field the operation set (counters aside) holds another value
        now: a later operation changed it, and restoring would silently revert that one."""
        newest: dict[tuple[str, str], tuple[int, Any]] = {}  # entries come newest first
        for entry in entries:
            if entry.action == "create" or not entry.after or is_meta_key(entry.record_id):
                continue
            for name, value in entry.after.items():
                if name not in _COUNTED:
                    newest.setdefault((entry.record_id, name), (entry.id or 0, value))
        records = self.fetch(s, list({record_id for record_id, _ in newest}))
        for (record_id, name), (entry_id, after) in newest.items():
            record = records.get(record_id)
            if record is None or _same(name, getattr(record, name), after):
                continue
            later = s.exec(
                select(HistoryEntry.op_id)
                .where(HistoryEntry.record_id == record_id, col(HistoryEntry.id) > entry_id)
                .order_by(col(HistoryEntry.id).desc())
            ).first()
            raise ConfigError(
                f"cannot undo {op_id}: memory {record_id} changed since ({name}"
                + (f", by operation {later}); undo that first" if later else ")"),
                op_id=op_id,
                record_id=record_id,
            )

    def _superseded_since(
        self, s: Session, undo_op: Operation, record: MemoryRecord, op: Operation
    ) -> None:
        """A keyed fact made active again while a value of its key written after `op` is
        current: that value supersedes it, as it would have without `op` (values that were
        active together before `op` stay so: that is the state undo restores)."""
        if not record.key or record.status != Status.ACTIVE.value or record.valid_to is not None:
            return
        s.flush()
        since = as_utc(op.started_at)
        newer = [
            r
            for r in self.active_where(s, record.namespace, key=record.key)
            if r.id != record.id and as_utc(r.valid_from) >= since
        ]
        if not newer:
            return
        newest = max(newer, key=lambda r: (as_utc(r.valid_from), r.seq or 0))
        self.change(
            s,
            undo_op,
            record,
            "supersede",
            reason=f"undo {op.id}: {newest.id} is a newer value of {record.key}",
            status=Status.SUPERSEDED.value,
            valid_to=max(as_utc(newest.valid_from), as_utc(record.valid_from)),
            superseded_by=newest.id,
        )

    def _undo_meta(self, s: Session, undo_op: Operation, entry: HistoryEntry, op_id: str) -> None:
        """Put a `meta` value an operation changed back (deleted if it had none before)."""
        current = self.meta_json(s, entry.record_id)
        self.set_meta_json(s, entry.record_id, entry.before)
        s.add(
            HistoryEntry(
                op_id=undo_op.id,
                record_id=entry.record_id,
                namespace=entry.namespace,
                action="restore",
                before=current,
                after=entry.before,
                reason=f"undo {op_id}",
            )
        )

    # --- meta values (per-namespace settings that history covers, e.g. tuned recall weights) -

    @staticmethod
    def meta_json(session: Session, key: str) -> dict[str, Any] | None:
        row = session.get(MetaKV, key)
        return None if row is None else json.loads(row.value)

    @staticmethod
    def set_meta_json(session: Session, key: str, value: dict[str, Any] | None) -> None:
        """Set (or, with None, delete) a JSON `meta` value; history is the caller's job."""
        row = session.get(MetaKV, key)
        if value is None:
            if row is not None:
                session.delete(row)
            return
        row = row or MetaKV(key=key, value="")
        row.value = json.dumps(value, sort_keys=True)
        session.add(row)

    def read_meta_json(self, key: str) -> dict[str, Any] | None:
        with self.read() as s:
            return self.meta_json(s, key)

    # --- records ----------------------------------------------------------------------------

    @staticmethod
    def _by_id(session: Session, record_id: str) -> MemoryRecord | None:
        return session.exec(select(MemoryRecord).where(MemoryRecord.id == record_id)).first()

    def get(self, record_id: str) -> MemoryRecord:
        with self.read() as s:
            record = self._by_id(s, record_id)
        if record is None:
            raise NotFoundError(f"no memory with id {record_id!r}")
        return record

    @staticmethod
    def active_hashes(
        session: Session, namespace: str, level: str, hashes: Sequence[str]
    ) -> dict[str, str]:
        if not hashes:
            return {}
        rows = session.exec(
            select(MemoryRecord.content_hash, MemoryRecord.id).where(
                MemoryRecord.namespace == namespace,
                MemoryRecord.level == level,
                _is_active(),
                col(MemoryRecord.content_hash).in_(list(set(hashes))),
            )
        ).all()
        return {h: i for h, i in rows}

    @staticmethod
    def active_where(session: Session, namespace: str, **equals: Any) -> list[MemoryRecord]:
        stmt = select(MemoryRecord).where(MemoryRecord.namespace == namespace, _is_active())
        for key, value in equals.items():
            stmt = stmt.where(getattr(MemoryRecord, key) == value)
        return list(session.exec(stmt.order_by(col(MemoryRecord.chunk_index))).all())

    def fetch(self, session: Session, ids: Sequence[str]) -> dict[str, MemoryRecord]:
        if not ids:
            return {}
        rows = session.exec(select(MemoryRecord).where(col(MemoryRecord.id).in_(list(ids))))
        return {r.id: r for r in rows}

    def fetch_views(self, session: Session, ids: Sequence[str]) -> dict[str, RecordView]:
        """Read-only views of records by id (no embedding, no ORM objects)."""
        return {i: as_view(row) for i, row in self.fetch_rows(session, ids).items()}

    def fetch_rows(self, session: Session, ids: Sequence[str]) -> dict[str, Row]:
        """`fetch_views` as the recall path reads them: views, or the view cache's own tuples
        of their values (see `records.Row`). On SQLite through the view cache (exact for the
        session's snapshot, see view_cache)."""
        if not ids:
            return {}
        conn = session.connection()
        if conn.dialect.name != "sqlite":
            stmt = select(*VIEW_COLUMNS).where(col(MemoryRecord.id).in_(list(ids)))
            return {v.id: v for v in views(conn.execute(stmt))}

        def load(missing: list[str]) -> dict[str, Row]:
            # the driver directly: 5-10x less Python per row, and plain tuples (SQLAlchemy's
            # Row objects stay tracked by the garbage collector; a batch's promoted ones set
            # off full collections)
            marks = ",".join("?" * len(missing))
            sql = f"SELECT {VIEW_SQL_COLUMNS} FROM memory WHERE id IN ({marks})"
            rows = conn.connection.dbapi_connection.execute(sql, missing).fetchall()
            return {v.id: v for v in map(view_from_raw, rows)}

        if self.view_cache is None or conn.get_execution_options().get("immediate", False):
            return load(list(ids))  # a write transaction may see its own uncommitted rows
        if self._preload is not None:
            self._preload.start()
        return self.view_cache.fetch(conn, ids, load)

    def keyword(
        self,
        session: Session,
        namespace: str,
        query: str,
        n: int,
        levels: Sequence[str] | None,
        kinds: Sequence[str] | None,
    ) -> tuple[list[tuple[str, float]], np.ndarray | None]:
        """Top `n` active records of `namespace` by BM25 (FTS5's scores; positive, higher is
        better): from the in-process index when it is current, with their seqs; else from
        FTS5 in SQL, seqs None."""
        if not self.has_keyword_index:
            return [], None
        if self._keyword_index is not None:
            found = self._keyword_index.search(
                session.connection(), namespace, query, n, levels, kinds
            )
            if found is not None:
                return found
        return keyword_search(session, namespace, query, n, levels=levels, kinds=kinds), None

    def warm_keyword_index(self) -> bool:
        """Build the in-process keyword index now instead of in the background on the first
        search (a long-lived process at start, the benchmarks); False if it did not get ready."""
        if self._keyword_index is None:
            return False
        with self.read() as s:
            return self._keyword_index.warm(s.connection())

    def dense(
        self, session: Session, namespace: str, vectors: np.ndarray, k: int
    ) -> Hits | None:
        """The `k` nearest active records of `namespace` per row of `vectors` from the dense
        mirror, exact for the session's snapshot; None when the vector index must answer."""
        found = self.dense_seqs(session, namespace, vectors, k)
        return None if found is None else found[0]

    def dense_seqs(
        self, session: Session, namespace: str, vectors: np.ndarray, k: int
    ) -> tuple[Hits, list[np.ndarray]] | None:
        """`dense`, and each row's seqs (in the order of its hits)."""
        if self._dense_mirror is None:
            return None
        return self._dense_mirror.search(session.connection(), namespace, vectors, k)

    def rank_columns(
        self, session: Session, seqs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(active, occurred_at in microseconds since the epoch, utility) of each of `seqs` as
        the session's snapshot holds them, from the in-process copy (memory/rank_columns.py);
        None when there is none or it does not reflect that snapshot: read the views."""
        if self._rank_columns is None:
            return None
        return self._rank_columns.columns(session.connection(), seqs)

    def warm_rank_columns(self) -> bool:
        """Build the ranking columns now instead of in the background on the first recall (a
        long-lived process at start, the benchmarks); False if there are none."""
        if self._rank_columns is None:
            return False
        with self.read() as s:
            return self._rank_columns.warm(s.connection())

    def warm_view_cache(self) -> int:
        """Preload the record views now instead of in the background after the first fetch
        (a long-lived process at start, the benchmarks); the number of views added."""
        if self.view_cache is None:
            return 0
        if self._preload is not None:
            self._preload.wait()
        return self.view_cache.preload(self.engine)

    def warm_dense_mirror(self) -> bool:
        """Build the dense mirror now instead of in the background on the first search (a
        long-lived process at start, the benchmarks); False if there is none or it timed out."""
        if self._dense_mirror is None:
            return False
        with self.read() as s:
            return self._dense_mirror.warm(s.connection())

    def pending_ids(self) -> list[str]:
        """The records whose index entry must still be brought in line."""
        with self.read() as s:
            return list(
                s.exec(select(MemoryRecord.id).where(MemoryRecord.index_state == "pending")).all()
            )

    def pending_records(self, ids: Sequence[str]) -> list[MemoryRecord]:
        """Those of `ids` that are still pending, as they are now."""
        with self.read() as s:
            return list(
                s.exec(
                    select(MemoryRecord).where(
                        col(MemoryRecord.id).in_(list(ids)),  # type: ignore[call-overload]
                        MemoryRecord.index_state == "pending",
                    )
                ).all()
            )

    def mark_synced(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self.write() as s:
            s.exec(
                update(MemoryRecord)
                .where(col(MemoryRecord.id).in_(list(ids)))  # type: ignore[call-overload]
                .values(index_state="synced")
            )

    def active_ids(self, namespace: str) -> set[str]:
        with self.read() as s:
            return set(
                s.exec(
                    select(MemoryRecord.id).where(
                        MemoryRecord.namespace == namespace,
                        MemoryRecord.status == Status.ACTIVE.value,
                    )
                ).all()
            )

    def namespaces(self) -> list[str]:
        with self.read() as s:
            return sorted(set(s.exec(select(MemoryRecord.namespace).distinct()).all()))

    def iter_records(
        self, namespace: str, *, include_inactive: bool = False, batch: int = 1000
    ) -> Iterator[MemoryRecord]:
        last = 0
        while True:
            with self.read() as s:
                stmt = select(MemoryRecord).where(
                    MemoryRecord.namespace == namespace, col(MemoryRecord.seq) > last
                )
                if not include_inactive:
                    stmt = stmt.where(MemoryRecord.status == Status.ACTIVE.value)
                rows = list(s.exec(stmt.order_by(col(MemoryRecord.seq)).limit(batch)).all())
            if not rows:
                return
            yield from rows
            last = rows[-1].seq or last

    def counts(self, namespace: str | None = None) -> list[tuple[str, str, str, int]]:
        """(namespace, level, status, count) rows."""
        with self.read() as s:
            stmt = select(
                MemoryRecord.namespace, MemoryRecord.level, MemoryRecord.status, func.count()
            ).group_by(MemoryRecord.namespace, MemoryRecord.level, MemoryRecord.status)
            if namespace:
                stmt = stmt.where(MemoryRecord.namespace == namespace)
            return [tuple(r) for r in s.exec(stmt).all()]  # type: ignore[misc]

    # --- recall log and credit --------------------------------------------------------------

    def log_recalls(self, entries: Sequence[Entry]) -> list[int]:
        """Write recall log rows in one transaction; returns the new log ids (also set on
        `entries`), in order. The records' counters follow at the next `fold_recall_counters`
        (see `recall_log_write`)."""
        if not entries:
            return []
        with self._writer.begin() as conn:
            ids = write_recall_log(conn, entries)
        for entry, log_id in zip(entries, ids, strict=True):
            entry.id = log_id
        return ids

    def fold_recall_counters(self, session: Session | None = None) -> int:
        """Bring the records' `recalls` / `last_recalled_at` up to the recall log, in the
        write session given or in one of its own; the number of log entries folded."""
        if session is not None:
            return fold_recall_counters(session.connection())
        with self._writer.begin() as conn:
            return fold_recall_counters(conn)

    def uncredited_recalls(self, session: Session, run_id: str) -> list[RecallLog]:
        return list(
            session.exec(
                select(RecallLog).where(
                    RecallLog.run_id == run_id,
                    RecallLog.credited == False,  # noqa: E712
                )
            ).all()
        )

    def recall_log(self, *, namespace: str | None = None, limit: int = 50) -> list[RecallLog]:
        with self.read() as s:
            stmt = select(RecallLog).order_by(col(RecallLog.id).desc()).limit(limit)
            if namespace:
                stmt = stmt.where(RecallLog.namespace == namespace)
            return list(s.exec(stmt).all())

    # --- tool memory ------------------------------------------------------------------------

    def tool_record(self, session: Session, namespace: str, name: str) -> ToolRecord:
        record = session.get(ToolRecord, (namespace, name))
        return record or ToolRecord(namespace=namespace, name=name)

    def tools(self, namespace: str) -> list[ToolRecord]:
        with self.read() as s:
            return list(s.exec(select(ToolRecord).where(ToolRecord.namespace == namespace)).all())


# `meta` keys whose changes history records (as entries whose record_id is the key); memory
# record ids are hex uuids and never contain a colon.
META_KEY_PREFIXES = ("weights:",)


def _is_active() -> Any:
    """`status = 'active'` written so that no index serves it (`status || ''`): SQLite would
    otherwise pick the (namespace, status, level) index, i.e. scan the whole namespace (13 ms at
    100k items), over the selective one on the other terms (content hash, doc id, key)."""
    return (col(MemoryRecord.status) + "") == Status.ACTIVE.value


def is_meta_key(record_id: str) -> bool:
    return record_id.startswith(META_KEY_PREFIXES)


_COUNTED = {"recalls", "successes", "failures", "utility"}  # usage: restored by delta


def _restored(record: MemoryRecord, entry: HistoryEntry) -> dict[str, Any]:
    """The values that undo `entry`: its `before` for plain fields; for a usage counter, the
    value now less what the entry added (so that later credits stay); utility from those."""
    after = entry.after or {}
    out: dict[str, Any] = {}
    for name, value in (entry.before or {}).items():
        if name == "utility":
            continue
        if name in _COUNTED and name in after:
            out[name] = max(0, getattr(record, name) - ((after[name] or 0) - (value or 0)))
        else:
            out[name] = _restore_value(name, value)
    if "utility" in (entry.before or {}):
        successes = out.get("successes", record.successes)
        failures = out.get("failures", record.failures)
        out["utility"] = utility(successes, failures)
    return out


def _same(name: str, current: Any, stored: Any) -> bool:
    """Whether a field's value equals one history stored (datetimes compared as instants)."""
    value = _restore_value(name, stored)
    if isinstance(value, datetime) and isinstance(current, datetime):
        return as_utc(value) == as_utc(current)
    return bool(_jsonable(current) == stored)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, dict, str, int, float, bool)) or value is None:
        return value
    raise MemoryStoreError(f"cannot snapshot value of type {type(value).__name__}")
