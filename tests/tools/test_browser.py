"""Real browser tests: the system Chromium through Playwright against pages served on 127.0.0.1.
Skipped, with the reason, only when Chromium is not installed."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from agentforge.errors import ConfigError, Retry
from agentforge.llm.types import ToolCall
from agentforge.skills import bind, discover_skills
from agentforge.tools import ToolContext, ToolRegistry, invoke_tool
from agentforge.tools.builtin import default_tools
from agentforge.tools.builtin.browser import BrowserSession, find_chromium
from tests.browser import needs_chromium

pytestmark = [pytest.mark.integration, needs_chromium]

SKILLS = Path(__file__).resolve().parents[2] / "skills"
PAGES = {
    "/form.html": """<!doctype html><html><head><title>Order form</title></head><body>
<h1>Order a lamp</h1>
<p>Fill in the form <b>below</b>.</p>
<form action="/result" method="get">
  <label for="user">Username</label> <input id="user" name="user" type="text">
  <label>Size <select name="size"><option>S</option><option selected>M</option>
    <option value="large">L</option></select></label>
  <label><input type="checkbox" name="remember"> Remember me</label>
  <input type="password" name="pw" placeholder="Password">
  <button type="submit">Submit</button>
</form>
<a href="/second.html">Second page</a>
<div style="display:none"><button>Hidden button</button></div>
<div style="height:3000px"></div>
<p>End of page</p>
</body></html>""",
    "/second.html": """<!doctype html><title>Second</title><h2>Second page</h2>
<p>Nothing else here.</p><a href="/form.html">Back to the form</a>""",
    "/login.html": """<!doctype html><title>Sign in</title><h1>Sign in</h1>
<form action="/welcome"><label>Email <input name="email" type="email"></label>
<label>Password <input name="pw" type="password"></label>
<label><input type="checkbox" name="keep"> Keep me signed in</label>
<button>Sign in</button></form>""",
    "/shop.html": """<!doctype html><title>Lamp shop</title><h1>Lamp shop</h1>
