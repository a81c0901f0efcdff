"""`Tool` (a typed function the model can call) and `ToolContext` (what the runtime hands every
tool: memory, workspace, run id, namespace, a lazily started browser and free-form extras)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from agentforge.errors import Retry, ToolError
from agentforge.llm.types import ToolSpec

if TYPE_CHECKING:
    from agentforge.memory.engine import Memory
    from agentforge.tools.builtin.browser_session import BrowserSession


@dataclass(kw_only=True)
class ToolContext:
    """Runtime objects a tool may use; injected through a first parameter `ctx: ToolContext`.

    One context lives for one run. `extras` carries anything else (limits, test hooks); the
    browser session is started on first use and closed by `aclose()`.
    """

    workspace: Path
    memory: Memory | None = None
    run_id: str = "run"
    namespace: str | None = None  # None: the memory's default namespace
    extras: dict[str, Any] = field(default_factory=dict)
    learn: bool = True  # False: tool calls are not recorded in tool memory (frozen memory)
    browser_session: BrowserSession | None = None  # a caller's session: used, never closed
    # per-run invocation state: the last error of each tool, to record the fix that worked
    last_errors: dict[str, str] = field(default_factory=dict, repr=False)
    _browser: BrowserSession | None = field(default=None, init=False, repr=False)
    _browser_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.workspace = Path(self.workspace)
        self._browser = self.browser_session

    async def browser(self) -> BrowserSession:
        """The run's shared browser session, started on first use.

        Options come from `extras["browser"]` (a dict of `BrowserSession` keyword arguments).
        """
        async with self._browser_lock:
            if self._browser is None:
                from agentforge.tools.builtin.browser_session import BrowserSession

                session = BrowserSession(**self.extras.get("browser", {}))
                await session.start()
                self._browser = session
            return self._browser

    @property
    def has_browser(self) -> bool:
        return self._browser is not None

    async def aclose(self) -> None:
        """Release what the tools started (the browser)."""
        if self._browser is not None:
            session, self._browser = self._browser, None
            if session is not self.browser_session:
                await session.close()


@dataclass(frozen=True, eq=False)
class Tool:
    """A function the model can call: its name, description and JSON schema, and how to call it.

    Build one with the `@tool` decorator. Calling it (or `invoke`) validates the arguments the
    model gave; invalid arguments raise `Retry` with a message the model can act on.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    args_model: type[BaseModel]
    arg_names: tuple[str, ...]  # model-visible parameter names, in signature order
    takes_ctx: bool = False

    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)

    def validate(self, arguments: dict[str, Any] | None) -> dict[str, Any]:
        """The keyword arguments for the function, or `Retry` saying what is wrong."""
        if arguments is not None and not isinstance(arguments, dict):
            raise Retry(f"{self.name}: arguments must be a JSON object, got {arguments!r:.100}")
        try:
            parsed = self.args_model.model_validate(arguments or {})
        except ValidationError as exc:
            raise Retry(validation_message(self, exc)) from None
        return {name: getattr(parsed, f"a{i}") for i, name in enumerate(self.arg_names)}

    async def invoke(self, ctx: ToolContext | None, arguments: dict[str, Any] | None) -> Any:
        kwargs = self.validate(arguments)
        if self.takes_ctx:
            if ctx is None:
                raise ToolError(f"tool {self.name} needs a ToolContext")
            args: tuple[Any, ...] = (ctx,)
        else:
            args = ()
        if inspect.iscoroutinefunction(self.fn):
            return await self.fn(*args, **kwargs)
        return await asyncio.to_thread(self.fn, *args, **kwargs)

    async def __call__(self, ctx: ToolContext | None, arguments: dict[str, Any] | None) -> Any:
        return await self.invoke(ctx, arguments)

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"


def validation_message(tool: Tool, exc: ValidationError) -> str:
    """One short correction per problem, then the expected arguments."""
    problems = []
    for err in exc.errors(include_url=False)[:6]:
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        if err["type"] == "missing":
            problems.append(f"missing required argument '{where}'")
        elif err["type"] == "extra_forbidden":
            problems.append(f"unexpected argument '{where}'")
        else:
            got = repr(err.get("input"))[:60]
            problems.append(f"'{where}': {err['msg']} (got {got})")
    props = tool.parameters.get("properties", {})
    required = set(tool.parameters.get("required", []))
    expected = ", ".join(
        f"{name}{'' if name in required else '?'}: {_type_name(schema)}"
        for name, schema in props.items()
    )
    return f"invalid arguments for {tool.name}: {'; '.join(problems)}. Expected {{{expected}}}"


def _type_name(schema: dict[str, Any]) -> str:
    if "type" in schema:
        return str(schema["type"])
    if "anyOf" in schema:
        return " | ".join(_type_name(s) for s in schema["anyOf"])
    if "enum" in schema:
        return "|".join(repr(v) for v in schema["enum"])
    return "object" if "$ref" in schema else "any"
