"""`agentforge eval`: run evaluation suites.

`agentforge eval locomo --data DIR` measures how well memory recall finds the evidence of the
LoCoMo questions (no LLM call). The engine, the embedder and chromadb are imported inside the
command, so `--help` stays instant.
"""

from __future__ import annotations

import asyncio
import tempfile
from contextlib import nullcontext
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table

from agentforge.cli import eval_suites
from agentforge.cli.console import console, err_console, errors, print_json

if TYPE_CHECKING:
    from agentforge.evals.locomo import LocomoResult

app = typer.Typer(
    name="eval",
    help="Run evaluation suites: WebArena-style task suites as learning curves, and the LoCoMo "
    "memory retrieval benchmark.",
    no_args_is_help=True,
)
eval_suites.register(app)


class EmbedderChoice(StrEnum):
    onnx = "onnx"
    hash = "hash"


@app.command()
def locomo(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="Directory of LoCoMo conversation files (*.json).",
            envvar="AGENTFORGE_LOCOMO_DATA",
        ),
    ],
    embedder: Annotated[
        EmbedderChoice,
        typer.Option(help="onnx: the local MiniLM model; hash: deterministic, for smoke tests."),
    ] = EmbedderChoice.onnx,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Directory for the eval's stores (default: a temporary directory, removed after).",
            file_okay=False,
        ),
    ] = None,
    conversation: Annotated[
        list[str] | None,
        typer.Option(
            "--conversation", "-c", metavar="ID", help="Only this conversation (repeatable)."
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")
    ] = False,
) -> None:
    """Recall@k of memory recall on LoCoMo: every turn retained as one memory, every question
    of categories 1-4 recalled; "agentforge" (default fusion) vs BM25 alone vs dense alone."""
    with errors():
        from agentforge.evals.locomo import load_locomo, run_locomo
        from agentforge.memory.engine import Memory
        from agentforge.settings import Settings

        conversations = load_locomo(data, only=conversation)
        where = (
            nullcontext(str(home))
            if home is not None
            else tempfile.TemporaryDirectory(prefix="agentforge-locomo-")
        )
        with where as directory:
            # the eval's own stores, whatever AGENTFORGE_DATABASE_URL / CHROMA_HOST say
            settings = Settings(
                home=Path(directory),
                database_url=None,
                chroma_host=None,
                embedder=embedder.value,
            )
            memory = Memory.from_settings(settings)
            try:
                with err_console.status(f"LoCoMo: {len(conversations)} conversations…"):
                    result = asyncio.run(run_locomo(memory, conversations))
            finally:
                memory.close()
        if json_output:
            print_json(result.as_dict())
        else:
            console.print(results_table(result))


def results_table(result: LocomoResult) -> Table:
    """Rows: system × category (overall first); columns: recall@k and the question count."""
    from agentforge.evals.locomo import CATEGORIES

    ks = sorted(result.systems[0].overall.recall) if result.systems else []
    table = Table(
        title="LoCoMo retrieval (recall@k of the evidence turns)",
        caption=(
            f"{result.questions} questions, {result.memories} memories, "
            f"{result.conversations} conversations, embedder {result.embedder}; "
            f"retain {result.retain_seconds:.1f} s, recall {result.recall_seconds:.1f} s, "
            f"total {result.seconds:.1f} s"
        ),
        box=box.SIMPLE_HEAD,
    )
    table.add_column("system")
    table.add_column("category")
    for k in ks:
        table.add_column(f"R@{k}", justify="right")
    table.add_column("n", justify="right")
    for i, system in enumerate(result.systems):
        if i:
            table.add_section()
        rows = [("overall", system.overall)]
        rows += [(CATEGORIES.get(c, str(c)), s) for c, s in system.by_category.items()]
        for j, (category, scores) in enumerate(rows):
            table.add_row(
                system.name if j == 0 else "",
                category,
                *(f"{scores.recall[k]:.3f}" for k in ks),
                str(scores.n),
                style="bold" if j == 0 else None,
            )
    return table
