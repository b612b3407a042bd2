"""DICOM TLS in the library: `aiomove.tls` contexts on connect() and serve(), loopback.

Both ends are aiomove; the certificates come from tests/tls/pki.py. A refused handshake
surfaces as ConnectError, or (TLS 1.3, where the server judges the client certificate after
the client has finished) as AssociationRequestFailed on the first read: both are DCMTK's
"association request failed".
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
import structlog
from anyio.streams.tls import TLSAttribute

from aiomove.association import Association, Peer, Timeouts, connect
from aiomove.errors import AssociationRequestFailed, ConnectError
from aiomove.server import AcceptorConfig, serve
from aiomove.tls import (
    PROFILES,
    TlsError,
    TlsSettings,
    ask_password_once,
    client_context,
    openssl_name,
    server_context,
)
from tests.tls.pki import Pki, encrypted, to_der

pytestmark = pytest.mark.anyio
REFUSED = (ConnectError, AssociationRequestFailed)
TIMEOUTS = Timeouts(connect=30, acse=30, dimse=30)


def server_settings(pki: Pki, **changes: object) -> TlsSettings:
    base = TlsSettings(str(pki.server.key), str(pki.server.cert), ca_files=(str(pki.ca),))
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def client_settings(pki: Pki, **changes: object) -> TlsSettings:
    base = TlsSettings(str(pki.client.key), str(pki.client.cert), ca_files=(str(pki.ca),))
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@asynccontextmanager
async def tls_echo(
    server: TlsSettings, client: TlsSettings, hostname: str | None = None
) -> AsyncIterator[Association]:
    """An association over TLS from `client` to an SCP with `server`; one C-ECHO done."""
    refused: BaseException | None = None
    async with anyio.create_task_group() as tg:
        config = AcceptorConfig(ae_title="SCP", ssl_context=server_context(server))
        port = await tg.start(serve, config, "127.0.0.1")
        try:
            async with connect(
                Peer("127.0.0.1", port, "SCP"),
                ssl_context=client_context(client),
                server_hostname=hostname,
                timeouts=TIMEOUTS,
            ) as assoc:
                assert (await assoc.echo()).is_success
                yield assoc
        except REFUSED as exc:  # raised below, outside the task group (no ExceptionGroup)
            refused = exc
        finally:
            tg.cancel_scope.cancel()
    if refused is not None:
        raise refused


def verify_message(info: pytest.ExceptionInfo[BaseException]) -> str:
    """OpenSSL's reason for refusing the peer's certificate."""
    cause = info.value.__cause__
    assert isinstance(cause, ssl.SSLCertVerificationError), repr(cause)
    return str(cause.verify_message)


def negotiated(assoc: Association) -> tuple[str, str]:
    stream = assoc.link.stream
    return stream.extra(TLSAttribute.tls_version), stream.extra(TLSAttribute.cipher)[0]


async def test_mutual_authentication_negotiates_tls13_by_default(pki: Pki) -> None:
    async with tls_echo(server_settings(pki), client_settings(pki)) as assoc:
        version, _ = negotiated(assoc)
    assert version == "TLSv1.3"


async def test_extended_bcp195_profile_negotiates_tls12_with_its_suites(pki: Pki) -> None:
    profile = "bcp195-ex"
    server, client = server_settings(pki, profile=profile), client_settings(pki, profile=profile)
    async with tls_echo(server, client) as assoc:
        version, cipher = negotiated(assoc)
    assert version == "TLSv1.2"
    assert cipher in {openssl_name(s) for s in PROFILES[profile].ciphers}


@pytest.mark.parametrize("profile", ["8996", "bcp195-nd", "bcp195", "aes"])
async def test_supported_profiles_interoperate(pki: Pki, profile: str) -> None:
    server, client = server_settings(pki, profile=profile), client_settings(pki, profile=profile)
    async with tls_echo(server, client) as assoc:
        version, _ = negotiated(assoc)
    assert version == (
        "TLSv1.2" if PROFILES[profile].maximum == ssl.TLSVersion.TLSv1_2 else "TLSv1.3"
    )


async def test_null_profile_authenticates_without_encryption(pki: Pki) -> None:
    server, client = server_settings(pki, profile="null"), client_settings(pki, profile="null")
    async with tls_echo(server, client) as assoc:
        assert negotiated(assoc) == ("TLSv1.2", "NULL-SHA")


async def test_server_from_another_ca_is_rejected(pki: Pki) -> None:
    client = client_settings(pki, ca_files=(str(pki.other_ca),))
    with pytest.raises(ConnectError, match="certificate verify failed") as info:
        async with tls_echo(server_settings(pki), client):
            pass
    assert "self-signed certificate in certificate chain" in verify_message(info)
    assert verify_message(info) in str(info.value)


async def test_client_from_another_ca_is_rejected(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    server = server_settings(pki, ca_files=(str(pki.other_ca),))
    with structlog.testing.capture_logs() as logs, pytest.raises(REFUSED):
        async with tls_echo(server, client_settings(pki)):
            pass
    # The SCP says why in one structured line; no traceback through stdlib logging.
    failed = [entry for entry in logs if entry["event"] == "tls.handshake_failed"]
    assert len(failed) == 1, logs
    assert "certificate verify failed" in failed[0]["reason"]
    assert failed[0]["peer"].startswith("127.0.0.1:")
    assert not [r for r in caplog.records if r.name.startswith("anyio")]


async def test_client_without_certificate_is_rejected_by_default(pki: Pki) -> None:
    client = client_settings(pki, key_file=None, cert_file=None)
    with pytest.raises(REFUSED):
        async with tls_echo(server_settings(pki), client):
            pass


async def test_verify_peer_cert_accepts_a_client_without_certificate(pki: Pki) -> None:
    client = client_settings(pki, key_file=None, cert_file=None)
    async with tls_echo(server_settings(pki, peer_certificate="verify"), client):
        pass


async def test_expired_server_certificate_is_rejected(pki: Pki) -> None:
    server = server_settings(pki, key_file=str(pki.expired.key), cert_file=str(pki.expired.cert))
    with pytest.raises(ConnectError) as info:
        async with tls_echo(server, client_settings(pki)):
            pass
    assert "certificate has expired" in verify_message(info)


async def test_expired_client_certificate_is_rejected(pki: Pki) -> None:
    client = client_settings(pki, key_file=str(pki.expired.key), cert_file=str(pki.expired.cert))
    with pytest.raises(REFUSED):
        async with tls_echo(server_settings(pki), client):
            pass


async def test_ignore_peer_cert_accepts_an_untrusted_expired_server(pki: Pki) -> None:
    server = server_settings(pki, key_file=str(pki.expired.key), cert_file=str(pki.expired.cert))
    client = client_settings(pki, ca_files=(), peer_certificate="ignore")
    async with tls_echo(server, client):
        pass


async def test_revoked_server_certificate_passes_without_crl(pki: Pki) -> None:
    server = server_settings(pki, key_file=str(pki.revoked.key), cert_file=str(pki.revoked.cert))
    async with tls_echo(server, client_settings(pki)):
        pass


@pytest.mark.parametrize("check", ["none", "leaf", "chain"])
async def test_revoked_server_certificate_is_rejected_with_crl(pki: Pki, check: str) -> None:
    server = server_settings(pki, key_file=str(pki.revoked.key), cert_file=str(pki.revoked.cert))
    client = client_settings(pki, crl_files=(str(pki.crl),), crl_check=check)
    with pytest.raises(ConnectError) as info:
        async with tls_echo(server, client):
            pass
    assert "certificate revoked" in verify_message(info)


async def test_revoked_client_certificate_is_rejected_by_the_scp(pki: Pki) -> None:
    server = server_settings(pki, crl_files=(str(pki.crl),))
    client = client_settings(pki, key_file=str(pki.revoked.key), cert_file=str(pki.revoked.cert))
    with pytest.raises(REFUSED):
        async with tls_echo(server, client):
            pass


async def test_crl_check_of_a_good_certificate_passes(pki: Pki) -> None:
    client = client_settings(pki, crl_files=(str(pki.crl),), crl_check="chain")
    async with tls_echo(server_settings(pki, crl_files=(str(pki.crl),)), client):
        pass


async def test_crl_verification_without_a_crl_rejects(pki: Pki) -> None:
    with pytest.raises(ConnectError) as info:
        async with tls_echo(server_settings(pki), client_settings(pki, crl_check="leaf")):
            pass
    assert "unable to get certificate CRL" in verify_message(info)


async def test_der_keys_and_certificates_with_password(pki: Pki, tmp_path: Path) -> None:
    server = to_der(pki.server, tmp_path, password=b"secret")
    client = to_der(pki.client, tmp_path)
    ca_der = tmp_path / "ca.der"
    ca_der.write_bytes(ssl.PEM_cert_to_DER_cert(pki.ca.read_text()))
    async with tls_echo(
        TlsSettings(str(server.key), str(server.cert), "secret", True, (str(ca_der),)),
        TlsSettings(str(client.key), str(client.cert), None, True, (str(ca_der),)),
    ):
        pass


async def test_certificate_directory_is_an_openssl_hash_directory(pki: Pki, tmp_path: Path) -> None:
    directory = tmp_path / "cas"
    directory.mkdir()
    (directory / "ca.pem").write_bytes(pki.ca.read_bytes())
    await anyio.run_process(["openssl", "rehash", str(directory)])
    client = client_settings(pki, ca_files=(), ca_dirs=(str(directory),))
    async with tls_echo(server_settings(pki), client):
        pass


async def test_expect_sni_refuses_another_server_name(pki: Pki) -> None:
    server = server_settings(pki, expect_sni="pacs.example")
    async with tls_echo(server, client_settings(pki), hostname="pacs.example"):
        pass
    with pytest.raises(ConnectError, match=r"TLS handshake .* failed"):
        async with tls_echo(server, client_settings(pki), hostname="other.example"):
            pass


async def test_dh_parameters_enable_dhe_suites(pki: Pki, tmp_path: Path) -> None:
    dh = tmp_path / "dh.pem"
    await anyio.run_process(["openssl", "dhparam", "-dsaparam", "-out", str(dh), "2048"])
    server = server_settings(pki, profile="bcp195-ex", dh_params=str(dh))
    client = client_settings(pki, profile="bcp195-ex")
    context = client_context(client)
    context.set_ciphers("DHE-RSA-AES128-GCM-SHA256")
    async with anyio.create_task_group() as tg:
        config = AcceptorConfig(ae_title="SCP", ssl_context=server_context(server))
        port = await tg.start(serve, config, "127.0.0.1")
        async with connect(Peer("127.0.0.1", port, "SCP"), ssl_context=context) as assoc:
            assert negotiated(assoc) == ("TLSv1.2", "DHE-RSA-AES128-GCM-SHA256")
        tg.cancel_scope.cancel()


# --- contexts that cannot be built (movescu's exit code 70) ----------------------------------


def test_encrypted_key_needs_the_right_password(pki: Pki, tmp_path: Path) -> None:
    pair = encrypted(pki.server, tmp_path, b"secret")
    settings = TlsSettings(str(pair.key), str(pair.cert))
    server_context(dataclasses.replace(settings, password="secret"))
    with pytest.raises(TlsError, match="wrong password"):
        server_context(dataclasses.replace(settings, password="wrong"))
    with pytest.raises(TlsError, match="wrong password"):
        server_context(dataclasses.replace(settings, password=""))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"key_file": "/no/such.key"}, "cannot read private key file /no/such.key"),
        ({"ca_files": ("/no/ca.pem",)}, "cannot read certificate file /no/ca.pem"),
        ({"crl_files": ("/no/ca.crl",)}, "cannot read CRL file /no/ca.crl"),
        ({"ca_dirs": ("/no/dir",)}, "cannot read certificate directory /no/dir"),
        ({"dh_params": "/no/dh.pem"}, "cannot read DH parameter file /no/dh.pem"),
        ({"seed_file": "/no/seed"}, "cannot read random seed file /no/seed"),
        ({"profile": "8996-mod"}, "Python's ssl module cannot enable TLS 1.3 suites"),
        ({"profile": "basic"}, "TLS_RSA_WITH_3DES_EDE_CBC_SHA is not supported"),
        ({"ciphers": ("TLS_NO_SUCH_SUITE",)}, "'TLS_NO_SUCH_SUITE' is unknown"),
        ({"ciphers": ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",)}, "SHA-1 MAC not permitted"),
        ({"ciphers": ("TLS_RSA_WITH_NULL_SHA",)}, "unencrypted ciphersuite"),
        (
            {"profile": "bcp195-ex", "ciphers": ("TLS_RSA_WITH_AES_128_GCM_SHA256",)},
            "additional ciphersuites not permitted",
        ),
    ],
)
def test_settings_that_cannot_make_a_context(
    pki: Pki, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(TlsError, match=message):
        server_context(server_settings(pki, **changes))


def test_a_server_needs_a_certificate(pki: Pki) -> None:
    with pytest.raises(TlsError, match="needs a private key and a certificate"):
        server_context(server_settings(pki, key_file=None, cert_file=None))


def test_key_not_matching_certificate_is_refused(pki: Pki) -> None:
    with pytest.raises(TlsError, match="cannot load private key"):
        server_context(server_settings(pki, key_file=str(pki.client.key)))


def test_added_cipher_suite_is_offered(pki: Pki) -> None:
    extra = "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
    context = client_context(client_settings(pki, ciphers=(extra,)))
    assert openssl_name(extra) in {c["name"] for c in context.get_ciphers()}


def test_seed_file_is_read_and_a_new_seed_written(pki: Pki, tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    seed.write_bytes(b"x" * 64)
    out = tmp_path / "new-seed"
    client_context(client_settings(pki, seed_file=str(seed), write_seed_file=str(out)))
    assert len(out.read_bytes()) == 1024
    client_context(client_settings(pki, seed_file=str(seed), write_seed=True))
    assert len(seed.read_bytes()) == 1024


def test_std_passwd_prompts_once_and_only_for_encrypted_keys(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    def prompt() -> str:
        asked.append("x")
        return "secret"

    monkeypatch.setattr("aiomove.tls._prompt", prompt)
    plain = ask_password_once(server_settings(pki))
    assert (plain.password, asked) == (None, [])
    pair = encrypted(pki.server, tmp_path, b"secret")
    settings = ask_password_once(TlsSettings(str(pair.key), str(pair.cert)))
    assert (settings.password, asked) == ("secret", ["x"])
    server_context(settings)
    client_context(settings)
    assert asked == ["x"]
    der = to_der(pki.server, tmp_path, password=b"secret")
    assert ask_password_once(TlsSettings(str(der.key), str(der.cert), der=True)).password == (
        "secret"
    )
    server_context(TlsSettings(str(pair.key), str(pair.cert)))  # +ps without answer yet
    assert len(asked) == 3
