"""The shop's little web framework: request and response records, the route table filled by
`@on(method, pattern)` in the page modules, and the shared page frame."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from agentforge.evals.envs.shop import pages


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    session: dict[str, Any]
    db: sqlite3.Connection


@dataclass
class Response:
    status: int = 200
    body: str = ""
    location: str = ""


def redirect(location: str) -> Response:
    return Response(status=303, location=location)


# --- routing -------------------------------------------------------------------------------------

Handler = Callable[..., Response]
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []


def on(method: str, pattern: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        ROUTES.append((method, re.compile(f"^{pattern}/?$"), fn))
        return fn
    return register


def route(req: Request) -> Response:
    for method, pattern, fn in ROUTES:
        match = pattern.match(req.path)
        if match and method == req.method:
            return fn(req, *match.groups())
    return page(req, "Page not found", pages.not_found("We can't find that page."), status=404)


def page(req: Request, title: str, body: str, *, status: int = 200, query: str = "") -> Response:
    user = req.session.get("user")
    name = None
    if user:
        name = req.db.execute("SELECT username FROM customers WHERE id = ?", (user,)).fetchone()[0]
    count = req.db.execute("SELECT COALESCE(SUM(quantity), 0) FROM cart_items WHERE session = ?",
                           (req.session["token"],)).fetchone()[0]
    notice = req.session.pop("notice", "")
    error = req.session.pop("error", "")
    return Response(status, pages.layout(title, body, user=name, cart_count=count,
                                         notice=notice, error=error, query=query))


def login_required(req: Request) -> Response | None:
    if req.session.get("user"):
        return None
    target = req.path + ("?" + "&".join(f"{k}={quote(v)}" for k, v in req.query.items())
                         if req.query else "")
    req.session["error"] = "Please sign in to continue."
    return redirect(f"/login?next={quote(target)}")


