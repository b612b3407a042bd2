"""The daemon's configuration: a TOML file, then environment variables, then flags.

    [daemon]
    ae_title = "AIOMOVE"                  # our AE title: the move destination the PACS knows
    port = 11112                          # Storage SCP port (the PACS sends here)
    store = "sqlite+aiosqlite:////var/lib/aiomove/jobs.db"
    output = "/data/aiomove"
    [peers.MAIN]
    host = "pacs.example.org"
    port = 104
    ae_title = "PACS"
    max_associations = 2
    schedule = ["mon-fri 19:00-07:00", "sat-sun"]
    [peers.MAIN.tls]                      # DICOM TLS towards this peer (PS3.15 Annex B)
    ca_file = "ca.pem"                    # also ca_files = [...], ca_dir, crl_file
    cert_file = "me.pem"                  # our certificate and key (optional for a client)
    key_file = "me.key"
    password = "..."                      # for an encrypted key (never prompted)
    profile = "8996"                      # aiomove.tls.PROFILES
    verify = "require"                    # "verify-if-present" | "ignore" | true | false
    [security]                            # the Storage SCP (`aiomove move`'s security options)
    accept_aet = ["PACS"]                 # calling AE titles accepted (default: any)
    accept_network = ["10.0.0.0/8"]
    max_associations = 16
    idle_timeout = 60.0
    min_rate = 1024                       # bytes/s
    max_instance_size = 4096              # MiB, 0: none
    min_free_space = 1024                 # MiB
    access_control = false                # hosts_allow / hosts_deny (daemon name "movescu")
    [security.tls]                        # the Storage SCP accepts DICOM TLS only
    cert_file = "scp.pem"
    key_file = "scp.key"
    ca_file = "ca.pem"                    # verify = "require" wants a client certificate

`[daemon] only_moved` (default true) refuses (0x0124) C-STOREs that belong to no C-MOVE of this
daemon. TLS contexts are built once at load time; a TLS problem is a ConfigError.

Every `[daemon]` key can also come from `AIOMOVE_<KEY>` (e.g. `AIOMOVE_STORE`,
`AIOMOVE_HTTP_PORT`); flags given to `aiomove daemon` win over both. Relative paths in the file
are relative to the file. The daemon is asyncio-only (the job store uses SQLAlchemy's async
engine).
"""

from __future__ import annotations

import os
import socket
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from aiomove.association import Peer, Timeouts
from aiomove.cli_move import PREFER
from aiomove.daemon.schedule import Schedule, ScheduleError
from aiomove.layout import DEFAULT_LAYOUT, Layout, LayoutError
from aiomove.options import OptionError, ParsedArgs
from aiomove.options_security import security_settings
from aiomove.proto import uids
from aiomove.tls import (
    DEFAULT_PROFILE,
    PROFILES,
    PeerCertificate,
    TlsError,
    TlsSettings,
    client_context,
    server_context,
)
from aiomove.transfer import Prefer

ENV_PREFIX = "AIOMOVE_"
MODELS = {"study": uids.STUDY_ROOT_QR_MOVE, "patient": uids.PATIENT_ROOT_QR_MOVE}
PREFERENCES: Mapping[str, Prefer] = PREFER  # `aiomove move --prefer`'s names
#: The daemon name host access rules (hosts.allow) match, as for `aiomove move`.
HOST_ACCESS_DAEMON = "movescu"


class ConfigError(ValueError):
    """A configuration that cannot be used; the message says which key and why."""


