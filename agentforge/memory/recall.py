"""`recall`, the hot path: embed (one call for the batch) → channels (dense: one index query per
namespace/filter group; keyword: BM25) → candidates → filter → fuse → neighbours of the best
(one store query), added to the first fusion → budget → log.

The keyword channel runs in a worker thread and also reads its candidates' records; the query
embedding and everything after it run in one more worker thread (`_embed_and_finish`).

Concurrent recalls are coalesced into one `recall_batch` call by the engine's micro-batcher.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
from sqlmodel import Session, col, select

from agentforge.memory.components import Components
from agentforge.memory.fusion import (
    CHANNELS,
    FusionWeights,
    add_channel,
    apply_budget,
    fused_scores,
    ordered,
    ranks_by_score,
    ranks_by_value,
)
from agentforge.memory.index.base import Hits
from agentforge.memory.neighbours import Position, adjacent, neighbour_scores, position, records_at
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
    STATUS,
    STEP,
    TAGS,
    TITLE,
    TRUST,
    UTILITY,
    VALID_FROM,
    VALID_TO,
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


_ACTIVE, _FORGOTTEN = Status.ACTIVE.value, Status.FORGOTTEN.value  # an enum's .value is slow


def _passes(r: Row, q: RecallRequest) -> bool:
    if q.as_of is None:
        if r[STATUS] != _ACTIVE:
            return False
    elif (
        r[VALID_FROM] > q.as_of
        or (r[VALID_TO] is not None and r[VALID_TO] <= q.as_of)
        or r[STATUS] == _FORGOTTEN
    ):
        return False
    if (q.levels and r[LEVEL] not in q.levels) or (q.kinds and r[KIND] not in q.kinds):
        return False
    if q.tags and not set(q.tags) & set(r[TAGS]):
        return False
    if q.since and r[OCCURRED_AT] < q.since:
        return False
    return not (q.until and r[OCCURRED_AT] > q.until)


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


def _keyword(c: Components, requests: Sequence[RecallRequest]) -> tuple[Hits, dict[str, Row]]:
    """Keyword hits and their records: fetched here, while the query is still being embedded,
    so that after the dense query only the records it alone found remain to be read."""
    with c.store.read() as s:
        hits = [
            c.store.keyword(
                s, q.namespace, q.keyword_query or q.query, q.weights.candidates, q.levels,
                q.kinds,
            )
            for q in requests
        ]
        return hits, c.store.fetch_rows(s, list({h[0] for found in hits for h in found}))


# Filters are applied after the index query (see `_passes`): chroma's metadata-filtered search
# costs ~10x an unfiltered one, so a filtered request fetches a larger pool instead.
FILTERED_POOL_FACTOR = 3


def _pool(q: RecallRequest) -> int:
    return q.weights.candidates * (FILTERED_POOL_FACTOR if q.levels or q.kinds else 1)


def _dense(
    c: Components, s: Session, requests: Sequence[RecallRequest], vectors: np.ndarray
) -> Hits:
    """One unfiltered query per namespace of the batch, at the largest pool it needs: to the
    store's dense mirror (exact for the snapshot of `s`), else to the vector index; blocking, in
    recall's worker thread (a thread hop of its own cost ~0.5 ms)."""
    groups: dict[str, list[int]] = {}
    for i, q in enumerate(requests):
        groups.setdefault(q.namespace, []).append(i)
    out: Hits = [[] for _ in requests]
    for namespace, indices in groups.items():
        pool = max(_pool(requests[i]) for i in indices)
        hits = c.store.dense(s, namespace, vectors[indices], pool)
        if hits is None:
            hits = c.index.query_blocking(namespace, vectors[indices], pool)
        for i, h in zip(indices, hits, strict=True):
            out[i] = h[: _pool(requests[i])]
    return out


def _fetch(
    c: Components,
    s: Session,
    requests: Sequence[RecallRequest],
    vectors: np.ndarray,
    dense: Hits,
    records: dict[str, Row],
) -> None:
    """Add the records of the dense hits (and, for `as_of` requests, of the closed records that
    join them) that `records` lacks."""
    for i, q in enumerate(requests):
        if q.as_of is not None:
            dense[i] = sorted(
                dense[i] + _historic_dense(s, q, vectors[i], q.weights.candidates),
                key=lambda h: -h[1],
            )[: q.weights.candidates]
    missing = {h[0] for hits in dense for h in hits} - records.keys()
    records.update(c.store.fetch_rows(s, list(missing)))


Ranks = dict[str, dict[str, int]]  # channel -> id -> rank

# Records that happened within a second of a more recent one are as recent as it: the chunks
# of one retain are microseconds apart, and their order is no sign of recency (weight tuning
# learned to rank by it when it counted).
RECENCY_TIE = timedelta(seconds=1)


