"""Micro-batching: concurrent `submit` calls coalesce into one call of a batch function.

The first request opens a batch; requests arriving within `max_wait_ms` (or until `max_batch`)
join it; one call of `fn` handles the whole batch. Queues are created per running event loop, so an
object can outlive the loop that first used it (the sync wrappers run a loop per call).
"""

from __future__ import annotations

import asyncio
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
class _LoopState(Generic[T, R]):
    pending: list[tuple[T, asyncio.Future[R]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class MicroBatcher(Generic[T, R]):
    def __init__(
        self,
        fn: Callable[[list[T]], Awaitable[list[R]]],
        *,
        max_batch: int = 64,
        max_wait_ms: float = 0.5,
    ) -> None:
        self._fn = fn
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.stats = BatchStats()
        self._states: dict[int, _LoopState[T, R]] = {}

    def _state(self) -> _LoopState[T, R]:
        loop = asyncio.get_running_loop()
        state = self._states.get(id(loop))
        if state is None:
            # drop states of loops that are gone (sync wrappers create short-lived loops)
            self._states = {
                k: v for k, v in self._states.items() if v.task is not None and not v.task.done()
            }
            state = self._states[id(loop)] = _LoopState()
        return state

    async def submit(self, item: T) -> R:
        state = self._state()
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        state.pending.append((item, future))
        if state.task is None or state.task.done():
            state.task = asyncio.create_task(self._drain(state))
        return await future

    async def _drain(self, state: _LoopState[T, R]) -> None:
        while state.pending:
            # let everyone who is about to submit do so: yield once, then wait briefly
            await asyncio.sleep(0)
            if len(state.pending) < self.max_batch and self.max_wait > 0:
                await asyncio.sleep(self.max_wait)
            batch, state.pending = (
                state.pending[: self.max_batch],
                state.pending[self.max_batch :],
            )
            self.stats.batches += 1
            self.stats.items += len(batch)
            self.stats.largest = max(self.stats.largest, len(batch))
            try:
                results = await self._fn([item for item, _ in batch])
            except Exception as exc:  # every caller of the batch sees the failure
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
