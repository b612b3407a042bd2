"""Certificates for the TLS tests, generated on the fly (trustme for the CA and leaves,
cryptography for the CRL and the DER forms). RSA keys: DCMTK 3.6.7's default profile only
has RSA suites for TLS 1.2."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

RSA = trustme.KeyType.RSA
NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class Pair:
    key: Path
    cert: Path

    def args(self) -> list[str]:
        """`+tls key cert` as a DCMTK/aiomove command line has it."""
        return ["+tls", str(self.key), str(self.cert)]


@dataclass(frozen=True)
class Pki:
    ca: Path  # the trusted CA certificate (PEM)
    other_ca: Path  # a CA nobody's certificate comes from
    server: Pair
    client: Pair
    expired: Pair
    revoked: Pair
    crl: Path  # the CA's CRL, revoking `revoked` (PEM)
    ca_key: Path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _pair(directory: Path, name: str, leaf: trustme.LeafCert) -> Pair:
    key = _write(directory / f"{name}.key", leaf.private_key_pem.bytes())
    cert = _write(directory / f"{name}.crt", leaf.cert_chain_pems[0].bytes())
    return Pair(key, cert)


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(key_type=RSA)
    other = trustme.CA(key_type=RSA)
    now = datetime.datetime.now(datetime.UTC)
    expired = ca.issue_cert(
        *NAMES,
        not_before=now - datetime.timedelta(days=30),
        not_after=now - datetime.timedelta(days=1),
        key_type=RSA,
    )
    revoked = ca.issue_cert(*NAMES, common_name="revoked", key_type=RSA)
    ca_key = _write(directory / "ca.key", ca.private_key_pem.bytes())
    pki = Pki(
        ca=_write(directory / "ca.crt", ca.cert_pem.bytes()),
        other_ca=_write(directory / "other-ca.crt", other.cert_pem.bytes()),
        server=_pair(directory, "server", ca.issue_cert(*NAMES, key_type=RSA)),
        client=_pair(directory, "client", ca.issue_cert(*NAMES, key_type=RSA)),
        expired=_pair(directory, "expired", expired),
        revoked=_pair(directory, "revoked", revoked),
        crl=directory / "ca.crl",
        ca_key=ca_key,
    )
    _write(pki.crl, make_crl(pki, [pki.revoked.cert]).public_bytes(serialization.Encoding.PEM))
    return pki


def make_crl(pki: Pki, revoked: list[Path]) -> x509.CertificateRevocationList:
    """A CRL signed by the CA revoking the certificates in `revoked`."""
    ca_cert = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - datetime.timedelta(hours=1))
        .next_update(now + datetime.timedelta(days=7))
    )
    for path in revoked:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now - datetime.timedelta(minutes=5))
            .build()
        )
    return builder.sign(ca_key, hashes.SHA256())


def to_der(pair: Pair, directory: Path, password: bytes | None = None) -> Pair:
    """`pair` as DER files (the key PKCS#8, encrypted when `password` is given)."""
    key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    der_key = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, encryption
    )
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    stem = pair.key.stem
    return Pair(
        _write(directory / f"{stem}.der.key", der_key),
        _write(directory / f"{stem}.der.crt", cert.public_bytes(serialization.Encoding.DER)),
    )


def encrypted(pair: Pair, directory: Path, password: bytes) -> Pair:
    """`pair` with its PEM key encrypted under `password`."""
    key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )
    return Pair(_write(directory / f"{pair.key.stem}.enc.key", pem), pair.cert)
