"""Chroma-backed index: embedded (`persistent`) or client/server (`http`).

One chroma collection per namespace, named `ns-<sanitised namespace>-<sha1[:8]>`, with the
original namespace in its metadata (so `namespaces()` can list them) and cosine space; a
similarity is `1 - distance`. We always pass our own embeddings and `embedding_function=None`:
chromadb's default embedding function downloads a model and must never run.

chromadb is imported lazily, inside the methods that need it.

Multi-process safety of the embedded mode. chromadb's embedded `PersistentClient` is not safe
across processes: clients opening a new store together fail ("table collections already exists",
"database is locked"), and an engine that loaded a collection misses later writes of other
processes in its in-memory HNSW graph and, when it syncs that graph to disk (every 1000
updates), loses them for everyone. So every access to the embedded client (client creation,
reads and writes) happens under an exclusive `fcntl.flock` on `lock_path` (next to the store),
and a generation file next to it names the last write: each write stores a fresh token there,
and before each access an index whose last-seen token differs drops its client and collection
cache (clearing chromadb's process-wide client cache) and builds a new client through
`client_factory`, which loads the current on-disk state. A `threading.Lock` serialises threads
of one process. Do not mix raw `chromadb.PersistentClient` objects on the same path with this
index in one process.

The `http` mode needs none of this: the server serialises access.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import itertools
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from agentforge.errors import AgentForgeError, ConfigError, MemoryStoreError
from agentforge.memory.index.base import Hits, MetadataValue, VectorIndex
from agentforge.memory.index.query_cache import QueryCache

T = TypeVar("T")

NAMESPACE_KEY = "agentforge_namespace"
DEFAULT_MAX_BATCH = 5000
_PREFIX = "ns-"
# '.' is replaced too (chroma rejects ".."); the hash keeps sanitised names unique.
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_TOKENS = itertools.count()


def collection_name(namespace: str) -> str:
    """Chroma collection name of a namespace: 3-512 chars of [a-zA-Z0-9._-], alnum at both ends."""
    digest = hashlib.sha1(namespace.encode()).hexdigest()[:8]
    return f"{_PREFIX}{_UNSAFE.sub('_', namespace)[:200]}-{digest}"


def chroma_where(where: dict[str, list[MetadataValue]] | None) -> dict[str, Any] | None:
    """Translate {key: [values]} (AND across keys, OR within values) to a chroma `where`."""
    if not where:
        return None
    clauses = [_key_clause(key, values) for key, values in where.items()]
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _key_clause(key: str, values: list[MetadataValue]) -> dict[str, Any]:
    by_type: dict[type, list[MetadataValue]] = {}
    for value in values:  # chroma wants one type per `$in` list
        by_type.setdefault(type(value), []).append(value)
    parts = [{key: {"$in": group}} for group in by_type.values()]
    return parts[0] if len(parts) == 1 else {"$or": parts}


def _replacement(
    old: dict[str, Any] | None, new: dict[str, MetadataValue]
) -> dict[str, Any] | None:
    """Metadata that makes chroma's merging upsert leave exactly `new` (None deletes a key)."""
    merged: dict[str, Any] = {key: None for key in (old or {}) if key not in new}
    merged.update(new)
    return merged or None  # chroma rejects an empty dict


class _FileGuard:
    """An exclusive cross-process section on `lock_path` plus the generation file beside it."""

    def __init__(self, lock_path: Path) -> None:
        if lock_path.suffix == ".gen":
            raise ConfigError(f"lock_path must not end in .gen: {lock_path}")
        self.lock_path = lock_path
        self.gen_path = lock_path.with_suffix(".gen")
        self._fd: int | None = None
        self._pid = os.getpid()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        if self._fd is None or self._pid != os.getpid():  # a forked child needs its own lock
            self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            self._pid = os.getpid()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def read(self) -> str:
        try:
            return f"{os.getpid()}:{self.gen_path.read_text()}"
        except FileNotFoundError:
            return f"{os.getpid()}:"

    def bump(self) -> str:
        token = f"{time.time_ns()}-{os.getpid()}-{next(_TOKENS)}"
        tmp = self.gen_path.with_name(f"{self.gen_path.name}.{os.getpid()}.tmp")
        tmp.write_text(token)
        os.replace(tmp, self.gen_path)
        return f"{os.getpid()}:{token}"

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None


