"""Recall's channel ranks of a request's candidates (the dense and keyword hits), from one of two
sources that give the same ranks:

- the record views of every candidate (`ranks_from_rows`): any request, any store;
- the ranking columns by `seq` (`ranks_from_columns`, memory/rank_columns.py), for a `plain`
  request whose channels both came from the in-process indexes (which know their hits' seqs).
  Then a query touches no view but those of its best hits: at 100k items, reading ~100
  candidates' views (scattered over the view cache) was most of a batch's ranking.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from agentforge.memory.fusion import ranks_by_score, ranks_by_value
from agentforge.memory.records import (
    KIND,
    LEVEL,
    OCCURRED_AT,
    STATUS,
    TAGS,
    UTILITY,
    VALID_FROM,
    VALID_TO,
    Row,
)
from agentforge.types import Status

if TYPE_CHECKING:
    from agentforge.memory.recall import RecallRequest

Ranks = dict[str, dict[str, int]]  # channel -> id -> rank
Scored = list[tuple[str, float]]

# Records that happened within a second of a more recent one are as recent as it: the chunks
# of one retain are microseconds apart, and their order is no sign of recency (weight tuning
# learned to rank by it when it counted).
RECENCY_TIE = timedelta(seconds=1)
_RECENCY_TIE_US = RECENCY_TIE // timedelta(microseconds=1)  # the same, for `microseconds` times

_ACTIVE, _FORGOTTEN = Status.ACTIVE.value, Status.FORGOTTEN.value  # an enum's .value is slow


def passes(r: Row, q: RecallRequest) -> bool:
    """Whether a record view passes the request's filters (status or validity, levels, kinds,
    tags, occurrence window)."""
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


def plain(q: RecallRequest) -> bool:
    """A request the ranking columns can serve: no filter but the status, `k` results and no
    token budget (so only its best `k` hits' views are needed)."""
    return (
        q.as_of is None
        and not (q.levels or q.kinds or q.tags or q.since or q.until)
        and q.k is not None
        and q.token_budget is None
    )


def ranks_from_rows(
    q: RecallRequest, dense: Scored, keyword: Scored, records: dict[str, Row]
) -> Ranks:
    """The channel ranks of the candidates whose views (`records`) pass the request's filters;
    a candidate without a view (gone in this snapshot) passes none."""
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
        # `passes` with no filter set: active only
        if r is not None and (r[STATUS] == _ACTIVE if unfiltered else passes(r, q)):
            keys.append(i)
            times.append(r[OCCURRED_AT])
            utilities.append(r[UTILITY])
    return _ranks(dense, keyword, keys, times, utilities, RECENCY_TIE)


@dataclass(frozen=True)
class Columns:
    """The ranking columns of one request's dense then keyword hits (`RankColumns.columns`)."""

    active: np.ndarray
    occurred: np.ndarray  # microseconds since the epoch
    utility: np.ndarray


def split_columns(
    found: tuple[np.ndarray, np.ndarray, np.ndarray], sizes: list[int]
) -> list[Columns]:
    """Columns read for many requests' hits at once, back into one `Columns` per request."""
    bounds = np.cumsum(sizes)[:-1]
    active, occurred, utility = (np.split(column, bounds) for column in found)
    return [Columns(*parts) for parts in zip(active, occurred, utility, strict=True)]


def ranks_from_columns(dense: Scored, keyword: Scored, columns: Columns) -> Ranks:
    """`ranks_from_rows` of a `plain` request, from its hits' columns (dense hits first)."""
    keys = [h[0] for h in dense]
    first = dict.fromkeys(keys)
    extra = [j for j, h in enumerate(keyword) if h[0] not in first]
    picked = np.concatenate([np.arange(len(dense)), len(dense) + np.asarray(extra, np.intp)])
    keys.extend(keyword[j][0] for j in extra)
    active = columns.active[picked]
    occurred, utility = columns.occurred[picked], columns.utility[picked]
    if not active.all():
        keys = [key for key, ok in zip(keys, active.tolist(), strict=True) if ok]
        occurred, utility = occurred[active], utility[active]
        return _ranks(dense, keyword, keys, occurred.tolist(), utility.tolist(), _RECENCY_TIE_US)
    # every candidate passed (the usual case: both indexes hold active records only): the
    # channels keep all their hits, and one utility for all ranks them all first, as
    # `ranks_by_score` would after sorting them
    return {
        "dense": ranks_by_score(dense),
        "keyword": ranks_by_score(keyword),
        "recency": ranks_by_value(keys, occurred.tolist(), within=_RECENCY_TIE_US),
        "utility": dict.fromkeys(keys, 1)
        if not len(utility) or utility.min() == utility.max()
        else ranks_by_score(zip(keys, utility.tolist(), strict=True)),
    }


def _ranks(
    dense: Scored,
    keyword: Scored,
    keys: list[str],
    times: list[datetime] | list[int],
    utilities: list[float],
    tie: timedelta | int,
) -> Ranks:
    """The four channels' ranks of the candidates that passed (`keys`, with their times and
    utilities); the dense and keyword hits keep their channel's order."""
    ok = set(keys)
    return {
        "dense": ranks_by_score([h for h in dense if h[0] in ok]),
        "keyword": ranks_by_score([h for h in keyword if h[0] in ok]),
        "recency": ranks_by_value(keys, times, within=tie),
        "utility": ranks_by_score(zip(keys, utilities, strict=True)),
    }
