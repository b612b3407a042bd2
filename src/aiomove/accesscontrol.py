"""Host access control as TCP wrappers do it: hosts.allow / hosts.deny (hosts_access(5)).

DCMTK's `+ac` (`--access-control`) asks libwrap whether the connecting host may talk to the
daemon named after the program: "movescu" for movescu, "storescp" for storescp. aiomove uses
the same names (`aiomove move` is "movescu", `aiomove store-scp` is "storescp") so that
existing rules keep working; `AccessPolicy.daemon` may name another one.

The subset of hosts_access(5) implemented here, in pure Python:

- Rule lines `daemon_list : client_list [: option ...]`; `#` comments, blank lines and
  backslash continuations; list items are separated by blanks and/or commas; matching is
  case-insensitive.
- Search order: the first rule of hosts.allow that matches (daemon, client) grants; else the
  first rule of hosts.deny that matches denies; else access is granted. A missing file is an
  empty one.
- Daemon patterns: a name, `ALL`, `EXCEPT`. `daemon@host` is not supported (never matches;
  a warning says so).
- Client patterns: `ALL`; `LOCAL` (a known host name without a dot); `KNOWN`, `UNKNOWN`,
  `PARANOID`; an exact host name or address; `.domain` (host name suffix); `a.b.c.` (address
  prefix); `a.b.c.d/m.m.m.m` (net/mask); `a.b.c.d/nn` and `[ipv6]/nn` (CIDR); `[ipv6]`;
  `*` and `?` wildcards; `/path` (a file of patterns); `list EXCEPT list`. `user@host` is not
  supported (no ident lookups; never matches, with a warning).
- Options (hosts_options(5)): a final `allow` or `deny` makes the rule grant or deny wherever
  it is; every other option (spawn, twist, severity, ...) is ignored with a warning.

Host names come from a reverse lookup of the address that is confirmed by a forward lookup
(what libwrap calls a "paranoid" check); a name that does not map back to the address is not
used ("PARANOID" matches such hosts). Lookups happen only when a rule names hosts; the
policy files are read at each check, as libwrap does, so edits apply at once.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import anyio
import anyio.to_thread

from aiomove.log import get_logger

log = get_logger("aiomove.accesscontrol")

HOSTS_ALLOW: Final = Path("/etc/hosts.allow")
HOSTS_DENY: Final = Path("/etc/hosts.deny")

#: DCMTK's daemon names (OFFIS_CONSOLE_APPLICATION of each tool).
MOVESCU: Final = "movescu"
STORESCP: Final = "storescp"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SPLIT: Final = re.compile(r"[\s,]+")
_WILDCARD: Final = re.compile(r"[*?]")


@dataclass(frozen=True)
class Client:
    """The connecting host: its address and, when known and confirmed, its name."""

    address: IPAddress
    hostname: str | None = None
    #: The reverse lookup gave a name whose forward lookup does not include the address.
    paranoid: bool = False

    @classmethod
    def of(cls, address: str, hostname: str | None = None, paranoid: bool = False) -> Client:
        return cls(normal_address(address), hostname.lower() if hostname else None, paranoid)


def normal_address(text: str) -> IPAddress:
    """An address as rules see it: IPv4-mapped IPv6 (dual-stack sockets) as plain IPv4."""
    address = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class Rule:
    """One rule line: where it came from, its two lists, and its options."""

    origin: str
    daemons: tuple[str, ...]
    clients: tuple[str, ...]
    options: tuple[str, ...] = ()


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, text) with comments dropped and backslash continuations joined."""
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        line = (pending + raw).strip()
        pending = ""
        if line and not line.startswith("#"):
            yield start, line
    if pending.strip() and not pending.lstrip().startswith("#"):
        yield start, pending.strip()


def parse_rules(text: str, name: str = "<rules>") -> list[Rule]:
    """The rules of one hosts.allow/hosts.deny text; malformed lines are skipped (warned)."""
    rules: list[Rule] = []
    for number, line in _logical_lines(text):
        fields = line.split(":")
        origin = f"{name}:{number}"
        # An IPv6 pattern "[::1]" holds colons: re-join the pieces inside brackets.
        fields = _join_brackets(fields)
        if len(fields) < 2:
            log.warning("access.rule_malformed", rule=origin, error="missing ':' separator")
            continue
        daemons = _items(fields[0])
        clients = _items(fields[1])
        if not daemons or not clients:
            log.warning("access.rule_malformed", rule=origin, error="empty daemon or client list")
            continue
        options = tuple(f.strip() for f in fields[2:])
        rules.append(Rule(origin, daemons, clients, options))
    return rules


