"""inventory.toml: the single source of truth at the collector, as typed pydantic models.

Every error names the file, the TOML path (e.g. `device[3].snmp.version`) and what is
wrong; unknown keys are errors. Secrets are references (`env:`/`file:`), never inline.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    Field,
    GetCoreSchemaHandler,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import CoreSchema, core_schema

from agent.probes import PROBES, ProbeConfigError, ProbeSpec
from agent.secrets import SecretError, is_secret_ref, resolve_secret
from collector.alerting.channels import CHANNELS, ChannelKind, ChannelSettings
from collector.alerting.config import (
    AlertingSettings,
    AlertRule,
    MaintenanceWindow,
    alerting_problems,
    rule_names,
)
from collector.models import SHA256_RE, HostName, HostPort, Model, PositiveSeconds, SecretRef, Slug
from collector.problems import Problem, describe, did_you_mean, from_text, placed, unknown_references


class InventoryError(ValueError):
    """Raised with every problem found, each naming file, line, entry and key (collector/problems.py)."""

    def __init__(self, path: Path | str, problems: list[Problem] | list[str]):
        self.path = str(path)
        self.found = [p if isinstance(p, Problem) else Problem((), p) for p in problems]
        super().__init__("\n".join(self.lines()))

    @property
    def problems(self) -> list[str]:
        """Each problem without the file: `device 'sw-a': snmp.version: ...`."""
        return [p.text() for p in self.found]

    def lines(self) -> list[str]:
        """Each problem as printed: `inventory.toml:12: device 'sw-a': snmp.version: ...`."""
        return [p.render(self.path) for p in self.found]


# Writes in flight to the storage at once (the writer's window): the default from measurement
# (docs/benchmarks.md, "The writer with more than one write in flight"); past the maximum, a typo.
WRITE_CONCURRENCY = 4
MAX_WRITE_CONCURRENCY = 32
# More ingest workers than this is a typo, not a machine (each is a Python process of about 60 MB).
MAX_INGEST_WORKERS = 64


class CollectorSettings(Model):
    listen: HostPort = "127.0.0.1:8650"
    # Where agents reach the collector; written into `nettvakt agent` examples and docs.
    public_url: str | None = None
    data_dir: Path = Path("var/collector")
    tls_cert: Path | None = None
    tls_key: SecretRef | None = None
    max_batch_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    max_batch_points: int = Field(default=20000, gt=0)
    queue_max_bytes: int = Field(default=2 * 1024**3, gt=0)
    # Cap of the InfluxDB writer's exponential backoff: how long an outage may outlast its end.
    write_backoff_max_s: PositiveSeconds = 60.0
    # Per-agent request rate (token bucket): a sane agent sends a batch every few seconds and
    # a backlog one batch per round trip; a runaway one is answered 429 with Retry-After.
    agent_requests_per_s: float = Field(default=20.0, gt=0)
    agent_request_burst: int = Field(default=40, ge=1)
    # sha256 hex of the token that may set and remove silences over HTTP (`nettvakt agent token`
    # makes one). Without it those endpoints answer 403; reading alerts needs no token.
    admin_token_sha256: str | None = None
    # Point times an agent may post: a little ahead of the collector's clock (clocks drift), and
    # back as far as a full spool reaches (200 MB holds one to two months of a quiet agent).
    max_clock_ahead_s: PositiveSeconds = 300.0
    max_point_age_days: float = Field(default=90.0, gt=0, le=3650)
    # Connection hygiene: a request's head must arrive within request_head_timeout_s of the
    # connection opening (or of the previous answer: idle keep-alive connections close then too),
    # its body within request_body_timeout_s plus a second per KiB; one client address holds at
    # most this many connections.
    request_head_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    request_body_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    max_connections_per_client: int = Field(default=32, ge=1, le=100_000)
    # `availability` is stored on every change of a verdict and otherwise once per beat per
    # series (collector/availability.py): 5 minutes keeps it a small part of what is stored.
    availability_beat_s: float = Field(default=300.0, ge=30, le=3600)
    # How often an open status page fetches its live part again (collector/status/layout.py).
    status_refresh_s: float = Field(default=30.0, ge=1, le=3600)
    # Processes beside the collector's own that read, decode and check agents' batches on its port
    # (collector/workers.py); 0: the collector does it itself. Read at start only (docs/scaling.md).
    ingest_workers: int = Field(default=0, ge=0, le=MAX_INGEST_WORKERS)

    @field_validator("admin_token_sha256")
    @classmethod
    def _admin_hash(cls, value: str | None) -> str | None:
        if value is not None and not SHA256_RE.match(value):
            raise ValueError("expected the sha256 hex digest of the admin token (64 lower-case hex digits), never the token")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> "CollectorSettings":
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        return self


class StorageSettings(Model):
    """Where points go. `local` keeps them in the collector's durable store until InfluxDB is configured;
    `victoriametrics` writes to its InfluxDB endpoint (/write, `database` becomes its label `db`)."""

    kind: Literal["influxdb_v1", "influxdb_v2", "local", "victoriametrics"] = "local"
    url: str | None = None
    # v1 API (InfluxDB 1.x, and 2.x/3.x through their v1-compatible endpoint; VictoriaMetrics' label db)
    database: str | None = None
    retention_policy: str | None = None
    username: str | None = None
    password: SecretRef | None = None
    # v2 API
    org: str | None = None
    bucket: str | None = None
    token: SecretRef | None = None
    batch_size: int = Field(default=5000, gt=0, le=100000)
    # Writes of batch_size points each in flight to the storage at once, taken from the queue in
    # order (collector/writer.py); a crash resends at most these. Measured: docs/benchmarks.md.
    write_concurrency: int = Field(default=WRITE_CONCURRENCY, ge=1, le=MAX_WRITE_CONCURRENCY)
    flush_interval_s: PositiveSeconds = 1.0
    timeout_s: PositiveSeconds = 10.0
    verify_tls: bool = True
    ca_file: Path | None = None
    # How long points are kept, in whole days (docs/storage.md). On InfluxDB 1.x the collector
    # sets these at its start: the raw retention policy (retention_policy, else the database's
    # default) is ALTERed to raw_retention_days, which drops raw points older than that.
    raw_retention_days: int = 30
    rollup_5m_retention_days: int = 730
    rollup_1h_retention_days: int = 3650
    # Who makes the rollups: InfluxDB 1.x's continuous queries (set up by the collector), or the
    # collector itself as it writes (collector/rollup_engine.py), where the storage has no
    # continuous queries or the collector's user may not create them. Default: by kind.
    rollups: Literal["continuous_queries", "collector"] | None = None

    @field_validator("raw_retention_days", "rollup_5m_retention_days", "rollup_1h_retention_days", mode="before")
    @classmethod
    def _whole_days(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a whole number of days (e.g. 30), got {value!r}")
        if value < 1:
            raise ValueError(f"must be at least 1 day, got {value!r}")
        return value

    @model_validator(mode="after")
    def _rollups_outlive_their_source(self) -> "StorageSettings":
        # Each rollup is made from the resolution before it, so it must be kept at least as long.
        for shorter, longer in (("raw_retention_days", "rollup_5m_retention_days"), ("rollup_5m_retention_days", "rollup_1h_retention_days")):
            if getattr(self, longer) < getattr(self, shorter):
                raise ValueError(
                    f"{longer} = {getattr(self, longer)} is shorter than {shorter} = {getattr(self, shorter)}: "
                    "a rollup is made from the resolution before it and must be kept at least as long"
                )
        return self

    @model_validator(mode="after")
    def _required_per_kind(self) -> "StorageSettings":
        need = {"influxdb_v1": ("url", "database"), "influxdb_v2": ("url", "org", "bucket", "token"), "local": (),
                "victoriametrics": ("url", "database")}
        missing = [name for name in need[self.kind] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"kind = {self.kind!r} needs {', '.join(missing)}")
        if self.kind == "victoriametrics" and self.retention_policy is not None:
            raise ValueError("retention_policy does not apply to kind = 'victoriametrics' (it has one retention, -retentionPeriod)")
        if self.rollups == "continuous_queries" and self.kind != "influxdb_v1":
            raise ValueError(f"rollups = 'continuous_queries' needs kind = 'influxdb_v1'; kind = {self.kind!r} has none "
                             "(leave rollups out: the collector makes them)")
        if self.rollups is not None and self.kind == "local":
            raise ValueError("rollups does not apply to kind = 'local' (the local store keeps raw points only)")
        if self.url is not None and not re.match(r"^https?://", self.url):
            raise ValueError(f"url {self.url!r} must start with http:// or https://")
        return self

    @property
    def rollups_by(self) -> Literal["continuous_queries", "collector"] | None:
        """Who makes the rollups: `rollups` as set, else InfluxDB 1.x's continuous queries on
        influxdb_v1, the collector on every other storage, and nobody for `local`."""
        if self.kind == "local":
            return None
        if self.rollups is not None:
            return self.rollups
        return "continuous_queries" if self.kind == "influxdb_v1" else "collector"


class CollectorNode(Model):
    """`[collectors.NAME]`: one of several collectors of a deployment, and the sites it owns.

    A collector polls, judges and alerts on its own sites only; every collector writes to the
    one [storage]. Agents of a site are answered by the collector that owns it (the others send
    them there: docs/scaling.md). Without `[collectors]` one collector owns every site.
    """

    # Where agents and `nettvakt alerts --all` reach it (its public URL).
    url: str
    sites: list[Slug]
    # Override [collector] for this one; data_dir defaults to [collector].data_dir/NAME, so two
    # collectors on one machine never share a queue.
    listen: HostPort | None = None
    data_dir: Path | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+/?$", value):
            raise ValueError(f"url {value!r}: expected http(s)://HOST:PORT, the address agents reach this collector at")
        return value.rstrip("/")

    @field_validator("sites")
    @classmethod
    def _owns_some(cls, sites: list[str]) -> list[str]:
        if not sites:
            raise ValueError("a collector owns at least one site; one that owns none is taken out of [collectors]")
        return sites


class CollectorNameError(ValueError):
    """The collector's name (`--name`) and the inventory's [collectors] do not fit together."""


class LifecycleKind(Model):
    lifetime_years: float = Field(gt=0, le=50)
    replacement_cost_nok: float = Field(ge=0)


class Lifecycle(Model):
    currency: str = "NOK"
    kinds: dict[Slug, LifecycleKind] = Field(default_factory=dict)


class Site(Model):
    id: Slug
    name: str
    # The device everything at the site depends on (firewall, switch, link): alerts fold under it.
    uplink: Slug | None = None
    description: str | None = None


class SnmpV3(Model):
    user: str
    auth_protocol: Literal["SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512", "MD5"] | None = None
    auth_key: SecretRef | None = None
    priv_protocol: Literal["AES", "AES-128", "AES-256", "DES"] | None = None
    priv_key: SecretRef | None = None

    @model_validator(mode="after")
    def _levels(self) -> "SnmpV3":
        if (self.auth_protocol is None) != (self.auth_key is None):
            raise ValueError("auth_protocol and auth_key go together")
        if (self.priv_protocol is None) != (self.priv_key is None):
            raise ValueError("priv_protocol and priv_key go together")
        if self.priv_protocol and not self.auth_protocol:
            raise ValueError("privacy (priv_protocol) needs authentication (auth_protocol) too")
        return self


class SnmpSettings(Model):
    version: Literal["1", "2c", "3"] = "2c"
    port: int = Field(default=161, gt=0, lt=65536)
    community: SecretRef | None = None
    v3: SnmpV3 | None = None
    interval_s: PositiveSeconds = 60.0
    timeout_s: PositiveSeconds = 3.0
    retries: int = Field(default=2, ge=0, le=10)
    profile: str | None = None
    # Interfaces whose state matters (site uplinks): alert on down.
    important_interfaces: list[str] = Field(default_factory=list)
    # Real line rate of interfaces whose ifSpeed lies (e.g. a 1 Gbit port on a 50 Mbit/s fibre contract).
    interface_speed_bps: dict[str, float] = Field(default_factory=dict)

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str | None) -> str | None:
        from collector.snmp.profiles import PROFILES  # plain data; kept out of import time of the models

        if value is not None and value not in PROFILES:
            raise ValueError(f"unknown SNMP profile {value!r} (known: {', '.join(sorted(PROFILES))}){did_you_mean(value, PROFILES)}")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> "SnmpSettings":
        if self.version in ("1", "2c") and self.community is None:
            raise ValueError(f"version {self.version!r} needs community")
        if self.version == "3" and self.v3 is None:
            raise ValueError("version '3' needs a [v3] table")
        return self


class SshSettings(Model):
    device_type: str  # a name in collector.ssh.platforms.PLATFORMS
    port: int = Field(default=22, gt=0, lt=65536)
    username: str
    password: SecretRef | None = None
    key_file: Path | None = None
    # The passphrase of an encrypted key_file.
    key_passphrase: SecretRef | None = None
    # Cisco/ProCurve `enable` secret, for devices that log in unprivileged (prompt `>`).
    enable_secret: SecretRef | None = None
    interval_s: PositiveSeconds = 86400.0
    timeout_s: PositiveSeconds = 30.0
    # Regular expressions (matched against the whole command) that `nettvakt ssh run` may run
    # on this device besides the read-only commands it always allows.
    allow_commands: list[str] = Field(default_factory=list)
    # linux only: the files that are this device's configuration, backed up as one text
    # (collector/ssh/linuxfiles.py). Without them a linux device gives facts only.
    config_files: list[str] = Field(default_factory=list)

    @field_validator("device_type")
    @classmethod
    def _known_platform(cls, value: str) -> str:
        from collector.ssh.platforms import PLATFORMS  # the SSH platform table; kept out of import time of the models

        if value not in PLATFORMS:
            raise ValueError(f"unknown device_type {value!r} (known: {', '.join(sorted(PLATFORMS))}){did_you_mean(value, PLATFORMS)}")
        return value

    @model_validator(mode="after")
    def _auth(self) -> "SshSettings":
        if self.password is None and self.key_file is None:
            raise ValueError("needs password or key_file")
        if self.key_passphrase is not None and self.key_file is None:
            raise ValueError("key_passphrase without key_file")
        return self

    @field_validator("allow_commands")
    @classmethod
    def _patterns(cls, patterns: list[str]) -> list[str]:
        for i, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"allow_commands[{i}] {pattern!r} is not a regular expression: {exc}") from None
        return patterns

    @field_validator("config_files")
    @classmethod
    def _config_files(cls, paths: list[str], info: ValidationInfo) -> list[str]:
        # Imported here: the rule for a safe path lives with the command that uses it.
        from collector.ssh.linuxfiles import config_files_problem
        from collector.ssh.platforms import PLATFORMS

        device_type = info.data.get("device_type")
        if paths and device_type in PLATFORMS and not PLATFORMS[device_type].config_from_files:
            names = " or ".join(f'"{name}"' for name, platform in sorted(PLATFORMS.items()) if platform.config_from_files)
            raise ValueError(f"only for device_type = {names} (this device is {device_type!r}, whose configuration is its running-config)")
        problem = config_files_problem(paths)
        if problem is not None:
            raise ValueError(problem)
        return paths


class Battery(Model):
    """A UPS's battery: a consumable with its own due date, replaced several times in the UPS's life.

    Where the UPS says when its battery was last replaced or should be (APC PowerNet), that wins
    over these (collector.lifecycle.battery_plan)."""

    replaced: dt.date | None = None  # when the battery in it now went in; else the UPS's purchase date
    lifetime_years: float | None = Field(default=None, gt=0, le=20)  # else [lifecycle.kinds.ups-battery]
    cost_nok: float | None = Field(default=None, ge=0)


class Hardware(Model):
    """What the lifecycle report needs about one physical box."""

    kind: Slug
    model: str | None = None
    serial: str | None = None
    # The unit that uses (and budgets for) it, e.g. "Helse og omsorg": reports group by it.
    department: str | None = None
    purchased: dt.date | None = None
    cost_nok: float | None = Field(default=None, ge=0)
    lifetime_years: float | None = Field(default=None, gt=0, le=50)
    # Every `ups` has a battery plan (defaults from [lifecycle.kinds.ups-battery]); this refines it.
    battery: Battery | None = None


class Device(Model):
    id: Slug
    name: str
    site: Slug
    host: HostName
    hardware: Hardware
    snmp: SnmpSettings | None = None
    ssh: SshSettings | None = None


class AgentEntry(Model):
    id: Slug
    name: str
    site: Slug
    # sha256 hex of the agent's bearer token; the token itself lives only on the agent.
    token_sha256: str
    interval_s: PositiveSeconds = 30.0
    # How often the agent tells the collector it is alive (POST .../heartbeat, beside its reports):
    # a silent agent is found in a few heartbeats, not a few host-metric intervals.
    heartbeat_s: PositiveSeconds = 10.0
    # Silent for this many heartbeats (or, for an agent that sends none, report intervals) → down.
    down_after_intervals: int = Field(default=3, ge=1, le=100)
    hardware: Hardware | None = None
    services: list[str] = Field(default_factory=list)

    @field_validator("token_sha256")
    @classmethod
    def _hash(cls, value: str) -> str:
        if not SHA256_RE.match(value):
            raise ValueError("expected the sha256 hex digest of the token (64 lower-case hex digits), never the token")
        return value


class ProbeTarget(Model):
    name: Slug
    kind: str
    target: str
    # Run by every agent of these sites and by these agents.
    sites: list[Slug] = Field(default_factory=list)
    agents: list[Slug] = Field(default_factory=list)
    interval_s: PositiveSeconds = 30.0
    timeout_s: PositiveSeconds = 5.0
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in PROBES:
            raise ValueError(f"unknown probe kind {value!r}; known: {', '.join(sorted(PROBES))}")
        return value

    @model_validator(mode="after")
    def _assigned(self) -> "ProbeTarget":
        if not self.sites and not self.agents:
            raise ValueError("a probe needs `sites` or `agents` to run it")
        return self


class LoginSettings(Model):
    """`[logins]`: which agents record who logs in, how names are kept, and which accounts are shared (docs/logins.md)."""

    # Recorded by every agent of these sites and by these agents (people's logins are personal
    # data: nothing is recorded unless the inventory says where).
    sites: list[Slug] = Field(default_factory=list)
    agents: list[Slug] = Field(default_factory=list)
    interval_s: PositiveSeconds = 30.0
    # "plain": as the OS names the account; "hashed": `h:` and 16 hex digits of HMAC-SHA256 under `key`.
    user_names: Literal["plain", "hashed"] = "plain"
    key: SecretRef | None = None
    # Accounts several people share: a login to one is announced (rule `shared_account_login`).
    shared_accounts: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> "LoginSettings":
        if not self.sites and not self.agents:
            raise ValueError("[logins] needs `sites` or `agents` that record logins")
        if self.user_names == "hashed" and self.key is None:
            raise ValueError('user_names = "hashed" needs `key` (env:NAME or file:PATH of a long random secret)')
        if self.user_names == "plain" and self.key is not None:
            raise ValueError('`key` is only used with user_names = "hashed"; remove it or hash the names')
        blank = [i for i, name in enumerate(self.shared_accounts) if not name]
        if blank:
            raise ValueError(f"shared_accounts[{blank[0]}]: an account name cannot be empty")
        return self


class _SettingsOfItsKind:
    """pydantic: a `[[channel]]` table is validated by the settings model of its `kind`.

    That is a discriminated union on `kind` of every model in CHANNELS, made from the registry as
    it is when a table is validated: a kind is added in collector/alerting/channels/ alone (and a
    kind a test registers counts too). Each kind's model gives its own errors; pydantic adds them,
    each with its loc, to the inventory's (see _channel_problem for how they are worded).
    """

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(_channel_settings)


def _channel_settings(table: Any) -> ChannelSettings:
    return _settings_union(tuple(CHANNELS.values())).validate_python(table)


@functools.lru_cache(maxsize=8)
def _settings_union(kinds: tuple[ChannelKind[Any], ...]) -> TypeAdapter[ChannelSettings]:
    models = tuple(kind.settings for kind in kinds)
    return TypeAdapter(Annotated[Union[models], Field(discriminator="kind")])  # noqa: UP007 - a tuple of types


# `[[channel]]`: where messages go; one model and one sender per kind (collector/alerting/channels/).
Channel = Annotated[ChannelSettings, _SettingsOfItsKind()]


class Route(Model):
    channels: list[Slug]
    sites: list[Slug] = Field(default_factory=list)
    severities: list[Literal["info", "warning", "critical"]] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list)
    repeat_interval_s: PositiveSeconds = 4 * 3600.0
    # Notices about nettvakt itself (a channel that fails) go to the channels of routes that ask
    # for them: the people on call, not the managers' digest.
    system_notices: bool = False


class Inventory(Model):
    organisation: str = "nettvakt"
    collector: CollectorSettings = CollectorSettings()
    storage: StorageSettings = StorageSettings()
    lifecycle: Lifecycle = Lifecycle()
    site: list[Site] = Field(default_factory=list)
    device: list[Device] = Field(default_factory=list)
    agent: list[AgentEntry] = Field(default_factory=list)
    probe: list[ProbeTarget] = Field(default_factory=list)
    channel: list[Channel] = Field(default_factory=list)
    route: list[Route] = Field(default_factory=list)
    alerting: AlertingSettings = AlertingSettings()
    alert: list[AlertRule] = Field(default_factory=list)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    logins: LoginSettings | None = None
    # Several collectors, each owning some sites (docs/scaling.md); empty: one collector owns all.
    collectors: dict[Slug, CollectorNode] = Field(default_factory=dict)

    # Folder of the inventory file, for relative file: secrets and data_dir. Not a TOML key.
    base_dir: Path = Field(default=Path("."), exclude=True)
    # Set by `for_collector` only (not TOML keys): which collector this view is for, and the
    # agents other collectors own (known, so that one asking here is told where to go).
    collector_name: str | None = Field(default=None, exclude=True)
    elsewhere: tuple[AgentEntry, ...] = Field(default=(), exclude=True)

    def cross_check(self) -> list[str]:
        """Problems that span tables (duplicate ids, dangling references), each with its TOML path."""
        problems: list[str] = []
        site_ids = _unique(problems, "site", [s.id for s in self.site])
        device_ids = _unique(problems, "device", [d.id for d in self.device])
        agent_ids = _unique(problems, "agent", [a.id for a in self.agent])
        _unique(problems, "probe", [p.name for p in self.probe], key="name")
        channel_ids = _unique(problems, "channel", [c.id for c in self.channel])
        for i, site in enumerate(self.site):
            if site.uplink is not None and site.uplink not in device_ids:
                problems.append(f"site[{i}].uplink: no device with id {site.uplink!r}{did_you_mean(site.uplink, device_ids)}")
        for table, entries in (("device", self.device), ("agent", self.agent)):
            for i, entry in enumerate(entries):
                if entry.site not in site_ids:
                    problems.append(f"{table}[{i}].site: no site with id {entry.site!r}{did_you_mean(entry.site, site_ids)}")
                hw = entry.hardware
                if hw is not None and hw.lifetime_years is None and hw.kind not in self.lifecycle.kinds:
                    problems.append(
                        f"{table}[{i}].hardware.kind: {hw.kind!r} has no [lifecycle.kinds.{hw.kind}] and no lifetime_years"
                    )
        for i, probe in enumerate(self.probe):
            # What the agent would refuse when the collector sends it (and `nettvakt probe` refuses), refused here.
            try:
                ProbeSpec.from_json(
                    {"kind": probe.kind, "target": probe.target, "name": probe.name, "interval_s": probe.interval_s,
                     "timeout_s": probe.timeout_s, "params": probe.params},
                    f"probe[{i}]",
                )
            except ProbeConfigError as exc:
                problems.append(str(exc))
            problems += unknown_references(f"probe[{i}].sites", probe.sites, site_ids, "site with id")
            problems += unknown_references(f"probe[{i}].agents", probe.agents, agent_ids, "agent with id")
        for i, route in enumerate(self.route):
            problems += unknown_references(f"route[{i}].channels", route.channels, channel_ids, "channel with id")
            problems += unknown_references(f"route[{i}].sites", route.sites, site_ids, "site with id")
            problems += unknown_references(f"route[{i}].rules", route.rules, rule_names(self.alert), "alert rule or rule kind")
        if self.logins is not None:
            problems += unknown_references("logins.sites", self.logins.sites, site_ids, "site with id")
            problems += unknown_references("logins.agents", self.logins.agents, agent_ids, "agent with id")
        problems += alerting_problems(
            self.alert, self.maintenance, site_ids, agent_ids | device_ids | {p.name for p in self.probe}
        )
        problems += self._collector_problems(site_ids)
        hashes: dict[str, int] = {}
        for i, agent in enumerate(self.agent):
            if agent.token_sha256 in hashes:
                problems.append(f"agent[{i}].token_sha256: same token as agent {self.agent[hashes[agent.token_sha256]].id!r}; give every agent its own")
            hashes.setdefault(agent.token_sha256, i)
        return problems

    def _collector_problems(self, site_ids: set[str]) -> list[str]:
        """Every site owned by exactly one collector, with the device it folds under; urls apart."""
        if not self.collectors:
            return []
        problems: list[str] = []
        owner: dict[str, str] = {}
        urls: dict[str, str] = {}
        for name, node in self.collectors.items():
            problems += unknown_references(f"collectors.{name}.sites", node.sites, site_ids, "site with id")
            for j, site in enumerate(node.sites):
                if site in owner:
                    problems.append(f"collectors.{name}.sites[{j}]: site {site!r} is already owned by collector {owner[site]!r}; "
                                    "a site has one collector")
                owner.setdefault(site, name)
            if node.url in urls:
                problems.append(f"collectors.{name}.url: {node.url!r} is already the url of collector {urls[node.url]!r}")
            urls.setdefault(node.url, name)
        names = ", ".join(self.collectors)
        device_site = {d.id: d.site for d in self.device}
        for i, site in enumerate(self.site):
            if site.id not in owner:
                problems.append(f"site[{i}]: owned by no collector; add {site.id!r} to the sites of one of [collectors.*] ({names})")
            elif site.uplink in device_site and owner.get(device_site[site.uplink]) not in (None, owner[site.id]):
                # Site folding reads the uplink's state: it must be polled where the site is judged.
                problems.append(f"site[{i}].uplink: {site.uplink!r} is at site {device_site[site.uplink]!r}, owned by collector "
                                f"{owner[device_site[site.uplink]]!r}, but site {site.id!r} is owned by {owner[site.id]!r}; "
                                "a site and its uplink device go to one collector")
        return problems

    def collector_of(self, site: str) -> str | None:
        """The name of the collector that owns `site`; None without [collectors]."""
        return next((name for name, node in self.collectors.items() if site in node.sites), None)

    def for_collector(self, name: str | None, option: str = "--name") -> "Inventory":
        """The inventory as the collector `name` runs it: its own sites, their devices and agents,
        [collector] with its own listen, data_dir and public url. Without [collectors] (one
        collector owns everything) `name` must be None and this is the inventory itself.

        Raises CollectorNameError, saying what to give as `option`, when name and [collectors] do not fit.
        """
        if not self.collectors:
            if name is not None:
                raise CollectorNameError(f"{option} {name!r}: this inventory names no collectors ([collectors.NAME] with url and "
                                         f"sites); leave {option} out")
            return self
        if name is None:
            raise CollectorNameError(f"this inventory names {len(self.collectors)} collectors ({', '.join(self.collectors)}): "
                                     f"say which one with {option} NAME")
        node = self.collectors.get(name)
        if node is None:
            raise CollectorNameError(f"{option} {name!r}: no such collector in [collectors] (known: {', '.join(self.collectors)})"
                                     f"{did_you_mean(name, self.collectors)}")
        own = set(node.sites)
        settings = self.collector.model_copy(update={
            "listen": node.listen or self.collector.listen,
            "data_dir": node.data_dir if node.data_dir is not None else self.collector.data_dir / name,
            "public_url": node.url,
        })
        return self.model_copy(update={
            "collector": settings,
            "site": [s for s in self.site if s.id in own],
            "device": [d for d in self.device if d.site in own],
            "agent": [a for a in self.agent if a.site in own],
            "collector_name": name,
            "elsewhere": tuple(a for a in self.agent if a.site not in own),
        })

    def secret_refs(self) -> list[tuple[str, str]]:
        """(TOML path, reference) of every secret, to check they resolve."""
        found: list[tuple[str, str]] = []

        def walk(node: Any, path: str) -> None:
            if isinstance(node, BaseModel):
                for name in type(node).model_fields:
                    walk(getattr(node, name), f"{path}.{name}" if path else name)
            elif isinstance(node, (list, tuple)):
                for i, item in enumerate(node):
                    walk(item, f"{path}[{i}]")
            elif isinstance(node, str) and is_secret_ref(node):
                found.append((path, node))

        walk(self, "")
        return found

    def unresolved_secrets(self) -> list[str]:
        problems = []
        for path, ref in self.secret_refs():
            try:
                resolve_secret(ref, self.base_dir)
            except SecretError as exc:
                problems.append(f"{path}: {exc}")
        return problems

    def secret(self, ref: str) -> str:
        return resolve_secret(ref, self.base_dir)

    def startup_problems(self) -> list[str]:
        """What would stop the collector on this machine though the file is valid: each 'path: problem'."""
        problems = [] if self.site else ["site: no [[site]]: an inventory needs at least one site (`nettvakt init` writes a first one)"]
        problems += self.unresolved_secrets()
        cert = self.collector.tls_cert
        if cert is not None:
            path = cert if cert.is_absolute() else self.base_dir / cert
            try:
                path.read_bytes()
            except OSError as exc:
                problems.append(f"collector.tls_cert: cannot read {path}: {exc.strerror or exc}")
        return problems

    # Lookups used by the service layer.
    def agent_by_id(self, agent_id: str) -> AgentEntry | None:
        return next((a for a in self.agent if a.id == agent_id), None)

    def records_logins(self, agent: AgentEntry) -> bool:
        return self.logins is not None and (agent.site in self.logins.sites or agent.id in self.logins.agents)

    def probes_for(self, agent: AgentEntry) -> list[ProbeTarget]:
        return [p for p in self.probe if agent.site in p.sites or agent.id in p.agents]

    def data_dir(self) -> Path:
        path = self.collector.data_dir
        return path if path.is_absolute() else self.base_dir / path


def _unique(problems: list[str], table: str, ids: list[str], key: str = "id") -> set[str]:
    seen: dict[str, int] = {}
    for i, ident in enumerate(ids):
        if ident in seen:
            problems.append(f"{table}[{i}].{key}: {ident!r} is already used by an earlier {table}")
        seen.setdefault(ident, i)
    return set(seen)


# Inventory fields the loader sets, never the file.
_NOT_TOML_KEYS = tuple(name for name, info in Inventory.model_fields.items() if info.exclude)


def parse_inventory(data: dict[str, Any], path: Path | str = "inventory.toml", text: str | None = None) -> Inventory:
    """The inventory from parsed TOML; `text` (the file as written) puts line numbers on the problems."""
    base_dir = Path(path).resolve().parent
    not_toml = [key for key in _NOT_TOML_KEYS if key in data]
    if not_toml:
        raise InventoryError(path, placed([Problem((key,), "unknown key") for key in not_toml], data, text))
    try:
        inventory = Inventory.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        raise InventoryError(path, placed(_described(exc.errors()), data, text)) from None
    problems = inventory.cross_check()
    if problems:
        raise InventoryError(path, placed([from_text(p) for p in problems], data, text))
    return inventory


def _described(errors: list[Any]) -> list[Problem]:
    """pydantic's errors as Problems; those of a `[[channel]]` in the words of its kind."""
    problems = []
    missing: dict[tuple[object, ...], tuple[str, list[str]]] = {}  # a channel's loc -> (how it is called, keys it lacks)
    for error in errors:
        loc = error["loc"]
        if len(loc) < 2 or loc[0] != "channel" or not isinstance(loc[1], int):
            problems.append(describe(error, Inventory))
            continue
        problem = _channel_problem(error)
        if error["type"] == "missing" and len(problem.loc) == 3:
            # One line per channel, as "an email channel needs `to` and `smtp_host`", on its [[channel]] line.
            missing.setdefault(loc[:2], (CHANNELS[loc[2]].called, []))[1].append(f"`{problem.loc[2]}`")
        else:
            problems.append(problem)
    problems += [Problem(where, f"{called} needs {_listed(keys, 'and')}") for where, (called, keys) in missing.items()]
    return problems


