"""wirehub.tasks: a cancel lost inside an await still stops the task."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from wirehub.tasks import cancel_and_wait, raise_if_cancelling


async def _swallow_one_cancel(swallowed: asyncio.Event) -> None:
    """What Python 3.11's wait_for does when its awaitable finished with the cancel."""
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        swallowed.set()


async def test_a_loop_with_raise_if_cancelling_stops_after_a_lost_cancel(unit: float) -> None:
    swallowed, turns = asyncio.Event(), []

    async def loop() -> None:
        while True:
            raise_if_cancelling()
            turns.append(1)
            if len(turns) == 1:
                await _swallow_one_cancel(swallowed)
            await asyncio.sleep(0)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    task.cancel()  # once, as asyncio.run does at exit
    done, _ = await asyncio.wait({task}, timeout=unit)
    assert swallowed.is_set()
    assert task in done and task.cancelled()
    assert len(turns) == 1  # it stopped at the next turn


async def test_a_loop_without_it_runs_on_after_a_lost_cancel(unit: float) -> None:
    """The failure the helpers exist for (control: the same loop without the check)."""
    swallowed, turns = asyncio.Event(), []
    enough = asyncio.Event()

    async def loop() -> None:
        while True:
            turns.append(1)
            if len(turns) == 1:
                await _swallow_one_cancel(swallowed)
            if len(turns) == 100:
                enough.set()
            await asyncio.sleep(0)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait_for(enough.wait(), unit)
    assert not task.done() and task.cancelling() == 1
    task.cancel()
    await asyncio.wait({task}, timeout=unit)
    assert task.cancelled()


async def test_cancel_and_wait_cancels_again_a_task_that_lost_a_cancel(unit: float) -> None:
    swallowed = asyncio.Event()

    async def runs_on() -> None:
        await _swallow_one_cancel(swallowed)
        await asyncio.Event().wait()  # no check: only a second cancel stops it

    task = asyncio.create_task(runs_on())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task, patience=unit * 4), unit * 5)
    assert swallowed.is_set() and task.cancelled()


async def test_cancel_and_wait_logs_a_task_that_failed_or_will_not_stop(caplog: Any) -> None:
    release = asyncio.Event()

    async def fails() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise ValueError("boom") from None

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue

    failing = asyncio.create_task(fails())
    never = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, "wirehub"):
        await cancel_and_wait(failing, what="the failing one")
        await cancel_and_wait(never, patience=1.0, what="the stubborn one")
    assert "the failing one failed: ValueError('boom')" in caplog.text
    assert "the stubborn one did not stop within 1 s" in caplog.text
    assert not never.done()
    release.set()
    await never
