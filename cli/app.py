"""Root typer app. Heavy imports stay inside commands so `agentforge --help` is instant."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

# Plain help and usage errors: typer's rich formatting imports rich's markdown, syntax and
# traceback modules (pygments, markdown-it, attrs), which made `agentforge --help` 0.41-0.61 s
# instead of 0.23-0.30 s. Output tables stay rich. TYPER_USE_RICH=1 brings the boxes back.
os.environ.setdefault("TYPER_USE_RICH", "0")

import typer  # reads TYPER_USE_RICH when imported

from agentforge import __version__
from agentforge.cli.console import CliState, console
from agentforge.cli.eval import app as eval_app
from agentforge.cli.memory import app as memory_app
from agentforge.cli.models import app as models_app
from agentforge.cli.run import run as run_command
from agentforge.cli.run import runs_app

app = typer.Typer(
    name="agentforge",
    help="AgentForge: agents that get better with use.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(memory_app, name="memory")
app.add_typer(eval_app, name="eval")
app.add_typer(models_app, name="models")
app.command("run")(run_command)
app.add_typer(runs_app, name="runs")


def _show_version(value: bool) -> None:
    if value:
        console.print(f"agentforge {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Directory of the embedded stores (default: ~/.agentforge).",
            envvar="AGENTFORGE_HOME",
            file_okay=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", callback=_show_version, is_eager=True
        ),
    ] = False,
) -> None:
    """AgentForge: agents that get better with use."""
    ctx.obj = CliState(home=home)


@app.command()
def version() -> None:
    """Show the version."""
    _show_version(True)


def main() -> None:
    app(prog_name="agentforge")


if __name__ == "__main__":
    main()
