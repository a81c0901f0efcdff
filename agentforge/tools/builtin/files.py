"""File tools confined to the run's workspace: every path is resolved (symlinks included) and
must stay inside `ctx.workspace`; `..`, absolute paths elsewhere and symlinks out are refused."""

from __future__ import annotations

from pathlib import Path

from agentforge.errors import Retry
from agentforge.tools.base import ToolContext
from agentforge.tools.decorator import tool

MAX_READ_CHARS = 100_000
MAX_WRITE_BYTES = 1_000_000
MAX_LIST = 200


def resolve_in_workspace(ctx: ToolContext, path: str) -> Path:
    """The real path of `path` (relative to the workspace, or absolute inside it), or Retry."""
    root = ctx.workspace.resolve()
    if not path or not path.strip() or "\x00" in path:
        raise Retry("give a file path relative to the workspace, e.g. 'notes.txt'")
    given = Path(path.strip()).expanduser()
    resolved = (given if given.is_absolute() else root / given).resolve()
    if resolved != root and not resolved.is_relative_to(root):
        raise Retry(
            f"path {path!r} is outside the workspace; use a path relative to the workspace "
            "(no '..', no absolute paths elsewhere, no symlinks leading out)"
        )
    return resolved


def _shown(ctx: ToolContext, path: Path) -> str:
    rel = path.relative_to(ctx.workspace.resolve())
    return str(rel) if str(rel) != "." else "."


@tool
def file_read(ctx: ToolContext, path: str, offset: int = 0, max_chars: int = 20_000) -> str:
    """Read a text file from the workspace.

    Args:
        path: The file's path relative to the workspace.
        offset: The character to start at (to read a long file in parts).
        max_chars: The most characters to return (at most 100000).
    """
    target = resolve_in_workspace(ctx, path)
    if not target.exists():
        raise Retry(f"no file {path!r} in the workspace; file_list shows what is there")
    if target.is_dir():
        raise Retry(f"{path!r} is a directory; use file_list")
    data = target.read_bytes()
    if b"\x00" in data[:8192]:
        raise Retry(f"{path!r} is a binary file ({len(data)} bytes); only text files can be read")
    text = data.decode("utf-8", errors="replace")
    limit = max(1, min(max_chars, MAX_READ_CHARS))
    start = max(0, offset)
    part = text[start : start + limit]
    rest = len(text) - start - len(part)
    if rest > 0:
        part += f"\n…({rest} more characters: read again with offset={start + len(part)})"
    return part


@tool
def file_write(ctx: ToolContext, path: str, content: str, append: bool = False) -> str:
    """Write a text file in the workspace (parent directories are created).

    Args:
        path: The file's path relative to the workspace.
        content: The text to write.
        append: Add to the end of the file instead of replacing it.
    """
    data = content.encode("utf-8")
    if len(data) > MAX_WRITE_BYTES:
        raise Retry(f"content is {len(data)} bytes; write at most {MAX_WRITE_BYTES} per call")
    target = resolve_in_workspace(ctx, path)
    if target.is_dir():
        raise Retry(f"{path!r} is a directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("ab" if append else "wb") as f:
        f.write(data)
    verb = "appended" if append else "wrote"
    return f"{verb} {len(data)} bytes to {_shown(ctx, target)}"


@tool
def file_list(ctx: ToolContext, path: str = ".", recursive: bool = False) -> str:
    """List the files and directories in a workspace directory (directories end with '/').

    Args:
        path: The directory relative to the workspace ("." is the workspace itself).
        recursive: Also list everything below it.
    """
    ctx.workspace.mkdir(parents=True, exist_ok=True)
    target = resolve_in_workspace(ctx, path)
    if not target.is_dir():
        raise Retry(f"no directory {path!r} in the workspace")
    entries = sorted(target.rglob("*") if recursive else target.iterdir())
    lines = []
    for entry in entries[:MAX_LIST]:
        shown = str(entry.relative_to(target))
        if entry.is_dir():
            lines.append(f"{shown}/")
        else:
            lines.append(f"{shown} ({entry.lstat().st_size} bytes)")
    if len(entries) > MAX_LIST:
        lines.append(f"…({len(entries) - MAX_LIST} more entries)")
    return "\n".join(lines) or f"({_shown(ctx, target)} is empty)"


FILE_TOOLS = [file_read, file_write, file_list]