def _ranks(
    q: RecallRequest,
    dense: list[tuple[str, float]],
    keyword: list[tuple[str, float]],
    records: dict[str, Row],
) -> Ranks:
    ids = {h[0] for h in dense}
    ids.update([h[0] for h in keyword])
    get = records.get
    # one pass over the candidates' rows: each row's first touch is a cache miss (~100 per
    # query, scattered over the view cache), a second pass per channel cost about as much again
    keys: list[str] = []
    times: list[datetime] = []
    utilities: list[float] = []
    unfiltered = q.as_of is None and not (q.levels or q.kinds or q.tags or q.since or q.until)
    for i in ids:
        r = get(i)
        # `_passes` with no filter set: active only
        if r is not None and (r[STATUS] == _ACTIVE if unfiltered else _passes(r, q)):
            keys.append(i)
            times.append(r[OCCURRED_AT])
            utilities.append(r[UTILITY])
    ok = set(keys)
    return {
        "dense": ranks_by_score([h for h in dense if h[0] in ok]),
        "keyword": ranks_by_score([h for h in keyword if h[0] in ok]),
        "recency": ranks_by_value(keys, times, within=RECENCY_TIE),
        "utility": ranks_by_score(zip(keys, utilities, strict=True)),
    }


def _neighbours(
    c: Components,
    requests: Sequence[RecallRequest],
    ranks: list[Ranks],
    scores: list[dict[str, float]],
    records: dict[str, Row],
) -> None:
    """Add the neighbour channel to each request's ranks and fused scores (one store query for
    the batch); newly found neighbours are added to `records`."""
    tops: dict[int, list[tuple[str, float]]] = {}
    for i, q in enumerate(requests):
        if q.weights.neighbour > 0 and q.weights.neighbour_of > 0:
            tops[i] = ordered(scores[i])[: q.weights.neighbour_of]
    wanted = {p for top in tops.values() for hit, _ in top for p in adjacent(records[hit])}
    if not wanted:
        return
    with c.store.read() as s:
        found = records_at(s, wanted)
    by_position: dict[Position, list[Row]] = {}
    for r in found:
        records.setdefault(r[ID], r)
        by_position.setdefault(position(r), []).append(r)  # type: ignore[arg-type]
    for i, top in tops.items():
        q = requests[i]
        near = neighbour_scores(top, records, by_position)
        ranks[i]["neighbour"] = ranks_by_score(
            (j, v) for j, v in near.items() if _passes(records[j], q)
        )
        add_channel(scores[i], "neighbour", ranks[i]["neighbour"], q.weights)


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
    keyword: Future[tuple[Hits, dict[str, Row]]] = Future()
    # submitted before the thread that waits for it (the executor's queue is FIFO), and it
    # never waits itself: the wait below always ends
    asyncio.get_running_loop().run_in_executor(None, _settle, keyword, _keyword, c, requests)
    return await asyncio.to_thread(_embed_and_finish, c, requests, keyword, start)


def _settle(future: Future[Any], fn: Callable[..., Any], *args: Any) -> None:
    try:
        future.set_result(fn(*args))
    except BaseException as exc:  # the waiting thread re-raises it
        future.set_exception(exc)


def _embed_and_finish(
    c: Components,
    requests: Sequence[RecallRequest],
    keyword: Future[tuple[Hits, dict[str, Row]]],
    start: float,
) -> list[RecallResult]:
    """Everything from the query embedding on, in one worker thread: embed → dense (while the
    keyword thread may still run) → fetch → ranks → neighbours → fuse → budget → log."""
    vectors = c.embedder.embed_blocking([q.query for q in requests], query=True)
    with c.store.read() as s:  # dense hits and their records from one snapshot
        dense = _dense(c, s, requests, vectors)
        keyword_hits, records = keyword.result()
        _fetch(c, s, requests, vectors, dense, records)
    ranks = [_ranks(q, dense[i], keyword_hits[i], records) for i, q in enumerate(requests)]
    scores = [fused_scores(ranks[i], q.weights) for i, q in enumerate(requests)]
    _neighbours(c, requests, ranks, scores, records)  # the first fusion gets its channel added
    fused = [ordered(s) for s in scores]
    results = [
        RecallResult(
            query=q.query, namespace=q.namespace, hits=_hits(q, fused[i], ranks[i], records)
        )
        for i, q in enumerate(requests)
    ]
    elapsed = (time.perf_counter() - start) * 1000
    _log(c, requests, results, fused, ranks, elapsed)
    for r in results:
        r.latency_ms = elapsed
    return results


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
                ranks=logged_ranks(fused[i], ranks[i]),
            )
            for i in logged
        ]
    )
    for i, log_id in zip(logged, log_ids, strict=True):
        results[i].recall_id = log_id
