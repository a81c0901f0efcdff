"""Workspace-confined file tools: reads, writes, listings, and every way out refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentforge.errors import Retry
from agentforge.tools import ToolContext
from agentforge.tools.builtin.files import file_list, file_read, file_write


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (tmp_path / "secret.txt").write_text("top secret")
    return ToolContext(workspace=workspace)


async def test_write_read_list(ctx: ToolContext) -> None:
    assert await file_write(ctx, {"path": "notes/a.txt", "content": "héllo\n"}) == (
        "wrote 7 bytes to notes/a.txt"
    )
    await file_write(ctx, {"path": "notes/a.txt", "content": "more", "append": True})
    assert await file_read(ctx, {"path": "notes/a.txt"}) == "héllo\nmore"
    assert await file_read(ctx, {"path": "./notes/../notes/a.txt", "max_chars": 3}) == (
        "hél\n…(7 more characters: read again with offset=3)"
    )
    assert await file_read(ctx, {"path": "notes/a.txt", "offset": 3}) == "lo\nmore"
    absolute = str(ctx.workspace / "notes" / "a.txt")
    assert (await file_read(ctx, {"path": absolute})).startswith("héllo")  # inside: allowed
    assert await file_list(ctx, {}) == "notes/"
    assert await file_list(ctx, {"recursive": True}) == "notes/\nnotes/a.txt (11 bytes)"
    assert await file_list(ctx, {"path": "notes"}) == "a.txt (11 bytes)"


@pytest.mark.parametrize(
    "path", ["../secret.txt", "notes/../../secret.txt", "/etc/passwd", "~/x", ""]
)
async def test_escapes_are_refused(ctx: ToolContext, path: str) -> None:
    for tool, extra in ((file_read, {}), (file_write, {"content": "x"})):
        with pytest.raises(Retry):
            await tool(ctx, {"path": path, **extra})
    if path:
        with pytest.raises(Retry, match=r"outside the workspace|no directory"):
            await file_list(ctx, {"path": path})


async def test_symlink_escapes_are_refused(ctx: ToolContext, tmp_path: Path) -> None:
    os.symlink(tmp_path / "secret.txt", ctx.workspace / "link.txt")
    os.symlink(tmp_path, ctx.workspace / "outside")
    with pytest.raises(Retry, match="outside the workspace"):
        await file_read(ctx, {"path": "link.txt"})
    with pytest.raises(Retry, match="outside the workspace"):
        await file_write(ctx, {"path": "outside/new.txt", "content": "x"})
    with pytest.raises(Retry, match="outside the workspace"):
        await file_list(ctx, {"path": "outside"})
    assert not (tmp_path / "new.txt").exists()
    assert (tmp_path / "secret.txt").read_text() == "top secret"


async def test_helpful_errors_and_caps(ctx: ToolContext) -> None:
    with pytest.raises(Retry, match=r"no file 'missing\.txt'"):
        await file_read(ctx, {"path": "missing.txt"})
    (ctx.workspace / "blob.bin").write_bytes(b"\x00\x01\x02")
    with pytest.raises(Retry, match="binary file"):
        await file_read(ctx, {"path": "blob.bin"})
    with pytest.raises(Retry, match="write at most"):
        await file_write(ctx, {"path": "big.txt", "content": "x" * 1_000_001})
    (ctx.workspace / "d").mkdir()
    with pytest.raises(Retry, match="is a directory"):
        await file_read(ctx, {"path": "d"})
