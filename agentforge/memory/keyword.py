"""Keyword channel: BM25 over SQLite FTS5 (porter stemming), with a stop-word-free OR query;
on PostgreSQL, its full text search (english stemming) with the same OR query, ranked by
`ts_rank_cd` (cover density, not BM25)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import bindparam, text
from sqlmodel import Session

FTS_COLUMNS = ("title", "content", "tags")  # memory_fts's columns (see db.py)
TOKENIZE = "porter unicode61"
COLUMN_WEIGHTS = (0.5, 1.0, 0.5)  # bm25 weight of a hit in each column
_BM25 = f"bm25(memory_fts, {', '.join(map(str, COLUMN_WEIGHTS))})"

_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself yourselves s t don ll re ve d m o y
    shall may might must""".split()
)


def query_terms(query: str) -> list[str]:
    """Distinct lower-case terms of a query, stop words and one-letter words dropped."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.lower()):
        word = word.split("'")[0]
        if len(word) > 1 and word not in STOPWORDS:
            seen.setdefault(word, None)
    return list(seen)


def fts_query(query: str) -> str | None:
    """An FTS5 MATCH expression: each term quoted (no operator injection), joined by OR."""
    terms = query_terms(query)
    if not terms:
        return None
    return " OR ".join(f'"{term}"' for term in terms)


def keyword_search(
    session: Session,
    namespace: str,
    query: str,
    n: int,
    *,
    levels: Sequence[str] | None = None,
    kinds: Sequence[str] | None = None,
) -> list[tuple[str, float]]:
    """Top `n` active records of `namespace` by BM25 (PostgreSQL: `ts_rank_cd`); scores are
    positive, higher is better."""
    if session.connection().dialect.name == "postgresql":
        return _postgres_search(session, namespace, query, n, levels, kinds)
    match = fts_query(query)
    if match is None:
        return []
    # Fast path: rank inside the FTS index (cheap), then join and filter the best `pool`; when
    # filters leave fewer than n (another namespace dominates the terms), rank after filtering.
    pool = max(4 * n, 200)
    ranked = (
        f"(SELECT rowid, {_BM25} AS rank FROM memory_fts "
        "WHERE memory_fts MATCH :match ORDER BY rank LIMIT :pool)"
    )
    rows = _run(
        session,
        f"SELECT m.id, -f.rank FROM {ranked} AS f JOIN memory m ON m.seq = f.rowid WHERE",
        match,
        namespace,
        n,
        levels,
        kinds,
        pool,
        " ORDER BY f.rank",
    )
    if len(rows) >= n:
        return rows
    full = (
        f"SELECT m.id, -{_BM25} FROM memory_fts JOIN memory m "
        "ON m.seq = memory_fts.rowid WHERE memory_fts MATCH :match AND"
    )
    return _run(
        session,
        full,
        match,
        namespace,
        n,
        levels,
        kinds,
        None,
        f" ORDER BY {_BM25}",
    )


# ts_rank_cd's weights of labels D, C, B, A: content (A) 1, title and tags (B) 0.5, as in FTS5
_PG_RANK = "ts_rank_cd('{0.1, 0.2, 0.5, 1.0}', m.fts, q)"


def _postgres_search(
    session: Session,
    namespace: str,
    query: str,
    n: int,
    levels: Sequence[str] | None,
    kinds: Sequence[str] | None,
) -> list[tuple[str, float]]:
    """The `memory.fts` column (db.py) matched by any of the query's terms (they are letters and
    digits only, so they need no quoting in a tsquery)."""
    terms = query_terms(query)
    if not terms:
        return []
    return _run(
        session,
        f"SELECT m.id, {_PG_RANK} FROM memory m, to_tsquery('english', :match) AS q "
        "WHERE m.fts @@ q AND",
        " | ".join(terms),
        namespace,
        n,
        levels,
        kinds,
        None,
        " ORDER BY 2 DESC, m.seq",  # the rank selected, not computed again
    )


def _run(
    session: Session,
    head: str,
    match: str,
    namespace: str,
    n: int,
    levels: Sequence[str] | None,
    kinds: Sequence[str] | None,
    pool: int | None,
    order: str,
) -> list[tuple[str, float]]:
    sql = head + " m.namespace = :ns AND m.status = 'active'"
    params: dict[str, object] = {"match": match, "ns": namespace, "n": n, "pool": pool}
    binds = []
    if levels:
        sql += " AND m.level IN :levels"
        params["levels"] = list(levels)
        binds.append(bindparam("levels", expanding=True))
    if kinds:
        sql += " AND m.kind IN :kinds"
        params["kinds"] = list(kinds)
        binds.append(bindparam("kinds", expanding=True))
    sql += order + " LIMIT :n"
    stmt = text(sql).bindparams(*binds) if binds else text(sql)
    rows = session.connection().execute(stmt, params).all()
    return [(row[0], float(row[1])) for row in rows]
