"""End to end on real components: the scripted LLM drives the real browser tool (Debian Chromium)
on a shop served on loopback, with the real default memory (SQLite + embedded chroma + the ONNX
embedder). The second run's planner prompt carries the first run's lesson, and the recalled
lesson's utility moves with each outcome."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from agentforge.llm import Message, ScriptedLLM, ToolSpec
from agentforge.memory.engine import Memory
from agentforge.sdk import Forge
from agentforge.settings import Settings
from agentforge.tools.builtin.browser_session import find_chromium

pytestmark = pytest.mark.integration
PRICES = {"apple": "3 EUR", "pear": "4 EUR", "plum": "2 EUR"}
LESSON = "Search the shop before answering"


class Shop(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/search":
            q = parse_qs(url.query).get("q", [""])[0].strip().lower()
            body = (
                f"<h1>Results for {q}</h1><ul><li>{q.title()} costs {PRICES[q]}</li></ul>"
                if q in PRICES
                else f"<h1>No results for {q}</h1>"
            )
        else:
            body = (
                "<h1>Fruit shop</h1><form action='/search'>"
                "<label>Search <input name='q'></label><button>Go</button></form>"
            )
        data = f"<html><head><title>Shop</title></head><body>{body}</body></html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def shop() -> Iterator[str]:
    try:
        find_chromium()
    except Exception as exc:
        pytest.skip(f"Chromium is not installed: {exc}")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Shop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


class PriceCheck:
    """The environment's reward: the final answer must name the item's true price."""

    def __init__(self, item: str) -> None:
        self.item = item

    async def reward(self, state: dict[str, Any]) -> float:
        answer = (state.get("final") or {}).get("answer", "")
        return 1.0 if PRICES[self.item] in answer else 0.0


def shopper(url: str, item: str, *, misread: bool = False) -> ScriptedLLM:
    def reply(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> str | Message:
        head = messages[0].content or ""
        if "You are the planner" in head:
            return json.dumps(
                {"subgoals": ["open the shop", f"search for {item}", "read the price"]}
            )
        if "You are the executor" in head:
            done = [m for m in messages if m.role == "tool"]
            if not done:
                return ScriptedLLM.tool_call("browser_goto", url=url)
            price = re.search(r"\d+ EUR", done[-1].content or "")
            if price is None:  # not on a results page yet: search
                return ScriptedLLM.tool_call("browser_type", label="Search", text=item, submit=True)
            answer = "1 EUR" if misread else price.group(0)
            return ScriptedLLM.tool_call("finish", answer=f"{item} costs {answer}")
        return json.dumps(
            {
                "items": [
                    {
                        "title": LESSON,
                        "description": "Prices are on the search results page of the shop.",
                        "content": "Type the product into the Search box, submit, read the price "
                        "from the results before answering.",
                    }
                ]
            }
        )

    return ScriptedLLM(reply)


def test_browser_task_learns_across_runs(tmp_path: Path, shop: str) -> None:
    settings = Settings(home=tmp_path)
    memory = Memory.from_settings(settings)
    try:

        def run(item: str, llm: ScriptedLLM) -> Any:
            agent = Forge(model=llm, memory=memory, tools=["browser"], settings=settings)
            return agent.run(
                f"What does a {item} cost in the shop at {shop}?", environment=PriceCheck(item)
            )

        first = run("apple", shopper(shop, "apple"))
        assert first.outcome == "success" and first.answer == "apple costs 3 EUR"
        actions = [s for s in first.steps if s["type"] == "action"]
        assert [a["tool"] for a in actions] == ["browser_goto", "browser_type"]
        assert "Apple costs 3 EUR" in actions[-1]["observation"]  # the real page, observed
        lesson = memory.recall(LESSON, levels=["experience"], k=1, log=False).hits[0]
        assert lesson.title == LESSON and lesson.utility == 0.5

        llm = shopper(shop, "pear")
        second = run("pear", llm)
        planner_prompt = next(
            c.messages[0].content
            for c in llm.calls
            if "You are the planner" in (c.messages[0].content or "")
        )
        assert LESSON in planner_prompt
        assert second.outcome == "success"
        after_success = memory.c.store.get(lesson.id)
        assert after_success.successes == 1 and after_success.utility > 0.5

        third = run("plum", shopper(shop, "plum", misread=True))
        assert third.outcome == "failure"
        after_failure = memory.c.store.get(lesson.id)
        assert after_failure.failures == 1 and after_failure.utility < after_success.utility
        tools = {r.name: r for r in memory.c.store.tools("default")}
        assert tools["browser_type"].successes >= 3
        assert memory.check()["ok"]
    finally:
        memory.close()


SKILL = """---
name: shop-price
description: Find a product's price with the shop's search box.
parameters:
  url: the shop's address
  item: the product
template: "What does a {item} cost in the shop at {url}?"
---
1. Open the shop.
2. Search for the item and read the price.

## Actions

```yaml
- tool: browser_goto
  args: {url: "{{url}}"}
- tool: browser_type
  args: {label: "%s", text: "{{item}}", submit: true}
```
"""


@pytest.mark.parametrize("label, replayed", [("Search", 2), ("No such field", 1)])
def test_matching_skill_is_replayed_with_bound_parameters_and_falls_back_to_the_model(
        tmp_path: Path, shop: str, label: str, replayed: int) -> None:
    skill_dir = tmp_path / "skills" / "shop-price"
    skill_dir.mkdir(parents=True)
    (skill_dir / "SKILL.md").write_text(SKILL % label)
    settings = Settings(home=tmp_path / "home")
    memory = Memory.from_settings(settings)
    try:
        llm = shopper(shop, "pear")
        agent = Forge(model=llm, memory=memory, tools=["browser"], settings=settings,
                      skills=[tmp_path / "skills"])
        result = agent.run(f"What does a pear cost in the shop at {shop}?",
                           environment=PriceCheck("pear"))
        actions = [s for s in result.steps if s["type"] == "action"]
        assert [a["replayed_skill"] for a in actions[:replayed]] == ["shop-price"] * replayed
        assert actions[0]["arguments"] == {"url": shop}
        assert result.outcome == "success" and result.answer == "pear costs 4 EUR"
        executor_calls = sum("You are the executor" in (c.messages[0].content or "")
                             for c in llm.calls)
        # replayed actions cost no model call; a broken replay step hands over to the model
        assert executor_calls == (1 if replayed == 2 else 2)
    finally:
        memory.close()
