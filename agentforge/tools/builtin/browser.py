"""Browser tools: thin @tool wrappers over the run's shared `BrowserSession` (`ctx.browser()`).

Every tool returns the page observation: URL, title and one line per visible element, interactive
ones under a numeric id (`[3] button "Submit"`). Element tools take that id, or a `label` (the
element's name) so that skills can replay them on pages whose ids they cannot know.
"""

from __future__ import annotations

from typing import Literal

from agentforge.tools.base import ToolContext
from agentforge.tools.builtin.browser_session import CHROMIUM_ARGS, BrowserSession, find_chromium
from agentforge.tools.decorator import tool

__all__ = [
    "BROWSER_TOOLS",
    "CHROMIUM_ARGS",
    "BrowserSession",
    "browser_back",
    "browser_click",
    "browser_goto",
    "browser_observe",
    "browser_press",
    "browser_scroll",
    "browser_select",
    "browser_type",
    "find_chromium",
]


# --- tools ------------------------------------------------------------------------------------


@tool
async def browser_goto(ctx: ToolContext, url: str) -> str:
    """Open a URL in the browser and return the page observation.

    The observation lists the page's visible elements, interactive ones under ids in brackets,
    e.g. `[3] button "Submit"`; the other browser tools take those ids.

    Args:
        url: The http(s) address to open.
    """
    return await (await ctx.browser()).goto(url)


@tool
async def browser_observe(ctx: ToolContext) -> str:
    """Return the current page observation (URL, title, elements with their ids)."""
    return await (await ctx.browser()).observe()


@tool
async def browser_click(ctx: ToolContext, id: int | None = None, label: str | None = None) -> str:
    """Click an element (button, link, checkbox, …) and return the new observation.

    Args:
        id: The element's id from the latest observation (the number in brackets).
        label: Instead of an id: the element's name as shown in quotes in the observation.
    """
    return await (await ctx.browser()).click(id, label=label)


@tool
async def browser_type(
    ctx: ToolContext,
    text: str,
    id: int | None = None,
    label: str | None = None,
    submit: bool = False,
) -> str:
    """Replace the content of a text field with `text` and return the new observation.

    Args:
        text: The text to enter (the field is cleared first).
        id: The text field's id from the latest observation.
        label: Instead of an id: the field's name as shown in quotes in the observation.
        submit: Press Enter afterwards (submits most forms and search boxes).
    """
    return await (await ctx.browser()).type(id, text, label=label, submit=submit)


@tool
async def browser_select(
    ctx: ToolContext, option: str, id: int | None = None, label: str | None = None
) -> str:
    """Choose an option of a dropdown (combobox) and return the new observation.

    Args:
        option: The option's text (or value) as listed in the observation.
        id: The dropdown's id from the latest observation.
        label: Instead of an id: the dropdown's name as shown in quotes in the observation.
    """
    return await (await ctx.browser()).select(id, option, label=label)


@tool
async def browser_scroll(
    ctx: ToolContext, direction: Literal["down", "up", "top", "bottom"] = "down"
) -> str:
    """Scroll the page and return the new observation.

    Args:
        direction: Where to scroll: "down" or "up" by most of a screen, or to the "top" or
            "bottom" of the page.
    """
    return await (await ctx.browser()).scroll(direction)


@tool
async def browser_press(ctx: ToolContext, key: str) -> str:
    """Press a key in the page (the focused element gets it) and return the new observation.

    Args:
        key: A key name such as "Enter", "Tab", "Escape", "ArrowDown" or "Control+A".
    """
    return await (await ctx.browser()).press(key)


@tool
async def browser_back(ctx: ToolContext) -> str:
    """Go back to the previous page and return its observation."""
    return await (await ctx.browser()).back()


BROWSER_TOOLS = [
    browser_goto,
    browser_observe,
    browser_click,
    browser_type,
    browser_select,
    browser_scroll,
    browser_press,
    browser_back,
]
