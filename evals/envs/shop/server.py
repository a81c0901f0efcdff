"""The shop's HTTP server: `ShopApp` (routes over one SQLite file, in-memory sessions) behind a
stdlib `ThreadingHTTPServer` on 127.0.0.1 in a background thread.

Requests are served one at a time under a lock, each with its own SQLite connection, so `reset()`
can swap the database file (a copy of the seeded template) between tasks in a few milliseconds.
"""

from __future__ import annotations

import secrets
import shutil
import sqlite3
import threading
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from agentforge.evals.envs.shop import account, catalog  # noqa: F401  (they register the routes)
from agentforge.evals.envs.shop.web import Request, Response, route

COOKIE = "shop_session"


@dataclass
class ShopApp:
    """The shop's state: the live database, the seeded template it is reset from, sessions."""

    db_path: Path
    template: Path
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def reset(self) -> None:
        """Restore the seeded database and forget every session."""
        with self.lock:
            shutil.copyfile(self.template, self.db_path)
            self.sessions.clear()

    def login_session(self, username: str) -> str:
        """A new session signed in as `username` (its cookie value)."""
        with self.lock:
            db = self._connect()
            try:
                row = db.execute("SELECT id FROM customers WHERE username = ?",
                                 (username,)).fetchone()
            finally:
                db.close()
        if row is None:
            raise KeyError(username)
        token = secrets.token_urlsafe(16)
        self.sessions[token] = {"user": row["id"]}
        return token

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path)
        db.row_factory = sqlite3.Row
        return db

    def handle(self, method: str, target: str, cookie: str | None,
               body: str) -> tuple[Response, str | None]:
        """Serve one request; returns the response and a new session cookie, if one was made."""
        url = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
        with self.lock:
            new = None
            if cookie not in self.sessions:
                cookie = new = secrets.token_urlsafe(16)
                self.sessions[cookie] = {"user": None}
            db = self._connect()
            try:
                req = Request(method, url.path, query, form, self.sessions[cookie], db)
                req.session["token"] = cookie
                response = route(req)
                db.commit()
            finally:
                db.close()
        return response, new


# --- server -------------------------------------------------------------------------------------


def _handler(app: ShopApp) -> type[BaseHTTPRequestHandler]:
    class ShopHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
            jar = SimpleCookie(self.headers.get("Cookie", ""))
            cookie = jar[COOKIE].value if COOKIE in jar else None
            response, new = app.handle(method, self.path, cookie, body)
            data = response.body.encode()
            self.send_response(response.status)
            if new:
                self.send_header("Set-Cookie", f"{COOKIE}={new}; Path=/; HttpOnly; SameSite=Lax")
            if response.location:
                self.send_header("Location", response.location)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/favicon.ico":
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ShopHandler


class ShopServer:
    """`app` served on 127.0.0.1:`port` (0 = a free port) from a daemon thread."""

    def __init__(self, app: ShopApp, port: int = 0, host: str = "127.0.0.1") -> None:
        self.app = app
        self.httpd = ThreadingHTTPServer((host, port), _handler(app))
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                        name="shop-server")

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ShopServer:
        self._thread.start()
        return self

    def wait(self) -> None:
        """Block until the server stops (or the process is interrupted)."""
        self._thread.join()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