def _join_brackets(fields: list[str]) -> list[str]:
    out: list[str] = []
    for piece in fields:
        if out and out[-1].count("[") > out[-1].count("]"):
            out[-1] += ":" + piece
        else:
            out.append(piece)
    return out


def _items(text: str) -> tuple[str, ...]:
    return tuple(item for item in _SPLIT.split(text.strip()) if item)


# --- matching ------------------------------------------------------------------------------


def _list_matches(items: tuple[str, ...], match_one: Callable[[str], bool]) -> bool:
    """hosts_access(5) lists: any item matches; `a EXCEPT b` is a minus (b) (right-nested)."""
    upper = [item.upper() for item in items]
    if "EXCEPT" in upper:
        cut = upper.index("EXCEPT")
        return _list_matches(items[:cut], match_one) and not _list_matches(
            items[cut + 1 :], match_one
        )
    return any(match_one(item) for item in items)


@dataclass
class _DaemonMatcher:
    daemon: str
    origin: str

    def __call__(self, pattern: str) -> bool:
        if "@" in pattern:
            log.warning("access.pattern_unsupported", rule=self.origin, pattern=pattern)
            return False
        return pattern.upper() == "ALL" or _string_match(pattern, self.daemon)


@dataclass
class _ClientMatcher:
    client: Client
    origin: str
    depth: int = 0

    def __call__(self, pattern: str) -> bool:
        client = self.client
        word = pattern.upper()
        if word == "ALL":
            return True
        if word == "LOCAL":
            return client.hostname is not None and "." not in client.hostname
        if word == "KNOWN":
            return client.hostname is not None
        if word == "UNKNOWN":
            return client.hostname is None
        if word == "PARANOID":
            return client.paranoid
        if "@" in pattern:
            log.warning("access.pattern_unsupported", rule=self.origin, pattern=pattern)
            return False
        if pattern.startswith("/"):
            return self._from_file(Path(pattern))
        return _host_match(pattern, client)

    def _from_file(self, path: Path) -> bool:
        """`/path`: the patterns in that file (libwrap: a missing file matches nothing)."""
        if self.depth > 4:  # a file that names itself
            return False
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
        lines = [line for line in text.splitlines() if not line.startswith("#")]
        patterns = [p for line in lines for p in _items(line)]
        nested = _ClientMatcher(self.client, f"{path}", self.depth + 1)
        return any(nested(p) for p in patterns)


def _string_match(pattern: str, value: str) -> bool:
    if _WILDCARD.search(pattern):
        return fnmatch.fnmatchcase(value.lower(), pattern.lower())
    return pattern.lower() == value.lower()


def _host_match(pattern: str, client: Client) -> bool:
    """A host-name or address pattern against the client."""
    name = client.hostname
    address = str(client.address)
    lower = pattern.lower()
    if lower.startswith("."):  # domain suffix
        return name is not None and name.endswith(lower)
    if lower.endswith(".") and isinstance(client.address, ipaddress.IPv4Address):
        return address.startswith(lower)  # "192.168." address prefix
    if "/" in lower:
        return _net_match(lower, client.address)
    if lower.startswith("[") and lower.endswith("]"):
        return _same_address(lower[1:-1], client.address)
    if _same_address(lower, client.address):
        return True
    if _WILDCARD.search(lower):
        return fnmatch.fnmatchcase(address, lower) or (
            name is not None and fnmatch.fnmatchcase(name, lower)
        )
    return name is not None and name == lower


def _same_address(text: str, address: IPAddress) -> bool:
    try:
        return normal_address(text) == address
    except ValueError:
        return False


def _net_match(pattern: str, address: IPAddress) -> bool:
    """`n.n.n.n/m.m.m.m`, `n.n.n.n/nn` or `[n:n::]/nn`."""
    net, _, mask = pattern.partition("/")
    if net.startswith("[") and net.endswith("]"):
        net = net[1:-1]
    try:
        network = ipaddress.ip_network(f"{net}/{mask}", strict=False)
    except ValueError:
        return False
    return address.version == network.version and address in network


# --- the policy ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """Whether access is granted, and the rule that decided (None: no rule matched)."""

    allowed: bool
    rule: str | None = None


