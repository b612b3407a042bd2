"""hosts_access(5) (`+ac`): the rule language, then real connections refused by hosts.deny.

The policy files live in the test's temporary directory: the real /etc/hosts.allow and
/etc/hosts.deny are never read (AccessPolicy takes their paths).
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

import anyio
import pytest
import structlog.testing

from aiomove.accesscontrol import (
    MOVESCU,
    STORESCP,
    AccessPolicy,
    Client,
    check,
    parse_rules,
)
from aiomove.server import AcceptorConfig
from tests.net.hostile_util import RawPeer, associate_rq
from tests.peers import dcmtk
from tests.security.util import HANG, assert_serving, events, running

pytestmark = pytest.mark.anyio


def policy(tmp_path: Path, allow: str = "", deny: str = "", daemon: str = MOVESCU) -> AccessPolicy:
    (tmp_path / "hosts.allow").write_text(allow)
    (tmp_path / "hosts.deny").write_text(deny)
    return AccessPolicy(
        daemon=daemon,
        allow_file=tmp_path / "hosts.allow",
        deny_file=tmp_path / "hosts.deny",
        resolve_names=False,
    )


def allowed(p: AccessPolicy, address: str, hostname: str | None = None) -> bool:
    return p.decide(Client.of(address, hostname)).allowed


# --- the rule language ---------------------------------------------------------------------


def test_search_order_allow_first_then_deny_else_grant(tmp_path: Path) -> None:
    p = policy(tmp_path, allow="movescu: 10.0.0.1\n", deny="ALL: ALL\n")
    assert allowed(p, "10.0.0.1")  # hosts.allow wins over hosts.deny
    assert not allowed(p, "10.0.0.2")
    assert allowed(policy(tmp_path, deny="storescp: ALL\n"), "10.0.0.2")  # no rule: granted
    assert allowed(policy(tmp_path), "10.0.0.2")  # empty tables


def test_missing_tables_grant(tmp_path: Path) -> None:
    p = AccessPolicy(allow_file=tmp_path / "none.allow", deny_file=tmp_path / "none.deny")
    assert p.decide(Client.of("192.0.2.1")).allowed


@pytest.mark.parametrize(
    ("pattern", "address", "hostname", "expected"),
    [
        ("ALL", "192.0.2.7", None, True),
        ("192.0.2.7", "192.0.2.7", None, True),
        ("192.0.2.7", "192.0.2.8", None, False),
        ("192.0.2.", "192.0.2.200", None, True),  # address prefix
        ("192.0.2.", "192.0.20.1", None, False),
        ("192.0.2.0/255.255.255.0", "192.0.2.99", None, True),  # net/mask
        ("192.0.2.0/255.255.255.128", "192.0.2.200", None, False),
        ("192.0.2.0/24", "192.0.2.1", None, True),  # CIDR
        ("192.0.2.0/25", "192.0.2.129", None, False),
        ("[2001:db8::]/32", "2001:db8:1::5", None, True),  # IPv6 CIDR
        ("[2001:db8::]/32", "2001:db9::5", None, False),
        ("[::1]", "::1", None, True),
        ("127.0.0.1", "::ffff:127.0.0.1", None, True),  # IPv4-mapped, from dual-stack sockets
        (".example.org", "192.0.2.1", "pacs.example.org", True),  # domain suffix
        (".example.org", "192.0.2.1", "pacs.example.com", False),
        (".example.org", "192.0.2.1", None, False),
        ("LOCAL", "192.0.2.1", "pacs", True),
        ("LOCAL", "192.0.2.1", "pacs.example.org", False),
        ("KNOWN", "192.0.2.1", "pacs", True),
        ("UNKNOWN", "192.0.2.1", None, True),
        ("UNKNOWN", "192.0.2.1", "pacs", False),
        ("pacs.example.org", "192.0.2.1", "PACS.Example.Org", True),  # case-insensitive
        ("*.example.org", "192.0.2.1", "ct1.example.org", True),
        ("192.0.2.?", "192.0.2.5", None, True),
        ("ALL EXCEPT 192.0.2.7", "192.0.2.7", None, False),
        ("ALL EXCEPT 192.0.2.7", "192.0.2.8", None, True),
        ("192.0.2. EXCEPT 192.0.2.0/28 EXCEPT 192.0.2.1", "192.0.2.1", None, True),  # nested
        ("192.0.2. EXCEPT 192.0.2.0/28 EXCEPT 192.0.2.1", "192.0.2.2", None, False),
        ("user@192.0.2.1", "192.0.2.1", None, False),  # ident lookups: not supported
    ],
)
def test_client_patterns(
    tmp_path: Path, pattern: str, address: str, hostname: str | None, expected: bool
) -> None:
    p = policy(tmp_path, deny=f"movescu: {pattern}\n")
    assert allowed(p, address, hostname) is not expected


def test_daemon_lists(tmp_path: Path) -> None:
    deny = "in.telnetd, storescp: ALL\nALL EXCEPT movescu: 192.0.2.1\n"
    assert allowed(policy(tmp_path, deny=deny, daemon=MOVESCU), "192.0.2.1")
    assert not allowed(policy(tmp_path, deny=deny, daemon=STORESCP), "192.0.2.1")
    assert not allowed(policy(tmp_path, deny="MOVESCU : 192.0.2.1", daemon=MOVESCU), "192.0.2.1")


def test_comments_continuations_lists_and_malformed_lines(tmp_path: Path) -> None:
    text = (
        "# a comment\n"
        "\n"
        "movescu: 192.0.2.1,\\\n"
        "   192.0.2.2  192.0.2.3\n"
        "this line has no separator\n"
        "movescu: [2001:db8::1]\n"
    )
    with structlog.testing.capture_logs() as logs:
        rules = parse_rules(text, "t")
    assert [r.clients for r in rules] == [
        ("192.0.2.1", "192.0.2.2", "192.0.2.3"),
        ("[2001:db8::1]",),
    ]
    assert [r.origin for r in rules] == ["t:3", "t:6"]
    assert len(events(logs, "access.rule_malformed")) == 1


def test_pattern_file(tmp_path: Path) -> None:
    listed = tmp_path / "pacs-hosts"
    listed.write_text("# the archives\n192.0.2.10 192.0.2.11\n")
    p = policy(tmp_path, allow=f"movescu: {listed}\n", deny="movescu: ALL\n")
    assert allowed(p, "192.0.2.11")
    assert not allowed(p, "192.0.2.12")


def test_allow_and_deny_options_and_unknown_options(tmp_path: Path) -> None:
    allow = "movescu: 192.0.2.66: severity auth.info: DENY\nmovescu: ALL: spawn /bin/true\n"
    p = policy(tmp_path, allow=allow)
    with structlog.testing.capture_logs() as logs:
        assert not allowed(p, "192.0.2.66")  # `deny` at the end of a hosts.allow rule
        assert allowed(p, "192.0.2.67")
    ignored = {e["option"] for e in events(logs, "access.option_ignored")}
    assert ignored == {"severity auth.info", "spawn /bin/true"}
    deny = policy(tmp_path, deny="movescu: 192.0.2.5: allow\n")
    assert allowed(deny, "192.0.2.5")  # `allow` at the end of a hosts.deny rule


def test_host_names_only_looked_up_when_a_rule_needs_one(tmp_path: Path) -> None:
    by_address = policy(tmp_path, allow="movescu: 192.0.2.0/24\n", deny="ALL: ALL\n")
    assert not by_address.needs_hostname([*by_address.rules()[0], *by_address.rules()[1]])
    by_name = policy(tmp_path, deny="movescu: .example.org\n")
    assert by_name.needs_hostname(by_name.rules()[1])
    other_daemon = policy(tmp_path, deny="storescp: .example.org\n")
    assert not other_daemon.needs_hostname(other_daemon.rules()[1])


async def test_localhost_name_is_confirmed_by_forward_lookup(tmp_path: Path) -> None:
    """127.0.0.1 resolves to "localhost" and back: LOCAL matches it (a real lookup)."""
    (tmp_path / "hosts.allow").write_text("")
    (tmp_path / "hosts.deny").write_text("movescu: LOCAL\n")
    p = AccessPolicy(allow_file=tmp_path / "hosts.allow", deny_file=tmp_path / "hosts.deny")
    decision = await check(p, "127.0.0.1")
    assert not decision.allowed
    assert decision.rule == f"{tmp_path / 'hosts.deny'}:1"


# --- real connections ------------------------------------------------------------------------


async def test_hosts_deny_rule_refuses_a_connection_before_reading(tmp_path: Path) -> None:
    """TCP wrappers close a denied connection at once: no A-ASSOCIATE-RQ is read or answered."""
    p = policy(
        tmp_path, allow="storescp: 192.0.2.1\n", deny="storescp: 127.0.0.1\n", daemon=STORESCP
    )
    config = AcceptorConfig(ae_title="STORESCP", access=p)
    with structlog.testing.capture_logs() as logs:
        async with running(config, check=False) as port:
            peer = await RawPeer.connect(port)
            try:
                with anyio.fail_after(HANG):
                    await peer.send(associate_rq(called="STORESCP"))
                    assert await peer.read_to_eof() == b""
            finally:
                await peer.aclose()
            # the tables are read per connection: allow localhost now, and it is served
            (tmp_path / "hosts.allow").write_text("storescp: 127.0.0.1\n")
            await assert_serving(port)
    denied = events(logs, "connection.denied")
    assert len(denied) == 1
    assert denied[0]["reason"] == "hosts_access"
    assert denied[0]["daemon"] == "storescp"
    assert denied[0]["rule"] == f"{tmp_path / 'hosts.deny'}:1"
    accepted = [e.get("calling_ae") for e in events(logs, "association.accepted")]
    assert "HOSTILE" not in accepted


async def test_dcmtk_echoscu_is_refused_by_hosts_deny(tmp_path: Path) -> None:
    """A real DICOM peer sees the connection closed: echoscu fails to associate."""
    p = policy(tmp_path, deny="ALL: 127.0.0.0/8\n", daemon=STORESCP)
    config = AcceptorConfig(ae_title="STORESCP", access=p)
    async with running(config, check=False) as port:
        refused = await anyio.run_process(
            [dcmtk("echoscu"), "-aec", "STORESCP", "127.0.0.1", str(port)], check=False
        )
        assert refused.returncode != 0
        (tmp_path / "hosts.deny").write_text("ALL: ALL EXCEPT 127.0.0.1\n")
        served = await anyio.run_process(
            [dcmtk("echoscu"), "-aec", "STORESCP", "127.0.0.1", str(port)], check=False
        )
        assert served.returncode == 0, served.stderr


@pytest.mark.parametrize(
    ("network", "served"), [("192.0.2.0/24", False), ("127.0.0.0/8", True), ("::1/128", False)]
)
async def test_allowed_networks(network: str, served: bool) -> None:
    config = AcceptorConfig(ae_title="STORESCP", allowed_networks=(ipaddress.ip_network(network),))
    with structlog.testing.capture_logs() as logs:
        async with running(config, check=served) as port:
            if not served:
                peer = await RawPeer.connect(port)
                try:
                    with anyio.fail_after(HANG):
                        await peer.send(associate_rq(called="STORESCP"))
                        assert await peer.read_to_eof() == b""
                finally:
                    await peer.aclose()
    expected = [] if served else ["network"]
    assert [e["reason"] for e in events(logs, "connection.denied")] == expected


async def test_hosts_access_is_decided_before_the_tls_handshake(tmp_path: Path) -> None:
    """With DICOM TLS the denied peer gets no ServerHello: the connection closes unread."""
    from aiomove.association import Peer, Timeouts, connect
    from aiomove.errors import AssociationRequestFailed, ConnectError
    from aiomove.tls import TlsSettings, client_context, server_context
    from tests.tls.pki import make_pki

    pki = make_pki(tmp_path / "pki")
    server = TlsSettings(str(pki.server.key), str(pki.server.cert), ca_files=(str(pki.ca),))
    client = TlsSettings(str(pki.client.key), str(pki.client.cert), ca_files=(str(pki.ca),))
    p = policy(tmp_path, deny="storescp: 127.0.0.1\n", daemon=STORESCP)
    config = AcceptorConfig(ae_title="STORESCP", access=p, ssl_context=server_context(server))
    timeouts = Timeouts(connect=HANG, acse=HANG)
    with structlog.testing.capture_logs() as logs:
        async with running(config, check=False) as port:
            raw = await RawPeer.connect(port)
            try:
                with anyio.fail_after(HANG):
                    await raw.send(client_hello(client_context(client)))
                    assert await raw.read_to_eof() == b""  # not even a ServerHello
            finally:
                await raw.aclose()
            peer = Peer("127.0.0.1", port, "STORESCP")
            with pytest.raises((ConnectError, AssociationRequestFailed)):
                async with connect(peer, ssl_context=client_context(client), timeouts=timeouts):
                    pass  # pragma: no cover
            (tmp_path / "hosts.deny").write_text("")
            async with connect(
                peer, ssl_context=client_context(client), timeouts=timeouts
            ) as assoc:
                assert (await assoc.echo(timeout=HANG)).is_success
    assert [e["reason"] for e in events(logs, "connection.denied")] == ["hosts_access"] * 2


def client_hello(context: ssl.SSLContext) -> bytes:
    """The first flight of a TLS client (a ClientHello), produced without a socket."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()
