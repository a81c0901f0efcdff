"""The dense channel's fast path: an in-process HNSW graph per namespace over the vectors of the
active records, read from the record store and kept exact for the caller's snapshot.

chromadb stays the vector index of record (what retain writes, what `reconcile` repairs, what a
PostgreSQL deployment queries). But an embedded chroma query costs ~2.3 ms whatever the store's
size, and holds the GIL throughout, so recall's other thread waits; hnswlib (the library chroma
itself used before its Rust rewrite, same graph parameters as chroma's defaults) answers a query
at 100k items in ~0.3 ms and releases the GIL while it searches.

Freshness, as the keyword index's (memory/log_follower.py): triggers log the `seq` of every row
inserted, deleted or changed in its vector, status, validity or namespace (`memory_vector_log`,
see `db.py`), and each search first applies the entries it has not seen, in the caller's
snapshot: it sees every write that snapshot holds, other processes' included. The mirror holds
exactly what the index of record should hold: active records whose validity interval is open.

The mirror answers only when it can do so cheaply: until its first build is done (in a
background thread for big stores), when many entries are waiting (a catch-up thread applies
them) or when the graph cannot give `k` results, `search` returns None and the caller asks
the vector index of record.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sqlalchemy import Engine

from agentforge.memory import dense_snapshot
from agentforge.memory.dense_snapshot import SavedGraph
from agentforge.memory.index.base import Hits
from agentforge.memory.log_follower import LogFollower, rows_ever
from agentforge.memory.seq_ids import SeqIds

try:  # an optional fast path: without hnswlib the vector index answers every query
    import hnswlib
except ImportError:  # pragma: no cover - hnswlib ships in the default install
    hnswlib = None

log = logging.getLogger(__name__)

M = 16  # chroma's defaults (hnsw:M, hnsw:construction_ef, hnsw:search_ef)
EF_CONSTRUCTION = 100
EF_SEARCH = 100
_THREADS = os.cpu_count() or 1
_LIVE_SQL = "status = 'active' AND valid_to IS NULL"
_BUILD_CHUNK = 8192  # rows read at a time while building
SNAPSHOT_MIN_ROWS = 5_000  # smaller mirrors build faster than a snapshot is worth
SNAPSHOT_AFTER = 2_000  # log entries applied since the last snapshot that make close() save one
# a store of at most this many rows builds even where only snapshots are loaded ("snapshot"
# mode, short CLI commands): ~0.1 s, where the vector index's first query in a fresh process
# (importing chromadb, opening its client) took ~0.8 s. Not an empty one: a command that
# writes into it (an import) would keep the mirror up to date through every batch, for nothing
SMALL_BUILD_ROWS = 1_000

DenseMirrorMode = Literal["on", "snapshot", "off"]


def available() -> bool:
    return hnswlib is not None


class _Graph:
    """One namespace's HNSW graph; labels are the records' `seq`. Not thread-safe."""

    def __init__(self, dim: int, capacity: int) -> None:
        self.dim = dim
        self.index = hnswlib.Index(space="ip", dim=dim)
        self.index.init_index(
            max_elements=max(capacity, 1024), M=M, ef_construction=EF_CONSTRUCTION
        )
        self.index.set_ef(EF_SEARCH)
        self.live: set[int] = set()
        self.marked: set[int] = set()  # labels marked deleted (hnswlib keeps their slots)

    @classmethod
    def load(cls, saved: SavedGraph) -> _Graph:
        """A graph from a snapshot (see dense_snapshot.py)."""
        graph = cls.__new__(cls)
        graph.dim = saved.dim
        graph.index = hnswlib.Index(space="ip", dim=saved.dim)
        graph.index.load_index(str(saved.path))
        graph.index.set_ef(EF_SEARCH)
        graph.live = set(saved.live.tolist())
        graph.marked = set(saved.marked.tolist())
        return graph

    def add(self, seqs: Sequence[int], vectors: np.ndarray) -> None:
        """Insert or replace (a marked label comes back with its new vector)."""
        need = self.index.element_count + len(seqs)
        if need > self.index.get_max_elements():
            self.index.resize_index(max(need, 2 * self.index.get_max_elements()))
        threads = _THREADS if len(seqs) >= 64 else 1
        self.index.add_items(vectors, np.asarray(seqs, np.uint64), num_threads=threads)
        self.live.update(seqs)
        self.marked.difference_update(seqs)

    def remove(self, seq: int) -> None:
        if seq in self.live:
            self.index.mark_deleted(seq)
            self.live.discard(seq)
            self.marked.add(seq)

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(labels, cosines) of the best `k` per row, or None when the graph cannot give `k`."""
        k = min(k, len(self.live))
        if k == 0:
            empty = np.empty((len(vectors), 0))
            return empty.astype(np.uint64), empty
        if k > EF_SEARCH:
            self.index.set_ef(k)
        try:
            labels, distances = self.index.knn_query(
                vectors, k=k, num_threads=min(len(vectors), _THREADS)
            )
        except RuntimeError:  # too few reachable live items (many deleted): ask the index
            return None
        finally:
            if k > EF_SEARCH:
                self.index.set_ef(EF_SEARCH)
        return labels, 1.0 - distances


