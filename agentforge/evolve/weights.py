"""Tuning the recall weights of a namespace from logged recalls and their runs' outcomes.

**Data.** Every recall made in a run (`run_id`) logs the channel ranks of its best fused
candidates (`RecallLog.ranks`, the top `LOGGED_CANDIDATES`, more than it returned). A log counts
once its run has an outcome (`Memory.arecord_outcome` credited it).

**Relevance.** For a logged recall, a candidate's relevance is what the outcomes say about it
*for that query*: over the logged recalls of the same query (case and spacing aside) that
returned it, +1 for each run that succeeded, −1 for each that failed (outcomes are read from the
credit operations that were not undone). A candidate no run of the query returned has relevance
0: nothing is known about it. (Record-level `successes − failures` would make an item that
helped some other task "relevant" to every query, and the utility channel would win trivially.)

**Objective.** Each logged recall is re-fused under candidate weights with fusion.py's own
`fuse` and gated by `passes_gate` (the `min_score` gate: below it the recall returns nothing);
its top `k` (default 10) are scored as

    score = DCG⁺ / IDCG⁺ − DCG⁻ / IDCG⁻

where DCG⁺ sums the positive relevances by rank (gain / log2(rank + 1)), IDCG⁺ is the best DCG⁺
the candidates allow, and DCG⁻ / IDCG⁻ the same for the magnitudes of negative relevances (the
harm of showing items of failed runs, relative to the worst ordering). A term with nothing to
normalise by is 0, so a recall that returns nothing scores 0, and the gate pays off where the
candidates hold only harmful items. The objective is the mean score over the logs in which some
candidate has a non-zero relevance, in [−1, 1].

**Search.** Logs are split by time: the oldest `1 − holdout` train, the newest are held out.
From the namespace's current weights, a few rounds of coordinate search over each channel weight
(a small grid) and the relative `min_score` (0 and quantiles of the logs' relative top scores)
keep any change that strictly improves the train objective. The tuned channel weights are scaled
to the current total (RRF's order does not change under a common factor; fused scores keep their
scale). They are kept only if the held-out objective does not fall below that of the current
weights; otherwise nothing is written and the report says why.

**Persistence.** Tuned weights go to the `meta` table under `weights:<namespace>`, with a
`tune-weights` history entry (before / after dicts) under a `learn-weights` operation, so
`agentforge memory history` shows them and `agentforge memory undo OP_ID` restores the previous
weights. `Memory` recalls in that namespace use them unless a call passes `weights=`.

**Limitations.** Re-fusing sees only the logged candidates (an item that was outside the top 30
then cannot rise now); the neighbour channel's ranks depend on the weights of the first fusion at
recall time and are reused as logged; queries that never repeat get relevance only from their
own run's outcome, which favours the order that was shown (success) or pushes it down (failure).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlmodel import col, select

from agentforge.errors import InputError
from agentforge.evolve.report import LearnReport
from agentforge.memory.engine import Memory
from agentforge.memory.fusion import CHANNELS, fuse
from agentforge.memory.recall import (
    RecallTuning,
    best_possible,
    passes_gate,
    weights_key,
)
from agentforge.memory.records import HistoryEntry, Operation, RecallLog
from agentforge.memory.store import SQLStore
from agentforge.types import parse_namespace

K = 10  # ranks scored per logged recall
MAX_LOGS = 500  # the newest logs considered by one tuning
ROUNDS = 3  # coordinate-search rounds
WEIGHT_GRID = (0.0, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0)
GATE_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5)
EPSILON = 1e-9
QUERY_CHANNELS = ("dense", "keyword")  # one must keep a weight: the others ignore the query
STEP = "weights"
OPERATION = "learn-weights"
ACTION = "tune-weights"

ChannelRanks = dict[str, dict[str, int]]  # channel -> id -> rank


@dataclass(frozen=True)
class LoggedRecall:
    """One logged recall, ready to be re-fused: channel ranks and the candidates' relevance."""

    log_id: int
    at: datetime
    ranks: ChannelRanks
    relevance: dict[str, float]


# --- the objective -------------------------------------------------------------------------------


