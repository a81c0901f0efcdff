"""`BrowserSession`: Playwright driving the system Chromium (never a downloaded browser).

`BrowserSession` keeps one page. `observe()` renders it as compact text, one line per visible
element, interactive ones under a numeric id (`[3] button "Submit"`) that stays stable while the
page lives; every action takes such an id (or a `label`, matched against the element names, for
replayable skills) and returns the new observation.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from agentforge.errors import ConfigError, Retry, ToolError
from agentforge.tools.builtin._dom import OBSERVE_JS, match_label, match_option, render_item

if TYPE_CHECKING:
    from playwright.async_api import Browser, Locator, Page, Playwright

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
# links that would open a new tab open in the same one: the session has one page
_SAME_TAB_JS = """document.addEventListener('click', (e) => {
  const a = e.target && e.target.closest && e.target.closest('a[target]');
  if (a) a.removeAttribute('target');
}, true);"""
_TEXT_ROLES = ("textbox", "combobox")
_CLICK_ROLES = ("button", "link", "checkbox", "radio", "clickable", "tab", "menuitem", "option")
_ERROR_PAGE = "chrome-error://"  # where Chromium shows a navigation that failed
GOTO_ATTEMPTS = 3  # a goto reported as interrupted by another navigation is tried again


def find_chromium(explicit: str | None = None) -> str:
    """The Chromium executable: `explicit`, $AGENTFORGE_CHROMIUM, `chromium` on PATH, or
    /usr/bin/chromium. Raises ConfigError (never downloads a browser)."""
    named = explicit or os.environ.get("AGENTFORGE_CHROMIUM")
    if named:
        if Path(named).is_file() and os.access(named, os.X_OK):
            return named
        raise ConfigError(f"Chromium not found at {named} (from AGENTFORGE_CHROMIUM or settings)")
    for candidate in (shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate:
            return candidate
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    raise ConfigError(
        "Chromium not found: install it with `apt-get install chromium` "
        "(or set AGENTFORGE_CHROMIUM to its path)"
    )


class BrowserSession:
    """One Chromium page with observation and element-id actions. Use `async with` or
    `start()` / `close()`."""

    def __init__(
        self,
        *,
        executable: str | None = None,
        timeout_s: float = 10.0,
        viewport: tuple[int, int] = (1280, 900),
        max_items: int = 250,
        max_chars: int = 6000,
        allow_file_urls: bool = False,
    ) -> None:
        self.executable = executable
        self.timeout_ms = timeout_s * 1000
        self.viewport = viewport
        self.max_items = max_items
        self.max_chars = max_chars
        self.allow_file_urls = allow_file_urls
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self._page: Page | None = None
        self._notes: list[str] = []  # dialogs and HTTP errors, shown with the next observation

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> BrowserSession:
        if self._page is not None:
            return self
        from playwright.async_api import async_playwright

        exe = find_chromium(self.executable)
        self._pw = await async_playwright().start()
        try:
            self._browser = await self._pw.chromium.launch(
                executable_path=exe, headless=True, args=CHROMIUM_ARGS, timeout=30_000
            )
            width, height = self.viewport
            context = await self._browser.new_context(viewport={"width": width, "height": height})
            context.set_default_timeout(self.timeout_ms)
            context.set_default_navigation_timeout(self.timeout_ms)
            await context.add_init_script(_SAME_TAB_JS)
            context.on("page", self._adopt)
            self._adopt(await context.new_page())
        except Exception as exc:
            await self.close()
            raise ToolError(f"could not start Chromium ({exe}): {_first_line(exc)}") from exc
        return self

    def _adopt(self, page: Page) -> None:
        """A page the site opens (window.open) becomes the session's page."""
        if page is self._page:  # new_page() also fires the context's "page" event
            return
        self._page = page
        page.on("dialog", self._on_dialog)
        page.on("close", self._on_close)

    def _on_close(self, page: Page) -> None:
        if page is self._page:  # a popup closed itself: back to the page that is left
            left = [p for p in page.context.pages if not p.is_closed()]
            self._page = left[-1] if left else None

    async def _on_dialog(self, dialog: Any) -> None:
        self._notes.append(f"{dialog.type} dialog: {dialog.message!r} (accepted)")
        with contextlib.suppress(Exception):  # the page may be gone already
            await dialog.accept()

    async def close(self) -> None:
        browser, pw = self._browser, self._pw
        self._browser = self._pw = self._page = None
        if browser is not None:
            with contextlib.suppress(Exception):  # a crashed browser is closed already
                await browser.close()
        if pw is not None:
            await pw.stop()

    async def __aenter__(self) -> BrowserSession:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def page(self) -> Page:
        if self._page is None:
            raise ToolError("the browser session is not started")
        return self._page

    # --- observation ------------------------------------------------------------------------

    async def snapshot(self) -> dict[str, Any]:
        """The raw element list (assigning ids to new interactive elements)."""
        options = {"maxItems": self.max_items, "textChars": 200, "nameChars": 120}
        for attempt in range(3):
            try:
                return await self.page.evaluate(OBSERVE_JS, options)
            except Exception as exc:  # the page navigated while we looked: wait and look again
                if attempt == 2 or "context was destroyed" not in str(exc).lower():
                    raise ToolError(f"could not read the page: {_first_line(exc)}") from exc
                await self._settle()
        raise AssertionError("unreachable")

    async def observe(self) -> str:
        """URL, title, then one line per visible element; capped at `max_chars`."""
        snap = await self.snapshot()
        lines = [f"URL: {snap['url']}", f"Title: {snap['title']}"]
        lines += self._notes
        self._notes = []
        if snap["height"] > snap["viewport"] + 10:
            top = snap["scrollY"]
            lines.append(f"Scroll: showing {top}-{top + snap['viewport']} of {snap['height']} px")
        body = [render_item(item) for item in snap["items"]] or ["(the page shows nothing)"]
        size = sum(len(line) + 1 for line in lines)
        for i, line in enumerate(body):
            if size + len(line) + 1 > self.max_chars:
                lines.append(f"…({len(body) - i} more lines not shown)")
                break
            lines.append(line)
            size += len(line) + 1
        else:
            if snap["truncated"]:
                lines.append("…(more elements not shown)")
        return "\n".join(lines)

    async def find(self, label: str, prefer: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """The interactive element named like `label` ("A|B" tries alternatives), preferring
        the given roles; None when nothing matches. See `match_label`."""
        return match_label((await self.snapshot())["items"], label, prefer)

    # --- actions ----------------------------------------------------------------------------

    async def goto(self, url: str) -> str:
        url = self._check_url(url)
        for attempt in range(GOTO_ATTEMPTS):
            try:
                response = await self.page.goto(url, wait_until="domcontentloaded")
                break
            except Exception as exc:
                if attempt + 1 < GOTO_ATTEMPTS and "interrupted by another navigation" in str(exc):
                    # Leaving Chromium's error page (after a failed goto) restarts the
                    # navigation, which Playwright reports as interrupted: wait until the page
                    # is off the error page, then go again for the response (its HTTP status)
                    await self._settle_off_error_page()
                    continue
                await self._settle()  # let Chromium's error page finish loading
                raise Retry(f"could not open {url}: {_first_line(exc)}") from None
        if response is not None and response.status >= 400:
            self._notes.append(f"HTTP {response.status} {response.status_text}".strip())
        return await self.observe()

    async def click(self, id: int | None = None, label: str | None = None) -> str:
        target, number = await self._locate(id, label, _CLICK_ROLES)
        try:
            await target.click()
        except Exception as exc:
            raise Retry(
                f"could not click [{number}]: {_first_line(exc)}; it may be hidden or covered: "
                "scroll, or observe again"
            ) from None
        return await self._after_action()

    async def type(
        self,
        id: int | None = None,
        text: str = "",
        *,
        label: str | None = None,
        submit: bool = False,
    ) -> str:
        target, number = await self._locate(id, label, _TEXT_ROLES)
        if await target.evaluate("el => el.tagName") == "SELECT":
            raise Retry(f"[{number}] is a combobox: use browser_select to choose an option")
        try:
            await target.fill(text)
            if submit:
                await target.press("Enter")
        except Exception as exc:
            raise Retry(f"cannot type into [{number}]: {_first_line(exc)}") from None
        return await self._after_action()

    async def select(
        self, id: int | None = None, option: str = "", *, label: str | None = None
    ) -> str:
        target, number = await self._locate(id, label, ("combobox",))
        options = await target.evaluate(
            "el => el.tagName === 'SELECT' ? "
            "Array.from(el.options).map(o => [o.value, (o.label || o.text).trim()]) : null"
        )
        if options is None:
            raise Retry(f"[{number}] is not a dropdown: click it, then click the option")
        index = match_option(options, option)
        if index is None:
            listed = ", ".join(label for _, label in options)
            raise Retry(f"[{number}] has no option {option!r}; options: {listed}")
        await target.select_option(index=index)
        return await self._after_action()

    async def scroll(self, direction: str = "down") -> str:
        scripts = {
            "down": "window.scrollBy(0, window.innerHeight * 0.8)",
            "up": "window.scrollBy(0, -window.innerHeight * 0.8)",
            "top": "window.scrollTo(0, 0)",
            "bottom": "window.scrollTo(0, document.body.scrollHeight)",
        }
        if direction not in scripts:
            raise Retry(f"scroll direction must be one of {', '.join(scripts)}")
        await self.page.evaluate(scripts[direction])
        return await self.observe()

    async def press(self, key: str) -> str:
        try:
            await self.page.keyboard.press(key)
        except Exception as exc:
            raise Retry(
                f"cannot press {key!r}: {_first_line(exc)} (keys look like "
                "'Enter', 'Tab', 'ArrowDown', 'Control+A')"
            ) from None
        return await self._after_action()

    async def back(self) -> str:
        before = self.page.url
        try:
            await self.page.go_back(wait_until="domcontentloaded")
        except Exception as exc:
            raise Retry(f"could not go back: {_first_line(exc)}") from None
        if self.page.url == "about:blank" and before != "about:blank":
            await self.page.go_forward(wait_until="domcontentloaded")  # the empty start page
            raise Retry("there is no previous page to go back to")
        if self.page.url == before:
            raise Retry("there is no previous page to go back to")
        return await self.observe()

    # --- helpers ----------------------------------------------------------------------------

    async def _locate(
        self, id: int | None, label: str | None, prefer: tuple[str, ...]
    ) -> tuple[Locator, int]:
        if id is not None and label:
            id = await self._reconcile(id, label, prefer)
        if id is None:
            if not label:
                raise Retry("give the element's id (the number in [brackets]) or its label")
            item = await self.find(label, prefer)
            if item is None:
                raise Retry(f"no element labelled {label!r} on the page; observe again")
            id = int(item["id"])
        target = self.page.locator(f'[data-af-id="{int(id)}"]')
        if await target.count() == 0:
            raise Retry(
                f"no element [{id}] on the page; observe again and use an id from the latest "
                "observation (ids change when the page changes)"
            )
        return target.first, int(id)

    async def _reconcile(self, id: int, label: str, prefer: tuple[str, ...]) -> int:
        """Given both, an id whose element is not named like `label` yields to the element that
        is: a model reads names reliably and often guesses ids."""
        items = (await self.snapshot())["items"]
        own = [item for item in items if item.get("id") == id]
        if own and match_label(own, label, prefer) is not None:
            return id
        named = match_label(items, label, prefer)
        return int(named["id"]) if named is not None else id

    async def _settle(self) -> None:
        with contextlib.suppress(Exception):  # a slow page is still observed as it is
            await self.page.wait_for_load_state("domcontentloaded", timeout=self.timeout_ms)

    async def _settle_off_error_page(self) -> None:
        with contextlib.suppress(Exception):  # then the next goto reports what is wrong
            await self.page.wait_for_url(
                lambda at: not at.startswith(_ERROR_PAGE),
                wait_until="domcontentloaded",
                timeout=self.timeout_ms,
            )

    async def _after_action(self) -> str:
        await self._settle()
        return await self.observe()

    def _check_url(self, url: str) -> str:
        url = url.strip()
        if url == "about:blank":
            return url
        if "://" not in url:
            host = url.split("/")[0].split(":")[0]
            local = host in ("localhost", "127.0.0.1") or host.startswith("127.")
            url = f"{'http' if local else 'https'}://{url}"
        scheme = urlsplit(url).scheme.lower()
        allowed = ("http", "https", "file") if self.allow_file_urls else ("http", "https")
        if scheme not in allowed:
            raise Retry(f"cannot open {scheme}: URLs; use {' or '.join(allowed)}")
        return url


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
