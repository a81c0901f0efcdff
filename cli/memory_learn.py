"""`agentforge memory learn` (a learning pass on demand: conflicts, insights, skills, recall
weights, under a token budget) and `agentforge memory export-skills DIR` (the skills memory holds,
as `DIR/<name>/SKILL.md`). Every change a pass makes can be undone by its operation id."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from agentforge.cli.console import console, errors, load_settings, print_json, say


def learn(
    ctx: typer.Context,
    steps: Annotated[str, typer.Option(
        help="Comma-separated: conflicts, insights, skills, weights.")
    ] = "conflicts,insights,skills,weights",
    model: Annotated[str | None, typer.Option(
        help="Model for the LLM steps (default: the reflector's, as `agentforge run`).")] = None,
    max_tokens: Annotated[int, typer.Option(min=0, help="Token budget of the pass.")] = 3000,
    namespace: Annotated[str | None, typer.Option(help="Namespace (default: settings').")
                         ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Run one learning pass now: what each step created, changed and refused."""
    with errors():
        from agentforge.evolve.evolver import Evolver, LearnPolicy
        from agentforge.llm import resolve_model
        from agentforge.memory.engine import Memory
        from agentforge.types import parse_namespace

        settings = load_settings(ctx)
        policy = LearnPolicy.parse([s.strip() for s in steps.split(",") if s.strip()],
                                   every=0, max_tokens=max_tokens)
        llm = resolve_model(model, role="reflector", settings=settings)
        memory = Memory.from_settings(settings)
        try:
            ns = parse_namespace(namespace or settings.namespace)
            reports = asyncio.run(Evolver(memory, llm, ns, policy).learn())
        finally:
            memory.close()
    if as_json:
        print_json([{**vars(r), "operations": r.operations} for r in reports])
        return
    table = Table("step", "created", "changed", "refused", "tokens", "operation")
    for r in reports:
        table.add_row(r.step, str(len(r.created)), str(len(r.changed)), str(len(r.rejected)),
                      str(r.tokens), ", ".join(r.operations) or "–")
    console.print(table)
    for r in reports:
        for reason in r.rejected[:5]:
            say(f"{r.step}: refused: {reason}")


def export_skills(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Where to write <name>/SKILL.md folders.",
                                              file_okay=False)],
    namespace: Annotated[str | None, typer.Option(help="Namespace (default: settings').")
                         ] = None,
) -> None:
    """Write the skills memory holds as SKILL.md folders (load them with `--skills DIR`)."""
    with errors():
        from agentforge.evolve.skills import export_skills as export
        from agentforge.memory.engine import Memory
        from agentforge.types import parse_namespace

        settings = load_settings(ctx)
        memory = Memory.from_settings(settings)
        try:
            ns = parse_namespace(namespace or settings.namespace)
            paths = asyncio.run(_export(export, memory, ns, directory))
        finally:
            memory.close()
    say(f"wrote {len(paths)} skill(s) to {directory}" if paths else "no skills in memory yet")


async def _export(export: object, memory: object, namespace: str, directory: Path) -> list[Path]:
    result = export(memory, namespace, directory)  # type: ignore[operator]
    return list(await result if asyncio.iscoroutine(result) else result)


def register(app: typer.Typer) -> None:
    app.command("learn")(learn)
    app.command("export-skills")(export_skills)
