"""Record views recall has read recently, kept exact by a trigger-fed log of changed rows.

Recall reads 60-120 record views per query (0.9-1.3 ms at 100k items), and an agent's step
recalls meet mostly the same records step after step. So each process keeps the views it read,
by id. Triggers log the id of every row updated in a column a view carries, or deleted
(`memory_view_log`, see `db.py`), in the writer's own transaction; inserts need no entry (a new
id was never cached). Before each fetch the cache reads the entries after the last one it
applied, in the caller's own snapshot, and evicts those ids, so a hit is the row as that
snapshot holds it, writes of other processes included. A caller whose snapshot is older than
the newest entry applied gets its rows from SQL and does not cache them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from agentforge.memory.records import RecordView

DEFAULT_SIZE = 20_000  # views kept (~1 KB each)
CLEAR_AFTER = 4096  # more unapplied log entries than this: drop every view instead

Loader = Callable[[list[str]], dict[str, RecordView]]


_META = RecordView._fields.index("meta")


def _as_row(view: RecordView) -> tuple[Any, ...]:
    """A plain tuple with the metadata as a tuple of items: the collector never untracks a tuple
    that holds a dict (even an empty one), nor a NamedTuple."""
    meta = view.meta
    return (*view[:_META], tuple(meta.items()) if meta else (), *view[_META + 1 :])


def _as_view(row: tuple[Any, ...]) -> RecordView:
    values = list(row)
    values[_META] = dict(values[_META])
    return RecordView._make(values)


class ViewCache:
    """An LRU of record views, kept exact by `memory_view_log`; safe across threads."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        # plain tuples (`_as_row`), untracked by the collector when their values are atomic:
        # ~20k tracked entries churning set off full collections (~60 ms each at 100k items)
        self._views: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        self._seen: int | None = None  # last applied memory_view_log id
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def fetch(self, conn: Any, ids: Sequence[str], load: Loader) -> dict[str, RecordView]:
        """Views of `ids` as `conn`'s snapshot holds them; `load` reads the missing ones."""
        raw = conn.connection.dbapi_connection
        head = raw.execute("SELECT max(id) FROM memory_view_log").fetchone()[0] or 0
        out: dict[str, RecordView] = {}
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
                    self._views.move_to_end(i)
                    out[i] = _as_view(row)
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
                while len(self._views) > self.size:
                    self._views.popitem(last=False)
        return out

    def _apply(self, conn: Any, head: int) -> None:
        """Evict the ids logged after `_seen` up to `head` (lock held)."""
        if self._seen is None or head - self._seen > CLEAR_AFTER:
            self._views.clear()
        else:
            for (record_id,) in conn.connection.dbapi_connection.execute(
                "SELECT record_id FROM memory_view_log WHERE id > ? AND id <= ?",
                (self._seen, head),
            ):
                self._views.pop(record_id, None)
        self._seen = head

    def clear(self) -> None:
        with self._lock:
            self._views.clear()
            self._seen = None
