"""`agentforge run "task"` and `agentforge runs list | show | resume`: run a task end to end with
a live view of plan, steps and memory hits; list, inspect and resume runs by id."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentforge.cli.console import (
    console,
    errors,
    load_settings,
    note,
    print_json,
    short,
    snippet,
)

if TYPE_CHECKING:
    from agentforge.runtime.events import Event
    from agentforge.sdk import Forge, RunResult

runs_app = typer.Typer(help="List, inspect and resume runs.", no_args_is_help=True)

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Model id (litellm syntax, 'test', or 'local/<gguf>').",
        envvar="AGENTFORGE_MODEL",
    ),
]
ToolsOpt = Annotated[
    str | None,
    typer.Option("--tools", help="Comma-separated tool groups: browser,http,python,files,memory."),
]
SkillsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--skills",
        metavar="DIR",
        help="A folder of <name>/SKILL.md skills (repeatable), e.g. what "
        "`agentforge memory export-skills` wrote.",
    ),
]
StepsOpt = Annotated[int, typer.Option("--max-steps", help="Most tool-calling steps.", min=1)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
NsOpt = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="Memory namespace.", envvar="AGENTFORGE_NAMESPACE"),
]


def _forge(
    ctx: typer.Context,
    model: str | None,
    tools: str | None,
    namespace: str | None,
    skills: list[str] | None = None,
) -> Forge:
    from agentforge.sdk import Forge

    settings = load_settings(ctx)
    groups = [t.strip() for t in tools.split(",") if t.strip()] if tools else None
    return Forge(
        model=model, tools=groups, settings=settings, namespace=namespace, skills=skills or ()
    )


def _render_event(event: Event) -> None:
    data = event.data
    if event.kind == "memory_recalled" and data.get("hits"):
        note(
            f"  memory ({data.get('purpose')}): "
            + "; ".join(snippet(h.get("text", ""), 60) for h in data["hits"][:3])
        )
    elif event.kind == "plan":
        note(
            "plan:"
            + "".join(f"\n  {i}. {g}" for i, g in enumerate(data["subgoals"], 1))
            + (f"\n  (replaying skill {data['skill']})" if data.get("skill") else "")
        )
    elif event.kind == "tool_called":
        status = "ok" if data.get("ok") else f"error: {snippet(str(data.get('error')), 80)}"
        note(f"step {data['index']}: {data['tool']} -> {status} ({data['latency_ms']} ms)")
    elif event.kind == "final":
        note(f"answer ({data['reason']}): {snippet(str(data['answer']), 200)}")
    elif event.kind == "judged":
        note(f"outcome: {data['outcome']} {data.get('reason') or data.get('reward') or ''}")
    elif event.kind == "retained":
        note(
            f"memory: retained the episode and {data['lessons']} lesson(s); "
            f"credited {data['credited']} recalled item(s)"
        )


async def _drive(forge: Forge, quiet: bool, **kwargs: Any) -> RunResult:
    from agentforge.sdk import RunResult

    result: RunResult | None = None
    with console.status("running…", spinner="dots") if not quiet else _null():
        async for item in forge.events(**kwargs):
            if isinstance(item, RunResult):
                result = item
            elif not quiet:
                _render_event(item)
    assert result is not None
    return result


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _print_result(result: RunResult, as_json: bool) -> None:
    """The result; then, if the model failed (a wrong model name, no key, the provider down),
    exit 1 like any other error, so that scripts notice."""
    if as_json:
        print_json(result)
    else:
        console.print(
            f"[bold]{result.outcome}[/bold]  run {result.run_id}  "
            f"{result.actions} steps, {result.tokens} tokens, ${result.cost:.4f}, "
            f"{result.seconds:.1f} s"
        )
        console.print(result.answer, markup=False, highlight=False)
    if result.stop_reason == "error":
        raise typer.Exit(1)


def run(
    ctx: typer.Context,
    task: Annotated[str, typer.Argument(help="What the agent should do.")],
    model: ModelOpt = None,
    tools: ToolsOpt = None,
    max_steps: StepsOpt = 20,
    namespace: NsOpt = None,
    skills: SkillsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a task end to end: recall → plan → act → judge → learn."""
    with errors():
        forge = _forge(ctx, model, tools, namespace, skills)
        try:
            result = asyncio.run(_drive(forge, as_json, task=task, max_steps=max_steps))
        finally:
            forge.close()
        _print_result(result, as_json)


@runs_app.command("list")
def list_runs(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="How many.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """The latest runs."""
    from rich.table import Table

    from agentforge.runtime.runs import RunIndex

    with errors():
        runs = RunIndex(load_settings(ctx).resolved_home() / "runs.db").list(limit)
        if as_json:
            print_json(runs)
            return
        table = Table("id", "status", "outcome", "steps", "tokens", "created", "task")
        for r in runs:
            table.add_row(
                r.id,
                r.status,
                r.outcome or "",
                str(r.actions),
                str(r.tokens),
                r.created_at[:19],
                snippet(r.task, 60),
            )
        console.print(table)


@runs_app.command("show")
def show_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    as_json: JsonOpt = False,
) -> None:
    """One run: its status, usage and steps."""
    from agentforge.runtime.runs import RunIndex

    with errors():
        info = RunIndex(load_settings(ctx).resolved_home() / "runs.db").get(run_id)
        if as_json:
            print_json(info)
            return
        console.print(
            f"[bold]{info.id}[/bold] {info.status} {info.outcome or ''} — "
            f"{info.actions} steps, {info.tokens} tokens, ${info.cost:.4f}"
        )
        console.print(f"task: {info.task}", markup=False)
        console.print(f"answer: {info.answer or ''}", markup=False)
        if info.error:
            console.print(f"error: {info.error}", markup=False)


@runs_app.command("resume")
def resume_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    model: ModelOpt = None,
    tools: ToolsOpt = None,
    namespace: NsOpt = None,
    skills: SkillsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Continue an interrupted run from its last checkpoint."""
    with errors():
        forge = _forge(ctx, model, tools, namespace, skills)
        try:
            result = asyncio.run(_drive(forge, as_json, run_id=run_id, resume=True))
        finally:
            forge.close()
        _print_result(result, as_json)


__all__ = ["run", "runs_app", "short"]
