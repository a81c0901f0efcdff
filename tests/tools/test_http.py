"""http_fetch against a real http.server on 127.0.0.1 (in a thread)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agentforge.errors import Retry, ToolError
from agentforge.tools import ToolContext
from agentforge.tools.builtin.http import html_to_text, http_fetch

PAGE = b"""<!doctype html><html><head><title>Shop  home</title>
<style>body { color: red }</style><script>var secret = 1;</script></head>
<body><h1>Products</h1><p>Our <b>best</b> lamps.</p>
<ul><li>Lamp A</li><li>Lamp B</li></ul><a href="/cart">Cart (2)</a></body></html>"""


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/page":
            self._send(200, PAGE, "text/html; charset=utf-8")
        elif self.path == "/big":
            self._send(200, b"y" * 50_000, "text/plain")
        elif self.path == "/image":
            self._send(200, b"\x89PNG...", "image/png")
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/page")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send(404, b"not here", "text/plain")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        echo = {"type": self.headers["Content-Type"], "body": json.loads(body)}
        self._send(201, json.dumps(echo).encode(), "application/json")


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    return ToolContext(workspace=tmp_path)


async def test_html_becomes_readable_text(ctx: ToolContext, base_url: str) -> None:
    result = await http_fetch(ctx, {"url": f"{base_url}/page"})
    head, _, text = result.partition("\n\n")
    assert head == f"HTTP 200 OK\nURL: {base_url}/page\nContent-Type: text/html"
    assert (
        text == "# Shop home\n\n# Products\nOur best lamps.\n- Lamp A\n- Lamp B\nCart (2) (/cart)"
    )
    assert "secret" not in result and "color" not in result


async def test_redirects_post_json_and_status(ctx: ToolContext, base_url: str) -> None:
    redirected = await http_fetch(ctx, {"url": f"{base_url}/redirect"})
    assert f"URL: {base_url}/page" in redirected
    posted = await http_fetch(
        ctx, {"url": f"{base_url}/echo", "method": "POST", "body": '{"q": "lamp"}'}
    )
    assert posted.startswith("HTTP 201 Created")
    assert json.loads(posted.split("\n\n", 1)[1]) == {
        "type": "application/json",
        "body": {"q": "lamp"},
    }
    missing = await http_fetch(ctx, {"url": f"{base_url}/nope"})
    assert missing.startswith("HTTP 404 Not Found") and missing.endswith("not here")


async def test_caps_and_binary(ctx: ToolContext, base_url: str) -> None:
    big = await http_fetch(ctx, {"url": f"{base_url}/big", "max_chars": 1000})
    assert "y" * 1000 + "\n…(truncated: 49000 more characters)" in big
    image = await http_fetch(ctx, {"url": f"{base_url}/image"})
    assert "(binary content: 7 bytes of image/png, not shown)" in image


async def test_only_http_schemes_and_clear_network_errors(ctx: ToolContext) -> None:
    for url in ("file:///etc/passwd", "ftp://example.com/x", "example.com"):
        with pytest.raises(Retry, match="http:// or https:// URL"):
            await http_fetch(ctx, {"url": url})
    with pytest.raises(ToolError, match=r"GET http://127\.0\.0\.1:9/ failed: ConnectError"):
        await http_fetch(ctx, {"url": "http://127.0.0.1:9/"})


def test_html_to_text_handles_tables_and_titles() -> None:
    text = html_to_text("<table><tr><th>Name</th><td>Ann</td></tr></table>")
    assert text == "| Name | Ann"
