"""The in-process llama.cpp provider: `local/...` model ids run a GGUF model, no server.

    llm = LocalLlamaModel("local/default")               # the model `agentforge models pull` got
    llm = LocalLlamaModel("models/qwen2.5-0.5b-instruct-q4_k_m.gguf", n_ctx=8192)

- `llama_cpp` is imported on the first call. One loaded model is kept per (file, n_ctx,
  chat_format) per process; calls run one at a time in a worker thread (llama.cpp is not
  thread-safe), and `ModelSettings.timeout` bounds the whole call (queueing, loading, prompt,
  generation; not a first hub download): past it the call raises `LLMError(kind="timeout")` at
  once and generation stops at the next token (a prompt already being evaluated runs to its end in
  the background, holding the model until then).
- Tools: the prompt comes from the model's own chat template (Qwen2.5 renders hermes-style tools
  itself; for other templates the tools go into the system prompt). A forced tool call
  (`tool_choice` "required" or a tool name) is constrained by a grammar, so even a weak model
  returns a call whose arguments are valid for that tool's schema; with "auto" the model's
  `<tool_call>` blocks are parsed from its text. A `response_format` JSON schema is enforced the
  same way. Usage is llama.cpp's real token count; cost is 0.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentforge.errors import ConfigError, LLMError
from agentforge.llm.base import LLM
from agentforge.llm.guard import check_model_request
from agentforge.llm.local._prompt import (
    build_grammar,
    check_structured,
    invalid,
    openai_tool,
    parse_reply,
    plain_messages,
    template_messages,
)
from agentforge.llm.local.catalog import models_dir as default_models_dir
from agentforge.llm.local.locate import ModelRef, hub_file, parse_model_id
from agentforge.llm.scripted import response_schema
from agentforge.llm.types import Message, ModelResponse, ModelSettings, ToolSpec, Usage

DEFAULT_TEMPERATURE = 0.2
_SETTINGS_FIELDS = frozenset(ModelSettings.model_fields)


# -- loaded models, shared per process ----------------------------------------------------------


@dataclass
class LoadedModel:
    llama: Any
    formatter: Any
    renders_tools: bool
    lock: threading.Lock


_LOADED: dict[tuple[str, int, str | None], LoadedModel] = {}
_LOAD_LOCK = threading.Lock()
_EXECUTOR: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    """One worker for all local models: they compete for the same CPU cores anyway."""
    global _EXECUTOR
    with _LOAD_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentforge-llama")
        return _EXECUTOR


def clear_model_cache() -> None:
    """Forget every loaded model (they are freed once no call uses them)."""
    with _LOAD_LOCK:
        _LOADED.clear()


def _token_text(llama: Any, token: int) -> str:
    if token < 0:
        return ""
    return bytes(llama.detokenize([token], special=True)).decode("utf-8", errors="ignore")


def _formatter(llama: Any, chat_format: str | None) -> tuple[Any, bool]:
    """(formatter, renders_tools): the GGUF's own chat template unless `chat_format` is a Jinja
    template or the name of a llama-cpp-python format (e.g. "chatml")."""
    from llama_cpp import llama_chat_format

    if chat_format and "{%" in chat_format:
        template: str | None = chat_format
    elif chat_format:
        template = None
    else:
        template = llama.metadata.get("tokenizer.chat_template")
    if template:
        eos = llama.token_eos()
        formatter = llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=_token_text(llama, eos),
            bos_token=_token_text(llama, llama.token_bos()),
            stop_token_ids=[eos] if eos >= 0 else None,
        )
        return formatter, "tools" in template
    name = chat_format or "chatml"
    for attr in (f"format_{name.replace('-', '_')}", f"format_{name.replace('-', '')}"):
        function = getattr(llama_chat_format, attr, None)
        if callable(function):
            return function, False
    raise ConfigError(
        f"unknown chat_format {name!r}: use a llama-cpp-python format name such as "
        f"'chatml' or 'llama-3', or a Jinja chat template"
    )


def load_model(
    path: Path, *, n_ctx: int, n_threads: int, chat_format: str | None = None
) -> LoadedModel:
    """The loaded model for this file and settings, loading it on first use."""
    key = (str(path), n_ctx, chat_format)
    with _LOAD_LOCK:
        if key in _LOADED:
            return _LOADED[key]
    from llama_cpp import Llama

    try:
        llama = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise ConfigError(
            f"could not load the GGUF model {path}: {exc} (is it a complete .gguf file?)",
            model=str(path),
        ) from exc
    formatter, renders_tools = _formatter(llama, chat_format)
    with _LOAD_LOCK:
        return _LOADED.setdefault(
            key, LoadedModel(llama, formatter, renders_tools, threading.Lock())
        )


# -- one call -------------------------------------------------------------------------------------


class _Deadline:
    """A llama.cpp stopping criterion: stop at the next token once the call is out of time."""

    def __init__(self, at: float) -> None:
        self.at = at
        self.cancelled = threading.Event()
        self.hit = False

    def expired(self) -> bool:
        return self.cancelled.is_set() or time.monotonic() > self.at

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        self.hit = self.hit or self.expired()
        return self.hit


@dataclass(frozen=True)
class _Plan:
    """What one call asks of the model: the tools it sees, the tools it must call, the schema."""

    tools: tuple[ToolSpec, ...]
    forced: tuple[ToolSpec, ...]
    schema: dict[str, Any] | None

    def grammar(self) -> str | None:
        if self.forced:
            return build_grammar(self.forced)
        if self.schema is not None:
            return build_grammar(self.tools, self.schema)
        return None


class LocalLlamaModel(LLM):
    """A GGUF model run in-process by llama.cpp (`pip install agentforge[local]`).

    `path_or_repo` is a `local/...` model id (see `agentforge.llm.local.locate`), the same without
    the `local/` prefix, or a `Path`. Keyword arguments naming `ModelSettings` fields are default
    settings (per-call settings win). `models_dir` defaults to `<AGENTFORGE_HOME>/models`.
    """

    def __init__(
        self,
        path_or_repo: str | Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        chat_format: str | None = None,
        models_dir: Path | None = None,
        **defaults: Any,
    ) -> None:
        unknown = sorted(set(defaults) - _SETTINGS_FIELDS)
        if unknown:
            raise ConfigError(f"unknown option(s) for a local model: {', '.join(unknown)}")
        if isinstance(path_or_repo, Path):
            if not path_or_repo.is_file():
                raise ConfigError(f"model file not found: {path_or_repo}")
            self.ref = ModelRef(f"local/{path_or_repo}", path=path_or_repo.resolve())
        else:
            directory = models_dir if models_dir is not None else default_models_dir()
            self.ref = parse_model_id(str(path_or_repo), directory)
        self.model_id = self.ref.model_id
        self.n_ctx = n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self.chat_format = chat_format
        self.defaults = ModelSettings(**defaults)

    @property
    def path(self) -> Path | None:
        """The GGUF file, or None for a hub model not downloaded yet."""
        return self.ref.path

    def _plan(self, tools: Sequence[ToolSpec], settings: ModelSettings) -> _Plan:
        choice = settings.tool_choice or "auto"
        visible = tuple(tools) if choice != "none" else ()
        forced: tuple[ToolSpec, ...] = ()
        if visible and choice == "required":
            forced = visible
        elif visible and choice != "auto":
            forced = tuple(t for t in visible if t.name == choice)
            if not forced:
                raise LLMError(
                    f"tool_choice names unknown tool {choice!r}; tools: "
                    f"{', '.join(t.name for t in visible)}",
                    model=self.model_id,
                    kind="bad_request",
                    retryable=False,
                )
        schema = response_schema(settings.response_format) if settings.response_format else None
        return _Plan(tools=visible, forced=forced, schema=schema)

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        settings: ModelSettings | None = None,
    ) -> ModelResponse:
        check_model_request(self.model_id)
        merged = self.defaults.merged(settings)
        plan = self._plan(tools, merged)
        if self.ref.path is None:  # a hub model: download once, outside the call's time budget
            self.ref = ModelRef(self.model_id, path=await asyncio.to_thread(hub_file, self.ref))
        started = time.monotonic()
        deadline = _Deadline(started + merged.timeout)
        job = _executor().submit(self._generate, list(messages), plan, merged, deadline)
        try:
            raw = await asyncio.wait_for(asyncio.wrap_future(job), merged.timeout)
        except TimeoutError:
            deadline.cancelled.set()
            raise self._timeout(merged) from None
        except asyncio.CancelledError:
            deadline.cancelled.set()
            raise
        return self._response(raw, plan, (time.monotonic() - started) * 1000)

    def _timeout(self, settings: ModelSettings) -> LLMError:
        return LLMError(
            f"{self.model_id}: no reply within {settings.timeout:g}s (raise ModelSettings.timeout, "
            f"lower max_tokens or use a smaller model)",
            model=self.model_id,
            kind="timeout",
            retryable=True,
        )

    def _generate(
        self, messages: list[Message], plan: _Plan, settings: ModelSettings, deadline: _Deadline
    ) -> dict[str, Any]:
        """Runs in the worker thread: load, render, generate under the model's lock."""
        from llama_cpp import LlamaGrammar, StoppingCriteriaList

        assert self.ref.path is not None
        if deadline.expired():
            raise self._timeout(settings)
        model = load_model(
            self.ref.path, n_ctx=self.n_ctx, n_threads=self.n_threads, chat_format=self.chat_format
        )
        try:
            if model.renders_tools:
                rendered = model.formatter(
                    messages=template_messages(messages),
                    tools=[openai_tool(t) for t in plan.tools] or None,
                )
            else:
                rendered = model.formatter(messages=plain_messages(messages, plan.tools))
        except Exception as exc:  # jinja2 errors, or the template's own raise_exception
            raise LLMError(
                f"{self.model_id}: the model's chat template rejected the conversation: {exc}",
                model=self.model_id,
                kind="bad_request",
                retryable=False,
            ) from exc
        grammar_text = plan.grammar()
        grammar = LlamaGrammar.from_string(grammar_text, verbose=False) if grammar_text else None
        stop = rendered.stop if isinstance(rendered.stop, list) else [rendered.stop or ""]
        criteria = StoppingCriteriaList([deadline, *(rendered.stopping_criteria or [])])
        with model.lock:
            if deadline.expired():
                raise self._timeout(settings)
            llama = model.llama
            tokens = llama.tokenize(
                rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True
            )
            try:
                raw: dict[str, Any] = llama.create_completion(
                    prompt=tokens,
                    max_tokens=settings.max_tokens,
                    temperature=(
                        DEFAULT_TEMPERATURE
                        if settings.temperature is None
                        else settings.temperature
                    ),
                    seed=settings.seed,
                    stop=[s for s in stop if s],
                    stopping_criteria=criteria,
                    grammar=grammar,
                )
            except ValueError as exc:
                raise self._llama_error(exc) from exc
        if deadline.hit:
            raise self._timeout(settings)
        return raw

    def _llama_error(self, exc: ValueError) -> LLMError:
        context = "exceed context window" in str(exc)
        return LLMError(
            f"{self.model_id}: {exc}"
            + (f" (n_ctx={self.n_ctx}; pass a larger n_ctx)" if context else ""),
            model=self.model_id,
            kind="context_window" if context else "bad_request",
            retryable=False,
        )

    def _response(self, raw: dict[str, Any], plan: _Plan, latency_ms: float) -> ModelResponse:
        choice = raw["choices"][0]
        text, finish = choice.get("text") or "", choice.get("finish_reason")
        content, calls = parse_reply(self.model_id, text, plan.tools)
        structured = plan.forced or (plan.schema is not None and not calls)
        if structured and finish == "length":
            raise LLMError(
                f"{self.model_id}: the structured reply was cut off at max_tokens "
                f"({len(text)} characters); raise max_tokens",
                model=self.model_id,
                kind="invalid_output",
                retryable=True,
            )
        if plan.forced and not calls:
            raise invalid(self.model_id, "reply (no tool call)", text)
        if plan.forced or plan.schema is not None:
            check_structured(self.model_id, calls, plan.tools, content, plan.schema)
        usage = raw.get("usage") or {}
        prompt, completion = (
            int(usage.get("prompt_tokens", 0)),
            int(usage.get("completion_tokens", 0)),
        )
        return ModelResponse(
            message=Message.assistant(None if plan.forced else content, calls),
            usage=Usage(
                prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
            ),
            cost=0.0,
            model=self.model_id,
            latency_ms=latency_ms,
            finish_reason="tool_calls" if calls else finish,
        )