@dataclass(frozen=True)
class PeerConfig:
    """One PACS, by name: where it is, how to query it, how hard we may use it."""

    name: str
    host: str
    port: int
    ae_title: str
    model: str = "study"  # "study" | "patient": the Q/R information model (PS3.4 C.6)
    max_associations: int = 2  # across every worker of every machine
    schedule: Schedule = field(default_factory=Schedule)
    tls: TlsSettings | None = None
    #: Built once by `load_config` from `tls` (no file reads or prompts per job).
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False, repr=False)

    @property
    def move_model(self) -> str:
        return MODELS[self.model]

    def peer(self) -> Peer:
        return Peer(self.host, self.port, self.ae_title, ssl_context=self.ssl_context)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for transient failures: base * factor**(attempt-1), capped."""

    base: float = 5.0
    factor: float = 2.0
    max_delay: float = 600.0
    jitter: float = 0.1  # +- this fraction, so that a failed batch does not retry in lockstep

    def delay(self, attempt: int, random: float = 0.5) -> float:
        """Seconds before attempt `attempt + 1`; `random` in [0, 1) spreads it by `jitter`."""
        raw = min(self.base * self.factor ** max(attempt - 1, 0), self.max_delay)
        return max(0.0, raw * (1 + self.jitter * (2 * random - 1)))


@dataclass(frozen=True)
class DaemonConfig:
    """Everything `aiomove daemon` needs (see the module docstring for the file format)."""

    store: str
    output: Path
    ae_title: str = "AIOMOVE"
    host: str = "0.0.0.0"  # Storage SCP bind address
    port: int = 11112
    http_host: str = "127.0.0.1"
    http_port: int = 8080  # 0: no HTTP API
    api_token: str = ""  # "": no authentication; else every route but /health needs it
    layout: str = DEFAULT_LAYOUT
    workers: int = 4  # jobs run at once by this process
    worker_id: str = ""  # lease owner; "" = "<ae_title>@<hostname>"
    lease: float = 30.0  # job and slot lease (seconds); renewed every lease/3
    poll_interval: float = 2.0  # how often idle workers look for claimable jobs
    grace: float = 30.0  # SIGTERM: how long running jobs may finish before C-CANCEL
    store_timeout: float = 30.0  # the longest a job-store write may hold up a stop or drain
    max_attempts: int = 5
    linger: float = 5.0
    prefer: str = "uncompressed"
    connect_timeout: float = 30.0
    acse_timeout: float = 30.0
    dimse_timeout: float = 0.0  # 0 = none
    log_level: str = "info"
    log_json: bool = True
    #: Refuse (0x0124) C-STOREs that belong to no outstanding C-MOVE of this daemon.
    only_moved: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    peers: Mapping[str, PeerConfig] = field(default_factory=dict)
    #: `[security]`: `options_security.security_settings()`'s keyword arguments
    #: ("acceptor", "sink", "handler") for the Storage SCP.
    security: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, compare=False)
    #: `[security.tls]`: DICOM TLS on the Storage SCP; the context is built once.
    tls: TlsSettings | None = None
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False, repr=False)

    @property
    def owner(self) -> str:
        return self.worker_id or f"{self.ae_title}@{socket.gethostname()}"

    @property
    def timeouts(self) -> Timeouts:
        return Timeouts(
            connect=self.connect_timeout,
            acse=self.acse_timeout,
            dimse=self.dimse_timeout or None,
        )

    @property
    def parsed_layout(self) -> Layout:
        return Layout.parse(self.layout)

    @property
    def preference(self) -> Prefer:
        return PREFERENCES[self.prefer]

    def peer(self, name: str) -> PeerConfig:
        if name not in self.peers:
            raise ConfigError(f"unknown peer {name!r} (configured: {', '.join(self.peers)})")
        return self.peers[name]


#: `[daemon]` keys that can be set (file, environment, flags), with their types.
_TABLES = ("retry", "peers", "security", "tls", "ssl_context")
_SCALARS = {f.name: f.type for f in fields(DaemonConfig) if f.name not in _TABLES}


def _convert(key: str, kind: Any, value: Any, where: str) -> Any:
    kind = str(kind)
    try:
        if kind == "Path":
            return Path(value)
        if kind == "int" and not isinstance(value, bool):
            return int(value)
        if kind == "float" and not isinstance(value, bool):
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind == "str":
            return str(value)
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"{where}: {key} = {value!r} is not a valid {kind}")


#: `verify` values: DCMTK's -rc / -vc / -ic (a bool means require / ignore).
_VERIFY: Mapping[str, PeerCertificate] = {
    "require": "require",
    "verify-if-present": "verify",
    "ignore": "ignore",
}
_TLS_KEYS = frozenset(
    {"cert_file", "key_file", "ca_file", "ca_files", "ca_dir", "crl_file", "password"}
    | {"profile", "verify"}
)


def _tls(table: Any, base: Path, where: str) -> TlsSettings:
    """TlsSettings from a `tls` table. No password means the empty one: the daemon never
    prompts on a terminal (an encrypted key without `password` is a ConfigError)."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: must be a table")
    unknown = set(table) - _TLS_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown TLS setting(s) {sorted(unknown)}")

    def path(key: str) -> str | None:
        return None if key not in table else str(base / str(table[key]))

    def paths(*keys: str) -> tuple[str, ...]:
        out: list[str] = []
        for key in keys:
            value = table.get(key, [])
            for item in [value] if isinstance(value, str) else list(value):
                out.append(str(base / str(item)))
        return tuple(out)

    verify = table.get("verify", "require")
    if isinstance(verify, str) and verify.strip().lower() in _VERIFY:
        check = _VERIFY[verify.strip().lower()]
    else:
        check = "require" if _convert("verify", "bool", verify, where) else "ignore"
    profile = str(table.get("profile", DEFAULT_PROFILE))
    if profile not in PROFILES:
        raise ConfigError(f"{where}: profile must be one of {sorted(PROFILES)}")
    return TlsSettings(
        key_file=path("key_file"),
        cert_file=path("cert_file"),
        password=str(table.get("password", "")),
        ca_files=paths("ca_file", "ca_files"),
        ca_dirs=paths("ca_dir"),
        crl_files=paths("crl_file"),
        profile=profile,
        peer_certificate=check,
    )