@dataclass(frozen=True)
class AccessPolicy:
    """hosts_access(5) for one daemon name; the file paths can point elsewhere (tests)."""

    daemon: str = MOVESCU
    allow_file: Path = HOSTS_ALLOW
    deny_file: Path = HOSTS_DENY
    #: Look host names up (reverse, then forward-confirmed) when a rule needs one.
    resolve_names: bool = True
    _warned: set[str] = field(default_factory=set, compare=False, repr=False)

    def rules(self) -> tuple[list[Rule], list[Rule]]:
        """The current rules of both files (read now: edits apply to the next connection)."""
        return _read_rules(self.allow_file), _read_rules(self.deny_file)

    def needs_hostname(self, rules: Iterable[Rule]) -> bool:
        """Whether any client pattern that applies to this daemon looks at host names."""
        for rule in rules:
            if not _list_matches(rule.daemons, _DaemonMatcher(self.daemon, rule.origin)):
                continue
            if any(_names_hosts(item) for item in rule.clients):
                return True
        return False

    def decide(
        self, client: Client, rules: tuple[list[Rule], list[Rule]] | None = None
    ) -> Decision:
        """hosts_access(5): first match in hosts.allow grants, then hosts.deny denies."""
        allow, deny = rules if rules is not None else self.rules()
        for default, table in ((True, allow), (False, deny)):
            for rule in table:
                if self._matches(rule, client):
                    return Decision(self._verdict(rule, default), rule.origin)
        return Decision(True)

    def _matches(self, rule: Rule, client: Client) -> bool:
        return _list_matches(
            rule.daemons, _DaemonMatcher(self.daemon, rule.origin)
        ) and _list_matches(rule.clients, _ClientMatcher(client, rule.origin))

    def _verdict(self, rule: Rule, default: bool) -> bool:
        """hosts_options(5): a last option `allow`/`deny` decides; others are ignored."""
        verdict = default
        for i, option in enumerate(rule.options):
            keyword = option.split(None, 1)[0].lower() if option else ""
            if keyword in ("allow", "deny") and i == len(rule.options) - 1:
                verdict = keyword == "allow"
            elif option:
                key = f"{rule.origin}:{keyword}"
                if key not in self._warned:
                    self._warned.add(key)
                    log.warning("access.option_ignored", rule=rule.origin, option=option)
        return verdict


def _names_hosts(pattern: str) -> bool:
    """Whether a client pattern can only be decided with the host name."""
    word = pattern.upper()
    if word in ("LOCAL", "KNOWN", "UNKNOWN", "PARANOID") or pattern.startswith("/"):
        return True
    if word in ("ALL", "EXCEPT") or "/" in pattern or pattern.startswith("["):
        return False
    if pattern.endswith(".") and pattern[:-1].replace(".", "").isdigit():
        return False
    try:
        normal_address(pattern)
    except ValueError:
        return True
    return False


def _read_rules(path: Path) -> list[Rule]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        # libwrap treats an unreadable table as absent too, and says so.
        log.warning("access.table_unreadable", path=str(path), error=exc.strerror or str(exc))
        return []
    return parse_rules(text, str(path))


# --- asking at connection time ---------------------------------------------------------------

#: Bound on the host name lookups of one check (libwrap has none; a stuck resolver must not
#: hold a connection slot).
LOOKUP_TIMEOUT: Final = 5.0


async def identify(address: str, *, resolve: bool = True) -> Client:
    """The client as rules see it: its address, and its host name when it is confirmed."""
    if not resolve:
        return Client.of(address)
    name: str | None = None
    with anyio.move_on_after(LOOKUP_TIMEOUT):
        try:
            name, _ = await anyio.getnameinfo((address, 0), socket.NI_NAMEREQD)
        except OSError:
            return Client.of(address)
    if name is None:
        return Client.of(address)
    confirmed = False
    with anyio.move_on_after(LOOKUP_TIMEOUT):
        try:
            infos = await anyio.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except OSError:
            infos = []
        wanted = normal_address(address)
        confirmed = any(_same_address(str(info[4][0]), wanted) for info in infos)
    if not confirmed:
        return Client.of(address, paranoid=True)
    return Client.of(address, name)


async def check(policy: AccessPolicy, address: str) -> Decision:
    """Read the tables (in a worker thread), look the name up if a rule needs it, decide."""
    rules = await anyio.to_thread.run_sync(policy.rules)
    need_name = policy.resolve_names and policy.needs_hostname([*rules[0], *rules[1]])
    client = await identify(address, resolve=need_name)
    return policy.decide(client, rules)