class ChromaVectorIndex(VectorIndex):
    """Chroma index; see `VectorIndex` for the contract and the module doc for concurrency.

    Args:
        client: a chromadb client, or None to create it on first use with `client_factory`.
        lock_path: embedded mode only: the cross-process lock file (needs `client_factory`).
        client_factory: builds a fresh client (first use, and after another process wrote).
    """

    def __init__(
        self,
        client: Any | None,
        *,
        lock_path: Path | None = None,
        client_factory: Callable[[], Any] | None = None,
    ) -> None:
        if client is None and client_factory is None:
            raise ConfigError("ChromaVectorIndex needs a client or a client_factory")
        if lock_path is not None and client_factory is None:
            raise ConfigError("a lock_path needs a client_factory to reload the embedded client")
        self._client = client
        self._factory = client_factory
        self._guard = _FileGuard(Path(lock_path)) if lock_path is not None else None
        self._seen: str | None = None
        self._collections: dict[str, Any] = {}
        self._cache = QueryCache()
        self._max_batch: int | None = None
        self._lock = threading.Lock()
        self._owns_client = client is None

    @classmethod
    def persistent(cls, path: Path, *, allow_reset: bool = False) -> ChromaVectorIndex:
        """Embedded chroma in directory `path`, safe across processes (`<path>.lock`, `.gen`)."""
        path = Path(path).expanduser().absolute()
        path.mkdir(parents=True, exist_ok=True)

        def factory() -> Any:
            import chromadb
            from chromadb.config import Settings

            settings = Settings(anonymized_telemetry=False, allow_reset=allow_reset)
            return chromadb.PersistentClient(path=str(path), settings=settings)

        return cls(None, lock_path=path.with_name(path.name + ".lock"), client_factory=factory)

    @classmethod
    def http(cls, host: str, port: int, *, timeout: float = 30.0) -> ChromaVectorIndex:
        """A chroma server at `host:port`; `timeout` bounds connecting and each request."""
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as exc:
            raise ConfigError(
                f"cannot reach the chroma server at {host}:{port}: {exc}", host=host, port=port
            ) from exc

        def factory() -> Any:
            import chromadb
            from chromadb.config import Settings

            client = chromadb.HttpClient(
                host=host, port=port, settings=Settings(anonymized_telemetry=False)
            )
            session = getattr(getattr(client, "_server", None), "_session", None)
            if session is not None:  # chromadb exposes no timeout setting; its httpx has none
                session.timeout = timeout
            return client

        try:
            client = factory()
        except Exception as exc:
            raise ConfigError(
                f"chroma server at {host}:{port} did not answer: {exc}", host=host, port=port
            ) from exc
        index = cls(client, client_factory=factory)
        index._owns_client = True
        return index

    # -- VectorIndex core -------------------------------------------------------------------

    async def _upsert(
        self,
        namespace: str,
        ids: list[str],
        vectors: np.ndarray,
        metadatas: list[dict[str, MetadataValue]],
    ) -> None:
        def run(client: Any) -> None:
            col = self._collection(client, namespace, create=True)
            step = self._batch_size(client)
            for start in range(0, len(ids), step):
                chunk = ids[start : start + step]
                old = col.get(ids=chunk, include=["metadatas"])
                previous = dict(zip(old["ids"], old["metadatas"] or [], strict=False))
                metas = [
                    _replacement(previous.get(item), meta)
                    for item, meta in zip(chunk, metadatas[start : start + step], strict=True)
                ]
                col.upsert(ids=chunk, embeddings=vectors[start : start + step], metadatas=metas)

        await self._call("upsert", namespace, run, write=True)

    async def _delete(self, namespace: str, ids: list[str]) -> None:
        def run(client: Any) -> None:
            col = self._collection(client, namespace, create=False)
            if col is None:
                return
            step = self._batch_size(client)
            for start in range(0, len(ids), step):
                col.delete(ids=ids[start : start + step])

        await self._call("delete", namespace, run, write=True)

    def _query_blocking(
        self,
        namespace: str,
        vectors: np.ndarray,
        k: int,
        where: dict[str, list[MetadataValue]] | None,
    ) -> Hits:
        empty: Hits = [[] for _ in range(len(vectors))]

        def run(client: Any) -> Hits:
            col = self._collection(client, namespace, create=False)
            if col is None:
                return empty
            # valid only where every write (of any process) changes the generation token
            generation = self._seen if self._guard is not None else None
            keys = [QueryCache.key(namespace, k, where, v) for v in vectors]
            out: list[list[tuple[str, float]] | None] = [
                self._cache.get(generation, key) if generation is not None else None
                for key in keys
            ]
            missing = [i for i, row in enumerate(out) if row is None]
            if not missing:
                return out  # type: ignore[return-value]
            # chroma 1.5 answers n_results > count (and an empty collection) itself; a count()
            # per query would cost ~0.8 ms on the hot path
            result = col.query(
                query_embeddings=vectors[missing],
                n_results=k,
                where=chroma_where(where),
                include=["distances"],
            )
            distances = result["distances"] or [[] for _ in result["ids"]]
            for i, row_ids, row_d in zip(missing, result["ids"], distances, strict=True):
                row = [(item, 1.0 - float(dist)) for item, dist in zip(row_ids, row_d, strict=True)]
                out[i] = row
                if generation is not None:
                    self._cache.put(generation, keys[i], row)
            return out  # type: ignore[return-value]

        return self._locked("query", namespace, run, False)

    async def _ids(self, namespace: str) -> set[str]:
        def run(client: Any) -> set[str]:
            col = self._collection(client, namespace, create=False)
            return set(col.get(include=[])["ids"]) if col is not None else set()

        return await self._call("ids", namespace, run, write=False)

    async def _count(self, namespace: str) -> int:
        def run(client: Any) -> int:
            col = self._collection(client, namespace, create=False)
            return int(col.count()) if col is not None else 0

        return await self._call("count", namespace, run, write=False)

    async def _namespaces(self) -> list[str]:
        def run(client: Any) -> list[str]:
            found = []
            for col in client.list_collections():
                owner = (col.metadata or {}).get(NAMESPACE_KEY)
                if col.name.startswith(_PREFIX) and isinstance(owner, str):
                    found.append(owner)
            return found

        return await self._call("namespaces", None, run, write=False)

    async def _drop_namespace(self, namespace: str) -> None:
        def run(client: Any) -> None:
            from chromadb.errors import NotFoundError

            self._collections.pop(namespace, None)
            with contextlib.suppress(NotFoundError):
                client.delete_collection(collection_name(namespace))

        await self._call("drop_namespace", namespace, run, write=True)

    def _close(self) -> None:
        with self._lock:
            self._collections.clear()
            if self._guard is None:
                if self._owns_client and self._client is not None:
                    with contextlib.suppress(Exception):
                        self._client.close()
                self._client = None
                return
            with contextlib.suppress(OSError), self._guard.hold():
                self._drop_embedded_client()
                _forget_embedded_systems()  # its stopped engine must not be handed out again
            self._guard.close()

    # -- plumbing ---------------------------------------------------------------------------

    async def _call(
        self, op: str, namespace: str | None, run: Callable[[Any], T], *, write: bool
    ) -> T:
        return await asyncio.to_thread(self._locked, op, namespace, run, write)

    def _locked(self, op: str, namespace: str | None, run: Callable[[Any], T], write: bool) -> T:
        """Run `run(client)` with the right locks held, a fresh client, errors wrapped."""
        guard = self._guard
        if guard is None:
            return self._wrapped(op, namespace, run)
        try:
            with self._lock, guard.hold():
                self._check_open()
                try:
                    return self._wrapped(op, namespace, run)
                finally:
                    if write:  # even after a failure: a partial write must reach the others
                        self._seen = guard.bump()
        except OSError as exc:  # everything else is wrapped by `_wrapped`
            raise MemoryStoreError(
                f"chroma {op}: lock or generation file next to {guard.lock_path} failed: {exc}",
                op=op,
                namespace=namespace,
            ) from exc

    def _wrapped(self, op: str, namespace: str | None, run: Callable[[Any], T]) -> T:
        try:
            from chromadb.errors import NotFoundError

            client = self._fresh_client()
            try:
                return run(client)
            except NotFoundError:  # a cached collection was dropped by someone else: retry once
                self._collections.clear()
                return run(client)
        except AgentForgeError:
            raise
        except Exception as exc:
            where = f" for namespace {namespace!r}" if namespace is not None else ""
            raise MemoryStoreError(
                f"chroma {op} failed{where}: {type(exc).__name__}: {exc}",
                op=op,
                namespace=namespace,
            ) from exc

    def _fresh_client(self) -> Any:
        if self._guard is not None:
            current = self._guard.read()
            if self._client is None or current != self._seen:
                self._reload()
                self._seen = current
        elif self._client is None:
            assert self._factory is not None
            self._client = self._factory()
            self._owns_client = True
        return self._client

    def _reload(self) -> None:
        """Drop the embedded client and its caches and load the on-disk state afresh."""
        assert self._factory is not None
        self._drop_embedded_client()
        _forget_embedded_systems()
        self._client = self._factory()
        self._owns_client = True

    def _drop_embedded_client(self) -> None:
        """Forget the embedded client; stop its engine now if it is ours (frees files, threads).

        chromadb's objects form reference cycles, so without the explicit stop the engine
        would live until a garbage collection, outside our lock.
        """
        client, self._client = self._client, None
        self._collections.clear()
        self._max_batch = None
        if self._owns_client and client is not None:
            stop = getattr(getattr(client, "_server", None), "stop", None)
            if callable(stop):
                with contextlib.suppress(Exception):
                    stop()

    def _collection(self, client: Any, namespace: str, *, create: bool) -> Any | None:
        cached = self._collections.get(namespace)
        if cached is not None:
            return cached
        name = collection_name(namespace)
        if create:
            col = client.get_or_create_collection(
                name,
                metadata={"hnsw:space": "cosine", NAMESPACE_KEY: namespace},
                embedding_function=None,
            )
        else:
            from chromadb.errors import NotFoundError

            try:
                col = client.get_collection(name, embedding_function=None)
            except NotFoundError:
                return None
        owner = (col.metadata or {}).get(NAMESPACE_KEY)
        if owner != namespace:
            raise MemoryStoreError(
                f"chroma collection {name!r} belongs to namespace {owner!r}, not {namespace!r}",
                namespace=namespace,
                collection=name,
            )
        self._collections[namespace] = col
        return col

    def _batch_size(self, client: Any) -> int:
        if self._max_batch is None:
            getter = getattr(client, "get_max_batch_size", None)
            self._max_batch = int(getter()) if callable(getter) else DEFAULT_MAX_BATCH
        return self._max_batch


def _forget_embedded_systems() -> None:
    """Clear chromadb's process-wide client cache so the next client reloads from disk. A
    process that never imported chromadb has none (importing it to clear nothing cost a short
    CLI command ~0.7 s)."""
    if "chromadb.api.client" not in sys.modules:
        return
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
