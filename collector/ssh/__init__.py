"""SSH to network gear (netmiko in threads): facts, configuration backups with history, change alerts.

- `facts`: parsers of CLI output (ntc-templates where a template exists) -> `hardware`/`device` points
- `configs`: redaction, normalisation (volatile lines, FortiOS ENC churn) and the git-backed `ConfigStore`
- `linuxfiles`: a Linux device's configuration = its `config_files`, listed by one command
- `session`: `SshRunner` (bounded thread pool, per-device timeouts), host keys pinned on first use
- `tasks`: one session per device for facts and backup; `scheduler`: the same on each device's
  interval, with `alert` event points and announcements of configuration changes and changed host keys
- `commands`: which commands `nettvakt ssh run` may send (read-only per platform, plus the device's allow-list)
- `cli`: `nettvakt config backup|history|diff`, `nettvakt ssh run`
- `recorded`, `simulator`: recorded sessions from shared/cli, replayed by a real SSH server (tests, demos)
- `fakeswitch`: a fake-switches Cisco switch with secrets in its configuration (tests, demos)

See docs/ssh.md.
"""
