"""Command line options for access control and limits of the embedded Storage SCP.

`+ac`/`-ac` are DCMTK's (options_specs' `_ACCESS` rows, dest `access_control`); `-dhl`
(`disable_host_lookup`) also stops the host name lookups of host access rules. The rest are
aiomove extensions, in the table below (DCMTK help layout, options_specs' `_table` syntax).
`security_options()` gives the specs, `SECURITY_DEFAULTS` their defaults, and
`security_settings()` turns parsed arguments into keyword arguments for `AcceptorConfig`,
`FileSink` and `storage_config`/`store_handler`.

Host access control uses the daemon name DCMTK gives libwrap: "movescu" for `aiomove move`,
"storescp" for `aiomove store-scp` (see `aiomove.accesscontrol`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from aiomove.accesscontrol import HOSTS_ALLOW, HOSTS_DENY, AccessPolicy
from aiomove.options import Float, Int, OptionError, OptionSpec, ParsedArgs, ValueType
from aiomove.server import DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_ASSOCIATIONS
from aiomove.storage import DEFAULT_MAX_INSTANCE_SIZE, DEFAULT_MIN_FREE_BYTES, DEFAULT_MIN_RATE

MIB: Final = 1 << 20

#: Rows use `@str` where `_table` needs a known type; `_VALUES` gives the real ones.
SECURITY_TABLE: Final = f"""
# access control and limits (aiomove extensions)
[host access control tables (with --access-control)] *
.  --hosts-allow        @str   [f]ilename: string (default: {HOSTS_ALLOW})
  |read host access rules granting access from f
.  --hosts-deny         @str   [f]ilename: string (default: {HOSTS_DENY})
  |read host access rules denying access from f
[calling application entities and networks] *
.  --accept-aet         @str*  [a]etitle: string
  |accept associations from calling AE title a only
  (repeatable; default: any)
.  --accept-network     @str*  [n]etwork: string (a.b.c.d/nn or ipv6/nn)
  |accept connections from network n only
  (repeatable; default: any)
[incoming associations] *
.  --max-associations   @str   [n]umber: integer (default: {DEFAULT_MAX_ASSOCIATIONS})
  |reject associations beyond n at a time
.  --idle-timeout       @str   [s]econds: float (default: {DEFAULT_IDLE_TIMEOUT:g}, 0 for none)
  |abort an association idle for s seconds
.  --min-rate           @str   [n]umber of bytes/s: integer (default: {DEFAULT_MIN_RATE})
  |abort a data set arriving slower than n bytes/s
  (after the idle timeout's allowance; 0 for none)
[received objects] *
.  --max-instance-size  @str   [n] MiB: integer (default: {DEFAULT_MAX_INSTANCE_SIZE // MIB})
  |abort an association sending a data set
  larger than n MiB (0 for no limit)
.  --min-free-space     @str   [n] MiB: integer (default: {DEFAULT_MIN_FREE_BYTES // MIB})
  |refuse (0xA700) what would leave less than
  n MiB free on the output file system (0 for none)
"""

#: Only `aiomove move` has C-MOVEs to check incoming C-STOREs against.
ONLY_MOVED_ROW: Final = """
[unsolicited C-STOREs] *
.  --only-moved  True  refuse (0x0124) C-STOREs that belong to no
  outstanding C-MOVE request of ours
"""

_VALUES: Final[dict[str, tuple[ValueType, ...]]] = {
    "--max-associations": (Int(1, 100000, unsigned=True),),
    "--idle-timeout": (Float(min=0),),
    "--min-rate": (Int(min=0, unsigned=True),),
    "--max-instance-size": (Int(min=0, unsigned=True),),
    "--min-free-space": (Int(min=0, unsigned=True),),
}

SECURITY_DEFAULTS: Final[dict[str, Any]] = {
    "hosts_allow": str(HOSTS_ALLOW),
    "hosts_deny": str(HOSTS_DENY),
    "max_associations": DEFAULT_MAX_ASSOCIATIONS,
    "idle_timeout": DEFAULT_IDLE_TIMEOUT,
    "min_rate": DEFAULT_MIN_RATE,
    "max_instance_size": DEFAULT_MAX_INSTANCE_SIZE // MIB,
    "min_free_space": DEFAULT_MIN_FREE_BYTES // MIB,
}


def security_options(*, move: bool) -> tuple[OptionSpec, ...]:
    """The option specs to append to MOVESCU (`move=True`) or STORESCP."""
    from aiomove.options_specs import _table  # here: options_specs may import this module

    text = SECURITY_TABLE + (ONLY_MOVED_ROW if move else "")
    return tuple(replace(o, values=_VALUES.get(o.long, o.values)) for o in _table(text))


def _networks(
    values: list[str],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for value in values:
        try:
            text = value.replace("[", "").replace("]", "")  # "[2001:db8::]/32" as in hosts.allow
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise OptionError(f"Invalid value for option --accept-network ({value})") from None
    return tuple(networks)


def _get(args: ParsedArgs, dest: str) -> Any:
    return args[dest] if dest in args else SECURITY_DEFAULTS.get(dest)


def security_settings(args: ParsedArgs, *, daemon: str) -> dict[str, dict[str, Any]]:
    """Keyword arguments from parsed options: `acceptor` for AcceptorConfig (through
    storage_config's **kw), `sink` for FileSink, `handler` for storage_config/store_handler
    (`accept` stays the caller's: it needs the C-MOVE state; see `only_moved`)."""
    acceptor: dict[str, Any] = {
        "max_associations": int(_get(args, "max_associations")),
        "idle_timeout": float(_get(args, "idle_timeout")) or None,
    }
    if _get(args, "access_control"):
        acceptor["access"] = AccessPolicy(
            daemon=daemon,
            allow_file=Path(_get(args, "hosts_allow")),
            deny_file=Path(_get(args, "hosts_deny")),
            resolve_names=not _get(args, "disable_host_lookup"),
        )
    titles = _get(args, "accept_aet") or []
    if titles:
        acceptor["calling_ae_titles"] = frozenset(titles)
    networks = _get(args, "accept_network") or []
    if networks:
        acceptor["allowed_networks"] = _networks(networks)
    size = int(_get(args, "max_instance_size"))
    sink = {
        "max_instance_size": size * MIB if size else None,
        "min_free_bytes": int(_get(args, "min_free_space")) * MIB,
    }
    handler = {"min_rate": int(_get(args, "min_rate"))}
    return {"acceptor": acceptor, "sink": sink, "handler": handler}


def only_moved(args: ParsedArgs) -> bool:
    """Whether `--only-moved` was given (the caller then passes an `accept` predicate)."""
    return bool(_get(args, "only_moved"))
