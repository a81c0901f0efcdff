"""The WebArena evaluators on WebArena-style task specs: string_match (exact, must_include,
|OR|, the single-character token rule, N/A, fuzzy_match through a scripted judge), url_match
(query parameters, alternatives) and program_html on a real Chromium page served on loopback,
each with a failing case. No LLM is called."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import pytest_asyncio

from agentforge.errors import ConfigError
from agentforge.evals.evaluators import (
    HELPERS,
    HelperContext,
    clean_answer,
    evaluate_task,
    helper,
    string_match,
    url_match,
)
from agentforge.tools.builtin.browser_session import BrowserSession
from tests.browser import in_browser as browser_test


def task(reference_answers: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"task_id": "t", "intent": "What is it?",
            "eval": {"eval_types": ["string_match"], "reference_answers": reference_answers,
                     "reference_url": "", "program_html": [], "string_note": "", **spec}}


async def score(reference_answers: dict[str, Any], answer: str, **kw: Any) -> float:
    return (await string_match(task(reference_answers), answer, **kw))[0]


# --- string_match -------------------------------------------------------------------------------


def test_clean_answer_strips_one_pair_of_quotes_and_lowercases() -> None:
    assert clean_answer('  "Complete" ') == "complete"
    assert clean_answer("'x'") == "x"
    assert clean_answer("'") == "'"


async def test_exact_match() -> None:
    assert await score({"exact_match": "Canceled"}, ' "canceled" ') == 1.0
    assert await score({"exact_match": "Canceled"}, "It is canceled") == 0.0


async def test_must_include_needs_every_phrase() -> None:
    ref = {"must_include": ["Salad Spinner", "24.95"]}
    assert await score(ref, "The Salad Spinner costs $24.95") == 1.0
    assert await score(ref, "The Salad Spinner costs $25") == 0.0


async def test_must_include_or_alternatives() -> None:
    ref = {"must_include": ["Complete |OR| Completed", "100232"]}
    assert await score(ref, "Order 100232 is completed") == 1.0
    assert await score(ref, "Order 100232 is pending") == 0.0


async def test_a_single_character_reference_must_be_a_whole_token() -> None:
    ref = {"must_include": ["1"]}
    assert await score(ref, "You placed 1 order.") == 1.0
    assert await score(ref, "You placed 10 orders.") == 0.0
    # with several phrases WebArena does not tokenize
    assert await score({"must_include": ["1", "order"]}, "10 orders") == 1.0


async def test_na_is_an_exact_match_first() -> None:
    assert await score({"fuzzy_match": "N/A"}, "n/a") == 1.0


async def test_na_otherwise_needs_a_judge() -> None:
    with pytest.raises(ConfigError, match="ua_match needs an LLM judge"):
        await score({"fuzzy_match": "N/A"}, "There is no such product")
    calls: list[tuple[str, dict[str, str]]] = []

    def judge(kind: str, **kw: str) -> float:
        calls.append((kind, kw))
        return 1.0

    spec = task({"fuzzy_match": "N/A"}, string_note="the shop does not sell cars")
    assert (await string_match(spec, "We sell no cars", judge))[0] == 1.0
    assert calls == [("ua_match", {"intent": "What is it?",
                                   "reference": "the shop does not sell cars",
                                   "prediction": "we sell no cars"})]


async def test_fuzzy_match_needs_a_judge_and_accepts_an_async_one() -> None:
    with pytest.raises(ConfigError, match="fuzzy_match needs an LLM judge"):
        await score({"fuzzy_match": ["about ten dollars"]}, "$9.99")
    assert await score({"fuzzy_match": ["x"]}, "") == 0.0  # blank answers never reach the judge

    async def judge(kind: str, *, intent: str, reference: str, prediction: str) -> float:
        return float(kind == "fuzzy_match" and "9.99" in prediction)

    assert await score({"fuzzy_match": ["about ten dollars"]}, "$9.99", judge=judge) == 1.0
    assert await score({"fuzzy_match": ["about ten dollars"]}, "$20", judge=judge) == 0.0


# --- url_match ----------------------------------------------------------------------------------


def test_url_match_gold_query_in_pred() -> None:
    ref = "http://127.0.0.1:9/search?q=yoga+mat"
    assert url_match(ref, "http://127.0.0.1:9/search?q=yoga%20mat&page=1") == 1.0
    assert url_match(ref, "http://127.0.0.1:9/search/?q=yoga+mat") == 1.0  # trailing slash
    assert url_match(ref, "http://127.0.0.1:9/search?q=yoga") == 0.0
    assert url_match(ref, "http://127.0.0.1:9/search") == 0.0
    assert url_match(ref, "http://127.0.0.1:9/searching?q=yoga+mat") == 0.0


def test_url_match_alternatives() -> None:
    ref = "http://s/category/audio?sort=price_asc |OR| http://s/audio?sort=price_asc"
    assert url_match(ref, "http://s/audio?sort=price_asc") == 1.0
    assert url_match(ref, "http://s/category/audio?sort=price_asc") == 1.0
    assert url_match(ref, "http://s/category/audio?sort=price_desc") == 0.0
    assert url_match(ref, "http://s/category/garden?sort=price_asc") == 0.0
    with pytest.raises(ConfigError, match="unknown url_note"):
        url_match(ref, "http://s/audio", "EXACT")


# --- program_html on a real page ----------------------------------------------------------------

PAGES = {
    "/form": """<!doctype html><title>Profile</title><h1>Account</h1>