def _channel_problem(error: Any) -> Problem:
    """One error of a `[[channel]]` table.

    pydantic puts the kind into the loc of the errors of its model (the union's tag, as in
    `("channel", 2, "sms", "to")`); that is no TOML key, so it is taken out and the kind's own
    model words the error. A key of another kind is named as such, not as an unknown key.
    """
    where, tag, rest = error["loc"][:2], error["loc"][2:3], error["loc"][3:]
    kinds = _listed([repr(name) for name in CHANNELS], "or")
    if error["type"] == "union_tag_not_found":
        return Problem((*where, "kind"), f"required key is missing (one of {kinds})")
    if error["type"] == "union_tag_invalid":
        given = error["input"]["kind"]  # as written (the tag in ctx is its str())
        return Problem((*where, "kind"), f"{given!r} is not one of {kinds}{did_you_mean(given, CHANNELS)}")
    if not tag or tag[0] not in CHANNELS:  # not a table at all
        return Problem(where, f"expected a table, got {error['input']!r}")
    kind = CHANNELS[tag[0]]
    problem = describe({**error, "loc": rest}, kind.settings)
    if error["type"] == "extra_forbidden" and len(problem.loc) == 1:
        key = problem.loc[0]
        others = [other.name for other in CHANNELS.values() if key in other.settings.model_fields]
        if others:
            return Problem((*where, key), f"does not apply to {kind.called} (only to {_listed(others, 'and')} channels)")
    return Problem((*where, *problem.loc), problem.message)


