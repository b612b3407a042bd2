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
from aiomove.proto import uids
from aiomove.transfer import Prefer

ENV_PREFIX = "AIOMOVE_"
MODELS = {"study": uids.STUDY_ROOT_QR_MOVE, "patient": uids.PATIENT_ROOT_QR_MOVE}
PREFERENCES: Mapping[str, Prefer] = PREFER  # `aiomove move --prefer`'s names


class ConfigError(ValueError):
    """A configuration that cannot be used; the message says which key and why."""


@dataclass(frozen=True)
class TlsSettings:
    """DICOM TLS (PS3.15 Annex B) towards one peer: CA bundle, our certificate, verification."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    verify: bool = True

    def context(self) -> ssl.SSLContext:
        """A client context. (aiomove.tls, once merged, can build this from the same settings.)"""
        ctx = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=None if self.ca_file is None else str(self.ca_file)
        )
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_file is not None:
            key = None if self.key_file is None else str(self.key_file)
            ctx.load_cert_chain(str(self.cert_file), key)
        return ctx


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

    @property
    def move_model(self) -> str:
        return MODELS[self.model]

    def peer(self) -> Peer:
        ctx = None if self.tls is None else self.tls.context()
        return Peer(self.host, self.port, self.ae_title, ssl_context=ctx)


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
    layout: str = DEFAULT_LAYOUT
    workers: int = 4  # jobs run at once by this process
    worker_id: str = ""  # lease owner; "" = "<ae_title>@<hostname>"
    lease: float = 30.0  # job and slot lease (seconds); renewed every lease/3
    poll_interval: float = 2.0  # how often idle workers look for claimable jobs
    grace: float = 30.0  # SIGTERM: how long running jobs may finish before C-CANCEL
    max_attempts: int = 5
    linger: float = 5.0
    prefer: str = "uncompressed"
    connect_timeout: float = 30.0
    acse_timeout: float = 30.0
    dimse_timeout: float = 0.0  # 0 = none
    log_level: str = "info"
    log_json: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    peers: Mapping[str, PeerConfig] = field(default_factory=dict)

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
_SCALARS = {f.name: f.type for f in fields(DaemonConfig) if f.name not in ("retry", "peers")}


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


def _tls(table: Mapping[str, Any], base: Path, where: str) -> TlsSettings:
    known = {"ca_file", "cert_file", "key_file", "verify"}
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"{where}: unknown TLS setting(s) {sorted(unknown)}")

    def path(key: str) -> Path | None:
        return None if key not in table else base / str(table[key])

    return TlsSettings(
        path("ca_file"), path("cert_file"), path("key_file"), bool(table.get("verify", True))
    )


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
    tls = table.get("tls")
    return PeerConfig(
        name=name,
        host=str(table["host"]),
        port=_convert("port", "int", table["port"], where),
        ae_title=str(table["ae_title"]),
        model=model,
        max_associations=limit,
        schedule=parsed,
        tls=None if tls is None else _tls(tls, base, f"{where}.tls"),
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
    unknown_tables = set(data) - {"daemon", "retry", "peers"}
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
    config = DaemonConfig(retry=_retry(data.get("retry", {})), peers=peers, **values)
    return _checked(config)


def _checked(config: DaemonConfig) -> DaemonConfig:
    if config.workers < 1:
        raise ConfigError("workers must be at least 1")
    if config.lease <= 0 or config.poll_interval <= 0 or config.grace < 0:
        raise ConfigError("lease and poll_interval must be positive, grace not negative")
    if config.prefer not in PREFERENCES:
        raise ConfigError(f"prefer must be one of {sorted(PREFERENCES)}")
    if not 1 <= len(config.ae_title.strip()) <= 16:
        raise ConfigError(f"ae_title {config.ae_title!r}: 1 to 16 characters (PS3.5 AE)")
    try:
        Layout.parse(config.layout)
    except LayoutError as exc:
        raise ConfigError(str(exc)) from None
    return replace(config, ae_title=config.ae_title.strip())
