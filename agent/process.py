"""How a `nettvakt` command's process ends: its exit code, and a long run stopped by a signal.

Exit codes (README, "Exit codes"): 0 success; 1 a check, probe or report found a problem or
could not read its data; 2 bad usage, bad configuration or a missing install (argparse uses 2
for usage errors too). Agent and collector commands import these from here, a module with no
dependencies, so the agent never loads the collector and the command table nothing it names.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def run_until_signal(coro: Coroutine[Any, Any, Any]) -> int:
    """Run a long-lived coroutine until SIGINT/SIGTERM, then let it clean up."""

    async def main() -> None:
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, task.cancel)
            except NotImplementedError:  # Windows: Ctrl-C still raises KeyboardInterrupt
                pass
        try:
            await task
        except asyncio.CancelledError:
            pass

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    return EXIT_OK
