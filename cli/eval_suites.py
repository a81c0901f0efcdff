"""`agentforge eval list | run | report`: WebArena-style suites on real environments, run as
learning curves. The harness, the environments and the browser are imported inside the commands,
so `--help` stays instant."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table

from agentforge.cli.console import console, err_console, errors, print_json

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def list_suites(json_output: JsonOption = False) -> None:
    """The suites that ship, with their task counts and splits."""
    with errors():
        from agentforge.evals.suite import list_suites as shipped

        rows = [{"name": s.name, "environment": s.environment["type"], **s.counts(),
                 "path": str(s.path), "description": s.description} for s in shipped()]
        if json_output:
            print_json(rows)
            return
        table = Table(title="Eval suites", box=box.SIMPLE_HEAD)
        for column in ("suite", "environment", "tasks", "templates", "train", "test"):
            table.add_column(column, justify="left" if column in ("suite", "environment")
                             else "right")
        for r in rows:
            table.add_row(r["name"], r["environment"], str(r["tasks"]), str(r["templates"]),
                          str(r["train"]), str(r["test"]))
        console.print(table)
        console.print("[dim]Run one with `agentforge eval run NAME`, or give the path of your "
                      "own suite file (WebArena task format).[/dim]")


def run(
    suite: Annotated[str, typer.Argument(help="A suite name (see `eval list`) or a suite file.")],
    out: Annotated[Path, typer.Option("--out", help="Run directory (rerun to resume).",
                                      file_okay=False)],
    model: Annotated[str | None, typer.Option(help="Model id (default: as `agentforge run`).")
                     ] = None,
    memory: Annotated[str, typer.Option(help="off | frozen | evolving")] = "evolving",
    passes: Annotated[int, typer.Option(min=1, help="Passes over the tasks.")] = 1,
    workers: Annotated[int, typer.Option(min=1, help="Parallel workers (a browser each).")] = 1,
    seed: Annotated[int, typer.Option(help="Seeds task order and task instances.")] = 0,
    split: Annotated[str, typer.Option(
        help="all | train | test | transfer (evolve on train, evaluate frozen on test).")] = "all",
    task: Annotated[list[str] | None, typer.Option(
        "--task", help="Only these task ids or templates (repeatable).")] = None,
    max_steps: Annotated[int, typer.Option(min=1, help="Actions per episode.")] = 12,
    timeout: Annotated[float, typer.Option(help="Seconds per episode.")] = 300.0,
    memory_from: Annotated[Path | None, typer.Option(
        help="Start from the memory of an earlier run directory.")] = None,
    learn: Annotated[str, typer.Option(
        help="What evolving memory learns: experiences, plus any of conflicts, insights, "
        "skills, weights (comma-separated; the ablation's switches).")] = "experiences",
    learn_every: Annotated[int, typer.Option(
        min=0, help="Episodes between learning passes (0: never).")] = 1,
    learn_tokens: Annotated[int, typer.Option(
        min=0, help="Token budget of one learning pass.")] = 3000,
    flashback: Annotated[int, typer.Option(
        min=0, help="Earlier successes re-run after a pass that changed skills or weights.")
    ] = 2,
    json_output: JsonOption = False,
) -> None:
    """Run a suite as a stream of episodes over passes; traces go to OUT/episodes.jsonl."""
    with errors():
        from agentforge.evals.harness import RunConfig, run_suite

        config = RunConfig(suite=suite, model=model, memory=memory, passes=passes,
                           workers=workers, seed=seed, split=split, only=tuple(task or ()),
                           max_steps=max_steps, task_timeout_s=timeout,
                           memory_from=str(memory_from) if memory_from else None,
                           learn=tuple(x.strip() for x in learn.split(",") if x.strip()),
                           learn_every=learn_every, learn_tokens=learn_tokens,
                           flashback=flashback)
        config.check()
        if json_output:
            summary = asyncio.run(run_suite(config, out))
        else:
            summary = _run_with_progress(config, out)
        report([out], json_output=json_output, html=None)
        if not json_output:
            err_console.print(f"{summary.done} episode(s) run, {summary.skipped} kept from "
                              f"before; traces in {out / 'episodes.jsonl'}")


def _run_with_progress(config: Any, out: Path) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from agentforge.evals.harness import run_suite

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[wins]} ok"), TimeElapsedColumn(),
                  console=err_console) as progress:
        bar = progress.add_task(f"{config.suite} ({config.memory})", total=None, wins=0)
        state = _ProgressState(progress, bar)
        return asyncio.run(run_suite(config, out, on_start=state.start,
                                     on_episode=state.episode))


class _ProgressState:
    def __init__(self, progress: Progress, bar: TaskID) -> None:
        self.progress, self.bar, self.wins = progress, bar, 0

    def start(self, total: int, done: int) -> None:
        self.progress.update(self.bar, total=total, completed=done)

    def episode(self, record: dict[str, Any]) -> None:
        self.wins += int(record["success"])
        mark = "[green]✓[/green]" if record["success"] else "[red]✗[/red]"
        self.progress.console.print(
            f"{mark} pass {record['pass']} {record['phase']:<5} {record['task_id']:<32} "
            f"{record['actions']:>2} steps {record['tokens']:>6} tokens "
            f"{record['seconds']:6.1f} s" + (f"  [dim]{record['error']}[/dim]"
                                              if record.get("error") else ""))
        self.progress.update(self.bar, advance=1, wins=self.wins)


def report(
    dirs: Annotated[list[Path], typer.Argument(help="Run directories, shown side by side.")],
    json_output: JsonOption = False,
    html: Annotated[Path | None, typer.Option(
        help="Write the HTML report here (default: report.html in the first directory).")
    ] = None,
) -> None:
    """Success with 95% intervals, steps, tokens, cost and time per pass and per template."""
    with errors():
        from agentforge.evals.report import build_report, render_html

        data = build_report(list(dirs))
        target = html or dirs[0] / "report.html"
        target.write_text(render_html(data), encoding="utf-8")
        if json_output:
            print_json(data)
            return
        console.print(_table(data, "passes"))
        console.print(_table(data, "templates"))
        err_console.print(f"HTML report: {target}")


def _table(data: dict[str, Any], key: str) -> Table:
    first = "pass" if key == "passes" else "template"
    table = Table(title=f"Per {first}", box=box.SIMPLE_HEAD)
    growth = ("memory", "recall ms", "learn tok/ep") if key == "passes" else ()
    for column in ("run", first, "phase", "n", "success (95% CI)", "steps", "tokens/ep",
                   "tokens/success", "cost $", "wall s", *growth):
        table.add_column(column, justify="left" if column in ("run", first, "phase") else "right")
    for i, run in enumerate(data["runs"]):
        if i:
            table.add_section()
        for row in run[key]:
            low, high = row["ci95"]
            tps = row["tokens_per_success"]
            table.add_row(run["label"], str(row[first]), row["phase"], str(row["episodes"]),
                          f"{row['success_rate']:.0%} [{low:.0%}, {high:.0%}]",
                          f"{row['steps_mean']:.1f}", f"{row['tokens_per_episode']:.0f}",
                          "–" if tps is None else f"{tps:.0f}", f"{row['cost']:.4f}",
                          f"{row['seconds']:.0f}", *(_growth(row) if growth else ()))
    return table


def _growth(row: dict[str, Any]) -> tuple[str, str, str]:
    items, ms = row.get("memory_items"), row.get("recall_ms_median")
    return ("–" if items is None else str(items), "–" if ms is None else f"{ms:.1f}",
            f"{row.get('learn_tokens_per_episode', 0.0):.0f}")


def register(app: typer.Typer) -> None:
    app.command("list")(list_suites)
    app.command("run")(run)
    app.command("report")(report)
