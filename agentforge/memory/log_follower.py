"""What the in-process indexes of the record store share (the keyword index, bm25.py; the dense
mirror, dense_mirror.py): a copy of SQL state kept exact by a trigger-fed log table.

Triggers append the `seq` of every row whose indexed state changes to the log table, in the
writer's own transaction. Before each search the copy applies the entries it has not seen, read
in the caller's transaction, so a search is exact for that snapshot, writes of other processes
included. It answers only when that is cheap: until its first build is done (in a background
thread for big stores), or while many entries wait (a catch-up thread applies them), `ready`
says no and the caller asks SQL or the index of record.

States: new → building → ready ("catching-up" while a thread applies the log); "off" when a
subclass declines to build; "closed".
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from sqlalchemy import Engine


class LogFollower(ABC):
    log_table: ClassVar[str]  # the trigger-fed log: (id INTEGER PRIMARY KEY, seq)
    sync_limit: ClassVar[int] = 2048  # entries applied inside a search; more go to a thread
    background_rows: ClassVar[int]  # stores with more rows are first built in a thread

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()  # the copy's state
        self._apply_lock = threading.Lock()  # one thread applies the log at a time
        self._seen = 0  # last applied log id
        self._state = "new"

    # --- for subclasses -----------------------------------------------------------------------

    @abstractmethod
    def _build(self, conn: Any) -> None:
        """Build the copy from `conn`'s snapshot; leave `_seen` at the log head it reflects and
        the state "ready" (or "off")."""

    @abstractmethod
    def _apply_rows(self, conn: Any, seqs: list[int]) -> None:
        """Bring the copy of these rows in line with `conn`'s snapshot (the log named them)."""

    def _builds_in_background(self, rows: int) -> bool:
        return rows > self.background_rows

    # --- shared -------------------------------------------------------------------------------

    def warm(self, conn: Any, timeout: float = 300.0) -> bool:
        """Build the copy now (or wait for the build under way) and bring it up to date: what a
        long-lived process calls once at start. False on timeout or when it will not build."""
        self._start(conn, background=False)
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                state = self._state
            if state == "ready":
                self._apply(conn, self._head(conn))
                return True
            if state in ("off", "closed") or time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    def ready(self, conn: Any) -> bool:
        """Whether to answer from the copy now: built, and brought up to `conn`'s snapshot."""
        return self.current(conn) is not None

    def current(self, conn: Any) -> int | None:
        """`ready`, returning the log head of `conn`'s snapshot (None: not ready). The copy
        reflects at least that head; more if another caller's newer snapshot got there first."""
        with self._lock:
            state = self._state
        if state == "new":
            state = self._start(conn)
        if state != "ready":
            return None
        head = self._head(conn)
        behind = head - self._seen
        if behind <= 0:
            return head
        if behind <= self.sync_limit:
            self._apply(conn, head)
            return head
        self._catch_up_in_background()
        return None

    def _apply(self, conn: Any, head: int) -> None:
        """Apply the log entries after `_seen` up to `head` (in `conn`'s snapshot, which holds
        those writes): the rows they name are re-read as they are now; one thread at a time."""
        with self._apply_lock:
            start = self._seen
            if head <= start:
                return  # another thread got there first
            seqs = [
                seq
                for (seq,) in conn.connection.dbapi_connection.execute(
                    f"SELECT DISTINCT seq FROM {self.log_table} WHERE id > ? AND id <= ?",
                    (start, head),
                )
            ]
            self._apply_rows(conn, seqs)
            with self._lock:
                self._seen = head

    def _head(self, conn: Any) -> int:
        # the driver directly: on every search, and SQLAlchemy's statement path costs ~10x
        raw = conn.connection.dbapi_connection
        return raw.execute(f"SELECT max(id) FROM {self.log_table}").fetchone()[0] or 0

    def _start(self, conn: Any, *, background: bool = True) -> str:
        """Build the copy if nobody has: now for a small store (or `background=False`), else in
        a thread. Returns the state it leaves."""
        with self._lock:
            if self._state != "new":
                return self._state
            self._state = "building"
        rows = rows_ever(conn.connection.dbapi_connection)
        if background and self._builds_in_background(rows):
            name = f"{type(self).__name__}-build"
            threading.Thread(target=self._build_own, name=name, daemon=True).start()
        else:
            try:
                self._build(conn)
            except Exception:
                with self._lock:
                    self._state = "new"
                raise
        return self._state

    def _build_own(self) -> None:
        try:
            with self._engine.connect() as conn:  # one read transaction: a consistent snapshot
                self._build(conn)
        except Exception:  # SQL keeps answering; try again on a later search
            with self._lock:
                self._state = "new"

    def _catch_up_in_background(self) -> None:
        with self._lock:
            if self._state != "ready":
                return
            self._state = "catching-up"

        def run() -> None:
            try:
                with self._engine.connect() as conn:
                    self._apply(conn, self._head(conn))
            except Exception:  # e.g. the store closed meanwhile; SQL still answers
                pass
            finally:
                with self._lock:
                    if self._state == "catching-up":
                        self._state = "ready"

        name = f"{type(self).__name__}-catch-up"
        threading.Thread(target=run, name=name, daemon=True).start()


def rows_ever(raw: Any) -> int:
    """Rows the store ever held, through the driver connection `raw`: an upper bound of what a
    build reads, in one index lookup."""
    return int(raw.execute("SELECT max(seq) FROM memory").fetchone()[0] or 0)
