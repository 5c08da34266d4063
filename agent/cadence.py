"""The one interval loop: a job on a fixed grid, for the agent's measurements and the collector's pollers."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable


async def run_every(
    interval_s: float,
    job: Callable[[], Awaitable[object]],
    *,
    what: str,
    log: logging.Logger,
    spread_s: float,
) -> None:
    """Run `job` every `interval_s` seconds until cancelled.

    The first run waits a random part of `spread_s` (at most one interval), so forty probes or
    twenty devices do not all start in the same millisecond. Runs are on a fixed grid, not a pause
    after each run, so a slow run does not stretch the series. A job that raises is logged with its
    trace as "`what` failed" and runs again at the next tick: one broken target must not stop the
    others.
    """
    await asyncio.sleep(random.uniform(0, min(interval_s, spread_s)))
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed", what)
        next_at += interval_s
        await asyncio.sleep(max(0.0, next_at - loop.time()))
