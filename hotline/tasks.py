"""Stopping a background task the same way everywhere."""

from __future__ import annotations

import asyncio


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel ``task`` and return once it has finished (its cancellation is not
    an error here; any other exception it ends with is raised)."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