class DenseMirror(LogFollower):
    """See the module docstring. Thread-safe; one per store (per process)."""

    log_table = "memory_vector_log"
    background_rows = 1_000  # builds ~5k rows/s on two cores

    def __init__(
        self, engine: Engine, directory: Path | None = None, *, build: bool = True
    ) -> None:
        super().__init__(engine)
        self._directory = directory  # where snapshots go (None: never saved)
        # False: only load a snapshot, never build from the records (a short-lived process
        # would pay a build it does not live to use), unless the store is small
        self._may_build = build
        self._snapshot_head = 0  # log id of the last snapshot saved or loaded
        self._graphs: dict[str, _Graph] = {}
        self._ids = SeqIds()  # seq -> record id, of the live labels
        self._where: dict[int, str] = {}  # seq -> namespace of the graph that holds it
        self._unusable: set[str] = set()  # namespaces whose vectors disagree in dimension

    # --- search -------------------------------------------------------------------------------

    def search(
        self, conn: Any, namespace: str, vectors: np.ndarray, k: int
    ) -> tuple[Hits, list[np.ndarray]] | None:
        """The `k` nearest active records of `namespace` for each row of `vectors`, as
        (id, cosine) best first, and each row's seqs in the same order; None when the caller
        should ask the vector index. `conn` is the caller's SQLAlchemy connection (its
        snapshot)."""
        if not self.ready(conn):
            return None
        with self._lock:
            if namespace in self._unusable:
                return None
            graph = self._graphs.get(namespace)
            if graph is None:
                return [[] for _ in vectors], [np.empty(0, np.int64) for _ in vectors]
            if graph.dim != vectors.shape[1]:
                return None  # the index of record raises the clear error
            found = graph.search(vectors, k)
            if found is None:
                return None
            labels, scores = found
            names = self._ids.names(labels)
        seqs = labels.astype(np.int64)
        hits: Hits = []
        kept: list[np.ndarray] = []
        for i, (row, cos) in enumerate(zip(names, scores.tolist(), strict=True)):
            if None in row:  # labels whose record left meanwhile
                keep = [j for j, rid in enumerate(row) if rid is not None]
                hits.append([(row[j], cos[j]) for j in keep])
                kept.append(seqs[i, keep])
            else:
                hits.append(list(zip(row, cos, strict=True)))
                kept.append(seqs[i])
        return hits, kept

    # --- building and applying the log --------------------------------------------------------

    def _builds_in_background(self, rows: int) -> bool:
        return self._may_build and super()._builds_in_background(rows)

    def _build(self, conn: Any) -> None:
        """From the newest snapshot and the log after it, else from the records (and then a
        snapshot of the result, for the next process)."""
        head = self._head(conn)
        raw = conn.connection.dbapi_connection  # plain tuples: ~10x faster than Row objects
        store_id = _store_id(raw)
        saved = None
        if self._directory is not None and store_id:
            saved = dense_snapshot.newest(
                self._directory, store_id, head, lambda at: _record_at(raw, at)
            )
        if saved is not None:
            try:
                self._load(raw, *saved)
            except Exception as exc:  # a damaged file: build from the records instead
                log.info("dense mirror snapshot not loaded: %s", exc)
                saved = None
        if saved is None and not self._may_build and not 0 < rows_ever(raw) <= SMALL_BUILD_ROWS:
            with self._lock:
                self._state = "off"
            return
        if saved is None:
            built = self._from_records(raw)
            with self._lock:
                self._graphs, self._ids, self._where, self._unusable = built
                self._seen = head
        self._apply(conn, head)
        if saved is None:
            self._save_if_worth(raw, store_id, always=True)
        with self._lock:
            self._state = "ready"

    def _load(self, raw: Any, head: int, saved: dict[str, SavedGraph]) -> None:
        graphs = {ns: _Graph.load(entry) for ns, entry in saved.items()}
        where = {seq: ns for ns, graph in graphs.items() for seq in graph.live}
        ids = SeqIds()
        live = raw.execute(f"SELECT seq, id FROM memory WHERE {_LIVE_SQL}").fetchall()
        ids.assign([seq for seq, _ in live], [rid for _, rid in live])
        with self._lock:
            self._graphs, self._ids, self._where, self._unusable = graphs, ids, where, set()
            self._seen = self._snapshot_head = head

    def _from_records(self, raw: Any) -> tuple[dict[str, _Graph], SeqIds, dict[int, str], set[str]]:
        """Graphs of every live record, read in chunks (a 100k store's vectors are 150 MB)."""
        sizes = dict(
            raw.execute(
                f"SELECT namespace, count(*) FROM memory WHERE {_LIVE_SQL} GROUP BY namespace"
            ).fetchall()
        )
        graphs: dict[str, _Graph] = {}
        ids = SeqIds()
        where: dict[int, str] = {}
        unusable: set[str] = set()
        cursor = raw.execute(f"SELECT seq, id, namespace, embedding FROM memory WHERE {_LIVE_SQL}")
        while rows := cursor.fetchmany(_BUILD_CHUNK):
            by_ns: dict[str, list[tuple[int, str, bytes]]] = {}
            for seq, rid, ns, blob in rows:
                by_ns.setdefault(ns, []).append((seq, rid, blob))
            for ns, group in by_ns.items():
                vectors = None if ns in unusable else _matrix([blob for _, _, blob in group])
                graph = graphs.get(ns)
                if vectors is None or (graph is not None and graph.dim != vectors.shape[1]):
                    unusable.add(ns)
                    graphs.pop(ns, None)
                    continue
                if graph is None:
                    graph = graphs[ns] = _Graph(vectors.shape[1], sizes.get(ns, len(group)))
                seqs = [seq for seq, _, _ in group]
                graph.add(seqs, vectors)
                ids.assign(seqs, [rid for _, rid, _ in group])
                where.update(dict.fromkeys(seqs, ns))
        for seq in [seq for seq, ns in where.items() if ns in unusable]:
            del where[seq]
            ids.pop(seq)
        return graphs, ids, where, unusable

    def _save_if_worth(self, raw: Any, store_id: str | None, *, always: bool = False) -> None:
        """Snapshot the graphs if the mirror is big enough and (unless `always`) enough has
        changed since the last snapshot. Failures only cost the next process a build."""
        if self._directory is None or not store_id:
            return
        with self._lock:
            if sum(len(g.live) for g in self._graphs.values()) < SNAPSHOT_MIN_ROWS:
                return
            if not always and self._seen - self._snapshot_head < SNAPSHOT_AFTER:
                return
            if self._unusable:
                return  # a snapshot would lose those namespaces' state
            try:
                dense_snapshot.save(
                    self._directory,
                    store_id,
                    self._seen,
                    _record_at(raw, self._seen),
                    {ns: (g.index, g.dim, g.live, g.marked) for ns, g in self._graphs.items()},
                )
                self._snapshot_head = self._seen
            except OSError as exc:
                log.warning("dense mirror snapshot not saved in %s: %s", self._directory, exc)

    def _apply_rows(self, conn: Any, seqs: list[int]) -> None:
        """Mirror each row's current state: out of its old graph, into its namespace's if live."""
        raw = conn.connection.dbapi_connection
        live: dict[int, tuple[str, str, bytes]] = {}
        for i in range(0, len(seqs), 4096):
            chunk = seqs[i : i + 4096]
            for seq, rid, ns, blob in raw.execute(
                f"SELECT seq, id, namespace, embedding FROM memory WHERE {_LIVE_SQL} "
                f"AND seq IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                live[seq] = (rid, ns, blob)
        with self._lock:
            for seq in seqs:
                self._drop(seq)
            self._add(live)

    def _drop(self, seq: int) -> None:
        ns = self._where.pop(seq, None)
        if ns is not None:
            self._graphs[ns].remove(seq)
        self._ids.pop(seq)

    def _add(self, live: dict[int, tuple[str, str, bytes]]) -> None:
        by_ns: dict[str, list[int]] = {}
        for seq, (_, ns, _) in live.items():
            by_ns.setdefault(ns, []).append(seq)
        for ns, seqs in by_ns.items():
            if ns in self._unusable:
                continue
            vectors = _matrix([live[s][2] for s in seqs])
            graph = self._graphs.get(ns)
            if vectors is None or (graph is not None and graph.dim != vectors.shape[1]):
                self._unusable.add(ns)
                continue
            if graph is None:
                graph = self._graphs[ns] = _Graph(vectors.shape[1], len(seqs))
            graph.add(seqs, vectors)
            for seq in seqs:
                self._ids[seq] = live[seq][0]
                self._where[seq] = ns
            if len(graph.marked) > 2 * len(graph.live) + 1000:
                self._graphs[ns] = _rebuilt(graph)

    def close(self) -> None:
        """Save a snapshot if much changed since the last one (see `_save_if_worth`)."""
        with self._lock:
            ready = self._state == "ready"
        if ready:
            try:
                with self._engine.connect() as conn:
                    raw = conn.connection.dbapi_connection
                    self._save_if_worth(raw, _store_id(raw))
            except Exception as exc:  # closing must not fail over a cache
                log.info("dense mirror snapshot skipped at close: %s", exc)
        with self._lock:
            self._graphs = {}
            self._ids = SeqIds()
            self._where = {}
            self._state = "closed"


def _store_id(raw: Any) -> str | None:
    row = raw.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
    return row[0] if row else None


def _record_at(raw: Any, head: int) -> str:
    """The id of the record the log names at `head` ('' if none or gone): with the store id,
    what tells a snapshot of this history from one of a restored backup's (same store id, same
    log ids and seqs, other records)."""
    row = raw.execute(
        "SELECT m.id FROM memory_vector_log AS l JOIN memory AS m ON m.seq = l.seq WHERE l.id = ?",
        (head,),
    ).fetchone()
    return str(row[0]) if row else ""


def _matrix(blobs: Sequence[bytes]) -> np.ndarray | None:
    """The float32 vectors stored in `blobs`, or None when their dimensions differ."""
    sizes = {len(b) for b in blobs}
    if len(sizes) != 1 or 0 in sizes or next(iter(sizes)) % 4:
        return None
    return np.frombuffer(b"".join(blobs), np.float32).reshape(len(blobs), -1)


def _rebuilt(graph: _Graph) -> _Graph:
    """A graph of the live labels only (hnswlib never frees a deleted label's slot)."""
    seqs = sorted(graph.live)
    fresh = _Graph(graph.dim, len(seqs))
    if seqs:
        fresh.add(seqs, np.asarray(graph.index.get_items(seqs), np.float32))
    return fresh
