"""cancel_and_wait stops a task even when the task loses the first cancellation."""

from __future__ import annotations

import asyncio

from gridsync.aio import cancel_and_wait


def test_a_task_that_swallows_one_cancel_still_stops():
    swallowed = []

    async def stubborn():
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed.append(True)  # what a racing asyncio.wait_for does on Python 3.11

    async def main():
        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        await asyncio.wait_for(cancel_and_wait(task, retry_s=0.05), 5.0)
        return task

    task = asyncio.run(main())
    assert swallowed == [True]
    assert task.cancelled()


def test_a_finished_task_is_left_alone():
    async def main():
        task = asyncio.create_task(asyncio.sleep(0, result=7))
        await task
        await cancel_and_wait(task)
        return task

    assert asyncio.run(main()).result() == 7
