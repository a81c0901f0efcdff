"""Weighted reciprocal-rank fusion of recall channels, and the token budget.

Each channel ranks the candidates it knows (1 = best); ties share a rank, so a channel in which
all candidates are equal (e.g. utility before any outcome is known) changes no order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from operator import itemgetter
from typing import Any

CHANNELS = ("dense", "keyword", "recency", "utility", "neighbour")


@dataclass(frozen=True)
class FusionWeights:
    """Weights of the recall channels in reciprocal-rank fusion, and the candidate pool size.

    `rrf_k` is small (the classic 60 flattens the ranks of a 60-item pool so much that an item
    found by one channel only can hardly win): a channel's top hits count. `neighbour` weighs the
    channel of records adjacent to the best `neighbour_of` hits of a first fusion (the turn a
    reply answers, the next chunk; see `agentforge.memory.neighbours`).
    """

    dense: float = 1.0
    keyword: float = 1.0
    recency: float = 0.0
    utility: float = 0.3
    neighbour: float = 0.5
    rrf_k: float = 5.0
    candidates: int = 60  # candidates fetched per channel
    neighbour_of: int = 10  # best first-pass hits whose neighbours are looked up

    def only(self, channel: str) -> FusionWeights:
        """These weights with every recall channel but `channel` switched off."""
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; choose one of {', '.join(CHANNELS)}")
        off = {c: 0.0 for c in CHANNELS if c != channel}
        return replace(self, **off, **{channel: getattr(self, channel) or 1.0})

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FusionWeights:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


_KEY, _SCORE = itemgetter(0), itemgetter(1)


def ranks_by_score(scored: Iterable[tuple[str, float]]) -> dict[str, int]:
    """Competition ranks (1, 1, 3, …) of ids by descending score (numbers, not NaN); a score
    within `isclose` of the first score of its tie shares that tie's rank."""
    items = sorted(scored, key=_SCORE, reverse=True)  # stable, like a key of -score
    if not items or items[0][1] == items[-1][1]:  # one score (e.g. utility before any use)
        return dict.fromkeys(map(_KEY, items), 1)
    ranks: dict[str, int] = {}
    previous: float | None = None
    rank = 0
    for position, (key, score) in enumerate(items, start=1):
        if score != previous and (
            previous is None or not math.isclose(score, previous, rel_tol=1e-9, abs_tol=1e-12)
        ):
            rank = position
            previous = score
        ranks[key] = rank
    return ranks


def ranks_by_value(keys: Sequence[str], values: Sequence[Any], within: Any) -> dict[str, int]:
    """Competition ranks of `keys` by their `values` (parallel, of one ordered type: e.g. times),
    highest first: a value at most `within` below the first (highest) value of its tie shares
    that tie's rank (`within` zero: equal values only). Recency passes `ranking.RECENCY_TIE`;
    as timestamps in `ranks_by_score`, its ties came from `isclose` (~1.7 s) by accident."""
    order = sorted(range(len(keys)), key=values.__getitem__, reverse=True)  # stable
    ordered_values = [values[j] for j in order]
    ordered_keys = [keys[j] for j in order]
    if not order or ordered_values[0] - ordered_values[-1] <= within:
        return dict.fromkeys(ordered_keys, 1)
    ranks: dict[str, int] = {}
    first = ordered_values[0]
    rank = 1
    for position, (key, value) in enumerate(zip(ordered_keys, ordered_values, strict=True), 1):
        if first - value > within:
            rank, first = position, value
        ranks[key] = rank
    return ranks


def fuse(
    channel_ranks: Mapping[str, Mapping[str, int]], weights: FusionWeights
) -> list[tuple[str, float]]:
    """Weighted RRF: score(id) = sum over channels of w_c / (rrf_k + rank_c(id)), best first.

    A channel whose every candidate shares one rank carries no information and is skipped.
    """
    return ordered(fused_scores(channel_ranks, weights))


def fused_scores(
    channel_ranks: Mapping[str, Mapping[str, int]], weights: FusionWeights
) -> dict[str, float]:
    """`fuse`'s scores, unordered: a dict that `add_channel` can extend."""
    scores: dict[str, float] = {}
    for channel, ranks in channel_ranks.items():
        add_channel(scores, channel, ranks, weights)
    return scores


def add_channel(
    scores: dict[str, float], channel: str, ranks: Mapping[str, int], weights: FusionWeights
) -> bool:
    """Add one more channel's terms to `fused_scores` (in place): the same scores, in the same
    order, as fusing with that channel last. False if the channel changed nothing."""
    weight = getattr(weights, channel)
    if weight == 0 or not ranks or (len(ranks) > 1 and len(set(ranks.values())) == 1):
        return False
    rrf_k = weights.rrf_k
    get = scores.get
    for key, rank in ranks.items():
        scores[key] = get(key, 0.0) + weight / (rrf_k + rank)
    return True


def ordered(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    """(id, score) best first; equal scores keep the order they were added in."""
    return sorted(scores.items(), key=_SCORE, reverse=True)


def estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def apply_budget(
    items: Sequence[Any], *, k: int | None, token_budget: int | None, text_of: Callable[[Any], str]
) -> list[Any]:
    """The best items that fit `k` and the token budget, in order."""
    chosen: list[Any] = []
    used = 0
    for item in items:
        if k is not None and len(chosen) >= k:
            break
        if token_budget is not None:
            cost = estimate_tokens(text_of(item))
            if used + cost > token_budget:
                break
            used += cost
        chosen.append(item)
    return chosen
