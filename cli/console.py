"""What every sub-app of the CLI shares: the rich consoles, JSON output, the error boundary and
the settings of the invocation.

Results go to stdout (`console`); messages, progress bars and errors go to stderr
(`err_console`), so `--json` output can always be piped. Nothing heavy is imported here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text
from typer.exceptions import TyperException

from agentforge.errors import AgentForgeError, ConfigError

if TYPE_CHECKING:
    from agentforge.settings import Settings

console = Console()
err_console = Console(stderr=True)

DEBUG_ENV = "AGENTFORGE_DEBUG"
EXIT_INTERRUPTED = 130


@dataclass
class CliState:
    """Global options of one invocation (set by the root callback, read by the commands)."""

    home: Path | None = None


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: <message>` as one line on stderr and exit with `code`."""
    line = " ".join(str(message).split()) or "failed"
    err_console.print(Text.assemble(("error:", "bold red"), " ", line), soft_wrap=True)
    raise typer.Exit(code)


def say(message: str) -> None:
    """A plain line of results on stdout (no markup, never wrapped: ids stay whole)."""
    console.print(Text(message), soft_wrap=True)


def note(message: str) -> None:
    """A human-readable status line on stderr (keeps stdout for results)."""
    err_console.print(Text(message), soft_wrap=True)


@contextmanager
def errors() -> Iterator[None]:
    """The error boundary of a command: a user or setup mistake becomes one `error:` line on
    stderr and the error's exit code (2 for ConfigError and its subclasses), never a traceback.
    Ctrl-C exits with 130. AGENTFORGE_DEBUG=1 re-raises unexpected errors with their traceback."""
    try:
        yield
    except (typer.Exit, typer.Abort, TyperException):
        raise
    except AgentForgeError as exc:
        fail(exc.message, exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        # the reader of our stdout went away (`... | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(1) from None
    except OSError as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        fail(_os_message(exc), 1)
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        fail(
            f"unexpected {type(exc).__name__}: {exc} "
            f"(set {DEBUG_ENV}=1 to see the traceback, and please report it)",
            1,
        )


def _os_message(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return f"{exc.filename}: {reason}" if exc.filename else reason


def load_settings(ctx: typer.Context | None) -> Settings:
    """Settings from the environment (`AGENTFORGE_*`), overridden by the global options."""
    from pydantic import ValidationError

    from agentforge.settings import Settings

    state = ctx.find_object(CliState) if ctx is not None else None
    overrides: dict[str, Any] = {}
    if state is not None and state.home is not None:
        overrides["home"] = state.home
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"AGENTFORGE_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid setting {problems}") from None


def to_jsonable(value: Any) -> Any:
    """Pydantic models (as `.model_dump(mode="json")`), dataclasses, datetimes… as JSON data."""
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value)


def print_json(value: Any) -> None:
    """Machine-readable output: JSON on stdout, nothing else."""
    import json

    console.print_json(json.dumps(to_jsonable(value), ensure_ascii=False))


def short(identifier: str | None, width: int = 12) -> str:
    """The prefix of an id shown in tables (the full id is in the `--json` output)."""
    return (identifier or "")[:width]


def snippet(text: str, width: int = 160) -> str:
    """One line of at most `width` characters."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"
