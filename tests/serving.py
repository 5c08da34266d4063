"""An aiohttp application served for real on a loopback port, for as long as a test needs it.

    async with serving(app) as base_url:          # "http://127.0.0.1:PORT"
        async with aiohttp.ClientSession(base_url) as http:
            ...

The port is a free one the kernel picks; the application's startup and cleanup hooks run as
they do in the collector, and the server is cleaned up on the way out whatever happened inside.
With an SSL context the address is https://.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


@asynccontextmanager
async def serving(
    app: web.Application,
    *,
    shutdown_timeout: float = 60.0,  # aiohttp's own default; 0.1 where open connections need not drain
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 and yield its base URL (no trailing slash); always cleaned up."""
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context).start()
        scheme = "http" if ssl_context is None else "https"
        yield f"{scheme}://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
