"""Stopping long-running tasks for sure, on Python 3.11 too.

On Python 3.11 ``asyncio.wait_for`` returns the result of an awaitable that
finished in the same loop turn as a cancel, and the ``CancelledError`` is gone
(python/cpython#86296, fixed in 3.12). redis-py wraps its socket writes in
``wait_for``, so a loop that talks to Redis can lose a cancel and run on: a
node then hangs at exit, in ``asyncio.run`` waiting for the task it cancelled
once. The lost cancel still shows in :meth:`asyncio.Task.cancelling`, so:

- loops call :func:`raise_if_cancelling` once per turn;
- whoever stops a task uses :func:`cancel_and_wait`, which cancels again
  while the task runs on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["cancel_and_wait", "raise_if_cancelling"]

log = logging.getLogger("wirehub")


def raise_if_cancelling() -> None:
    """Raise :class:`asyncio.CancelledError` if this task was asked to cancel.

    Call it at the top of a ``while`` loop in a task of its own (not in cleanup
    code that runs *because* the task is being cancelled).
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancel_and_wait(task: asyncio.Task[Any], patience: float = 5.0,
                          *, what: str = "task") -> None:
    """Cancel ``task`` and wait until it is done, cancelling again if a cancel was lost.

    Gives up (with an error logged) after ``patience`` seconds. The task's own
    exception, if it ended with one, is logged rather than raised.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while not task.done() and loop.time() < deadline:
        task.cancel()
        await asyncio.wait({task}, timeout=0.25)
    if not task.done():
        log.error("%s did not stop within %.0f s", what, patience)
    elif not task.cancelled() and task.exception() is not None:
        log.error("%s failed: %r", what, task.exception())