def _context(settings: TlsSettings, where: str, *, server: bool) -> ssl.SSLContext:
    try:
        return server_context(settings) if server else client_context(settings)
    except TlsError as exc:
        raise ConfigError(f"{where}: {exc}") from None


#: `[security]` keys and their types (`options_security` dests; sizes in MiB).
_SECURITY: Mapping[str, str] = {
    "access_control": "bool",
    "disable_host_lookup": "bool",
    "hosts_allow": "Path",
    "hosts_deny": "Path",
    "max_associations": "int",
    "idle_timeout": "float",
    "min_rate": "int",
    "max_instance_size": "int",
    "min_free_space": "int",
}
_SECURITY_LISTS = ("accept_aet", "accept_network")


def _security(
    table: Any, base: Path
) -> tuple[dict[str, dict[str, Any]], TlsSettings | None, ssl.SSLContext | None]:
    """`[security]` as `security_settings()` keyword arguments, and `[security.tls]`."""
    where = "[security]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: must be a table")
    unknown = set(table) - set(_SECURITY) - set(_SECURITY_LISTS) - {"tls"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
    values: dict[str, Any] = {}
    for key, kind in _SECURITY.items():
        if key in table:
            value = _convert(key, kind, table[key], where)
            if kind == "Path":
                value = str(base / value)
            elif kind in ("int", "float") and value < (1 if key == "max_associations" else 0):
                raise ConfigError(f"{where}: {key} = {value!r} is out of range")
            values[key] = value
    for key in _SECURITY_LISTS:
        if key in table:
            items = table[key]
            items = [items] if isinstance(items, str) else items
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise ConfigError(f"{where}: {key} must be a list of strings")
            values[key] = items
    for title in values.get("accept_aet", []):
        if not 1 <= len(title.strip()) <= 16:
            raise ConfigError(f"{where}: accept_aet {title!r}: 1 to 16 characters (PS3.5 AE)")
    try:
        settings = security_settings(ParsedArgs(values), daemon=HOST_ACCESS_DAEMON)
    except OptionError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if "tls" not in table:
        return settings, None, None
    tls = _tls(table["tls"], base, "[security.tls]")
    return settings, tls, _context(tls, "[security.tls]", server=True)


def _peer(name: str, table: Mapping[str, Any], base: Path) -> PeerConfig:
    where = f"[peers.{name}]"
    known = {"host", "port", "ae_title", "model", "max_associations", "schedule", "timezone"}
    known.add("tls")
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
    for key in ("host", "port", "ae_title"):
        if key not in table:
            raise ConfigError(f"{where}: {key} is required")
    model = str(table.get("model", "study")).lower()
    if model not in MODELS:
        raise ConfigError(f"{where}: model must be one of {sorted(MODELS)}")
    limit = _convert("max_associations", "int", table.get("max_associations", 2), where)
    if limit < 1:
        raise ConfigError(f"{where}: max_associations must be at least 1")
    schedule = table.get("schedule", [])
    try:
        windows = [schedule] if isinstance(schedule, str) else list(schedule)
        parsed = Schedule.parse(windows, str(table.get("timezone", "UTC")))
    except ScheduleError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    tls = None if "tls" not in table else _tls(table["tls"], base, f"[peers.{name}.tls]")
    return PeerConfig(
        name=name,
        host=str(table["host"]),
        port=_convert("port", "int", table["port"], where),
        ae_title=str(table["ae_title"]),
        model=model,
        max_associations=limit,
        schedule=parsed,
        tls=tls,
        ssl_context=None if tls is None else _context(tls, f"[peers.{name}.tls]", server=False),
    )


def _retry(table: Mapping[str, Any]) -> RetryPolicy:
    known = {"base", "factor", "max_delay", "jitter"}
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"[retry]: unknown key(s) {sorted(unknown)}")
    values = {k: _convert(k, "float", v, "[retry]") for k, v in table.items()}
    return RetryPolicy(**values)


