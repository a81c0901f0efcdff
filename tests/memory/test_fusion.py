"""Rank fusion: competition ranks, weighted RRF, extending a fusion by one channel, and the
ranks the recall log keeps. The fast paths are checked against plain reference versions."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from agentforge.memory.fusion import (
    FusionWeights,
    add_channel,
    fuse,
    fused_scores,
    ordered,
    ranks_by_score,
    ranks_by_value,
)
from agentforge.memory.ranking import RECENCY_TIE
from agentforge.memory.recall import LOGGED_CANDIDATES, logged_ranks


def reference_ranks(scored: list[tuple[str, float]]) -> dict[str, int]:
    """Competition ranks, written the plain way: a score within `isclose` of its tie's first
    score shares the tie's rank."""
    items = sorted(scored, key=lambda item: -item[1])
    ranks: dict[str, int] = {}
    first: float | None = None
    rank = 0
    for position, (key, score) in enumerate(items, start=1):
        if first is None or not math.isclose(score, first, rel_tol=1e-9, abs_tol=1e-12):
            rank, first = position, score
        ranks[key] = rank
    return ranks


def random_scores(rng: random.Random, n: int) -> list[tuple[str, float]]:
    """Scores with exact ties, near ties (inside and outside `isclose`) and distinct values."""
    base = [rng.choice([0.0, 0.5, 1.0, 1.7e9, -0.25]) for _ in range(3)]
    out = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.3:
            score = rng.choice(base)  # an exact tie
        elif kind < 0.5:
            b = rng.choice(base)
            score = b + rng.choice([1e-13, 1e-10, 1e-8]) * max(abs(b), 1.0)  # near ties
        else:
            score = rng.uniform(-1.0, 1.0) * rng.choice([1.0, 1e9])
        out.append((f"id{i}", score))
    return out


def test_competition_ranks() -> None:
    assert ranks_by_score([("a", 3.0), ("b", 3.0), ("c", 1.0)]) == {"a": 1, "b": 1, "c": 3}
    assert ranks_by_score([("a", 0.5), ("b", 0.5)]) == {"a": 1, "b": 1}
    assert ranks_by_score([("a", 2.0), ("b", 5.0)]) == {"b": 1, "a": 2}
    assert ranks_by_score([]) == {}


@pytest.mark.parametrize("seed", range(40))
def test_ranks_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    scored = random_scores(rng, rng.choice([1, 2, 5, 60, 100]))
    if seed % 5 == 0:  # every score the same (utility before any outcome)
        scored = [(key, 0.5) for key, _ in scored]
    got = ranks_by_score(scored)
    want = reference_ranks(scored)
    assert got == want
    assert list(got) == list(want)  # same order: ties keep their input order


def reference_value_ranks(
    keys: list[str], values: list[datetime], within: timedelta
) -> dict[str, int]:
    """Competition ranks by value, the plain way: a value at most `within` below its tie's
    first (highest) value shares the tie's rank; ties in their input order."""
    items = sorted(zip(values, range(0, -len(keys), -1), keys, strict=True), reverse=True)
    ranks: dict[str, int] = {}
    first: datetime | None = None
    rank = 0
    for position, (value, _, key) in enumerate(items, start=1):
        if first is None or first - value > within:
            rank, first = position, value
        ranks[key] = rank
    return ranks


@pytest.mark.parametrize("seed", range(40))
def test_ranks_by_value_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    n = rng.choice([0, 1, 2, 5, 60, 100])
    unit = rng.choice([timedelta(microseconds=1), timedelta(milliseconds=300)])
    spread = rng.choice([1, 3, 20, 1000])  # few distinct times (many ties) to none
    times = [start + unit * rng.randrange(spread) for _ in range(n)]
    keys = [f"id{i}" for i in range(n)]
    within = rng.choice([timedelta(0), timedelta(seconds=1)])
    got = ranks_by_value(keys, times, within)
    want = reference_value_ranks(keys, times, within)
    assert got == want
    assert list(got) == list(want)  # same order
    if not within:  # exact: one plus the number of strictly later times
        assert got == {k: 1 + sum(u > t for u in times) for k, t in zip(keys, times, strict=True)}


def test_recency_ties_are_records_within_a_second_of_the_ties_newest() -> None:
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    times = [now - timedelta(seconds=s) for s in (0, 0.6, 1.0, 1.2, 5)]
    assert ranks_by_value(list("abcde"), times, RECENCY_TIE) == dict(a=1, b=1, c=1, d=4, e=5)
    assert ranks_by_value(list("abcde"), times, timedelta(0)) == dict(a=1, b=2, c=3, d=4, e=5)
    # the chunks of one retain, microseconds apart: one tie
    chunks = [now + timedelta(microseconds=i) for i in range(5)]
    assert set(ranks_by_value(list("vwxyz"), chunks, RECENCY_TIE).values()) == {1}


def test_fusion_skips_uninformative_channels() -> None:
    weights = FusionWeights(dense=1.0, keyword=0.0, utility=0.3, rrf_k=5.0)
    ranks = {
        "dense": {"a": 1, "b": 2},
        "keyword": {"b": 1, "a": 2},  # weight 0
        "utility": {"a": 1, "b": 1},  # every candidate tied
    }
    assert fuse(ranks, weights) == [("a", 1.0 / 6), ("b", 1.0 / 7)]


@pytest.mark.parametrize("seed", range(20))
def test_adding_a_channel_equals_fusing_with_it_last(seed: int) -> None:
    rng = random.Random(seed)
    ids = [f"id{i}" for i in range(120)]
    weights = FusionWeights(recency=rng.choice([0.0, 0.2]), neighbour=rng.choice([0.0, 0.5]))

    def channel() -> dict[str, int]:
        chosen = rng.sample(ids, rng.choice([0, 1, 8, 60]))
        return ranks_by_score([(i, rng.choice([0.1, 0.2, rng.random()])) for i in chosen])

    ranks = {c: channel() for c in ("dense", "keyword", "recency", "utility")}
    neighbour = channel()
    scores = fused_scores(ranks, weights)
    first = ordered(scores)
    assert first == fuse(ranks, weights)
    if not add_channel(scores, "neighbour", neighbour, weights):  # then it changed nothing
        assert ordered(scores) == first
    assert ordered(scores) == fuse({**ranks, "neighbour": neighbour}, weights)  # order too


@pytest.mark.parametrize("seed", range(10))
def test_logged_ranks_keep_every_channel_of_the_best_candidates(seed: int) -> None:
    rng = random.Random(seed)
    ids = [f"id{i}" for i in range(100)]
    ranks = {
        c: {i: rng.randint(1, 60) for i in rng.sample(ids, rng.choice([0, 10, 60]))}
        for c in ("dense", "keyword", "recency", "utility", "neighbour")
    }
    fused = [(i, rng.random()) for i in rng.sample(ids, rng.choice([0, 5, 80]))]
    want = {i: {c: r[i] for c, r in ranks.items() if i in r} for i, _ in fused[:LOGGED_CANDIDATES]}
    got = logged_ranks(fused, ranks)
    assert got == want
    assert [list(v) for v in got.values()] == [list(v) for v in want.values()]
    assert list(got) == [i for i, _ in fused[:LOGGED_CANDIDATES]]
