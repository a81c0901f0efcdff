"""Extra tool of the fill-web-form skill: fill many fields of the current page's form in one
call, by their labels, and optionally submit it."""

from __future__ import annotations

import re

from agentforge.errors import Retry
from agentforge.tools import ToolContext, tool

FIELD_ROLES = ("textbox", "combobox", "checkbox", "switch", "radio")
YES = {"yes", "y", "true", "on", "checked", "1", "x"}


def parse_fields(fields: str) -> list[tuple[str, str]]:
    """("Label", "value") pairs of "Label: value" items, one per line (or separated by ';', or
    by ',' before the next "Label:")."""
    pairs = []
    for line in re.split(r"[;\n]|,\s*(?=[^,:]+:)", fields):
        if not line.strip():
            continue
        label, sep, value = line.partition(":")
        if not sep or not label.strip():
            raise Retry(f"form_fill: write each field as 'Label: value', not {line.strip()!r}")
        pairs.append((label.strip().lstrip("-* ").strip(), value.strip()))
    if not pairs:
        raise Retry("form_fill: no fields given; write one 'Label: value' per line")
    return pairs


@tool
async def form_fill(ctx: ToolContext, fields: str, submit: str | None = None) -> str:
    """Fill several fields of the form on the current page by their labels, then optionally
    submit it; returns the new observation.

    Args:
        fields: One "Field label: value" per line. Text fields get the value typed, dropdowns
            the option chosen; checkboxes are ticked for yes/true/on and cleared for no/false/off;
            for a group of radio buttons, the button named like the value is chosen.
        submit: The submit button's label ("Submit|Send" tries alternatives); empty to not submit.
    """
    session = await ctx.browser()
    for label, value in parse_fields(fields):
        item = await session.find(label, FIELD_ROLES)
        if item is None or item["role"] not in FIELD_ROLES:
            item = await session.find(value, ("radio",)) if value else None
            if item is None or item["role"] != "radio":
                names = [
                    i.get("name", "")
                    for i in (await session.snapshot())["items"]
                    if i.get("role") in FIELD_ROLES
                ]
                raise Retry(f"form_fill: no field labelled {label!r}; the form has: {names}")
        role = item["role"]
        if role == "combobox":
            await session.select(item["id"], value)
        elif role in ("checkbox", "switch"):
            if bool(item.get("checked")) != (value.lower() in YES):
                await session.click(item["id"])
        elif role == "radio":
            if not item.get("checked"):
                await session.click(item["id"])
        else:
            await session.type(item["id"], value)
    if submit:
        return await session.click(label=submit)
    return await session.observe()
