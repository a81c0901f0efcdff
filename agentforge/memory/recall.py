"""`recall`, the hot path: embed (one call for the batch) → channels (dense: one index query per
namespace/filter group; keyword: BM25) → candidates → filter and rank (`ranking`: from the
ranking columns by seq, else from the candidates' records) → fuse → neighbours of the best (one
store query), added to the first fusion → budget → log.

The keyword channel runs in a worker thread (and reads the records of the candidates that will
be ranked from records); the query embedding and everything after it run in one more worker
thread (`_embed_and_finish`).

Concurrent recalls are coalesced into one `recall_batch` call by the engine's micro-batcher.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np
from sqlmodel import Session, col, select

from agentforge.errors import MemoryStoreError
from agentforge.memory.components import Components
from agentforge.memory.fusion import (
    CHANNELS,
    FusionWeights,
    add_channel,
    apply_budget,
    fused_scores,
    ordered,
    ranks_by_score,
)
from agentforge.memory.index.base import Hits
from agentforge.memory.neighbours import Position, adjacent, neighbour_scores, position, records_at
from agentforge.memory.ranking import (
    Columns,
    Ranks,
    passes,
    plain,
    ranks_from_columns,
    ranks_from_rows,
    split_columns,
)
from agentforge.memory.recall_log_write import RecallEntry
from agentforge.memory.records import (
    CONTENT,
    CREATED_AT,
    DOC_ID,
    ID,
    KIND,
    LEVEL,
    META,
    NAMESPACE,
    OCCURRED_AT,
    ROLE,
    SOURCE,
    STEP,
    TAGS,
    TITLE,
    TRUST,
    UTILITY,
    MemoryRecord,
    Row,
)
from agentforge.memory.store import blob_to_vector
from agentforge.types import (
    ChannelRanks,
    Level,
    Provenance,
    RecallHit,
    RecallResult,
    Status,
    Trust,
)


@dataclass(frozen=True)
class RecallRequest:
    query: str
    namespace: str
    k: int | None = 10
    token_budget: int | None = None
    levels: tuple[str, ...] | None = None
    kinds: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None  # any of these tags
    since: datetime | None = None  # occurred_at window
    until: datetime | None = None
    as_of: datetime | None = None  # what was valid at that time
    run_id: str | None = None
    log: bool = True
    weights: FusionWeights = field(default_factory=FusionWeights)
    min_score: float = 0.0  # see `passes_gate`
    # what the keyword channel searches when it differs from `query` (which is embedded): e.g.
    # an agent step's cue — the task (its embedding cached) plus the words of the latest page
    keyword_query: str | None = None


@dataclass(frozen=True)
class RecallTuning:
    """A namespace's recall weights and its `min_score` gate (what `tune_weights` learns).

    Stored as one flat JSON dict (the weights' fields plus `min_score`) in the `meta` table
    under `weights_key(namespace)`; history entries of a tuning carry the same dict.
    """

    weights: FusionWeights = field(default_factory=FusionWeights)
    min_score: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {**self.weights.as_dict(), "min_score": self.min_score}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecallTuning:
        return cls(FusionWeights.from_dict(data), float(data.get("min_score", 0.0)))


def weights_key(namespace: str) -> str:
    """The `meta` key (and history record id) of a namespace's tuned recall weights."""
    return f"weights:{namespace}"


def best_possible(weights: FusionWeights) -> float:
    """The fused score of an item ranked first by every weighted channel."""
    return sum(getattr(weights, c) for c in CHANNELS) / (weights.rrf_k + 1)


def passes_gate(
    fused: Sequence[tuple[str, float]], weights: FusionWeights, min_score: float
) -> bool:
    """When to recall at all: False when the best fused score is below `min_score` times
    `best_possible(weights)` (relative, so the gate means the same under any weights)."""
    if min_score <= 0 or not fused:
        return True
    return fused[0][1] >= min_score * best_possible(weights)


def _historic_dense(
    s: Session, q: RecallRequest, vector: np.ndarray, n: int
) -> list[tuple[str, float]]:
    """For `as_of` recalls: closed records (not in the index) scored by brute force."""
    stmt = select(MemoryRecord.id, MemoryRecord.embedding).where(
        MemoryRecord.namespace == q.namespace,
        MemoryRecord.status != Status.ACTIVE.value,
        MemoryRecord.status != Status.FORGOTTEN.value,
        MemoryRecord.valid_from <= q.as_of,
        col(MemoryRecord.valid_to) > q.as_of,
    )
    rows = s.exec(stmt).all()
    if not rows:
        return []
    matrix = np.stack([blob_to_vector(blob) for _, blob in rows])
    scores = matrix @ vector
    order = np.argsort(-scores)[:n]
    return [(rows[i][0], float(scores[i])) for i in order]


KeywordFound = tuple[Hits, list[np.ndarray | None], dict[str, Row]]  # see `_keyword`


def _keyword(c: Components, requests: Sequence[RecallRequest]) -> KeywordFound:
    """Keyword hits, their seqs (None: not from the in-process index) and the records that only
    views can rank (`ranking`): fetched here, while the query is still being embedded, so that
    after the dense query only the records it alone found remain to be read."""
    with c.store.read() as s:
        found = [
            c.store.keyword(
                s, q.namespace, q.keyword_query or q.query, q.weights.candidates, q.levels,
                q.kinds,
            )
            for q in requests
        ]
        by_rows = [
            hits
            for q, (hits, seqs) in zip(requests, found, strict=True)
            if not (plain(q) and seqs is not None)
        ]
        records = c.store.fetch_rows(s, list({h[0] for hits in by_rows for h in hits}))
        return [h for h, _ in found], [seqs for _, seqs in found], records


# Filters are applied after the index query (see `ranking.passes`): chroma's metadata-filtered
# search costs ~10x an unfiltered one, so a filtered request fetches a larger pool instead.
FILTERED_POOL_FACTOR = 3


def _pool(q: RecallRequest) -> int:
    return q.weights.candidates * (FILTERED_POOL_FACTOR if q.levels or q.kinds else 1)


def _dense(
    c: Components, s: Session, requests: Sequence[RecallRequest], vectors: np.ndarray
) -> tuple[Hits, list[np.ndarray | None]]:
    """One unfiltered query per namespace of the batch, at the largest pool it needs: to the
    store's dense mirror (exact for the snapshot of `s`; it also gives the hits' seqs), else to
    the vector index; blocking, in recall's worker thread (a thread hop of its own cost
    ~0.5 ms)."""
    groups: dict[str, list[int]] = {}
    for i, q in enumerate(requests):
        groups.setdefault(q.namespace, []).append(i)
    out: Hits = [[] for _ in requests]
    out_seqs: list[np.ndarray | None] = [None] * len(requests)
    for namespace, indices in groups.items():
        pool = max(_pool(requests[i]) for i in indices)
        found = c.store.dense_seqs(s, namespace, vectors[indices], pool)
        if found is None:
            hits, seqs = c.index.query_blocking(namespace, vectors[indices], pool), None
        else:
            hits, seqs = found
        for j, i in enumerate(indices):
            n = _pool(requests[i])
            out[i] = hits[j][:n]
            out_seqs[i] = None if seqs is None else seqs[j][:n]
    return out, out_seqs


def _fetch(
    c: Components,
    s: Session,
    requests: Sequence[RecallRequest],
    vectors: np.ndarray,
    dense: Hits,
    keyword: Hits,
    records: dict[str, Row],
    by_rows: Sequence[int],
) -> None:
    """Add the records of the hits of the requests ranked by views (`by_rows`: indices) that
    `records` lacks; `as_of` requests first get the closed records that join their dense hits."""
    for i in by_rows:
        q = requests[i]
        if q.as_of is not None:
            dense[i] = sorted(
                dense[i] + _historic_dense(s, q, vectors[i], q.weights.candidates),
                key=lambda h: -h[1],
            )[: q.weights.candidates]
    wanted = {h[0] for i in by_rows for hits in (dense[i], keyword[i]) for h in hits}
    missing = wanted - records.keys()
    records.update(c.store.fetch_rows(s, list(missing)))


def _columns(
    c: Components,
    s: Session,
    requests: Sequence[RecallRequest],
    dense_seqs: list[np.ndarray | None],
    keyword_seqs: list[np.ndarray | None],
) -> list[Columns | None]:
    """The ranking columns of the hits of each `plain` request whose channels both gave seqs
    (one read for the batch); None for the others, and for all when the columns do not
    reflect the snapshot of `s`."""
    out: list[Columns | None] = [None] * len(requests)
    chosen: list[int] = []
    parts: list[np.ndarray] = []  # each chosen request's dense seqs, then its keyword seqs
    for i, q in enumerate(requests):
        d, k = dense_seqs[i], keyword_seqs[i]
        if plain(q) and d is not None and k is not None:
            chosen.append(i)
            parts += (d, k)
    if not chosen:
        return out
    found = c.store.rank_columns(s, np.concatenate(parts))
    if found is None:
        return out
    sizes = [len(parts[2 * j]) + len(parts[2 * j + 1]) for j in range(len(chosen))]
    for i, columns in zip(chosen, split_columns(found, sizes), strict=True):
        out[i] = columns
    return out


def _neighbours(
    s: Session,
    requests: Sequence[RecallRequest],
    ranks: list[Ranks],
    scores: list[dict[str, float]],
    firsts: list[list[tuple[str, float]]],
    records: dict[str, Row],
) -> set[int]:
    """Add the neighbour channel to each request's ranks and fused scores (`firsts`: the first
    fusion, ordered; one query in `s` for the batch); newly found neighbours are added to
    `records`, which holds the views of each first fusion's best `neighbour_of`. Returns the
    requests whose scores changed."""
    tops: dict[int, list[tuple[str, float]]] = {}
    for i, q in enumerate(requests):
        if q.weights.neighbour > 0 and q.weights.neighbour_of > 0:
            tops[i] = firsts[i][: q.weights.neighbour_of]
    wanted = {p for top in tops.values() for hit, _ in top for p in adjacent(records[hit])}
    changed: set[int] = set()
    if not wanted:
        return changed
    found = records_at(s, wanted)
    by_position: dict[Position, list[Row]] = {}
    for r in found:
        records.setdefault(r[ID], r)
        by_position.setdefault(position(r), []).append(r)  # type: ignore[arg-type]
    for i, top in tops.items():
        q = requests[i]
        near = neighbour_scores(top, records, by_position)
        ranks[i]["neighbour"] = ranks_by_score(
            (j, v) for j, v in near.items() if passes(records[j], q)
        )
        if add_channel(scores[i], "neighbour", ranks[i]["neighbour"], q.weights):
            changed.add(i)
    return changed


LOGGED_CANDIDATES = 30  # best fused candidates whose channel ranks the recall log keeps


def logged_ranks(fused: Sequence[tuple[str, float]], ranks: Ranks) -> dict[str, dict[str, int]]:
    """{id: {channel: rank}} of the best fused candidates, for tuning the weights offline."""
    out: dict[str, dict[str, int]] = {i: {} for i, _ in fused[:LOGGED_CANDIDATES]}
    for channel, by_id in ranks.items():  # channels outside: ~40% less than a dict per id
        for i, entry in out.items():
            if i in by_id:
                entry[channel] = by_id[i]
    return out


def _hits(
    q: RecallRequest,
    fused: list[tuple[str, float]],
    ranks: Ranks,
    records: dict[str, Row],
) -> list[RecallHit]:
    if not passes_gate(fused, q.weights, q.min_score):
        return []
    chosen = apply_budget(
        fused, k=q.k, token_budget=q.token_budget, text_of=lambda item: records[item[0]][CONTENT]
    )
    return [_to_hit(records[i], score, ranks) for i, score in chosen]


_RANKED = set(ChannelRanks.model_fields)
_LEVELS = {level.value: level for level in Level}  # a dict lookup, not an enum call per hit


@lru_cache(maxsize=4096)
def _provenance(source: str | None, step: int | None, role: str | None, trust: str) -> Provenance:
    """Shared by the hits of records that came from the same place (a Provenance is frozen)."""
    return Provenance(source=source, step=step, role=role, trust=Trust(trust))


def _to_hit(r: Row, score: float, ranks: Ranks) -> RecallHit:
    """A hit validated from one dict, its channel ranks nested (~2.7 µs, where building the
    ChannelRanks model first cost ~4)."""
    rid = r[ID]
    return RecallHit.model_validate(
        {
            "id": rid,
            "namespace": r[NAMESPACE],
            "level": _LEVELS[r[LEVEL]],
            "kind": r[KIND],
            "content": r[CONTENT],
            "title": r[TITLE],
            "tags": list(r[TAGS]),
            "metadata": dict(r[META]),
            "score": score,
            "ranks": {c: ranks[c].get(rid) for c in ranks if c in _RANKED},
            "provenance": _provenance(r[SOURCE], r[STEP], r[ROLE], r[TRUST]),
            "created_at": r[CREATED_AT],
            "occurred_at": r[OCCURRED_AT],
            "utility": r[UTILITY],
            "doc_id": r[DOC_ID],
        }
    )


async def recall_batch(c: Components, requests: Sequence[RecallRequest]) -> list[RecallResult]:
    """The keyword channel in one worker thread; in another, the query embedding and then
    everything after it (`_embed_and_finish`): one thread hop on the critical path, not three."""
    start = time.perf_counter()
    keyword: Future[KeywordFound] = Future()
    # submitted before the thread that waits for it (the executor's queue is FIFO), and it
    # never waits itself: the wait below always ends
    asyncio.get_running_loop().run_in_executor(None, _settle, keyword, _keyword, c, requests)
    return await asyncio.to_thread(_embed_and_finish, c, requests, keyword, start)


def _settle(future: Future[Any], fn: Callable[..., Any], *args: Any) -> None:
    try:
        future.set_result(fn(*args))
    except BaseException as exc:  # the waiting thread re-raises it
        future.set_exception(exc)


#: a batch's requests are finished in groups of at least this many, as their queries' embeddings
#: come in (see `_embed_and_finish`)
PIPELINE_CHUNK = 16


def _embed_and_finish(
    c: Components,
    requests: Sequence[RecallRequest],
    keyword: Future[KeywordFound],
    start: float,
) -> list[RecallResult]:
    """Everything from the query embedding on, in one worker thread: embed → dense (while the
    keyword thread may still run) → ranks (from the ranking columns, else from the views) →
    neighbours → fuse → budget → log. Dense hits, ranks and views come from one snapshot.

    A big batch is a pipeline: the embedder's micro-batches end one after another on its
    workers, and this thread finishes the requests whose embeddings have come (Python, that
    holds the GIL) while the model runs on the others (onnxruntime, that does not). Finishing
    the whole batch after embedding all of it left a core idle for a quarter of its time."""
    n = len(requests)
    vectors = np.empty((n, c.embedder.dim), dtype=np.float32)
    fused: list[list[tuple[str, float]]] = [[] for _ in requests]
    ranks: list[Ranks] = [{} for _ in requests]
    results: list[RecallResult | None] = [None] * n
    found: KeywordFound | None = None
    waiting: list[int] = []
    left = n  # requests not finished yet
    parts = c.embedder.embed_parts_blocking([q.query for q in requests], query=True)
    with c.store.read() as s:
        for positions, rows in parts:
            vectors[positions] = rows
            waiting += positions
            if len(waiting) < min(PIPELINE_CHUNK, left):
                continue
            if found is None:
                found = keyword.result()
            _finish(c, s, requests, vectors, found, waiting, fused, ranks, results)
            left -= len(waiting)
            waiting = []
    done = [r for r in results if r is not None]
    if len(done) != n:
        raise MemoryStoreError(f"embedder {c.embedder.model_id} left {n - len(done)} queries out")
    elapsed = (time.perf_counter() - start) * 1000
    _log(c, requests, done, fused, ranks, elapsed)
    for r in done:
        r.latency_ms = elapsed
    return done


def _finish(
    c: Components,
    s: Session,
    requests: Sequence[RecallRequest],
    vectors: np.ndarray,
    keyword: KeywordFound,
    which: list[int],
    fused: list[list[tuple[str, float]]],
    ranks: list[Ranks],
    results: list[RecallResult | None],
) -> None:
    """Rank, fuse and budget the requests at positions `which`, filling in their `fused`,
    `ranks` and `results`; the records they read join `keyword`'s."""
    keyword_hits, keyword_seqs, records = keyword
    part = [requests[i] for i in which]
    part_vectors = vectors[which]
    part_keyword = [keyword_hits[i] for i in which]
    dense, dense_seqs = _dense(c, s, part, part_vectors)
    columns = _columns(c, s, part, dense_seqs, [keyword_seqs[i] for i in which])
    by_rows = [i for i, got in enumerate(columns) if got is None]
    _fetch(c, s, part, part_vectors, dense, part_keyword, records, by_rows)
    part_ranks = [
        ranks_from_rows(q, dense[i], part_keyword[i], records)
        if (got := columns[i]) is None
        else ranks_from_columns(dense[i], part_keyword[i], got)
        for i, q in enumerate(part)
    ]
    scores = [fused_scores(part_ranks[i], q.weights) for i, q in enumerate(part)]
    firsts = [ordered(x) for x in scores]
    by_columns = [i for i, got in enumerate(columns) if got is not None]
    _fetch_best(c, s, part, firsts, records, by_columns, neighbours=True)
    changed = _neighbours(s, part, part_ranks, scores, firsts, records)  # + their channel
    part_fused = [ordered(x) if i in changed else firsts[i] for i, x in enumerate(scores)]
    _fetch_best(c, s, part, part_fused, records, by_columns, neighbours=False)
    for j, i in enumerate(which):
        q = requests[i]
        fused[i], ranks[i] = part_fused[j], part_ranks[j]
        results[i] = RecallResult(
            query=q.query, namespace=q.namespace, hits=_hits(q, fused[i], ranks[i], records)
        )


def _fetch_best(
    c: Components,
    s: Session,
    requests: Sequence[RecallRequest],
    fused: list[list[tuple[str, float]]],
    records: dict[str, Row],
    by_columns: Sequence[int],
    *,
    neighbours: bool,
) -> None:
    """Add the views of the best `k` (and, for the `neighbours` lookup, `neighbour_of`) fused
    candidates of the requests ranked by columns that `records` lacks: the only views they read."""
    wanted: set[str] = set()
    for i in by_columns:
        q = requests[i]
        n = max(q.k or 0, q.weights.neighbour_of if neighbours else 0)
        wanted.update(h[0] for h in fused[i][:n])
    missing = wanted - records.keys()
    if missing:
        records.update(c.store.fetch_rows(s, list(missing)))


def _log(
    c: Components,
    requests: Sequence[RecallRequest],
    results: list[RecallResult],
    fused: list[list[tuple[str, float]]],
    ranks: list[Ranks],
    elapsed: float,
) -> None:
    """Write the recall log of the requests that want one; their results get its ids."""
    logged = [i for i, q in enumerate(requests) if q.log]
    if not logged:
        return
    log_ids = c.store.log_recalls(
        [
            RecallEntry(
                namespace=requests[i].namespace,
                query=requests[i].query,
                run_id=requests[i].run_id,
                result_ids=[h.id for h in results[i].hits],
                scores=[h.score for h in results[i].hits],
                latency_ms=elapsed,
                # only a run's outcome credits a log, and only credited logs are read for tuning
                ranks=logged_ranks(fused[i], ranks[i]) if requests[i].run_id else None,
            )
            for i in logged
        ]
    )
    for i, log_id in zip(logged, log_ids, strict=True):
        results[i].recall_id = log_id