<label for="phone">Phone</label><input id="phone" value="555-0142">
<p>Status: <b>Complete</b> &amp; shipped</p>""",
    "/cart": """<!doctype html><title>Cart</title>
<table><tr data-sku="A-1"><td>Lamp</td><td><input name="qty" value="3"></td></tr></table>""",
}


def in_browser(test: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    return pytest.mark.integration(browser_test(test))


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = PAGES.get(self.path.split("?")[0])
        data = (body or "<title>Missing</title>not found").encode()
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[BrowserSession]:
    async with BrowserSession(timeout_s=10) as session:
        yield session


def html_task(targets: list[dict[str, Any]], types: tuple[str, ...] = ("program_html",),
              url: str = "") -> dict[str, Any]:
    return {"task_id": "h", "intent": "", "eval": {
        "eval_types": list(types), "reference_answers": None, "reference_url": url,
        "program_html": targets, "url_note": "GOLD in PRED"}}


@in_browser
async def test_program_html_last_page_with_a_js_locator(browser: BrowserSession,
                                                       site: str) -> None:
    await browser.goto(f"{site}/form")
    spec = [{"url": "last", "locator": "document.querySelector('#phone').value",
             "required_contents": {"exact_match": "555-0142"}}]
    result = await evaluate_task(html_task(spec), answer="", page=browser.page,
                                 placeholders={"__SITE__": site})
    assert result.success and result.reward == 1.0
    assert result.details["program_html"]["checks"][0]["selected"] == "555-0142"
    spec[0]["required_contents"] = {"exact_match": "555-0199"}
    result = await evaluate_task(html_task(spec), answer="", page=browser.page,
                                 placeholders={"__SITE__": site})
    assert not result.success and result.reward == 0.0


@in_browser
async def test_program_html_opens_the_url_and_reads_body_text(browser: BrowserSession,
                                                             site: str) -> None:
    await browser.goto("about:blank")
    spec = [{"url": "__SITE__/form", "locator": "",
             "required_contents": {"must_include": ["Canceled |OR| Complete", "& shipped"]}}]
    result = await evaluate_task(html_task(spec), answer="", page=browser.page,
                                 placeholders={"__SITE__": site})
    assert result.success, result.details
    spec[0]["required_contents"] = {"must_include": ["Complete", "Delivered"]}
    result = await evaluate_task(html_task(spec), answer="", page=browser.page,
                                 placeholders={"__SITE__": site})
    assert result.reward == 0.0
    assert [c["score"] for c in result.details["program_html"]["checks"]] == [1.0, 0.0]


@in_browser
async def test_program_html_missing_element_reads_as_empty(browser: BrowserSession,
                                                           site: str) -> None:
    spec = [{"url": "__SITE__/cart",
             "locator": "document.querySelector('tr[data-sku=\"B-2\"] input').value",
             "required_contents": {"exact_match": "3"}}]
    result = await evaluate_task(html_task(spec), answer="", page=browser.page,
                                 placeholders={"__SITE__": site})
    assert not result.success
    assert result.details["program_html"]["checks"][0]["selected"] == ""


@in_browser
async def test_program_html_func_helpers(browser: BrowserSession, site: str) -> None:
    @helper
    async def test_cart_url(ctx: HelperContext) -> str:
        return f"{ctx.placeholders['__SITE__']}/cart"

    try:
        spec = [{"url": "func:test_cart_url()", "locator": "func:shop_cart_quantity('A-1')",
                 "required_contents": {"exact_match": "3"}}]
        places = {"__SITE__": site, "__SHOP__": site}
        result = await evaluate_task(html_task(spec), answer="", page=browser.page,
                                     placeholders=places)
        assert result.success, result.details
        spec[0]["locator"] = "func:shop_cart_quantity('B-2')"
        result = await evaluate_task(html_task(spec), answer="", page=browser.page,
                                     placeholders=places)
        assert not result.success and result.details["program_html"]["checks"][0][
            "selected"] == "0"
        spec[0]["locator"] = "func:no_such_helper()"
        with pytest.raises(ConfigError, match="unknown program_html helper"):
            await evaluate_task(html_task(spec), answer="", page=browser.page,
                                placeholders=places)
    finally:
        HELPERS.pop("test_cart_url")


@in_browser
async def test_evaluate_task_multiplies_and_url_match_sees_the_agents_page(
        browser: BrowserSession, site: str) -> None:
    await browser.goto(f"{site}/cart?view=full")
    spec = [{"url": "__SITE__/form", "locator": "document.querySelector('#phone').value",
             "required_contents": {"exact_match": "555-0142"}}]
    both = html_task(spec, ("url_match", "program_html"), url="__SITE__/cart?view=full")
    result = await evaluate_task(both, answer="", page=browser.page,
                                 placeholders={"__SITE__": site})
    assert result.success, result.details  # url_match ran on /cart before program_html left it
    await browser.goto(f"{site}/cart")
    result = await evaluate_task(both, answer="", page=browser.page,
                                 placeholders={"__SITE__": site})
    assert result.reward == 0.0 and result.details["program_html"]["score"] == 1.0
    with pytest.raises(ConfigError, match="not supported"):
        await evaluate_task(html_task(spec, ("screenshot",)), answer="", page=browser.page,
                            placeholders={})
