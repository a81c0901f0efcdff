"""`agentforge memory`: retain, recall and reflect; inspect, forget, undo, export and import.

Every command is a thin shell over `agentforge.memory.engine.Memory`. The engine (sqlmodel,
chromadb, numpy, the embedder) is imported inside the commands, so `--help` stays instant.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Column, Table
from rich.text import Text

from agentforge.cli import memory_learn
from agentforge.cli.console import (
    console,
    err_console,
    errors,
    fail,
    load_settings,
    note,
    print_json,
    say,
    short,
    snippet,
    to_jsonable,
)
from agentforge.errors import InputError

if TYPE_CHECKING:
    from agentforge.memory.engine import Memory
    from agentforge.types import MemoryInput

app = typer.Typer(
    name="memory",
    help="Retain, recall and reflect on memories; learn from episodes; inspect, undo, export and "
    "import them.",
    no_args_is_help=True,
)


class LevelName(StrEnum):
    """The memory levels (mirrors `agentforge.types.Level`, which is too heavy to import here)."""

    episode = "episode"
    experience = "experience"
    insight = "insight"
    skill = "skill"
    tool = "tool"


NS_HELP = "Namespace, e.g. acme/web-agent (default: 'default')."
Namespace = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help=NS_HELP, envvar="AGENTFORGE_NAMESPACE"),
]
NamespaceFilter = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Only this namespace (default: all).")
]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
Tags = Annotated[
    list[str] | None, typer.Option("--tag", "-t", metavar="TAG", help="A tag (repeatable).")
]


@contextmanager
def open_memory(ctx: typer.Context) -> Iterator[Memory]:
    """The memory the settings name (AGENTFORGE_HOME, --home, …), closed afterwards."""
    from agentforge.memory.engine import Memory

    settings = load_settings(ctx)
    if "dense_mirror" not in settings.model_fields_set:  # one command: use a snapshot, build none
        settings = settings.model_copy(update={"dense_mirror": "snapshot"})
    memory = Memory.from_settings(settings)
    try:
        yield memory
    finally:
        memory.close()


# --- retain -------------------------------------------------------------------------------------


def _decode(data: bytes, source: str) -> str:
    if b"\x00" in data:
        raise InputError(f"{source} is binary, not text: only UTF-8 text can be retained")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{source} is not UTF-8 text (undecodable byte at offset {exc.start})"
        ) from None


def _read_file(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not a file") from None
    except PermissionError:
        raise InputError(f"cannot read {path}: permission denied") from None
    return _decode(data, str(path))


def _inputs(
    text: str | None,
    files: list[Path],
    stdin: bool,
    *,
    level: LevelName,
    kind: str | None,
    tags: list[str],
    doc_id: str | None,
    title: str | None,
) -> list[MemoryInput]:
    """One MemoryInput per source: TEXT, standard input, and each file (as a document)."""
    from agentforge.types import MemoryInput

    if text == "-":
        text, stdin = None, True
    texts = [] if text is None else [text]
    if stdin:
        texts.append(_decode(typer.get_binary_stream("stdin").read(), "standard input"))
    if not texts and not files:
        raise InputError("nothing to retain: give TEXT, --file PATH or --stdin")
    if doc_id is not None and len(texts) + len(files) > 1:
        raise InputError("--doc-id names one document: give it with a single text or --file")
    common: dict[str, Any] = {"level": level.value, "tags": tags, "title": title}
    items = [MemoryInput(content=t, kind=kind or "fact", doc_id=doc_id, **common) for t in texts]
    for path in files:
        items.append(
            MemoryInput(
                content=_read_file(path),
                kind=kind or "document",
                doc_id=doc_id or str(path.resolve()),
                **common,
            )
        )
    return items


@app.command()
def retain(
    ctx: typer.Context,
    text: Annotated[
        str | None,
        typer.Argument(metavar="[TEXT]", help="Text to remember ('-' reads standard input)."),
    ] = None,
    files: Annotated[
        list[Path] | None,
        typer.Option(
            "--file",
            "-f",
            metavar="PATH",
            help="Retain a UTF-8 text file as a document whose id is its absolute path "
            "(repeatable); retaining it again replaces its old content.",
        ),
    ] = None,
    stdin: Annotated[bool, typer.Option("--stdin", help="Read the text from standard input.")] = (
        False
    ),
    namespace: Namespace = None,
    level: Annotated[LevelName, typer.Option(help="Memory level.")] = LevelName.experience,
    kind: Annotated[
        str | None, typer.Option(help="Kind of memory (default: 'fact'; 'document' for --file).")
    ] = None,
    tags: Tags = None,
    doc_id: Annotated[
        str | None,
        typer.Option(help="Document id: retaining the same id again replaces its old content."),
    ] = None,
    title: Annotated[str | None, typer.Option(help="A title (also embedded).")] = None,
    as_json: Json = False,
) -> None:
    """Remember text, standard input or files (no LLM call; duplicates are not stored twice)."""
    with errors():
        items = _inputs(
            text,
            files or [],
            stdin,
            level=level,
            kind=kind,
            tags=tags or [],
            doc_id=doc_id,
            title=title,
        )
        with open_memory(ctx) as memory:
            result = memory.retain(items, namespace=namespace)
            ns = namespace or memory.namespace
    if as_json:
        print_json(result)
        return
    say(
        f"retained {result.chunks} chunk(s) in namespace {ns}: "
        f"{result.created} new, {result.duplicates} already known"
    )
    for record_id in dict.fromkeys(result.ids):
        say(f"  {record_id}")


# --- recall -------------------------------------------------------------------------------------


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"{option}: {value!r} is not an ISO date or time (e.g. 2025-01-31 or "
            "2025-01-31T09:30:00+01:00)"
        ) from None


def _ranks(hit: Any) -> str:
    r = hit.ranks
    return "/".join(
        "-" if v is None else str(v) for v in (r.dense, r.keyword, r.recency, r.utility)
    )


@app.command()
def recall(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", "--top-k", help="Maximum number of memories.")] = 10,
    token_budget: Annotated[
        int | None, typer.Option(help="Stop adding memories past this many tokens.")
    ] = None,
    levels: Annotated[
        list[LevelName] | None, typer.Option("--level", help="Only these levels (repeatable).")
    ] = None,
    kinds: Annotated[
        list[str] | None, typer.Option("--kind", help="Only these kinds (repeatable).")
    ] = None,
    tags: Tags = None,
    as_of: Annotated[
        str | None,
        typer.Option(help="What memory held at this ISO time (naive times are UTC)."),
    ] = None,
    since: Annotated[str | None, typer.Option(help="Only memories of events since (ISO).")] = None,
    until: Annotated[str | None, typer.Option(help="Only memories of events until (ISO).")] = None,
    namespace: Namespace = None,
    as_json: Json = False,
) -> None:
    """Find the memories most relevant to QUERY (dense + keyword + recency + utility)."""
    with errors():
        when = {
            "as_of": _when(as_of, "--as-of"),
            "since": _when(since, "--since"),
            "until": _when(until, "--until"),
        }
        with open_memory(ctx) as memory:
            result = memory.recall(
                query,
                namespace=namespace,
                k=k,
                token_budget=token_budget,
                levels=[lv.value for lv in levels] if levels else None,
                kinds=kinds or None,
                tags=tags or None,
                **when,
            )
    if as_json:
        print_json(result)
        return
    if not result.hits:
        note(f"no memory in namespace {result.namespace} matches {result.query!r}")
        return
    table = Table(
        caption=f"{len(result.hits)} hit(s) in {result.latency_ms:.1f} ms · namespace "
        f"{result.namespace} · ranks: dense/keyword/recency/utility",
        caption_justify="left",
    )
    for name, justify in [("#", "right"), ("score", "right"), ("level", "left"), ("kind", "left")]:
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    table.add_column("ranks", no_wrap=True)
    table.add_column("content", ratio=1)
    table.add_column("id", no_wrap=True, style="dim")
    for rank, hit in enumerate(result.hits, start=1):
        table.add_row(
            str(rank),
            f"{hit.score:.4f}",
            hit.level.value,
            Text(hit.kind),
            _ranks(hit),
            Text(snippet(hit.content)),
            short(hit.id, 8),
        )
    console.print(table)


# --- reflect, stats, check ----------------------------------------------------------------------


@app.command()
def reflect(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan the changes without applying any.")
    ] = False,
    max_changes: Annotated[
        int | None, typer.Option(min=1, help="Apply at most this many changes.")
    ] = None,
    max_seconds: Annotated[
        float | None, typer.Option(min=0.0, help="Stop planning after this many seconds.")
    ] = None,
    namespace: Namespace = None,
    as_json: Json = False,
) -> None:
    """Consolidate: merge near-duplicates, supersede conflicting facts, forget stale memories.

    Every applied change can be reverted with `agentforge memory undo OP_ID`."""
    with errors():
        from agentforge.memory.reflect import ReflectBudget

        limits = {"max_changes": max_changes, "max_seconds": max_seconds}
        budget = ReflectBudget(**{key: v for key, v in limits.items() if v is not None})
        with open_memory(ctx) as memory:
            report = memory.reflect(namespace, dry_run=dry_run, budget=budget)
    if as_json:
        print_json({**to_jsonable(report), "counts": report.counts()})
        return
    if not report.changes:
        say(f"nothing to consolidate in namespace {report.namespace}")
        return
    table = Table("action", "record", "reason")
    for change in report.changes[:50]:
        table.add_row(change.action, short(change.record_id), Text(snippet(change.reason, 100)))
    console.print(table)
    counts = ", ".join(f"{n} {action}" for action, n in sorted(report.counts().items()))
    more = " (budget reached: more remain)" if report.truncated else ""
    if report.dry_run:
        say(f"dry run: {counts} planned{more}; nothing was changed")
    else:
        say(f"applied {counts}{more} as operation {report.op_id}")
        say(f"undo with: agentforge memory undo {report.op_id}")


@app.command()
def stats(ctx: typer.Context, namespace: NamespaceFilter = None, as_json: Json = False) -> None:
    """Counts per namespace, level and status; database size; embedder."""
    with errors(), open_memory(ctx) as memory:
        data = memory.stats(namespace)
    if as_json:
        print_json(data)
        return
    table = Table("namespace", "total", "active by level", "by status", "vectors", "tools")
    for ns, entry in sorted(data["namespaces"].items()):
        table.add_row(
            Text(ns),
            str(entry["total"]),
            ", ".join(f"{k} {v}" for k, v in sorted(entry["levels"].items())) or "-",
            ", ".join(f"{k} {v}" for k, v in sorted(entry["status"].items())),
            str(entry["vectors"]),
            str(entry["tools"]),
        )
    if data["namespaces"]:
        console.print(table)
    else:
        say("no memories yet")
    size = data.get("database_bytes")
    size_text = f" ({size / 1e6:.1f} MB)" if isinstance(size, int) else ""
    say(f"database: {data['database']}{size_text}")
    say(f"embedder: {data['embedder']}")


@app.command()
def check(
    ctx: typer.Context,
    repair: Annotated[
        bool, typer.Option("--repair", help="Re-index missing vectors and drop stray ones.")
    ] = False,
    as_json: Json = False,
) -> None:
    """Check that the vector index agrees with the record store (exit 1 if it does not)."""
    with errors(), open_memory(ctx) as memory:
        report = memory.repair() if repair else memory.check()
    if as_json:
        print_json(report)
    else:
        table = Table("namespace", "records", "vectors", "missing", "extra")
        keys = ("records", "vectors", "missing", "extra")
        for ns, entry in sorted(report["namespaces"].items()):
            table.add_row(Text(ns), *(str(entry[key]) for key in keys))
        console.print(table)
        if repair:
            say(f"repaired {report['fixed']} record(s)")
        if report["ok"]:
            say("ok: the index agrees with the store")
    if not report["ok"]:
        fail(
            f"the index disagrees with the store ({report['pending']} pending); "
            "run `agentforge memory check --repair`",
            1,
        )


# --- forget, history, undo ----------------------------------------------------------------------


@app.command()
def forget(
    ctx: typer.Context,
    ids: Annotated[list[str], typer.Argument(help="Full ids of the memories to forget.")],
    reason: Annotated[str | None, typer.Option(help="Why (kept in the history).")] = None,
    as_json: Json = False,
) -> None:
    """Forget memories (kept in the history; `agentforge memory undo OP_ID` restores them)."""
    with errors(), open_memory(ctx) as memory:
        op_id = memory.forget(ids, **({"reason": reason} if reason else {}))
    if as_json:
        print_json({"op_id": op_id, "ids": ids})
        return
    say(f"forgot {len(ids)} memory(ies) as operation {op_id}")
    say(f"undo with: agentforge memory undo {op_id}")


def _value(value: Any) -> str:
    return snippet(str(value), 25)


def _change_text(entry: Any) -> str:
    if entry.action == "create":
        return "created"
    before, after = entry.before or {}, entry.after or {}
    return "; ".join(f"{k}: {_value(before.get(k))} → {_value(after.get(k))}" for k in after)


def _fixed(*names: str) -> list[Column]:
    return [Column(name, no_wrap=True) for name in names]


@app.command()
def history(
    ctx: typer.Context,
    record: Annotated[str | None, typer.Option(help="Only changes of this memory id.")] = None,
    op: Annotated[str | None, typer.Option(help="Only changes of this operation id.")] = None,
    ops: Annotated[
        bool, typer.Option("--ops", help="List operations (retain, forget, undo…) instead.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many rows.")] = 50,
    namespace: NamespaceFilter = None,
    as_json: Json = False,
) -> None:
    """The change history of memories, newest first (or the operations, with --ops)."""
    with errors():
        if ops and (record or op):
            raise InputError("--ops lists operations; --record and --op filter history entries")
        ns = _checked_namespace(namespace)
        with open_memory(ctx) as memory:
            if ops:
                rows: list[Any] = memory.operations(namespace=ns, limit=limit)
            else:
                rows = memory.history(namespace=ns, record_id=record, op_id=op, limit=limit)
    if as_json:
        print_json([row.model_dump(mode="json") for row in rows])
        return
    if not rows:
        note("no history yet" if not (record or op) else "no matching history")
        return
    if ops:
        table = Table(
            *_fixed("started (UTC)", "operation", "kind"),
            "namespace",
            "details",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
        )
        for o in rows:
            details = [f"{k}={_value(v)}" for k, v in o.summary.items()]
            if o.undone_by:
                details.append(f"undone by {short(o.undone_by, 8)}")
            table.add_row(
                f"{o.started_at:%m-%d %H:%M:%S}",
                o.id,
                o.kind,
                Text(o.namespace or "-"),
                Text(", ".join(details)),
            )
    else:
        table = Table(*_fixed("at (UTC)", "operation", "action", "record"), "change", "reason")
        for h in rows:
            table.add_row(
                f"{h.at:%m-%d %H:%M:%S}",
                short(h.op_id, 8),
                h.action,
                short(h.record_id, 8),
                Text(snippet(_change_text(h), 120)),
                Text(snippet(h.reason, 60)),
            )
    console.print(table)


@app.command()
def undo(
    ctx: typer.Context,
    op_id: Annotated[str, typer.Argument(help="Full id of the operation to revert.")],
    as_json: Json = False,
) -> None:
    """Revert every change of an operation (retain, reflect, forget, import, credit)."""
    with errors(), open_memory(ctx) as memory:
        undo_op = memory.undo(op_id)
    if as_json:
        print_json(undo_op)
        return
    changes = undo_op.summary.get("changes", 0)
    say(f"undid operation {op_id}: {changes} change(s) reverted as operation {undo_op.id}")


# --- export, import -----------------------------------------------------------------------------


def _checked_namespace(namespace: str | None) -> str | None:
    if namespace is None:
        return None
    from agentforge.types import parse_namespace

    return parse_namespace(namespace)


@app.command("export")
def export_(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="File to write (JSON lines); '-' for stdout.")],
    namespace: NamespaceFilter = None,
) -> None:
    """Export memories (content, status, validity, usage statistics, vectors) as JSON lines."""
    with errors():
        from agentforge.memory.maintenance import export_records

        ns = _checked_namespace(namespace)
        with open_memory(ctx) as memory:
            if path == "-":
                count = export_records(memory.c, typer.get_text_stream("stdout"), ns)
                note(f"exported {count} record(s)")
                return
            target = Path(path)
            if not target.parent.is_dir():
                raise InputError(f"directory does not exist: {target.parent}")
            partial = target.with_name(f".{target.name}.partial")
            try:
                with partial.open("w", encoding="utf-8") as out:
                    count = export_records(memory.c, out, ns)
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
    say(f"exported {count} record(s) to {target}")


def _count_lines(path: Path) -> int:
    """Non-empty lines after the header: the records an import will read."""
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    with path.open("rb") as handle:
        return max(0, sum(1 for line in handle if line.strip()) - 1)


@app.command("import")
def import_(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="An export file (from `agentforge memory export`).")],
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", "-n", help="Import everything into this namespace."),
    ] = None,
    as_json: Json = False,
) -> None:
    """Import an export file; ids already present are skipped, so importing twice is harmless."""
    import asyncio

    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with errors():
        from agentforge.memory.maintenance import import_records

        total = _count_lines(path)
        ns = _checked_namespace(namespace)
        with (
            open_memory(ctx) as memory,
            Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err_console,
                transient=True,
                disable=as_json or not err_console.is_terminal,
            ) as progress,
        ):
            task = progress.add_task(f"importing {escape(path.name)}", total=total)
            imported = asyncio.run(
                import_records(
                    memory.c, path, namespace=ns, progress=lambda n: progress.advance(task, n)
                )
            )
    if as_json:
        print_json({"imported": imported, "records": total, "skipped": total - imported})
        return
    say(f"imported {imported} new record(s) of {total}; {total - imported} already present")


memory_learn.register(app)  # learn, export-skills