def _listed(words: list[str], last: str) -> str:
    """'a', 'a and b', 'a, b and c' (or 'or')."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def load_inventory(path: Path | str, *, startup: bool = False, offline: bool = False) -> Inventory:
    """inventory.toml, validated; InventoryError lists every problem, each with its line.

    With `startup` (the collector's gate: `check`, `collector run`, every reload) also what would
    stop the collector on this machine: no sites, secrets that do not resolve, an unreadable
    certificate. `offline` (checking a file on another machine) leaves secrets and files out;
    `offline_notes()` says which were not checked.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InventoryError(path, [f"cannot read: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InventoryError(path, [f"not UTF-8: {exc}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r" \(at line (\d+), column (\d+)\)", str(exc))
        if where is None:
            raise InventoryError(path, [Problem((), f"TOML syntax: {exc}")]) from None
        message = f"TOML syntax: {str(exc).replace(where.group(0), '')} (column {where.group(2)})"
        raise InventoryError(path, [Problem((), message, int(where.group(1)))]) from None
    inventory = parse_inventory(data, path, text)
    if startup:
        problems = [p for p in inventory.startup_problems() if not (offline and _environmental(p))]
        if problems:
            raise InventoryError(path, placed([from_text(p) for p in problems], data, text))
    return inventory


def _environmental(problem: str) -> bool:
    """A problem of this machine rather than of the file (an unset variable, an unreadable file)."""
    return not problem.startswith("site: ")


def offline_notes(inventory: Inventory) -> list[str]:
    """What `check --offline` did not check: the secrets and files only the collector's machine has."""
    return [p for p in inventory.startup_problems() if _environmental(p)]
