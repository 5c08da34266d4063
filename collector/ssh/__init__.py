"""SSH to network gear (netmiko in threads): facts, configuration backups with history.

- `facts`: parsers of CLI output (ntc-templates where a template exists) -> `hardware`/`device` points
- `configs`: redaction, normalisation (volatile lines, FortiOS ENC churn) and the git-backed `ConfigStore`
- `session`: `SshRunner` (bounded thread pool, per-device timeouts), host keys pinned on first use
- `tasks`: one session per device for facts and backup; `scheduler`: the same on each device's interval
- `cli`: `nettvakt config backup [DEVICE]`
- `recorded`, `simulator`: recorded sessions from shared/cli, replayed by a real SSH server (tests, demos)
"""
