"""asyncio helpers shared by the bus, the runtime and the service."""

from __future__ import annotations

import asyncio


async def cancel_and_wait(task: asyncio.Task, retry_s: float = 0.5) -> None:
    """Cancel ``task`` and wait until it has finished, cancelling again if a cancel is lost.

    On Python < 3.12 ``asyncio.wait_for`` swallows a cancellation that arrives as its inner
    awaitable completes, so a loop that uses it (nats-py's fetch and publish do) can go on
    after a single ``cancel()``, and ``await task`` then waits forever.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=retry_s)
    if not task.cancelled():
        task.exception()  # retrieved: the caller is stopping the task, not handling its error
