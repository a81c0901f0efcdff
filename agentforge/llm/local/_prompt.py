"""Prompt building, output grammars and tool-call parsing for the local llama.cpp provider.

Tool calls use the hermes convention that Qwen2.5 (and many other open models) were trained on:
the tools are listed in the system prompt inside <tools></tools>, and the model answers with
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks. When the model's own chat
template renders tools we pass them to it; otherwise we write that system block ourselves.

Grammars are GBNF built with llama.cpp's JSON-schema converter; `llama_cpp` is imported lazily.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from agentforge.errors import LLMError
from agentforge.llm.types import Message, ToolCall, ToolSpec

_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)

TOOLS_SYSTEM_BLOCK = """# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{tools}
</tools>

For each function call, return a json object with function name and arguments within \
<tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""


def openai_tool(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def _call_json(call: ToolCall) -> str:
    return json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)


def template_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages for a chat template that renders tools itself (HF convention: dict arguments)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        item: dict[str, Any] = {"role": message.role, "content": message.content or ""}
        if message.tool_calls:
            item["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in message.tool_calls
            ]
        if message.role == "tool":
            item["tool_call_id"] = message.tool_call_id
            if message.name:
                item["name"] = message.name
        out.append(item)
    return out


def plain_messages(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """Messages for a template that knows nothing of tools: the tools go into the system prompt,
    earlier tool calls and results become hermes-style text."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            text = f"<tool_response>\n{message.content or ''}\n</tool_response>"
            if out and out[-1]["role"] == "user" and out[-1].get("_tool_results"):
                out[-1]["content"] += "\n" + text
            else:
                out.append({"role": "user", "content": text, "_tool_results": True})
            continue
        content = message.content or ""
        for call in message.tool_calls or []:
            content += f"\n<tool_call>\n{_call_json(call)}\n</tool_call>"
        out.append({"role": message.role, "content": content.strip()})
    for item in out:
        item.pop("_tool_results", None)
    if tools:
        block = TOOLS_SYSTEM_BLOCK.format(
            tools="\n".join(json.dumps(openai_tool(t), ensure_ascii=False) for t in tools)
        )
        if out and out[0]["role"] == "system":
            out[0]["content"] = f"{out[0]['content']}\n\n{block}".strip()
        else:
            out.insert(0, {"role": "system", "content": block})
    return out


# -- grammars ---------------------------------------------------------------------------------


def _own_defs(schema: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A copy of `schema` whose local definitions are renamed `<prefix>-<name>`: the converter
    names rules after the last part of a $ref, so two tools' `$defs/Item` must not meet."""
    text = json.dumps(schema)
    for key in ("$defs", "definitions"):
        for name in schema.get(key, {}) if isinstance(schema.get(key), dict) else {}:
            text = text.replace(
                json.dumps(f"#/{key}/{name}"), json.dumps(f"#/{key}/{prefix}-{name}")
            )
    copy: dict[str, Any] = _tighten(json.loads(text))
    for key in ("$defs", "definitions"):
        if isinstance(copy.get(key), dict):
            copy[key] = {f"{prefix}-{name}": value for name, value in copy[key].items()}
    return copy


_MAX_ENUM_SPAN = 256
_MAX_GRAMMAR_LENGTH = 64


def _integer_bounds(node: dict[str, Any]) -> tuple[int, int] | None:
    low, high = node.get("minimum"), node.get("maximum")
    if isinstance(node.get("exclusiveMinimum"), int | float):
        low = math.floor(node["exclusiveMinimum"]) + 1
    if isinstance(node.get("exclusiveMaximum"), int | float):
        high = math.ceil(node["exclusiveMaximum"]) - 1
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        return None
    return math.ceil(low), math.floor(high)


def _tighten(node: Any) -> Any:
    """The converter ignores numeric bounds: a bounded integer with a small range becomes an
    enum, which it does enforce. (Other bounds are checked after generation, see
    `schema_error`.)"""
    if isinstance(node, list):
        return [_tighten(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _tighten(value) for key, value in node.items()}
    # string lengths become nested repetitions in GBNF: a maxLength of ~1000 overflows llama.cpp's
    # grammar parser (it crashed the process); long bounds are checked after generation instead
    if out.get("type") == "string" and out.get("maxLength", 0) > _MAX_GRAMMAR_LENGTH:
        out.pop("maxLength")
        out.pop("minLength", None)
    bounds = _integer_bounds(out) if out.get("type") == "integer" and "enum" not in out else None
    if bounds is not None and 0 <= bounds[1] - bounds[0] < _MAX_ENUM_SPAN:
        return {"enum": list(range(bounds[0], bounds[1] + 1))}
    return out


def schema_error(value: Any, schema: dict[str, Any]) -> str | None:
    """Why `value` does not match `schema` (None if it does, or if jsonschema is missing)."""
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - installed with litellm
        return None
    validator = jsonschema.validators.validator_for(schema, jsonschema.Draft202012Validator)
    error = jsonschema.exceptions.best_match(validator(schema).iter_errors(value))
    return (
        None if error is None else f"{'/'.join(map(str, error.path)) or '(root)'}: {error.message}"
    )


def _visit(converter: Any, schema: dict[str, Any], name: str) -> str:
    """Add the rules of `schema` (with its own $defs) to the converter; return its rule name."""
    resolved = converter.resolve_refs(_own_defs(schema, name), name)
    return str(converter.visit(resolved, name))


def _tool_rule(converter: Any, tool: ToolSpec, index: int) -> str:
    name = f"call{index}"
    try:
        arguments = converter.resolve_refs(_own_defs(tool.parameters, name), name)
        schema = {
            "type": "object",
            "properties": {"name": {"const": tool.name}, "arguments": arguments},
            "required": ["name", "arguments"],
        }
        return str(converter.visit(schema, name))
    except Exception:  # a schema the converter cannot express: any JSON object will do
        schema = {
            "type": "object",
            "properties": {"name": {"const": tool.name}, "arguments": {"type": "object"}},
            "required": ["name", "arguments"],
        }
        return str(converter.visit(schema, f"{name}-any"))


def build_grammar(
    tools: Sequence[ToolSpec] = (), response_schema: dict[str, Any] | None = None
) -> str:
    """GBNF whose root is a `<tool_call>` block calling one of `tools` with arguments valid for
    that tool's schema, or (also, if given) a JSON value valid for `response_schema`."""
    from llama_cpp.llama_grammar import SchemaConverter

    converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    alternatives = []
    if tools:
        calls = " | ".join(_tool_rule(converter, tool, i) for i, tool in enumerate(tools))
        alternatives.append(rf'"<tool_call>\n" ( {calls} ) "\n</tool_call>"')
    if response_schema is not None:
        alternatives.append(_visit(converter, response_schema, "response"))
    if not alternatives:
        raise ValueError("build_grammar needs tools or a response schema")
    return converter.format_grammar() + "\nroot ::= " + " | ".join(alternatives) + "\n"


# -- parsing ----------------------------------------------------------------------------------


def invalid(model: str, what: str, raw: str) -> LLMError:
    line = " ".join(raw.split())
    return LLMError(
        f"{model} returned an invalid {what}: {line[:300]}",
        model=model,
        kind="invalid_output",
        retryable=True,
    )


def _loads(raw: str) -> Any:
    """JSON, also when wrapped in one extra pair of braces: Qwen2.5-Coder's chat template shows
    the call format as `{{"name": ...}}`, and the model copies it."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        if raw.startswith("{{") and raw.endswith("}}"):
            return json.loads(raw[1:-1])
        raise


def _as_call(model: str, raw: str, index: int) -> ToolCall:
    try:
        data = _loads(raw)
    except json.JSONDecodeError:
        raise invalid(model, "tool call", raw) from None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise invalid(model, "tool call", raw)
    arguments = data.get("arguments", data.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            raise invalid(model, "tool call", raw) from None
    if not isinstance(arguments, dict):
        raise invalid(model, "tool call", raw)
    return ToolCall(id=f"call_{index}", name=data["name"], arguments=arguments)


def _bare_call(text: str, tools: Sequence[ToolSpec]) -> str | None:
    """The first `{"name": <a known tool>, "arguments": {...}}` object a reply starts with
    (possibly in a ```json fence): small models often call tools like that instead of using the
    tags, and sometimes write several calls in a row (only the first is acted on)."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    candidate = fenced.group(1).strip() if fenced else stripped
    if not candidate.startswith("{"):
        return None
    try:
        data, end = json.JSONDecoder().raw_decode(candidate)
    except json.JSONDecodeError:
        try:
            data, end = _loads(candidate), len(candidate)
        except json.JSONDecodeError:
            return None
    names = {tool.name for tool in tools}
    if isinstance(data, dict) and data.get("name") in names and "arguments" in data:
        return candidate[:end]
    return None


def parse_reply(
    model: str, text: str, tools: Sequence[ToolSpec]
) -> tuple[str | None, list[ToolCall] | None]:
    """(content, tool calls) of a reply: `<tool_call>` blocks become ToolCalls (ids `call_<i>`),
    the remaining text the content. Malformed JSON in a block is a retryable LLMError."""
    if not tools:
        return (text.strip() or None), None
    blocks = _TOOL_CALL.findall(text)
    if not blocks:
        bare = _bare_call(text, tools)
        if bare is None:
            return (text.strip() or None), None
        blocks, text = [bare], ""
    calls = [_as_call(model, raw, i) for i, raw in enumerate(blocks) if raw.strip()]
    content = _TOOL_CALL.sub("", text).strip() or None
    return content, calls or None


def check_structured(
    model: str,
    calls: list[ToolCall] | None,
    tools: Sequence[ToolSpec],
    content: str | None,
    schema: dict[str, Any] | None,
) -> None:
    """The grammar cannot express every JSON-schema keyword (number bounds, some formats):
    check grammar-constrained output against the schemas, a retryable LLMError if it fails."""
    by_name = {tool.name: tool for tool in tools}
    for call in calls or []:
        problem = schema_error(call.arguments, by_name[call.name].parameters)
        if problem:
            raise invalid(model, f"call of {call.name!r} ({problem})", json.dumps(call.arguments))
    if schema is not None and not calls:
        try:
            value = json.loads(content or "")
        except json.JSONDecodeError:
            raise invalid(model, "JSON reply", content or "") from None
        problem = schema_error(value, schema)
        if problem:
            raise invalid(model, f"JSON reply ({problem})", content or "")
