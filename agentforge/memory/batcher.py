"""Micro-batching: concurrent `submit` calls coalesce into one call of a batch function.

The first request starts a drain task; it waits at most `max_wait_ms` for more (until the queued
size reaches `max_batch`; `size` weighs each item, e.g. by its number of texts, and a single
larger item goes alone), then makes one call of `fn` for the batch and resolves each caller's
future. A failure reaches every caller of that batch; callers cancelled meanwhile are skipped.
Each running event loop gets its own queue, so one batcher can serve several loops (and threads)
over its lifetime. Used by the embedder (one model call) and by recall (one index query).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    largest: int = 0


@dataclass
class _Request(Generic[T, R]):
    item: T
    size: int
    future: asyncio.Future[R]


@dataclass
class _LoopState(Generic[T, R]):
    """The queue of one event loop; touched only from that loop's thread."""

    pending: deque[_Request[T, R]] = field(default_factory=deque)
    queued: int = 0
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class MicroBatcher(Generic[T, R]):
    def __init__(
        self,
        fn: Callable[[list[T]], Awaitable[list[R]]],
        *,
        max_batch: int = 64,
        max_wait_ms: float = 0.0,
        size: Callable[[T], int] = lambda _: 1,
    ) -> None:
        self._fn = fn
        self._size = size
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.stats = BatchStats()
        self._loops: dict[asyncio.AbstractEventLoop, _LoopState[T, R]] = {}
        self._loops_lock = threading.Lock()

    def _state(self, loop: asyncio.AbstractEventLoop) -> _LoopState[T, R]:
        with self._loops_lock:
            state = self._loops.get(loop)
            if state is None:
                for old in [lp for lp in self._loops if lp.is_closed()]:
                    del self._loops[old]
                state = self._loops[loop] = _LoopState()
            return state

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        state = self._state(loop)
        future: asyncio.Future[R] = loop.create_future()
        size = self._size(item)
        state.pending.append(_Request(item, size, future))
        state.queued += size
        state.wakeup.set()
        if state.task is None or state.task.done():
            state.task = loop.create_task(self._drain(state))
        return await future

    async def _drain(self, state: _LoopState[T, R]) -> None:
        """Serve batches until the queue is empty, then end (the next submit restarts it)."""
        try:
            while state.pending:
                await asyncio.sleep(0)  # let everyone who is about to submit do so
                await self._wait_for_more(state)
                batch = self._take(state)
                if batch:
                    await self._run(batch)
        except asyncio.CancelledError:
            while state.pending:
                state.pending.popleft().future.cancel()
            state.queued = 0
            raise

    async def _wait_for_more(self, state: _LoopState[T, R]) -> None:
        if self.max_wait <= 0:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while state.queued < self.max_batch:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            state.wakeup.clear()
            try:
                await asyncio.wait_for(state.wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _take(self, state: _LoopState[T, R]) -> list[_Request[T, R]]:
        batch: list[_Request[T, R]] = []
        size = 0
        while state.pending:
            request = state.pending[0]
            if batch and size + request.size > self.max_batch:
                break
            state.pending.popleft()
            state.queued -= request.size
            if not request.future.done():  # skip callers that were cancelled meanwhile
                batch.append(request)
                size += request.size
        return batch

    async def _run(self, batch: list[_Request[T, R]]) -> None:
        self.stats.batches += 1
        self.stats.items += len(batch)
        self.stats.largest = max(self.stats.largest, len(batch))
        try:
            results = await self._fn([request.item for request in batch])
        except asyncio.CancelledError:
            for request in batch:
                request.future.cancel()
            raise
        except Exception as exc:  # every caller of the batch sees the failure
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        for request, result in zip(batch, results, strict=True):
            if not request.future.done():
                request.future.set_result(result)
