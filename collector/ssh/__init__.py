"""SSH to network gear (netmiko in threads): facts, configuration backups with history, change alerts.

- `platforms`: one descriptor per `device_type` (netmiko driver, enable, facts recipes, configuration
  command, read-only commands, configuration filters), in one read-only table the others read
- `facts`: what the facts parsers share, and facts -> `hardware`/`device` points; the parsers of each
  platform (ntc-templates where a template exists) in `facts_fortios`, `facts_ios`, `facts_procurve`, `facts_linux`
- `configs`: redaction, normalisation (the platforms' filters) and the git-backed `ConfigStore`
- `linuxfiles`: a Linux device's configuration = its `config_files`, listed by one command
- `session`: `SshRunner` (bounded thread pool, per-device timeouts), host keys pinned on first use
- `tasks`: one session per device for facts and backup; `scheduler`: the same on each device's
  interval, with `alert` event points and announcements of configuration changes and changed host keys
- `commands`: which commands `nettvakt ssh run` may send (the platform's read-only ones, plus the device's allow-list)
- `cli`: `nettvakt config backup|history|diff`, `nettvakt ssh run`
- `recorded`, `simulator`: recorded sessions from shared/cli, replayed by a real SSH server (tests, demos)
- `fakeswitch`: a fake-switches Cisco switch with secrets in its configuration (tests, demos)

See docs/ssh.md.
"""
