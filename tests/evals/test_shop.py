"""The local shop and its suite: pages render, sign-in works, the suite file is complete and
up to date with its generator, resets restore the seed, and for every intent template an oracle
solves a test instance through `BrowserSession` (as an agent would: search, click, type by label)
while doing nothing fails the navigation and state-changing ones. One shop and one Chromium are
shared by the module; the browser tests skip, with the reason, when Chromium is missing."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import AsyncIterator
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import pytest_asyncio

from agentforge.evals.envs.shop import ShopEnvironment
from agentforge.evals.envs.shop.data import CATALOG, CUSTOMERS, seed_data
from agentforge.evals.envs.shop.make_tasks import MONTHS, SUITE, build_suite, render
from agentforge.tools.builtin.browser_session import BrowserSession
from tests.browser import in_browser

TASK_FIELDS = {"task_id", "sites", "require_login", "start_url", "intent_template",
               "intent_template_id", "instantiation_dict", "intent", "eval", "split"}
EVAL_FIELDS = {"eval_types", "reference_answers", "reference_url", "program_html", "url_note",
               "string_note"}


pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shop() -> AsyncIterator[ShopEnvironment]:
    env = ShopEnvironment()
    await env.start()
    yield env
    await env.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[BrowserSession]:
    async with BrowserSession(timeout_s=10) as session:
        yield session


def suite() -> dict[str, Any]:
    return json.loads(SUITE.read_text())


def by_template() -> dict[int, list[dict[str, Any]]]:
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for task in suite()["tasks"]:
        groups[task["intent_template_id"]].append(task)
    return groups


# --- the suite file -----------------------------------------------------------------------------


def test_suite_file_is_complete() -> None:
    data = suite()
    assert data["name"] == "shop" and data["environment"] == {"type": "shop"}
    tasks = data["tasks"]
    assert len(tasks) >= 30
    assert len({t["task_id"] for t in tasks}) == len(tasks)
    for task in tasks:
        assert set(task) >= TASK_FIELDS, task["task_id"]
        assert set(task["eval"]) >= EVAL_FIELDS, task["task_id"]
        assert re.fullmatch(r"shop-\d{3}", task["task_id"]) and task["sites"] == ["shop"]
        assert task["start_url"].startswith("__SHOP__")
        assert task["split"] in ("train", "test")
        assert set(task["eval"]["eval_types"]) <= {"string_match", "url_match", "program_html"}
        filled = task["intent_template"]
        for key, value in task["instantiation_dict"].items():
            filled = filled.replace("{{" + key + "}}", value)
        assert filled == task["intent"]
        spec = task["eval"]
        if "url_match" in spec["eval_types"]:
            assert spec["reference_url"].startswith("__SHOP__/")
        for target in spec["program_html"]:
            assert target["url"].startswith(("__SHOP__/", "func:"))
    groups = by_template()
    assert len(groups) >= 6
    for template_id, group in groups.items():
        splits = [t["split"] for t in group]
        assert splits.count("train") >= 2 and splits.count("test") >= 1, template_id
        assert len({t["intent_template"] for t in group}) == 1


def test_suite_file_is_what_the_generator_writes() -> None:
    assert SUITE.read_text() == render(build_suite())


def test_seed_is_deterministic_and_realistic() -> None:
    a, b = seed_data(), seed_data()
    assert a == b
    assert len(a.products) == 80 and len({p.name for p in a.products}) == 80
    assert {p.category for p in a.products} == set(CATALOG)
    assert len(a.orders_of(CUSTOMERS[0][0])) >= 10


# --- the server ---------------------------------------------------------------------------------


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))


@pytest.mark.asyncio(loop_scope="module")
async def test_pages_render(shop: ShopEnvironment) -> None:
    shop.app.reset()  # type: ignore[union-attr]
    web, data = _opener(), seed_data()
    salad = data.product("KIT-1008")
    expected = {
        "/": "Shop by category",
        "/category/kitchen?sort=price_asc": "10 products",
        "/search?q=salad+spinner": '1 result for "salad spinner"',
        "/product/kit-1008": salad.price,
        "/cart": "Your shopping cart is empty.",
    }
    for path, text in expected.items():
        with web.open(shop.url + path) as response:
            assert response.status == 200 and text in response.read().decode(), path
    with web.open(shop.url + "/account") as response:  # the account needs a sign-in
        assert response.url.startswith(f"{shop.url}/login?next=")
    with pytest.raises(urllib.error.HTTPError, match="404"):
        web.open(shop.url + "/product/nope-1")


@pytest.mark.asyncio(loop_scope="module")
async def test_login_and_order_history(shop: ShopEnvironment) -> None:
    web = _opener()
    user, password = CUSTOMERS[0][:2]
    form = {"username": user, "password": "wrong", "next": "/account/orders"}
    with web.open(f"{shop.url}/login", urlencode(form).encode()) as response:
        assert "incorrect" in response.read().decode()
    form["password"] = password
    with web.open(f"{shop.url}/login", urlencode(form).encode()) as response:
        body = response.read().decode()
    assert response.url == f"{shop.url}/account/orders"
    orders = seed_data().orders_of(user)
    assert body.count('class="order-row"') == len(orders)
    assert f"#{orders[-1].id}" in body and orders[-1].created in body


# --- in the browser -----------------------------------------------------------------------------


def _value(observation: str, pattern: str) -> str:
    match = re.search(pattern, observation)
    assert match, f"{pattern!r} not in:\n{observation}"
    return match.group(1)


async def _open_product(b: BrowserSession, name: str) -> str:
    await b.type(label="Search products", text=name, submit=True)
    return await b.click(label=name)


async def _orders(b: BrowserSession) -> str:
    await b.click(label="My Account")
    return await b.click(label="My Orders")


async def solve_price(b: BrowserSession, v: dict[str, str]) -> str:
    return _value(await _open_product(b, v["product"]), r'text "(\$[\d,.]+)"')


async def solve_orders_in_month(b: BrowserSession, v: dict[str, str]) -> str:
    month = f"2023-{MONTHS.index(v['month']) + 1:02d}-"
    return f"{(await _orders(b)).count(month)} orders"


async def _sorted(b: BrowserSession, category: str, direction: str) -> str:
    await b.click(label=category)
    await b.select(label="Sort by", option=f"Price: {direction}")
    return await b.click(label="Apply")


async def solve_cheapest(b: BrowserSession, v: dict[str, str]) -> str:
    return _value(await _sorted(b, v["category"], "low to high"), r'link "([^"]+)" -> /product/')


async def solve_status(b: BrowserSession, v: dict[str, str]) -> str:
    await _orders(b)
    return _value(await b.click(label=f"#{v['order_id']}"), r'text "Status: (\w+)"')


async def solve_search(b: BrowserSession, v: dict[str, str]) -> str:
    await b.type(label="Search products", text=v["query"], submit=True)
    return ""


async def solve_sorted(b: BrowserSession, v: dict[str, str]) -> str:
    await _sorted(b, v["category"], v["direction"])
    return ""


async def solve_cart(b: BrowserSession, v: dict[str, str]) -> str:
    await _open_product(b, v["product"])
    await b.type(label="Quantity", text=v["quantity"])
    await b.click(label="Add to Cart")
    return ""


async def solve_phone(b: BrowserSession, v: dict[str, str]) -> str:
    await b.click(label="My Account")
    await b.type(label="Phone number", text=v["phone"])
    await b.click(label="Save Account Information")
    return ""


async def solve_buy(b: BrowserSession, v: dict[str, str]) -> str:
    await _open_product(b, v["product"])
    await b.click(label="Add to Cart")
    await b.click(label="Proceed to Checkout")
    return _value(await b.click(label="Place Order"), r"order number is (\d+)")


async def solve_wishlist(b: BrowserSession, v: dict[str, str]) -> str:
    await _open_product(b, v["product"])
    await b.click(label="Add to Wish List")
    return ""


ORACLES = {1: solve_price, 2: solve_orders_in_month, 3: solve_cheapest, 4: solve_status,
           5: solve_search, 6: solve_sorted, 7: solve_cart, 8: solve_phone, 9: solve_buy,
           10: solve_wishlist}
CHANGES = (5, 6, 7, 8, 9, 10)  # navigation and state-changing templates


def test_every_template_has_an_oracle() -> None:
    assert set(by_template()) == set(ORACLES)


@in_browser
@pytest.mark.parametrize("template_id", sorted(ORACLES))
async def test_oracle_solves_a_test_instance(shop: ShopEnvironment, browser: BrowserSession,
                                             template_id: int) -> None:
    task = next(t for t in by_template()[template_id] if t["split"] == "test")
    intent = await shop.reset(task, browser, seed=0)
    assert intent == task["intent"]
    answer = await ORACLES[template_id](browser, task["instantiation_dict"])
    result = await shop.evaluate(task, browser, answer)
    assert result.success and result.reward == 1.0, result.details


@in_browser
@pytest.mark.parametrize("template_id", sorted(ORACLES))
async def test_doing_nothing_or_answering_wrong_fails(shop: ShopEnvironment,
                                                     browser: BrowserSession,
                                                     template_id: int) -> None:
    task = by_template()[template_id][0]
    await shop.reset(task, browser, seed=0)
    answer = "" if template_id in CHANGES else "I could not find it (42)"
    result = await shop.evaluate(task, browser, answer)
    assert not result.success and result.reward == 0.0, result.details


@in_browser
async def test_login_form_and_reset_restores_the_seed(shop: ShopEnvironment,
                                                      browser: BrowserSession) -> None:
    anonymous = next(t for t in suite()["tasks"] if not t["require_login"])
    await shop.reset(anonymous, browser, seed=0)
    await browser.click(label="Sign In")
    await browser.type(label="Username", text=CUSTOMERS[0][0])
    button = await browser.find("Sign In", prefer=("button",))  # the header has a link too
    assert button is not None and button["role"] == "button"
    await browser.type(label="Password", text=CUSTOMERS[0][1])
    page = await browser.click(id=int(button["id"]))
    assert f"My Account ({CUSTOMERS[0][0]})" in page
    await browser.type(label="Phone number", text="555-9999")
    await browser.click(label="Save Account Information")
    await _open_product(browser, seed_data().products[0].name)
    assert "Cart (1)" in await browser.click(label="Add to Cart")

    started = time.perf_counter()
    shop.app.reset()  # type: ignore[union-attr]
    assert time.perf_counter() - started < 0.05
    login = next(t for t in suite()["tasks"] if t["require_login"])
    await shop.reset(login, browser, seed=0)
    page = await browser.goto(f"{shop.url}/account")
    assert 'value="555-0142"' in page and "Cart (0)" in page
    await shop.reset(anonymous, browser, seed=0)  # sessions are gone: signed out again
    assert "Sign In" in await browser.goto(f"{shop.url}/account")


def test_standalone_entry_point_has_help() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "agentforge.evals.envs.shop", "--help"],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
    assert "--port" in out.stdout
