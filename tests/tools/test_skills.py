"""Skills: load, bind, export round trip, malformed files, tools.py, retain idempotence, and the
skills shipped in skills/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import select

from agentforge.errors import InputError
from agentforge.memory.engine import Memory
from agentforge.memory.records import MemoryRecord
from agentforge.skills import (
    Skill,
    bind,
    discover_skills,
    load_skill,
    retain_skills,
    skill_to_markdown,
)
from agentforge.types import Level

SHIPPED = Path(__file__).resolve().parents[2] / "skills"

CHECKOUT = """---
name: checkout
description: Buy one item in the demo shop.
parameters:
  item: The product name.
  quantity: How many.
tools: [browser_goto, browser_type, browser_click]
template: buy {quantity} of {item}
---
# Checkout

Some intro text.

1. Open the shop.
2. Search for the item and open it;
   pick the exact product.
3. Set the quantity and pay.

## Actions

```yaml
# replayed by the executor
- tool: browser_type
  args: {label: "Search", text: "{{item}}", submit: true}
- tool: browser_type
  args: {label: "Quantity", text: "{{quantity}}", note: "buy {{quantity}} x {{item}}"}
- tool: browser_click
  args: {label: Pay}
```

## Notes

Works on the demo shop only.
"""


def write(root: Path, name: str, text: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "SKILL.md").write_text(text)
    return folder


@pytest.fixture
async def memory() -> AsyncIterator[Memory]:
    mem = Memory.in_memory()
    yield mem
    mem.close()


def test_load_skill(tmp_path: Path) -> None:
    skill = load_skill(write(tmp_path, "checkout", CHECKOUT))
    assert skill.name == "checkout" and skill.description == "Buy one item in the demo shop."
    assert skill.parameters == {"item": "The product name.", "quantity": "How many."}
    assert skill.tools == ["browser_goto", "browser_type", "browser_click"]
    assert skill.template == "buy {quantity} of {item}"
    assert skill.steps == [
        "Open the shop.",
        "Search for the item and open it; pick the exact product.",
        "Set the quantity and pay.",
    ]
    assert [a.tool for a in skill.actions] == ["browser_type", "browser_type", "browser_click"]
    assert "## Actions" not in skill.body and "Works on the demo shop only." in skill.body
    assert skill.path == tmp_path / "checkout"
    assert load_skill(tmp_path / "checkout" / "SKILL.md") == skill


def test_bind_fills_placeholders_and_keeps_types(tmp_path: Path) -> None:
    skill = load_skill(write(tmp_path, "checkout", CHECKOUT))
    calls = bind(skill, {"item": "desk lamp", "quantity": 2})
    assert [c.name for c in calls] == ["browser_type", "browser_type", "browser_click"]
    assert calls[0].arguments == {"label": "Search", "text": "desk lamp", "submit": True}
    assert calls[1].arguments == {"label": "Quantity", "text": 2, "note": "buy 2 x desk lamp"}
    assert calls[2].arguments == {"label": "Pay"}
    assert calls[0].id == "skill-checkout-1"
    with pytest.raises(InputError, match=r"needs parameter\(s\) quantity"):
        bind(skill, {"item": "lamp"})
    with pytest.raises(InputError, match=r"has no parameter\(s\) colour"):
        bind(skill, {"item": "lamp", "quantity": 1, "colour": "red"})


def test_export_round_trips(tmp_path: Path) -> None:
    skill = load_skill(write(tmp_path, "checkout", CHECKOUT))
    text = skill_to_markdown(skill)
    again = load_skill(write(tmp_path / "out", "checkout", text))
    assert again.model_dump() == skill.model_dump()
    minimal = Skill(name="tiny", description="Nothing to it.", body="1. Do it.")
    back = load_skill(write(tmp_path / "out", "tiny", skill_to_markdown(minimal)))
    assert back.model_dump() == minimal.model_dump()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("no front matter\n", "must start with YAML front matter"),
        ("---\nname: [unclosed\n---\nbody\n", r"malformed YAML in the front matter \(line"),
        ("---\n- a list\n---\n", "must be a YAML mapping"),
        ("---\nname: x\n---\n", "description: Field required"),
        ("---\nname: Bad Name\ndescription: d\n---\n", "name: Value error, a skill name"),
        ("---\ndescription: d\nparameters: [a, b]\n---\n", "parameters must be a mapping"),
        ("---\ndescription: d\n---\n## Actions\n\nno block\n", "needs a ```yaml block"),
        (
            "---\ndescription: d\n---\n## Actions\n```yaml\n- tool: t\n  args: {a: '{{p}}'}\n```\n",
            r"undeclared parameter\(s\) p",
        ),
        (
            "---\ndescription: d\n---\n## Actions\n```yaml\n- tool: t\n  bogus: 1\n```\n",
            "bogus: Extra inputs are not permitted",
        ),
        ("---\ndescription: d\ntemplate: go to {url}\n---\n", "template uses undeclared"),
    ],
)
def test_malformed_files_name_the_file(tmp_path: Path, text: str, problem: str) -> None:
    folder = write(tmp_path, "broken", text)
    with pytest.raises(InputError, match=problem) as info:
        load_skill(folder)
    assert str(folder / "SKILL.md") in str(info.value)


def test_discover_and_duplicates(tmp_path: Path) -> None:
    write(tmp_path, "checkout", CHECKOUT)
    write(tmp_path, "other", "---\ndescription: Another.\n---\n1. Step.\n")
    assert [s.name for s in discover_skills(tmp_path)] == ["checkout", "other"]
    write(tmp_path, "copy", CHECKOUT)
    with pytest.raises(InputError, match="already defined"):
        discover_skills(tmp_path)
    with pytest.raises(InputError, match="no such skills directory"):
        discover_skills(tmp_path / "missing")  # a typo must not leave the agent without skills


def test_tools_py_beside_the_skill(tmp_path: Path) -> None:
    folder = write(tmp_path, "other", "---\ndescription: Another.\n---\n")
    (folder / "tools.py").write_text(
        "from agentforge.tools import tool\n\n"
        "@tool\ndef shout(text: str) -> str:\n"
        '    """Shout.\n\n    Args:\n        text: What.\n    """\n'
        "    return text.upper()\n"
    )
    tools = load_skill(folder).load_tools()
    assert [t.name for t in tools] == ["shout"]
    (folder / "tools.py").write_text("raise RuntimeError('nope')\n")
    with pytest.raises(InputError, match="importing the skill's tools failed: nope"):
        load_skill(folder).load_tools()


async def test_retain_skills_is_idempotent(tmp_path: Path, memory: Memory) -> None:
    skill = load_skill(write(tmp_path, "checkout", CHECKOUT))
    first = await retain_skills(memory, [skill], namespace="shop")
    second = await retain_skills(memory, [skill], namespace="shop")
    assert first[0].created == 1 and second[0].created == 0
    with memory.c.store.read() as s:
        rows = s.exec(select(MemoryRecord).where(MemoryRecord.level == Level.SKILL.value)).all()
    assert len(rows) == 1
    hit = (await memory.arecall("buy a desk lamp", namespace="shop", levels=[Level.SKILL])).hits[0]
    assert hit.kind == "workflow" and hit.doc_id == "skill:checkout" and hit.title == "checkout"
    assert hit.metadata["name"] == "checkout"
    assert hit.metadata["parameters"] == skill.parameters
    assert hit.metadata["template"] == "buy {quantity} of {item}"
    assert hit.metadata["actions"][0] == {
        "tool": "browser_type",
        "args": {"label": "Search", "text": "{{item}}", "submit": True},
    }
    assert hit.metadata["source"] == str(tmp_path / "checkout" / "SKILL.md")


def test_shipped_skills_load_and_bind() -> None:
    skills = {s.name: s for s in discover_skills(SHIPPED)}
    assert {"web-search-site", "fill-web-form", "login"} <= set(skills)
    for skill in skills.values():
        assert skill.steps and skill.description and skill.template
        assert skill_to_markdown(skill)  # exportable
        params = {name: f"<{name}>" for name in skill.parameters}
        calls = bind(skill, params)
        assert calls and calls[0].name == "browser_goto"
        assert calls[0].arguments == {"url": "<url>"}
    assert [t.name for t in skills["fill-web-form"].load_tools()] == ["form_fill"]
