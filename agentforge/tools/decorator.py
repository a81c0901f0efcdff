"""`@tool`: a typed function with a Google-style docstring becomes a `Tool`.

The JSON schema comes from the signature (pydantic), each argument's description from the `Args:`
section. Mistakes fail at decoration time with `ConfigError`, not when the model first calls it.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from typing import Any, overload

from pydantic import ConfigDict, Field, create_model

from agentforge.errors import ConfigError
from agentforge.tools.base import Tool, ToolContext

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Returns|Return|Yields|Raises|Examples?|"
    r"Notes?|See Also|Warnings?|Todo):\s*$"
)
_ARG = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a `Tool` of a typed function: `@tool` or `@tool(name=..., description=...)`."""

    def wrap(f: Callable[..., Any]) -> Tool:
        return make_tool(f, name=name, description=description)

    return wrap(fn) if fn is not None else wrap


def make_tool(
    fn: Callable[..., Any], *, name: str | None = None, description: str | None = None
) -> Tool:
    tool_name = name or fn.__name__
    where = f"tool {tool_name} ({fn.__module__}.{fn.__qualname__})"
    if not _NAME.match(tool_name):
        raise ConfigError(f"{where}: a tool name is 1-64 letters, digits, '_' or '-'")
    doc = inspect.getdoc(fn)
    if not doc and not description:
        raise ConfigError(f"{where}: missing docstring (the model reads it to use the tool)")
    summary, arg_docs, returns = parse_docstring(doc or "")
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # NameError for an unresolvable forward reference, and others
        raise ConfigError(f"{where}: cannot resolve type hints: {exc}") from exc
    params = list(inspect.signature(fn).parameters.values())
    takes_ctx = bool(params) and params[0].name == "ctx"
    if takes_ctx:
        hint = hints.get("ctx")
        if not (isinstance(hint, type) and issubclass(hint, ToolContext)):
            raise ConfigError(f"{where}: the first parameter `ctx` must be annotated ToolContext")
        params = params[1:]
    fields: dict[str, Any] = {}
    names = []
    for i, p in enumerate(params):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise ConfigError(f"{where}: parameter {p.name!r} must be a plain named parameter")
        if p.name not in hints:
            raise ConfigError(f"{where}: parameter {p.name!r} has no type hint")
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[f"a{i}"] = (
            hints[p.name],
            Field(default, alias=p.name, description=arg_docs.get(p.name)),
        )
        names.append(p.name)
    unknown = set(arg_docs) - set(names) - {"ctx"}
    if unknown:
        raise ConfigError(f"{where}: the docstring documents unknown argument(s) {sorted(unknown)}")
    try:
        model = create_model(  # type: ignore[call-overload]
            f"{tool_name}_arguments",
            __config__=ConfigDict(extra="forbid", populate_by_name=False),
            **fields,
        )
        schema = model.model_json_schema(by_alias=True)
    except Exception as exc:  # pydantic cannot build a schema for some exotic type
        raise ConfigError(f"{where}: cannot build an argument schema: {exc}") from exc
    text = description or summary
    if returns and not description:
        text = f"{text}\n\nReturns: {returns}"
    return Tool(
        name=tool_name,
        description=text.strip(),
        parameters=_clean(schema),
        fn=fn,
        args_model=model,
        arg_names=tuple(names),
        takes_ctx=takes_ctx,
    )


def parse_docstring(doc: str) -> tuple[str, dict[str, str], str]:
    """(description, {argument: description}, returns) of a Google-style docstring."""
    summary: list[str] = []
    args: dict[str, str] = {}
    returns: list[str] = []
    section = None
    current: str | None = None
    base_indent: int | None = None
    for line in inspect.cleandoc(doc).splitlines():
        header = _SECTION.match(line.strip()) if not line.startswith(" ") else None
        if header:
            section, current, base_indent = header.group(1), None, None
            continue
        if section is None:
            summary.append(line)
        elif section in ("Args", "Arguments", "Parameters", "Params", "Keyword Args"):
            if not line.strip():
                continue
            indent = len(line) - len(line.lstrip())
            if base_indent is None:
                base_indent = indent
            match = _ARG.match(line.strip()) if indent <= base_indent else None
            if match:
                current = match.group(1).lstrip("*")
                args[current] = match.group(2).strip()
            elif current is not None:
                args[current] = f"{args[current]} {line.strip()}".strip()
        elif section in ("Returns", "Return", "Yields") and line.strip():
            returns.append(line.strip())
    return "\n".join(summary).strip(), args, " ".join(returns)


def _clean(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's generated titles (noise for the model); keep everything else."""
    schema = dict(schema)
    schema.pop("title", None)
    props = {}
    for key, value in schema.get("properties", {}).items():
        value = dict(value)
        value.pop("title", None)
        props[key] = value
    schema["properties"] = props
    schema.setdefault("type", "object")
    for definition in schema.get("$defs", {}).values():
        definition.pop("title", None)
    return schema