def load_config(
    path: Path | None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    need_output: bool = True,
) -> DaemonConfig:
    """The configuration from `path` (optional), `AIOMOVE_*` variables, then `overrides`.

    `need_output=False` (the `aiomove jobs` commands) does not require an output directory.
    """
    data: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
        base = Path(path).absolute().parent
    unknown_tables = set(data) - {"daemon", "retry", "peers", "security"}
    if unknown_tables:
        raise ConfigError(f"{path}: unknown table(s) {sorted(unknown_tables)}")
    values: dict[str, Any] = {}
    for key, value in dict(data.get("daemon", {})).items():
        if key not in _SCALARS:
            raise ConfigError(f"[daemon]: unknown key {key!r}")
        values[key] = _convert(key, _SCALARS[key], value, "[daemon]")
    env = os.environ if environ is None else environ
    for key, kind in _SCALARS.items():
        name = ENV_PREFIX + key.upper()
        if name in env:
            values[key] = _convert(key, kind, env[name], name)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _convert(key, _SCALARS[key], value, "option")
    if not need_output:
        values.setdefault("output", Path("."))
    for key in ("store", "output"):
        if key not in values:
            raise ConfigError(f"{key} is required ([daemon] {key}, {ENV_PREFIX}{key.upper()})")
    if "output" in values:
        values["output"] = (base / values["output"]).absolute()
    peers = {name: _peer(name, table, base) for name, table in dict(data.get("peers", {})).items()}
    security, tls, ssl_context = _security(data.get("security", {}), base)
    config = DaemonConfig(
        retry=_retry(data.get("retry", {})),
        peers=peers,
        security=security,
        tls=tls,
        ssl_context=ssl_context,
        **values,
    )
    return _checked(config)


def _checked(config: DaemonConfig) -> DaemonConfig:
    if config.workers < 1:
        raise ConfigError("workers must be at least 1")
    if config.lease <= 0 or config.poll_interval <= 0 or config.grace < 0:
        raise ConfigError("lease and poll_interval must be positive, grace not negative")
    if config.store_timeout <= 0:
        raise ConfigError("store_timeout must be positive")
    if config.prefer not in PREFERENCES:
        raise ConfigError(f"prefer must be one of {sorted(PREFERENCES)}")
    if not 1 <= len(config.ae_title.strip()) <= 16:
        raise ConfigError(f"ae_title {config.ae_title!r}: 1 to 16 characters (PS3.5 AE)")
    try:
        Layout.parse(config.layout)
    except LayoutError as exc:
        raise ConfigError(str(exc)) from None
    return replace(config, ae_title=config.ae_title.strip())
