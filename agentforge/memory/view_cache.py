"""Record views recall has read recently, kept exact by a trigger-fed log of changed rows.

Recall reads 60-120 record views per query (0.9-1.3 ms at 100k items), and an agent's step
recalls meet mostly the same records step after step. So each process keeps the views it read,
by id. Triggers log the id of every row updated in a column a view carries, or deleted
(`memory_view_log`, see `db.py`), in the writer's own transaction; inserts need no entry (a new
id was never cached). Before each fetch the cache reads the entries after the last one it
applied, in the caller's own snapshot, and evicts those ids, so a hit is the row as that
snapshot holds it, writes of other processes included. A caller whose snapshot is older than
the newest entry applied gets its rows from SQL and does not cache them.

A long-lived process also preloads the views of the active records (`preload`, in a background
thread started by the store), oldest first, up to the cache's size: the candidates of a recall
over a big store are mostly records no earlier recall read, and reading them from SQL was the
largest part of a recall after the embedding at 100k items (~1-2 ms; ~80 MB of views there).
Each chunk is read in a snapshot of its own and added only while that snapshot's log head is
the one the cache applied, the same rule a fetch follows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any

from sqlalchemy import Engine

from agentforge.memory.records import VIEW_SQL_COLUMNS, Row, view_from_raw

DEFAULT_SIZE = 200_000  # views kept (~1 KB each)
CLEAR_AFTER = 65_536  # more unapplied log entries than this: drop every view instead
PRELOAD_CHUNK = 4096  # rows per preload read (each in a snapshot of its own)
PASS_EVERY = 5.0  # seconds between the end of a preload pass and the start of the next

log = logging.getLogger(__name__)

Loader = Callable[[list[str]], dict[str, Row]]


def _log_head(conn: Any) -> int:
    """The newest `memory_view_log` id in `conn`'s snapshot (through the driver: every fetch)."""
    raw = conn.connection.dbapi_connection
    return int(raw.execute("SELECT max(id) FROM memory_view_log").fetchone()[0] or 0)


def _as_row(view: Row) -> Row:
    return tuple(view)  # a plain tuple: the collector never untracks a NamedTuple


class ViewCache:
    """Record views by id, kept exact by `memory_view_log`; safe across threads. Over `size`,
    the oldest tenth of the entries goes (first in, first out: sized to hold a whole store,
    it rarely fills)."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        # A plain dict of plain tuples (`_as_row`): the collector untracks a tuple of atomic
        # values, then a dict of untracked values, so full collections skip the whole cache
        # (tracked, 100k views cost each one ~40 ms; an OrderedDict is never untracked)
        self._views: dict[str, tuple[Any, ...]] = {}
        self._seen: int | None = None  # last applied memory_view_log id
        self._preloaded: int = 0  # `preload` has read the active records up to this seq
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def fetch(self, conn: Any, ids: Sequence[str], load: Loader) -> dict[str, Row]:
        """Rows of `ids` as `conn`'s snapshot holds them: the cache's own tuples (shared, never
        copied), and the views `load` reads of the missing ones."""
        head = _log_head(conn)
        out: dict[str, Row] = {}
        missing: list[str] = []
        with self._lock:
            if self._seen is None or head > self._seen:
                self._apply(conn, head)
            current = head == self._seen
            for i in ids:
                row = self._views.get(i) if current else None
                if row is None:
                    missing.append(i)
                else:
                    out[i] = row
            self.hits += len(out)
            self.misses += len(missing)
        if not missing:
            return out
        loaded = load(missing)
        out.update(loaded)
        with self._lock:
            if self._seen == head:  # nobody applied newer entries meanwhile
                for i, view in loaded.items():
                    self._views[i] = _as_row(view)
                self._trim()
        return out

    def _trim(self) -> None:
        """Drop the oldest tenth of the entries while over `size` (lock held)."""
        while len(self._views) > self.size:
            for key in list(islice(self._views, max(1, self.size // 10))):
                del self._views[key]

    def _apply(self, conn: Any, head: int) -> None:
        """Evict the ids logged after `_seen` up to `head` (lock held)."""
        if self._seen is None or head - self._seen > CLEAR_AFTER:
            self._views.clear()
            self._preloaded = 0
        else:
            for (record_id,) in conn.connection.dbapi_connection.execute(
                "SELECT record_id FROM memory_view_log WHERE id > ? AND id <= ?",
                (self._seen, head),
            ):
                self._views.pop(record_id, None)
        self._seen = head

    def preload(self, engine: Engine, stop: threading.Event | None = None) -> int:
        """Add the views of the active records not preloaded yet, oldest first, until the
        cache is full, `stop` is set or no record is left; the number added."""
        added = retries = 0
        while (stop is None or not stop.is_set()) and len(self._views) < self.size:
            with engine.connect() as conn, conn.begin():  # a deferred read: one snapshot
                head = _log_head(conn)
                with self._lock:
                    if self._seen is None or head > self._seen:
                        self._apply(conn, head)
                    after = self._preloaded
                rows = conn.connection.dbapi_connection.execute(
                    f"SELECT seq, {VIEW_SQL_COLUMNS} FROM memory WHERE seq > ? "
                    "AND status = 'active' ORDER BY seq LIMIT ?",
                    (after, PRELOAD_CHUNK),
                ).fetchall()
            if not rows:
                break
            views = [view_from_raw(row[1:]) for row in rows]
            with self._lock:
                # a newer snapshot applied, or the cache cleared: read this chunk again
                if self._seen != head or self._preloaded != after:
                    retries += 1
                    if retries > 10:
                        break
                    continue
                for view in views:
                    if view.id not in self._views and len(self._views) < self.size:
                        self._views[view.id] = _as_row(view)
                        added += 1
                self._preloaded = rows[-1][0]
            time.sleep(0)  # let recalls in between chunks
        return added

    def clear(self) -> None:
        with self._lock:
            self._views.clear()
            self._seen = None
            self._preloaded = 0


class Preloader:
    """The view cache's background preload: a pass starts on a fetch when none ran for
    `PASS_EVERY` seconds (records retained since are read then), until `stop`."""

    def __init__(self, cache: ViewCache, engine: Engine) -> None:
        self._cache = cache
        self._engine = engine
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._busy = False  # a pass runs
        self._next = 0.0  # monotonic time before which no pass starts

    def start(self) -> None:
        """Start a pass unless one runs or one ended less than `PASS_EVERY` seconds ago."""
        if self._busy or time.monotonic() < self._next or self._stop.is_set():
            return
        with self._lock:
            if self._busy or self._stop.is_set():
                return
            self._busy = True
            self._thread = threading.Thread(
                target=self._run, name="agentforge-view-preload", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        try:
            self._cache.preload(self._engine, self._stop)
        except Exception:  # a cache that stays partial costs speed, never correctness
            log.warning("record view preload failed", exc_info=True)
        finally:
            self._next = time.monotonic() + PASS_EVERY
            self._busy = False

    def wait(self) -> None:
        """Until the pass under way (if any) ends."""
        thread = self._thread
        if thread is not None:
            thread.join()

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
            thread = self._thread
        if thread is not None:
            thread.join()
