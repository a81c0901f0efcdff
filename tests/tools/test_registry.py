"""ToolRegistry: registration, specs, and selection of the few tools a task needs, ranked by
tool memory (recalled descriptions + success rate)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlmodel import select

from agentforge.errors import ConfigError
from agentforge.memory.engine import Memory
from agentforge.memory.records import MemoryRecord
from agentforge.tools import Tool, ToolRegistry, tool
from agentforge.types import Level

TOPICS = {
    "send_email": "Send an email message to a recipient with a subject and body.",
    "weather_forecast": "Get the weather forecast (temperature, rain) for a city.",
    "currency_convert": "Convert an amount of money between currencies at today's rate.",
    "calendar_add": "Add an event to the calendar at a date and time.",
    "translate_text": "Translate text from one language into another language.",
    "stock_quote": "Look up the current share price of a stock ticker.",
    "map_directions": "Get driving or walking directions between two places on a map.",
    "pdf_extract": "Extract the text of a PDF document.",
    "image_resize": "Resize an image file to a width and height in pixels.",
    "unit_convert": "Convert units of measurement such as miles to kilometres.",
    "dictionary_define": "Look up the definition of an English word in the dictionary.",
    "news_headlines": "Fetch today's news headlines on a topic.",
}


def make(name: str, description: str) -> Tool:
    def fn(query: str) -> str:
        return name

    return tool(name=name, description=description)(fn)


@pytest.fixture
async def memory() -> AsyncIterator[Memory]:
    mem = Memory.in_memory()
    yield mem
    mem.close()


def many() -> ToolRegistry:
    return ToolRegistry(make(n, d) for n, d in TOPICS.items())


def test_registry_basics() -> None:
    reg = many()
    assert len(reg) == 12 and "send_email" in reg and "fax" not in reg
    assert reg.names()[:2] == ["send_email", "weather_forecast"]
    assert reg.get("fax") is None and reg["pdf_extract"].name == "pdf_extract"
    assert [s.name for s in reg.specs()] == reg.names()
    with pytest.raises(ConfigError, match="already registered"):
        reg.add(make("send_email", "again"))
    reg.add(make("send_email", "replacement"), replace=True)
    assert reg["send_email"].description == "replacement"
    with pytest.raises(ConfigError, match="decorate the function with @tool"):
        reg.add(lambda: None)  # type: ignore[arg-type]


async def test_few_tools_are_all_offered(memory: Memory) -> None:
    reg = ToolRegistry([make("a_tool", "A."), make("b_tool", "B.")])
    assert [t.name for t in await reg.aselect("anything", 5, memory)] == ["a_tool", "b_tool"]
    assert [t.name for t in reg.select("anything", 2)] == ["a_tool", "b_tool"]


def test_sync_select_ranks_by_word_overlap() -> None:
    top = many().select("what will the weather be in Paris tomorrow, rain?", 3)
    assert top[0].name == "weather_forecast" and len(top) == 3


async def test_select_ranks_by_tool_memory(memory: Memory) -> None:
    reg = many()
    top = await reg.aselect("translate this sentence into another language", 3, memory)
    assert len(top) == 3 and top[0].name == "translate_text"
    top = await reg.aselect("email the report to Bob with a short subject", 3, memory)
    assert top[0].name == "send_email"
    # descriptions were retained once each as tool memory, idempotently
    await reg.aselect("convert currencies", 3, memory)
    assert await ToolRegistry(reg).remember(memory) == 12  # a new registry rewrites (no-op)
    with memory.c.store.read() as s:
        rows = s.exec(select(MemoryRecord).where(MemoryRecord.level == Level.TOOL.value)).all()
    assert sorted(r.doc_id for r in rows) == sorted(f"tool:{n}" for n in TOPICS)
    assert {r.kind for r in rows} == {"tool_description"}
    assert {r.status for r in rows} == {"active"}


async def test_success_rate_breaks_ties(memory: Memory) -> None:
    reg = many()
    reg.add(make("convert_a", "Convert an amount between currencies."))
    reg.add(make("convert_b", "Convert an amount between currencies."))
    for _ in range(6):
        await memory.arecord_tool_call("convert_a", success=False, latency_ms=5, error="boom")
        await memory.arecord_tool_call("convert_b", success=True, latency_ms=5)
    top = [t.name for t in await reg.aselect("convert an amount between currencies", 5, memory)]
    assert top[0] == "convert_b"  # same description: the reliable one first
    assert top.index("convert_b") < top.index("currency_convert") < top.index("convert_a")


async def test_select_without_memory_falls_back_to_words() -> None:
    top = await many().aselect("resize this image to 200 pixels", 2)
    assert top[0].name == "image_resize"
