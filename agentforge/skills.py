"""Skills: procedural memory as folders `skills/<name>/SKILL.md`.

A SKILL.md has YAML front matter (`name`, `description`, `parameters`: name → description,
`tools`, optional `template` like "log in to {url} as {username}") and a markdown body of
numbered steps. An optional fenced ```yaml block under `## Actions` lists replayable tool calls
(`- tool: browser_type` / `args: {label: Search, text: "{{query}}"}`) with `{{param}}`
placeholders that `bind` fills. A `tools.py` beside SKILL.md may define extra `@tool` functions.

Skills are retained as `Level.SKILL` memories (kind "workflow", doc id "skill:<name>") whose
metadata carries what the executor needs to replay them.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentforge.errors import InputError
from agentforge.llm.types import ToolCall
from agentforge.tools.base import Tool
from agentforge.types import Level, RetainResult

if TYPE_CHECKING:
    from agentforge.memory.engine import Memory

SKILL_FILE = "SKILL.md"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_FRONT = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)
_ACTIONS = re.compile(r"^##[ \t]+Actions[ \t]*$", re.MULTILINE)
_YAML_BLOCK = re.compile(r"^```ya?ml[ \t]*\n(.*?)^```[ \t]*$\n?", re.MULTILINE | re.DOTALL)
_HEADING = re.compile(r"^#{1,2}[ \t]", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_TEMPLATE_SLOT = re.compile(r"\{(\w+)\}")
_STEP = re.compile(r"^\s*\d+[.)]\s+(.*)$")


class SkillAction(BaseModel):
    """One replayable tool call; `args` go to the tool as they are, after placeholder binding."""

    model_config = ConfigDict(extra="forbid")

    tool: str
    args: dict[str, Any] = Field(default_factory=dict)


class Skill(BaseModel):
    name: str
    description: str
    parameters: dict[str, str] = Field(default_factory=dict)
    tools: list[str] = Field(default_factory=list)
    template: str | None = None
    body: str = ""  # markdown without the front matter and the Actions section
    actions: list[SkillAction] = Field(default_factory=list)
    path: Path | None = Field(default=None, exclude=True)  # the skill's folder, when loaded

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("a skill name is lowercase letters, digits, '-' or '_' (max 64)")
        return value

    @property
    def steps(self) -> list[str]:
        """The numbered steps of the body (indented continuation lines joined)."""
        steps: list[str] = []
        current: list[str] | None = None
        for line in self.body.splitlines():
            if m := _STEP.match(line):
                current = [m.group(1).strip()]
                steps.append("")
            elif current is not None and line.startswith((" ", "\t")) and line.strip():
                current.append(line.strip())
            else:
                current = None
                continue
            steps[-1] = " ".join(current)
        return steps

    def placeholders(self) -> set[str]:
        found: set[str] = set()
        for action in self.actions:
            _collect(action.args, found)
        return found

    def load_tools(self) -> list[Tool]:
        """The `@tool` functions of the skill's `tools.py` (none when it has no such file)."""
        if self.path is None or not (self.path / "tools.py").is_file():
            return []
        return load_tools_file(self.path / "tools.py", module_name=f"agentforge_skill_{self.name}")


def load_skill(path: str | Path) -> Skill:
    """Load `path` (a skill folder or its SKILL.md). Malformed files raise InputError naming the
    file and the problem."""
    path = Path(path)
    file = path / SKILL_FILE if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"{file}: no such skill file")
    text = file.read_text(encoding="utf-8")
    match = _FRONT.match(text)
    if not match:
        raise InputError(f"{file}: SKILL.md must start with YAML front matter between '---' lines")
    meta = _yaml(match.group(1), file, "front matter")
    if not isinstance(meta, dict):
        raise InputError(f"{file}: the front matter must be a YAML mapping (name: ..., ...)")
    body, actions = _split_actions(text[match.end() :], file)
    meta.setdefault("name", file.parent.name)
    params = meta.get("parameters") or {}
    if not isinstance(params, dict):
        raise InputError(f"{file}: parameters must be a mapping of name to description")
    meta["parameters"] = {str(k): "" if v is None else str(v) for k, v in params.items()}
    try:
        skill = Skill(**meta, body=body.strip(), actions=actions, path=file.parent)
    except (ValidationError, TypeError) as exc:
        raise InputError(f"{file}: invalid skill: {_errors(exc)}") from None
    _check_placeholders(skill, file)
    return skill


def discover_skills(root: str | Path) -> list[Skill]:
    """Every skill in the folders under `root` (sorted by name); duplicate names, and a `root`
    that is not a directory (a typo would otherwise leave the agent without its skills,
    silently), are errors."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such skills directory")
    skills: dict[str, Skill] = {}
    for file in sorted(root.glob(f"*/{SKILL_FILE}")):
        skill = load_skill(file)
        if skill.name in skills:
            raise InputError(f"{file}: a skill named {skill.name!r} is already defined")
        skills[skill.name] = skill
    return [skills[name] for name in sorted(skills)]


def bind(skill: Skill, params: Mapping[str, Any]) -> list[ToolCall]:
    """The skill's actions as tool calls with `{{param}}` placeholders filled. A placeholder
    that is a whole string keeps the parameter's type; inside text it is formatted in."""
    missing = [p for p in skill.parameters if p not in params]
    if missing:
        raise InputError(
            f"skill {skill.name!r} needs parameter(s) {', '.join(missing)} "
            f"(it takes: {', '.join(skill.parameters) or 'none'})"
        )
    unknown = sorted(set(params) - set(skill.parameters))
    if unknown:
        raise InputError(f"skill {skill.name!r} has no parameter(s) {', '.join(unknown)}")
    return [
        ToolCall(id=f"skill-{skill.name}-{i}", name=a.tool, arguments=_fill(a.args, params))
        for i, a in enumerate(skill.actions, start=1)
    ]


