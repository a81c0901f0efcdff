"""`http_fetch`: one HTTP request with httpx, a timeout and a size cap; HTML comes back as
readable text (title, headings, paragraphs, list items and links), JSON and text as they are."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import urlsplit

import httpx

from agentforge.errors import Retry, ToolError
from agentforge.tools.base import ToolContext
from agentforge.tools.decorator import tool

TIMEOUT_S = 15.0
MAX_BYTES = 2_000_000
MAX_CHARS = 50_000
USER_AGENT = "AgentForge/0.1 (httpx)"
_BLOCK = {
    "p", "div", "section", "article", "main", "header", "footer", "nav", "aside", "br", "hr",
    "h1", "h2", "h3", "h4", "h5", "h6", "li", "tr", "table", "ul", "ol", "pre", "blockquote",
    "form", "dd", "dt", "figcaption",
}  # fmt: skip
_HIDDEN = {"script", "style", "noscript", "template", "svg", "head", "iframe", "object"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._hidden = 0
        self._in_title = False
        self._href: str | None = None
        self._link_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _HIDDEN:
            self._hidden += 1
        elif tag in _BLOCK:
            self.parts.append("\n")
            if tag == "li":
                self.parts.append("- ")
            elif tag[0] == "h" and tag[1:].isdigit():
                self.parts.append("#" * int(tag[1:]) + " ")
        elif tag == "a":
            self._href = dict(attrs).get("href")
            self._link_text = []
        elif tag in ("td", "th"):
            self.parts.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCK:
            self.parts.append("\n")
        elif tag == "a" and self._href is not None:
            text = " ".join("".join(self._link_text).split())
            href, self._href = self._href, None
            if text and href and not href.startswith(("javascript:", "#")):
                self.parts.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._hidden:
            self.parts.append(data)
            if self._href is not None:
                self._link_text.append(data)


def html_to_text(html: str) -> str:
    """Readable text of an HTML document: title line, then blocks on their own lines."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(line for line in lines if line))
    title = " ".join(parser.title.split())
    return f"# {title}\n\n{body}" if title else body


@tool
async def http_fetch(
    ctx: ToolContext,
    url: str,
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET",
    headers: dict[str, str] | None = None,
    body: str | None = None,
    max_chars: int = 20_000,
) -> str:
    """Make an HTTP request and return the status and the response as text.

    HTML pages come back as readable text (title, headings, paragraphs, links with their
    addresses); JSON and plain text as they are. Use the browser tools for pages that need
    JavaScript or clicks.

    Args:
        url: The http(s) address.
        method: The HTTP method.
        headers: Extra request headers.
        body: The request body (for POST, PUT, PATCH); JSON is sent as application/json.
        max_chars: The most characters of the response to return.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Retry(f"http_fetch takes an http:// or https:// URL, not {url!r}")
    send_headers = {"User-Agent": USER_AGENT, **(headers or {})}
    if (
        body is not None
        and body.lstrip()[:1] in ("{", "[")
        and not any(k.lower() == "content-type" for k in send_headers)
    ):
        send_headers["Content-Type"] = "application/json"
    timeout = float(ctx.extras.get("http_timeout_s", TIMEOUT_S))
    try:
        async with (
            httpx.AsyncClient(timeout=timeout, follow_redirects=True, max_redirects=5) as client,
            client.stream(method, url.strip(), headers=send_headers, content=body) as response,
        ):
            data = await _read_capped(response, MAX_BYTES)
    except httpx.TimeoutException:
        raise ToolError(f"{method} {url} timed out after {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise ToolError(f"{method} {url} failed: {type(exc).__name__}: {exc}") from None
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    head = f"HTTP {response.status_code} {response.reason_phrase}\nURL: {response.url}\n"
    head += f"Content-Type: {kind or 'unknown'}\n"
    if len(data) >= MAX_BYTES:
        head += f"(response cut at {MAX_BYTES} bytes)\n"
    limit = max(100, min(max_chars, MAX_CHARS))
    text = _decode(data, kind, response.encoding)
    if len(text) > limit:
        text = f"{text[:limit]}\n…(truncated: {len(text) - limit} more characters)"
    return f"{head}\n{text}"


async def _read_capped(response: httpx.Response, cap: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= cap:
            break
    return b"".join(chunks)[:cap]


def _decode(data: bytes, kind: str, encoding: str | None) -> str:
    textual = (
        not kind
        or kind.startswith("text/")
        or kind.endswith(("json", "xml", "javascript"))
        or "+json" in kind
        or "+xml" in kind
    )
    if not textual:
        return f"(binary content: {len(data)} bytes of {kind}, not shown)"
    text = data.decode(encoding or "utf-8", errors="replace")
    if kind in ("text/html", "application/xhtml+xml") or (not kind and text.lstrip()[:1] == "<"):
        return html_to_text(text)
    return text


HTTP_TOOLS = [http_fetch]
