"""One SSH round per device: facts and (optionally) a configuration backup in a single session."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.points import Point

from .configs import BackupResult, ConfigStore
from .facts import Facts, FactsError, facts_from_outputs, facts_points
from .linuxfiles import output_problem
from .platforms import PLATFORMS, all_error_prefixes
from .session import SshFailure, SshRunner, SshTarget, config_command


@dataclass
class DeviceRun:
    device: str
    facts: Facts | None = None
    points: list[Point] = field(default_factory=list)
    backup: BackupResult | None = None
    error: SshFailure | None = None
    facts_error: str | None = None  # the session worked but the output did not parse
    backup_error: str | None = None  # the config command printed an error, not a configuration


def config_problem(text: str, target: SshTarget | None = None) -> str | None:
    """None when `text` is a configuration; else what the device printed instead."""
    if target is not None and PLATFORMS[target.device_type].config_from_files:
        return output_problem(text, target.config_files)
    head = text.lstrip()
    if not head:
        return "empty output"
    if head.startswith(all_error_prefixes()):
        return f"device said: {head.splitlines()[0][:120]}"
    return None


def commands_for(target: SshTarget, *, facts: bool, backup: bool) -> list[str]:
    commands = [r.command for r in PLATFORMS[target.device_type].facts] if facts else []
    config_cmd = config_command(target.device_type, target.config_files)
    if backup and config_cmd:
        commands.append(config_cmd)
    return commands


async def run_devices(
    runner: SshRunner,
    targets: Sequence[SshTarget],
    *,
    facts: bool = True,
    store: ConfigStore | None = None,
    when: dt.datetime | None = None,
) -> list[DeviceRun]:
    """Every target in parallel (bounded by the runner); results in the order of `targets`."""
    jobs = [(t, commands_for(t, facts=facts, backup=store is not None)) for t in targets]
    results = await runner.run_many(jobs)
    runs = []
    for target, result in zip(targets, results):
        run = DeviceRun(target.device, error=result.error)
        if result.ok:
            if facts:
                try:
                    run.facts = facts_from_outputs(PLATFORMS[target.device_type].facts, result.outputs)
                    run.points = facts_points(run.facts, device=target.device, site=target.site, kind=target.kind)
                except FactsError as exc:
                    run.facts_error = str(exc)
            config_cmd = config_command(target.device_type, target.config_files)
            if store is not None and config_cmd:
                text = result.outputs[config_cmd]
                run.backup_error = config_problem(text, target)
                if run.backup_error is None:
                    # git blocks; keep it off the event loop the collector's ingest API runs on.
                    run.backup = await asyncio.to_thread(store.save, target.device, text, when=when)
        runs.append(run)
    return runs
