"""What recall's ranking reads of each candidate — active or not, when it happened, its
utility — as arrays indexed by `seq`, so that ranking ~100 candidates a query needs no record
views: at 100k items, looking up the candidates' views (scattered over the view cache) was most
of a batch's ranking and all of its candidate fetches.

Kept exact like the other in-process copies (log_follower.py): triggers log the `seq` of every
row inserted, deleted or changed in its status, occurrence time or utility (`memory_rank_log`,
see db.py), and `columns` first applies the entries the caller's snapshot holds. It answers only
for a snapshot it reflects exactly (a caller whose snapshot is older than what it has applied
gets None and reads the views), so ranks from it are the ranks the views would give.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine

from agentforge.memory.db import is_sqlite_file
from agentforge.memory.log_follower import LogFollower
from agentforge.memory.records import sqlite_utc

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_COLUMNS = "seq, status, occurred_at, utility"
_CHUNK = 4096


def microseconds(moment: datetime) -> int:
    """`moment` (aware) as whole microseconds since the epoch: the same order and differences
    as the datetimes themselves (datetimes have microsecond resolution)."""
    return (moment - _EPOCH) // _MICROSECOND


class RankColumns(LogFollower):
    """See the module docstring. Thread-safe; one per store (per process)."""

    log_table = "memory_rank_log"
    background_rows = 50_000  # reads ~0.5M rows/s

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._active = np.zeros(1024, bool)
        self._occurred = np.zeros(1024, np.int64)  # microseconds since the epoch
        self._utility = np.zeros(1024, np.float64)

    def columns(
        self, conn: Any, seqs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(active, occurred_at in microseconds, utility) of each of `seqs` as `conn`'s snapshot
        holds them (a seq with no row there: inactive), or None when this copy does not reflect
        that snapshot exactly."""
        head = self.current(conn)
        if head is None or not self._apply_lock.acquire(blocking=False):
            return None  # an apply under way: its rows may be part-updated
        try:
            with self._lock:
                if self._seen != head:
                    return None
                seqs = np.asarray(seqs, np.intp)
                inside = (seqs >= 0) & (seqs < len(self._active))
                if not inside.all():
                    seqs = np.where(inside, seqs, 0)
                active = self._active[seqs] & inside
                return active, self._occurred[seqs], self._utility[seqs]
        finally:
            self._apply_lock.release()

    def _builds_in_background(self, rows: int) -> bool:
        return is_sqlite_file(self._engine) and super()._builds_in_background(rows)

    def _build(self, conn: Any) -> None:
        head = self._head(conn)
        raw = conn.connection.dbapi_connection
        cursor = raw.execute(f"SELECT {_COLUMNS} FROM memory")
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        while rows := cursor.fetchmany(_CHUNK):
            parts.append(_arrays(rows))
        with self._lock:
            size = max((int(p[0].max()) + 1 for p in parts), default=0)
            self._active = np.zeros(max(size, 1024), bool)
            self._occurred = np.zeros(len(self._active), np.int64)
            self._utility = np.zeros(len(self._active), np.float64)
            for seqs, active, occurred, utility in parts:
                self._set(seqs, active, occurred, utility)
            self._seen = head
            self._state = "ready"

    def _apply_rows(self, conn: Any, seqs: list[int]) -> None:
        raw = conn.connection.dbapi_connection
        for i in range(0, len(seqs), _CHUNK):
            chunk = seqs[i : i + _CHUNK]
            rows = raw.execute(
                f"SELECT {_COLUMNS} FROM memory WHERE seq IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            gone = np.asarray(chunk, np.int64)
            with self._lock:
                self._grow(int(gone.max()) + 1)
                self._active[gone] = False  # deleted rows stay so; the others are set below
                if rows:
                    self._set(*_arrays(rows))

    def _set(
        self, seqs: np.ndarray, active: np.ndarray, occurred: np.ndarray, utility: np.ndarray
    ) -> None:
        self._grow(int(seqs.max()) + 1)
        self._active[seqs] = active
        self._occurred[seqs] = occurred
        self._utility[seqs] = utility

    def _grow(self, size: int) -> None:
        if size > len(self._active):
            new = max(size, 2 * len(self._active))
            extra = new - len(self._active)
            self._active = np.concatenate([self._active, np.zeros(extra, bool)])
            self._occurred = np.concatenate([self._occurred, np.zeros(extra, np.int64)])
            self._utility = np.concatenate([self._utility, np.zeros(extra, np.float64)])


def _arrays(
    rows: Sequence[tuple[Any, ...]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Raw (seq, status, occurred_at text, utility) rows as arrays; times read as the record
    views read them (`records.sqlite_utc`)."""
    seqs, status, occurred, utility = zip(*rows, strict=True)
    return (
        np.asarray(seqs, np.int64),
        np.asarray([s == "active" for s in status], bool),
        np.fromiter(_times(occurred), np.int64, len(occurred)),
        np.asarray(utility, np.float64),
    )


def _times(texts: Iterable[str]) -> Iterable[int]:
    for text in texts:
        yield microseconds(sqlite_utc(text))