def skill_to_markdown(skill: Skill) -> str:
    """The SKILL.md text of a skill; `load_skill` of it gives the same skill back."""
    meta: dict[str, Any] = {"name": skill.name, "description": skill.description}
    if skill.parameters:
        meta["parameters"] = dict(skill.parameters)
    if skill.tools:
        meta["tools"] = list(skill.tools)
    if skill.template:
        meta["template"] = skill.template
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=100).strip()
    parts = [f"---\n{front}\n---\n", skill.body.strip() + "\n" if skill.body.strip() else ""]
    if skill.actions:
        dumped = yaml.safe_dump(
            [a.model_dump() for a in skill.actions],
            sort_keys=False,
            allow_unicode=True,
            width=100,
        )
        parts.append(f"\n## Actions\n\n```yaml\n{dumped}```\n")
    return "".join(parts)


def skill_text(skill: Skill) -> str:
    """What is embedded for recall: name, description, parameters and steps."""
    lines = [f"Skill {skill.name}: {skill.description}"]
    if skill.template:
        lines.append(f"Tasks like: {skill.template}")
    if skill.parameters:
        lines.append("Parameters: " + "; ".join(f"{k}: {v}" for k, v in skill.parameters.items()))
    lines += [f"{i}. {step}" for i, step in enumerate(skill.steps, start=1)]
    return "\n".join(lines)


def skill_metadata(skill: Skill) -> dict[str, Any]:
    """What memory keeps of a skill: what the executor replays, where it came from, its body."""
    return {
        "name": skill.name,
        "description": skill.description,
        "parameters": dict(skill.parameters),
        "actions": [a.model_dump() for a in skill.actions],
        "template": skill.template,
        "tools": list(skill.tools),
        "source": str(skill.path / SKILL_FILE) if skill.path else None,
        "body": skill.body,
    }


async def retain_skills(
    memory: Memory, skills: Iterable[Skill], namespace: str | None = None
) -> list[RetainResult]:
    """Retain each skill as a `Level.SKILL` memory (idempotent under doc id "skill:<name>")."""
    results = []
    for skill in skills:
        metadata = skill_metadata(skill)
        results.append(
            await memory.aretain(
                skill_text(skill),
                namespace=namespace,
                level=Level.SKILL,
                kind="workflow",
                title=skill.name,
                tags=["skill"],
                metadata=metadata,
                doc_id=f"skill:{skill.name}",
            )
        )
    return results


def load_tools_file(file: Path, *, module_name: str) -> list[Tool]:
    """Import a Python file and return the `Tool` objects it defines at module level."""
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise InputError(f"{file}: cannot import this file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise InputError(f"{file}: importing the skill's tools failed: {exc}") from exc
    return [value for value in vars(module).values() if isinstance(value, Tool)]


def _split_actions(body: str, file: Path) -> tuple[str, list[Any]]:
    """The body without its `## Actions` section, and the actions listed there."""
    heading = _ACTIONS.search(body)
    if heading is None:
        return body, []
    block = _YAML_BLOCK.search(body, heading.end())
    between = body[heading.end() : block.start()] if block else ""
    if block is None or _HEADING.search(between):
        raise InputError(f"{file}: the '## Actions' section needs a ```yaml block")
    actions = _yaml(block.group(1), file, "Actions block") or []
    if not isinstance(actions, list):
        raise InputError(f"{file}: the Actions block must be a YAML list of tool calls")
    return body[: heading.start()] + body[block.end() :], actions


def _check_placeholders(skill: Skill, file: Path) -> None:
    declared = set(skill.parameters)
    undeclared = sorted(skill.placeholders() - declared)
    if undeclared:
        raise InputError(f"{file}: actions use undeclared parameter(s) {', '.join(undeclared)}")
    if skill.template:
        slots = set(_TEMPLATE_SLOT.findall(skill.template))
        if slots - declared:
            raise InputError(
                f"{file}: the template uses undeclared parameter(s) "
                f"{', '.join(sorted(slots - declared))}"
            )


def _yaml(text: str, file: Path, what: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1} of the {what})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{file}: malformed YAML in the {what}{where}: {problem}") from None


def _errors(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'skill'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
    return str(exc)


def _collect(value: Any, found: set[str]) -> None:
    if isinstance(value, str):
        found.update(_PLACEHOLDER.findall(value))
    elif isinstance(value, dict):
        for v in value.values():
            _collect(v, found)
    elif isinstance(value, list):
        for v in value:
            _collect(v, found)


def _fill(value: Any, params: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value.strip())
        if whole:
            return params[whole.group(1)]
        return _PLACEHOLDER.sub(lambda m: str(params[m.group(1)]), value)
    if isinstance(value, dict):
        return {k: _fill(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, params) for v in value]
    return value
