"""@tool: schemas from signatures and docstrings, ctx injection, decoration-time failures,
argument validation as Retry."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field

from agentforge.errors import ConfigError, Retry, ToolError
from agentforge.llm.types import ToolSpec
from agentforge.tools import Tool, ToolContext, tool


class Point(BaseModel):
    x: int
    y: int


@tool
async def search(
    ctx: ToolContext,
    query: str,
    limit: int = 5,
    mode: Literal["fast", "deep"] = "fast",
    tags: list[str] | None = None,
) -> str:
    """Search the catalogue.

    Longer explanation of what the search covers.

    Args:
        query: What to look for.
        limit: How many results
            to return at most.
        mode: Search strategy.
        tags: Only items with these tags.

    Returns:
        The matching items, one per line.
    """
    return f"{ctx.run_id}:{query}:{limit}:{mode}:{tags}"


@tool(name="add_numbers", description="Add two numbers.")
def add(a: int, b: Annotated[float, Field(ge=0)] = 1.0) -> float:
    return a + b


@tool
def place(point: Point) -> str:
    """Place a point.

    Args:
        point: Where.
    """
    return f"{point.x},{point.y}"


def test_schema_types_defaults_and_descriptions() -> None:
    assert isinstance(search, Tool)
    schema = search.parameters
    assert schema["type"] == "object"
    assert schema["required"] == ["query"]
    props = schema["properties"]
    assert list(props) == ["query", "limit", "mode", "tags"]  # ctx is not shown
    assert props["query"] == {"type": "string", "description": "What to look for."}
    assert props["limit"]["type"] == "integer" and props["limit"]["default"] == 5
    assert props["limit"]["description"] == "How many results to return at most."
    assert props["mode"]["enum"] == ["fast", "deep"]
    assert props["tags"]["anyOf"][0] == {"type": "array", "items": {"type": "string"}}
    assert "title" not in schema and all("title" not in p for p in props.values())
    assert search.description.startswith("Search the catalogue.\n\nLonger explanation")
    assert "Returns: The matching items, one per line." in search.description
    assert "Args:" not in search.description


def test_spec_and_overrides() -> None:
    spec = add.spec()
    assert isinstance(spec, ToolSpec)
    assert spec.name == "add_numbers" and spec.description == "Add two numbers."
    assert spec.parameters["properties"]["b"]["minimum"] == 0
    assert not add.takes_ctx and search.takes_ctx


def test_nested_models_in_schema() -> None:
    assert "$defs" in place.parameters or "properties" in place.parameters["properties"]["point"]


async def test_invoke_injects_ctx_and_runs_sync_and_async(tmp_path) -> None:
    ctx = ToolContext(workspace=tmp_path, run_id="r1")
    assert await search(ctx, {"query": "lamp"}) == "r1:lamp:5:fast:None"
    assert await search.invoke(ctx, {"query": "x", "limit": "3"}) == "r1:x:3:fast:None"  # lax
    assert await add(None, {"a": 2}) == 3.0
    assert await place(None, {"point": {"x": 1, "y": 2}}) == "1,2"
    with pytest.raises(ToolError, match="needs a ToolContext"):
        await search(None, {"query": "x"})


async def test_invalid_arguments_become_retry_text(tmp_path) -> None:
    ctx = ToolContext(workspace=tmp_path)
    with pytest.raises(Retry) as info:
        await search(ctx, {"limit": "many", "colour": "red"})
    text = str(info.value)
    assert text.startswith("invalid arguments for search:")
    assert "missing required argument 'query'" in text
    assert "'limit': Input should be a valid integer" in text and "'many'" in text
    assert "unexpected argument 'colour'" in text
    assert "Expected {query: string, limit?: integer" in text
    with pytest.raises(Retry, match="must be a JSON object"):
        await search(ctx, ["lamp"])  # type: ignore[arg-type]
    with pytest.raises(Retry, match="Input should be 'fast' or 'deep'"):
        await search(ctx, {"query": "x", "mode": "slow"})
    with pytest.raises(Retry, match="greater than or equal to 0"):
        await add(None, {"a": 1, "b": -1})


def test_missing_type_hint_fails_at_decoration() -> None:
    with pytest.raises(ConfigError, match="parameter 'b' has no type hint"):

        @tool
        def bad(a: int, b) -> int:  # type: ignore[no-untyped-def]
            """Bad.

            Args:
                a: A.
                b: B.
            """
            return a


def test_missing_docstring_fails_at_decoration() -> None:
    with pytest.raises(ConfigError, match="missing docstring"):

        @tool
        def nodoc(a: int) -> int:
            return a


def test_other_decoration_errors() -> None:
    with pytest.raises(ConfigError, match="documents unknown argument"):

        @tool
        def typo(query: str) -> str:
            """Typo.

            Args:
                qeury: Misspelt.
            """
            return query

    with pytest.raises(ConfigError, match="must be annotated ToolContext"):

        @tool
        def wrong_ctx(ctx: int, a: int) -> int:
            """Wrong ctx."""
            return a

    with pytest.raises(ConfigError, match="plain named parameter"):

        @tool
        def star(*args: int) -> int:
            """Star."""
            return 0

    with pytest.raises(ConfigError, match="tool name"):
        tool(name="has space", description="x")(lambda: None)
