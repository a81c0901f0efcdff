"""Engine creation for the record store: SQLite (WAL, immediate write transactions, FTS5) or any
SQLAlchemy URL."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.pool import StaticPool
from sqlmodel import SQLModel

from agentforge.errors import ConfigError, MemoryStoreError
from agentforge.memory import records  # noqa: F401  (registers the tables)
from agentforge.memory.keyword import FTS_COLUMNS, TOKENIZE
from agentforge.memory.records import VIEW_SQL_COLUMNS

SCHEMA_VERSION = "1"

_FTS_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS memory_fts USING fts5("
    f"{', '.join(FTS_COLUMNS)}, content='memory', content_rowid='seq', tokenize='{TOKENIZE}')",
    "CREATE TRIGGER IF NOT EXISTS memory_fts_ai AFTER INSERT ON memory BEGIN "
    "INSERT INTO memory_fts(rowid, title, content, tags) "
    "VALUES (new.seq, new.title, new.content, new.tags); END",
    "CREATE TRIGGER IF NOT EXISTS memory_fts_ad AFTER DELETE ON memory BEGIN "
    "INSERT INTO memory_fts(memory_fts, rowid, title, content, tags) "
    "VALUES ('delete', old.seq, old.title, old.content, old.tags); END",
    "CREATE TRIGGER IF NOT EXISTS memory_fts_au AFTER UPDATE OF title, content, tags ON memory "
    "BEGIN INSERT INTO memory_fts(memory_fts, rowid, title, content, tags) "
    "VALUES ('delete', old.seq, old.title, old.content, old.tags); "
    "INSERT INTO memory_fts(rowid, title, content, tags) "
    "VALUES (new.seq, new.title, new.content, new.tags); END",
    # rows whose indexed text changed, in the writer's transaction: what an in-process keyword
    # index (memory/bm25.py) re-reads to stay exact
    "CREATE TABLE IF NOT EXISTS memory_fts_log (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "seq INTEGER NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS memory_fts_log_ai AFTER INSERT ON memory BEGIN "
    "INSERT INTO memory_fts_log(seq) VALUES (new.seq); END",
    "CREATE TRIGGER IF NOT EXISTS memory_fts_log_ad AFTER DELETE ON memory BEGIN "
    "INSERT INTO memory_fts_log(seq) VALUES (old.seq); END",
    "CREATE TRIGGER IF NOT EXISTS memory_fts_log_au AFTER UPDATE OF title, content, tags "
    "ON memory BEGIN INSERT INTO memory_fts_log(seq) VALUES (old.seq); END",
    # ... and rows whose filtered columns changed (its filters read them in-process too)
    "CREATE TRIGGER IF NOT EXISTS memory_fts_log_filters_au AFTER UPDATE OF namespace, status, "
    "level, kind ON memory BEGIN INSERT INTO memory_fts_log(seq) VALUES (old.seq); END",
    # rows whose vector, liveness or namespace changed, in the writer's transaction: what the
    # in-process dense mirror (memory/dense_mirror.py) re-reads to stay exact
    "CREATE TABLE IF NOT EXISTS memory_vector_log (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "seq INTEGER NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS memory_vector_log_ai AFTER INSERT ON memory BEGIN "
    "INSERT INTO memory_vector_log(seq) VALUES (new.seq); END",
    "CREATE TRIGGER IF NOT EXISTS memory_vector_log_ad AFTER DELETE ON memory BEGIN "
    "INSERT INTO memory_vector_log(seq) VALUES (old.seq); END",
    "CREATE TRIGGER IF NOT EXISTS memory_vector_log_au AFTER UPDATE OF embedding, status, "
    "valid_to, namespace ON memory BEGIN INSERT INTO memory_vector_log(seq) VALUES (old.seq); END",
    # rows whose ranking columns changed, in the writer's transaction: what recall's in-process
    # copy of them (memory/rank_columns.py) re-reads to stay exact
    "CREATE TABLE IF NOT EXISTS memory_rank_log (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "seq INTEGER NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS memory_rank_log_ai AFTER INSERT ON memory BEGIN "
    "INSERT INTO memory_rank_log(seq) VALUES (new.seq); END",
    "CREATE TRIGGER IF NOT EXISTS memory_rank_log_ad AFTER DELETE ON memory BEGIN "
    "INSERT INTO memory_rank_log(seq) VALUES (old.seq); END",
    "CREATE TRIGGER IF NOT EXISTS memory_rank_log_au AFTER UPDATE OF status, occurred_at, "
    "utility ON memory BEGIN INSERT INTO memory_rank_log(seq) VALUES (old.seq); END",
    # rows updated in a column a record view carries, or deleted: what the per-process view
    # cache (memory/view_cache.py) evicts to stay exact (recall counters do not count)
    "CREATE TABLE IF NOT EXISTS memory_view_log (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "record_id TEXT NOT NULL)",
    f"CREATE TRIGGER IF NOT EXISTS memory_view_log_au AFTER UPDATE OF {VIEW_SQL_COLUMNS} "
    "ON memory BEGIN INSERT INTO memory_view_log(record_id) VALUES (old.id); END",
    "CREATE TRIGGER IF NOT EXISTS memory_view_log_ad AFTER DELETE ON memory BEGIN "
    "INSERT INTO memory_view_log(record_id) VALUES (old.id); END",
)

# PostgreSQL's keyword channel (keyword.py): full text over the same columns, weighted as FTS5's
# bm25 weights them (content A, title and tags B), kept by the database itself.
_PG_FTS_DDL = (
    "ALTER TABLE memory ADD COLUMN IF NOT EXISTS fts tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('english', coalesce(title, '')), 'B') || "
    "setweight(to_tsvector('english', content), 'A') || "
    "setweight(to_tsvector('english', coalesce(tags::text, '')), 'B')) STORED",
    "CREATE INDEX IF NOT EXISTS ix_memory_fts ON memory USING GIN (fts)",
)


LEND_TIMEOUT_S = 120.0  # how long a thread waits for an in-memory database's one connection


class _LentStaticPool(StaticPool):
    """An in-memory database lives in one connection (`StaticPool`), which is lent to one
    thread at a time; the same thread may take it again (nested sessions, as before).

    Shared freely, two threads' transactions interleaved on it: a second `BEGIN` failed ("cannot
    start a transaction within a transaction"), and one session's commit or reset-on-return
    rollback ended the other's transaction half-way: a recall beside a retain, or two event
    loops on one `Memory`, failed or lost writes. A file database gives each thread its own
    connection and needs none of this."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._turn = threading.Condition()
        self._holder: int | None = None
        self._depth = 0

    def _do_get(self) -> Any:
        me = threading.get_ident()
        with self._turn:
            if self._holder != me:
                if not self._turn.wait_for(lambda: self._holder is None, LEND_TIMEOUT_S):
                    raise MemoryStoreError(
                        f"the in-memory database was held by another thread for "
                        f"{LEND_TIMEOUT_S:g} s"
                    )
                self._holder = me
            self._depth += 1
        try:
            return super()._do_get()
        except BaseException:
            self._give_back()
            raise

    def _do_return_conn(self, record: Any) -> None:
        super()._do_return_conn(record)
        self._give_back()

    def _give_back(self) -> None:
        # from whichever thread returns it (a connection closed by the garbage collector, too)
        with self._turn:
            self._depth -= 1
            if self._depth == 0:
                self._holder = None
                self._turn.notify_all()


