"""TaskSet: the background tasks one part of the master owns, each named, none lost.

asyncio keeps only a weak reference to a task, so a task nobody holds can vanish mid-run, and an
exception in a task nobody awaits is reported only when it is garbage collected (if ever). A
TaskSet holds its tasks until they end, logs the exception of any that fails (with the task's
name and the owner's), and cancels and awaits them all on ``close``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskSet:
    """The running tasks of ``owner`` (a name for the log: "phase supervisor", ...)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a task named ``name``, held until it ends."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("internal error in the %s's task %r", self.owner, task.get_name(),
                      exc_info=task.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    def cancel(self) -> None:
        """Cancel every running task (without waiting for them)."""
        for task in list(self._tasks):
            task.cancel()

    async def close(self) -> None:
        """Cancel every running task and wait until all have ended."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