def _dcg(gains: Iterable[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def _normalised(gains: Sequence[float], pool: Iterable[float], k: int) -> float:
    ideal = _dcg(sorted(pool, reverse=True)[:k])
    return _dcg(gains) / ideal if ideal > 0 else 0.0


def recall_score(log: LoggedRecall, tuning: RecallTuning, k: int = K) -> float:
    """NDCG of the useful items minus the normalised DCG of the harmful ones (module docstring)."""
    fused = fuse(log.ranks, tuning.weights)
    if not passes_gate(fused, tuning.weights, tuning.min_score):
        return 0.0
    gains = [log.relevance.get(i, 0.0) for i, _ in fused[:k]]
    rel = log.relevance.values()
    useful = _normalised([max(g, 0.0) for g in gains], (g for g in rel if g > 0), k)
    harm = _normalised([max(-g, 0.0) for g in gains], (-g for g in rel if g < 0), k)
    return useful - harm


def objective(logs: Sequence[LoggedRecall], tuning: RecallTuning, k: int = K) -> float:
    """The mean `recall_score` over `logs` (0 without logs)."""
    if not logs:
        return 0.0
    return sum(recall_score(log, tuning, k) for log in logs) / len(logs)


# --- loading the logs ----------------------------------------------------------------------------


def _transpose(ranks: dict[str, dict[str, int]]) -> ChannelRanks:
    out: ChannelRanks = {}
    for record_id, by_channel in ranks.items():
        for channel, rank in by_channel.items():
            if channel in CHANNELS:
                out.setdefault(channel, {})[record_id] = rank
    return out


OUTCOME_SIGN = {"success": 1.0, "failure": -1.0}


def _run_outcomes(store: SQLStore, namespace: str) -> dict[str, float]:
    """run id -> +1 (success) / -1 (failure), from the credit operations not undone."""
    with store.read() as s:
        ops = s.exec(
            select(Operation)
            .where(
                Operation.kind == "credit",
                Operation.namespace == namespace,
                col(Operation.undone_by).is_(None),
            )
            .order_by(col(Operation.started_at))
        ).all()
    return {
        str(op.summary["run_id"]): OUTCOME_SIGN.get(str(op.summary.get("outcome")), 0.0)
        for op in ops
        if op.summary.get("run_id")
    }


def _query_key(text: str) -> str:
    return " ".join(text.lower().split())


def _relevance(
    rows: Sequence[RecallLog], outcomes: dict[str, float]
) -> dict[str, dict[str, float]]:
    """query key -> record id -> sum of the outcomes of the runs whose recall of that query
    returned the record."""
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        sign = outcomes.get(row.run_id or "", 0.0)
        by_id = out.setdefault(_query_key(row.query), {})
        for record_id in row.result_ids:
            by_id[record_id] = by_id.get(record_id, 0.0) + sign
    return out


def load_logs(store: SQLStore, namespace: str, limit: int = MAX_LOGS) -> list[LoggedRecall]:
    """The newest credited recall logs that carry channel ranks, oldest first."""
    with store.read() as s:
        rows = s.exec(
            select(RecallLog)
            .where(
                RecallLog.namespace == namespace,
                RecallLog.credited == True,  # noqa: E712
                col(RecallLog.ranks).is_not(None),
            )
            .order_by(col(RecallLog.at).desc(), col(RecallLog.id).desc())
            .limit(limit)
        ).all()
    rows = [r for r in reversed(rows) if r.ranks]
    relevance = _relevance(rows, _run_outcomes(store, namespace))
    return [
        LoggedRecall(
            log_id=r.id or 0,
            at=r.at,
            ranks=_transpose(r.ranks or {}),
            relevance={i: relevance[_query_key(r.query)].get(i, 0.0) for i in r.ranks or {}},
        )
        for r in rows
    ]


def split_by_time(
    logs: Sequence[LoggedRecall], holdout: float
) -> tuple[list[LoggedRecall], list[LoggedRecall]]:
    """(train, held out): the oldest logs train, the newest `holdout` share is held out."""
    held = min(len(logs) - 1, max(1, round(len(logs) * holdout)))
    return list(logs[: len(logs) - held]), list(logs[len(logs) - held :])


def informative(logs: Iterable[LoggedRecall]) -> list[LoggedRecall]:
    """Logs in which some candidate is known to be useful or harmful."""
    return [log for log in logs if any(v != 0 for v in log.relevance.values())]


# --- the search ----------------------------------------------------------------------------------


def _with_weight(tuning: RecallTuning, channel: str, value: float) -> RecallTuning:
    return replace(tuning, weights=replace(tuning.weights, **{channel: value}))


def _gate_grid(logs: Sequence[LoggedRecall], tuning: RecallTuning) -> list[float]:
    """0 and quantiles of the logs' relative top scores under `tuning`'s weights."""
    best = best_possible(tuning.weights)
    tops = sorted(
        fused[0][1] / best
        for log in logs
        if best > 0 and (fused := fuse(log.ranks, tuning.weights))
    )
    grid = {0.0, tuning.min_score}
    grid |= {round(tops[int(q * (len(tops) - 1))], 4) for q in GATE_QUANTILES if tops}
    return sorted(grid)


def _moves(logs: Sequence[LoggedRecall], tuning: RecallTuning, knob: str) -> list[RecallTuning]:
    """The variations of one knob (a channel weight, or "min_score") of `tuning`."""
    if knob == "min_score":
        return [replace(tuning, min_score=gate) for gate in _gate_grid(logs, tuning)]
    moves = [_with_weight(tuning, knob, value) for value in WEIGHT_GRID]
    return [m for m in moves if any(getattr(m.weights, c) > 0 for c in QUERY_CHANNELS)]


def search(logs: Sequence[LoggedRecall], start: RecallTuning, k: int = K) -> RecallTuning:
    """Coordinate search from `start`: one knob at a time, keep every change that strictly
    improves `objective`; stop after `ROUNDS` passes or a pass without improvement."""
    best, best_value = start, objective(logs, start, k)
    for _ in range(ROUNDS):
        improved = False
        for knob in (*CHANNELS, "min_score"):
            for candidate in _moves(logs, best, knob):
                value = objective(logs, candidate, k)
                if value > best_value + EPSILON:
                    best, best_value, improved = candidate, value, True
        if not improved:
            break
    return best


def rescaled(tuning: RecallTuning, like: RecallTuning) -> RecallTuning:
    """`tuning` with its channel weights scaled to the total of `like`'s, rounded."""
    total = sum(getattr(tuning.weights, c) for c in CHANNELS)
    target = sum(getattr(like.weights, c) for c in CHANNELS)
    factor = target / total if total > 0 and target > 0 else 1.0
    scaled = {c: round(getattr(tuning.weights, c) * factor, 4) for c in CHANNELS}
    return RecallTuning(replace(tuning.weights, **scaled), round(tuning.min_score, 4))


# --- the learning step ---------------------------------------------------------------------------


@dataclass
class _Outcome:
    tuned: RecallTuning
    scores: dict[str, float]
    reason: str = ""  # why nothing is written; "" applies the tuning
    regressed: bool = False  # the tuning improved training but did worse held out


def _evaluate(
    train: Sequence[LoggedRecall], held: Sequence[LoggedRecall], current: RecallTuning
) -> _Outcome:
    tuned = rescaled(search(train, current), current)
    scores = {
        "train_before": objective(train, current),
        "train_after": objective(train, tuned),
        "heldout_before": objective(held, current),
        "heldout_after": objective(held, tuned),
    }
    scores = {k: round(v, 4) for k, v in scores.items()}
    outcome = _Outcome(tuned, scores)
    if tuned == current or scores["train_after"] <= scores["train_before"]:
        outcome.reason = "no weights beat the current ones on the training logs"
    elif scores["heldout_after"] < scores["heldout_before"] - EPSILON:
        outcome.regressed = True
        outcome.reason = (
            f"tuned weights regress on the held-out logs ({scores['heldout_before']} → "
            f"{scores['heldout_after']}); the current weights are kept"
        )
    return outcome


def _persist(memory: Memory, namespace: str, outcome: _Outcome, logs: int) -> str:
    store = memory.c.store
    key = weights_key(namespace)
    after = outcome.tuned.as_dict()
    with store.write() as s:
        op = store.begin_operation(s, OPERATION, namespace, logs=logs, **outcome.scores)
        before = store.meta_json(s, key)
        store.set_meta_json(s, key, after)
        s.add(
            HistoryEntry(
                op_id=op.id,
                record_id=key,
                namespace=namespace,
                action=ACTION,
                before=before,
                after=after,
                reason=(
                    f"held-out objective {outcome.scores['heldout_before']} → "
                    f"{outcome.scores['heldout_after']} over {logs} logged recalls"
                ),
            )
        )
        op_id = op.id
    memory.reload_tuning(namespace)
    return op_id


async def tune_weights(
    memory: Memory,
    namespace: str | Sequence[str],
    *,
    holdout: float = 0.25,
    min_logs: int = 20,
) -> LearnReport:
    """Tune the namespace's recall weights and `min_score` gate on its logged recalls; keep
    them only if the newest (held-out) logs do not do worse (see the module docstring)."""
    if not 0 < holdout < 1:
        raise InputError(f"holdout must be between 0 and 1, got {holdout}")
    ns = parse_namespace(namespace)
    report = LearnReport(step=STEP, namespace=ns)
    logs = await asyncio.to_thread(load_logs, memory.c.store, ns)
    report.notes["logs"] = len(logs)
    if len(logs) < max(min_logs, 2):
        report.notes["reason"] = (
            f"too few logged recalls with an outcome: {len(logs)} < {max(min_logs, 2)}"
        )
        return report
    train, held = split_by_time(logs, holdout)
    train, held = informative(train), informative(held)
    if not train or not held:
        report.notes["reason"] = (
            "no outcome credited any recalled item in the train or held-out logs"
        )
        return report
    current = await asyncio.to_thread(memory.tuning, ns)
    outcome = await asyncio.to_thread(_evaluate, train, held, current)
    report.notes |= {
        **outcome.scores,
        "before": current.as_dict(),
        "tuned": outcome.tuned.as_dict(),
    }
    if outcome.reason:
        report.notes["reason"] = outcome.reason
        if outcome.regressed:
            report.rejected.append(outcome.reason)
        return report
    report.op_id = await asyncio.to_thread(_persist, memory, ns, outcome, len(logs))
    report.changed.append(weights_key(ns))
    report.notes["reason"] = "tuned weights applied"
    return report