def _sqlite_engine(url: str) -> Engine:
    in_memory = url in {"sqlite://", "sqlite:///:memory:"}
    if not in_memory:
        path = Path(url.removeprefix("sqlite:///"))
        if not path.parent.exists():
            raise ConfigError(f"database directory does not exist: {path.parent}")
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 60}}
    if in_memory:
        kwargs["poolclass"] = _LentStaticPool
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        if not in_memory:
            cur.execute("PRAGMA journal_mode=WAL")
            # reads map the file instead of copying pages: a 100-row fetch 0.75 -> 0.39 ms
            cur.execute("PRAGMA mmap_size=1073741824")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Write transactions take the write lock up front so that check-then-insert (dedupe)
        # is atomic across processes; reads stay deferred and never block each other.
        immediate = conn.get_execution_options().get("immediate", False)
        # the driver directly: every transaction starts here (SQLAlchemy's path costs ~10x)
        conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def make_engine(url: str) -> Engine:
    """Create the engine for `url` and the schema if it is missing."""
    if url.startswith("sqlite"):
        engine = _sqlite_engine(url)
    else:
        try:
            engine = create_engine(url, pool_pre_ping=True)
        except Exception as exc:  # bad URL or missing driver
            raise ConfigError(f"cannot use database URL {url!r}: {exc}") from exc
    _create_schema(engine)
    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def is_sqlite_file(engine: Engine) -> bool:
    """SQLite in a database file (not in memory): what the per-process caches need."""
    return is_sqlite(engine) and engine.url.database not in (None, "", ":memory:")


# Columns added to existing tables after their first release: (table, column, SQL type).
# `create_all` creates missing tables only, so a database made by an older version gains them here.
_ADDED_COLUMNS = (("recall_log", "ranks", "JSON"),)


def _add_missing_columns(conn: Connection) -> None:
    """ALTER TABLE … ADD COLUMN for every added column a table lacks (idempotent)."""
    inspector = inspect(conn)
    for table, column, sql_type in _ADDED_COLUMNS:
        if column not in {c["name"] for c in inspector.get_columns(table)}:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))


def _create_schema(engine: Engine) -> None:
    with engine.execution_options(immediate=True).begin() as conn:
        SQLModel.metadata.create_all(conn)
        _add_missing_columns(conn)
        if is_sqlite(engine):
            for ddl in _FTS_DDL:
                conn.execute(text(ddl))
        elif is_postgresql(engine):
            for ddl in _PG_FTS_DDL:
                conn.execute(text(ddl))
        conn.execute(
            text(
                "INSERT INTO meta(key, value) SELECT 'schema_version', :v "
                "WHERE NOT EXISTS (SELECT 1 FROM meta WHERE key = 'schema_version')"
            ),
            {"v": SCHEMA_VERSION},
        )
        # the recall log entries the records' usage counters include (recall_log_write.py):
        # all of them in a database made before the counters were folded from the log
        conn.execute(
            text(
                "INSERT INTO meta(key, value) SELECT 'recall_counters_folded', "
                "(SELECT CAST(coalesce(max(id), 0) AS TEXT) FROM recall_log) "
                "WHERE NOT EXISTS (SELECT 1 FROM meta WHERE key = 'recall_counters_folded')"
            )
        )
        # which database this is, whatever its path: what derived state on disk (the dense
        # mirror's snapshots) is checked against
        conn.execute(
            text(
                "INSERT INTO meta(key, value) SELECT 'store_id', :v "
                "WHERE NOT EXISTS (SELECT 1 FROM meta WHERE key = 'store_id')"
            ),
            {"v": uuid.uuid4().hex},
        )
