"""inventory.toml applied while the collector runs: on SIGHUP and when the file changes.

The collector app installs an `InventoryReloader` (collector.appkeys.RELOADER) when it knows
the file's path; each part that follows the inventory adds a hook.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from collector.config import CollectorNameError, Inventory, InventoryError, load_inventory

log = logging.getLogger("nettvakt.collector")

# How often the collector looks at inventory.toml for changes.
RELOAD_POLL_S = 2.0


class InventoryReloader:
    """inventory.toml reloaded on SIGHUP and when the file changes; a bad file is refused, the old one stays.

    What a reload changes at once: agents and their tokens, sites, probes (served to agents),
    devices (the SNMP pollers restart), which sites this collector owns ([collectors]: a site
    moved away is dropped, its agents are sent on). [collector] and [storage] are read at start only.
    `inventory` is the view of the collector `inventory.collector_name` (Inventory.for_collector);
    each reload takes the same view of the new file, and a file that no longer names it is refused.
    """

    def __init__(self, path: Path, inventory: Inventory, poll_s: float = RELOAD_POLL_S):
        self.path = path
        self.inventory = inventory
        self.collector_name = inventory.collector_name
        self.poll_s = poll_s
        self.hooks: list[Callable[[Inventory, Inventory], Awaitable[None]]] = []
        self.on_refused: list[Callable[[str], Awaitable[object]]] = []  # told the first problem of a refused file
        self.reloads = 0
        self.refused = 0
        self.last_error: str | None = None  # why the last changed file was refused; None once one is taken
        # Parts that failed to take the last inventory applied (hooks, by name): they still run the
        # one before, until the next reload or restart. /health says so.
        self.parts_not_applied: list[str] = []
        self.checks = 0  # rounds of the file watcher: a test can wait for one instead of sleeping
        self._stamp = self._file_stamp()
        self._lock = asyncio.Lock()

    def health(self) -> dict[str, object]:
        """The /health `inventory` section."""
        return {"reloads": self.reloads, "refused": self.refused, "last_error": self.last_error, "parts_not_applied": self.parts_not_applied}

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    async def reload(self, why: str) -> bool:
        """Apply the file if it validates (as `nettvakt check` does); else keep the inventory in force and say why."""
        async with self._lock:
            self._stamp = self._file_stamp()
            try:
                new = await asyncio.to_thread(load_inventory, self.path, startup=True)
                new = new.for_collector(self.collector_name)
            except CollectorNameError as exc:
                await self._refused(why, InventoryError(self.path, [str(exc)]))
                return False
            except InventoryError as exc:
                await self._refused(why, exc)
                return False
            old, self.inventory = self.inventory, new
            self.reloads += 1
            self.last_error = None
            self.parts_not_applied = []
            for hook in self.hooks:
                part = str(getattr(hook, "__qualname__", hook))
                try:
                    await hook(old, new)
                except Exception:  # one part failing to take the new inventory must not stop the others; /health shows it
                    log.exception("inventory reload (%s): applying it to %s failed", why, part)
                    self.parts_not_applied.append(part)
            restart_only = [name for name in ("collector", "storage") if getattr(old, name) != getattr(new, name)]
            log.info(
                "inventory reloaded (%s): %d sites, %d agents, %d devices, %d probes%s%s",
                why, len(new.site), len(new.agent), len(new.device), len(new.probe),
                f" (collector {self.collector_name!r})" if self.collector_name else "",
                f"; changes in [{'], ['.join(restart_only)}] take effect at the next restart" if restart_only else "",
            )
            return True

    async def _refused(self, why: str, exc: InventoryError) -> None:
        self.refused += 1
        self.last_error = str(exc)
        first = exc.lines()[0] if exc.found else str(exc)
        more = f" (and {len(exc.found) - 1} more; `nettvakt check {self.path}` lists them)" if len(exc.found) > 1 else ""
        log.error("inventory reload (%s) refused, the previous inventory stays in force: %s%s", why, first, more)
        for announce in self.on_refused:
            try:
                await announce(first + more)
            except Exception:  # the refusal is logged already; a failing channel is alerting's to report
                log.exception("inventory reload: announcing the refusal failed")

    async def watch(self) -> None:
        """Poll the file; a change is applied, or refused with the old inventory kept. Never stops on an error."""
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                stamp = self._file_stamp()
                if stamp is not None and stamp != self._stamp:
                    await self.reload("file changed")
            except Exception:  # a bug here must not end the watching; logged with its trace
                log.exception("inventory watcher: checking %s failed; still watching", self.path)
            self.checks += 1