<form action="/search"><input type="search" name="q" placeholder="Search products">
<button>Go</button></form>""",
}


def _dynamic(path: str, query: dict[str, list[str]]) -> str | None:
    q = {k: v[0] for k, v in query.items()}
    if path == "/result":
        shown = " ".join(f"{k}={v}" for k, v in sorted(q.items()) if k != "pw")
        return f"<!doctype html><title>Done</title><h1>Thank you</h1><p>{escape(shown)}</p>"
    if path == "/welcome":
        if q.get("pw") != "hunter2":
            return "<!doctype html><title>Sign in</title><p>Invalid password</p>"
        return (
            f"<!doctype html><title>Home</title><h1>Welcome, {escape(q['email'])}</h1>"
            '<a href="/logout">Log out</a>'
        )
    if path == "/search":
        return (
            f"<!doctype html><title>Results</title><h1>Results for {escape(q['q'])}</h1>"
            '<a href="/p/1">Desk lamp</a><a href="/p/2">Floor lamp</a>'
        )
    return None


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        body = PAGES.get(url.path) or _dynamic(url.path, parse_qs(url.query))
        data = (body or "<title>Not found</title><p>no such page</p>").encode()
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[ToolContext]:
    context = ToolContext(workspace=tmp_path, extras={"browser": {"timeout_s": 5}})
    yield context
    await context.aclose()


async def run(ctx: ToolContext, registry: ToolRegistry, name: str, **arguments: object) -> str:
    result = await invoke_tool(registry, ctx, ToolCall(id="t", name=name, arguments=arguments))
    assert result.ok, result.error
    return result.content


async def test_observe_type_select_click_submit(site: str, ctx: ToolContext) -> None:
    tools = ToolRegistry(default_tools(["browser"]))
    page = await run(ctx, tools, "browser_goto", url=f"{site}/form.html")
    lines = page.splitlines()
    assert lines[:2] == [f"URL: {site}/form.html", "Title: Order form"]
    assert lines[2].startswith("Scroll: showing 0-900 of ")
    assert lines[3:] == [
        'heading "Order a lamp"',
        'text "Fill in the form below."',
        '[1] textbox "Username" value=""',
        '[2] combobox "Size" options=[S, M, L] selected=M',
        '[3] checkbox "Remember me" checked=false',
        '[4] textbox "Password" password value=""',
        '[5] button "Submit"',
        '[6] link "Second page" -> /second.html',
        'text "End of page"',
    ]
    assert "Hidden button" not in page
    await run(ctx, tools, "browser_type", id=1, text="ann")
    await run(ctx, tools, "browser_type", label="password", text="secret")
    await run(ctx, tools, "browser_select", id=2, option="L")
    page = await run(ctx, tools, "browser_click", id=3)
    assert '[1] textbox "Username" value="ann"' in page
    assert '[4] textbox "Password" password value="******"' in page  # masked
    assert "selected=L" in page and "checked=true" in page
    page = await run(ctx, tools, "browser_click", id=5)
    assert f"URL: {site}/result?user=ann&size=large&remember=on" in page
    assert 'heading "Thank you"' in page and 'text "remember=on size=large user=ann"' in page


async def test_navigation_and_corrections(site: str, ctx: ToolContext) -> None:
    tools = ToolRegistry(default_tools(["browser"]))
    await run(ctx, tools, "browser_goto", url=f"{site}/form.html")
    second = await run(ctx, tools, "browser_click", label="Second page")
    assert "Title: Second" in second and 'heading "Second page"' in second
    assert '[1] link "Back to the form" -> /form.html' in second  # a new page numbers anew
    back = await run(ctx, tools, "browser_back")
    assert "Title: Order form" in back and "[5] button" in back
    scrolled = await run(ctx, tools, "browser_scroll", direction="bottom")
    assert "Scroll: showing 0-" not in scrolled
    observed = await run(ctx, tools, "browser_observe")
    assert observed.splitlines()[1] == "Title: Order form"
    pressed = await run(ctx, tools, "browser_press", key="Tab")
    assert "Title: Order form" in pressed

    async def fails(name: str, **arguments: object) -> str:
        call = ToolCall(id="t", name=name, arguments=arguments)
        result = await invoke_tool(tools, ctx, call)
        assert not result.ok
        return result.error or ""

    assert (await fails("browser_click", id=99)).startswith(
        "no element [99] on the page; observe again"
    )
    assert "no element labelled 'Checkout'" in await fails("browser_click", label="Checkout")
    assert "[2] has no option 'XL'; options: S, M, L" in await fails(
        "browser_select", id=2, option="XL"
    )
    assert "use browser_select" in await fails("browser_type", id=2, text="x")
    assert "cannot open file: URLs" in await fails("browser_goto", url="file:///etc/passwd")
    assert "could not open" in await fails("browser_goto", url="http://127.0.0.1:9/")
    missing = await run(ctx, tools, "browser_goto", url=f"{site}/nope")
    assert "HTTP 404" in missing and 'text "no such page"' in missing


async def test_a_goto_after_a_failed_one_opens_the_page(site: str) -> None:
    """Leaving Chromium's error page restarts the navigation, which Playwright reports as
    interrupted (about one goto in four here); goto waits for that navigation, then goes again."""
    async with BrowserSession(timeout_s=5) as session:
        for _ in range(8):
            with pytest.raises(Retry, match="could not open"):
                await session.goto("http://127.0.0.1:9/")
            page = await session.goto(f"{site}/nope")
            assert "HTTP 404" in page and 'text "no such page"' in page


async def test_shipped_skills_replay(site: str, ctx: ToolContext) -> None:
    skills = {s.name: s for s in discover_skills(SKILLS)}
    tools = ToolRegistry(default_tools(["browser"]))
    for extra in skills["fill-web-form"].load_tools():
        tools.add(extra)

    async def replay(name: str, **params: str) -> str:
        content = ""
        for call in bind(skills[name], params):
            content = await run(ctx, tools, call.name, **call.arguments)
        return content

    page = await replay(
        "login", url=f"{site}/login.html", username="ann@example.com", password="hunter2"
    )
    assert 'heading "Welcome, ann@example.com"' in page and '"Log out"' in page
    page = await replay("web-search-site", url=f"{site}/shop.html", query="desk lamp")
    assert 'heading "Results for desk lamp"' in page and 'link "Desk lamp"' in page
    page = await replay(
        "fill-web-form", url=f"{site}/form.html", fields="Username: bob, Size: S; Remember me: yes"
    )
    assert 'heading "Thank you"' in page and "remember=on size=S user=bob" in page


async def test_a_label_that_names_another_element_than_the_id_wins(site: str) -> None:
    async with BrowserSession(timeout_s=5) as session:
        await session.goto(f"{site}/form.html")
        # a guessed id (the link [6]) with the name of the field the model meant
        page = await session.type(6, "ann", label="Username")
        assert '[1] textbox "Username" value="ann"' in page
        page = await session.click(6, label="Second page")  # both agree: the id
        assert page.startswith(f"URL: {site}/second.html")


async def test_session_directly_and_missing_id(site: str) -> None:
    async with BrowserSession(timeout_s=5) as session:
        text = await session.goto(f"{site}/second.html")
        assert text.startswith(f"URL: {site}/second.html\nTitle: Second")
        with pytest.raises(Retry, match=r"no element \[7\] on the page"):
            await session.click(7)
        with pytest.raises(Retry, match="no previous page"):
            await session.back()


def test_missing_chromium_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFORGE_CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(ConfigError, match="Chromium not found at /nonexistent/chromium"):
        find_chromium()
