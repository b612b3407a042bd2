"""DICOM TLS (PS3.15 Annex B): `ssl.SSLContext`s built from DCMTK's TLS options.

`TlsSettings` holds what movescu's TLS options say; `client_context()` builds the context for
outgoing associations and `server_context()` the one for the Storage SCP. Differences from
DCMTK, each forced by Python's `ssl` module or by OpenSSL 3, are stated where they apply:

- Profiles (PS3.15 Annex B, DCMTK's dcmtls/libsrc/tlsciphr.cc) set the TLS versions and the
  TLS 1.2 cipher suites. Python cannot choose TLS 1.3 suites (no SSL_CTX_set_ciphersuites):
  TLS 1.3 always offers OpenSSL's defaults. So the Modified BCP 195 RFC 8996 profile, which
  requires the TLS 1.3 CCM suites, is refused; so is the Basic profile when OpenSSL has no 3DES
  (OpenSSL 3 builds without enable-weak-ssl-ciphers), exactly as DCMTK refuses it there.
- No host name check: DICOM TLS authenticates by certificate chain only, as DCMTK does.
- No system CA store: only `+cf`/`+cd` certificates are trusted, as in DCMTK.
- `+rs` mixes the file into OpenSSL's generator (ssl.RAND_add) and `+ws`/`+wf` write 1 KiB of
  fresh random bytes back. OpenSSL 1.1.1 and later seed themselves from the operating system,
  so these options no longer change the security of anything; they are kept for scripts.
"""

from __future__ import annotations

import getpass
import os
import secrets
import ssl
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from aiomove.errors import AiomoveError
from aiomove.log import get_logger

log = get_logger("aiomove.tls")

PeerCertificate = Literal["require", "verify", "ignore"]
CrlCheck = Literal["none", "leaf", "chain"]


class TlsError(AiomoveError):
    """The TLS layer cannot be created (unreadable file, bad key or password, unavailable
    profile or cipher suite): movescu's EXITCODE_CANNOT_CREATE_TLS_LAYER (70)."""


@dataclass(frozen=True)
class TlsSettings:
    """movescu's TLS options. `password` None means "prompt on the terminal" (`+ps`), and the
    prompt only happens when the private key is encrypted."""

    key_file: str | None = None  # +tls p c
    cert_file: str | None = None
    password: str | None = None  # +ps (None) / +pw p / -pw ("")
    der: bool = False  # -pem / -der
    ca_files: tuple[str, ...] = ()  # +cf, repeatable
    ca_dirs: tuple[str, ...] = ()  # +cd, repeatable (OpenSSL hash directory, as DCMTK)
    crl_files: tuple[str, ...] = ()  # +crl, repeatable (implies leaf checking)
    crl_check: CrlCheck = "none"  # +crv leaf / +cra chain
    profile: str = "8996"  # +pg; the keys of PROFILES
    ciphers: tuple[str, ...] = ()  # +cs, RFC names (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
    dh_params: str | None = None  # +dp
    expect_sni: str | None = None  # --expect-sni (server side)
    seed_file: str | None = None  # +rs
    write_seed: bool = False  # +ws
    write_seed_file: str | None = None  # +wf
    peer_certificate: PeerCertificate = "require"  # -rc / -vc / -ic


# --- profiles and cipher suites --------------------------------------------------------------

_V10, _V12 = ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_2
_MAX = ssl.TLSVersion.MAXIMUM_SUPPORTED
_GCM_RSA = (
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
)
_3DES = "TLS_RSA_WITH_3DES_EDE_CBC_SHA"
_NULL = "TLS_RSA_WITH_NULL_SHA"


@dataclass(frozen=True)
class Profile:
    """A DICOM TLS profile: its versions and TLS 1.2 suites (DCMTK's setTLSProfile)."""

    option: str
    title: str
    ciphers: tuple[str, ...]
    minimum: ssl.TLSVersion = _V12
    maximum: ssl.TLSVersion = _MAX
    optional: tuple[str, ...] = ()  # offered when OpenSSL has them (3DES back-compatibility)
    extra_ciphers: bool = True  # whether +cs may add suites
    unsupported: str = ""  # why Python's ssl cannot provide it


PROFILES: dict[str, Profile] = {
    "8996": Profile(
        "--profile-8996",
        "BCP 195 RFC 8996 TLS Profile",
        (
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        ),
    ),
    "8996-mod": Profile(
        "--profile-8996-mod",
        "Modified BCP 195 RFC 8996 TLS Profile",
        (),
        extra_ciphers=False,
        unsupported="it requires the TLS 1.3 cipher suites TLS_AES_128_CCM_SHA256 and "
        "TLS_AES_128_CCM_8_SHA256, and Python's ssl module cannot enable TLS 1.3 suites",
    ),
    "bcp195-nd": Profile(
        "--profile-bcp195-nd", "Non-downgrading BCP 195 TLS Profile (retired)", _GCM_RSA
    ),
    "bcp195": Profile(
        "--profile-bcp195",
        "BCP 195 TLS Profile (retired)",
        (*_GCM_RSA, "TLS_RSA_WITH_AES_128_CBC_SHA"),
        minimum=_V10,
        optional=(_3DES,),
    ),
    "bcp195-ex": Profile(
        "--profile-bcp195-ex",
        "Extended BCP 195 TLS Profile (retired)",
        (
            *_GCM_RSA,
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ),
        maximum=_V12,
        extra_ciphers=False,
    ),
    "basic": Profile(
        "--profile-basic",
        "Basic TLS Secure Transport Connection Profile (retired)",
        (_3DES,),
        minimum=_V10,
        maximum=_V12,
    ),
    "aes": Profile(
        "--profile-aes",
        "AES TLS Secure Transport Connection Profile (retired)",
        ("TLS_RSA_WITH_AES_128_CBC_SHA",),
        minimum=_V10,
        maximum=_V12,
        optional=(_3DES,),
    ),
    "null": Profile(
        "--profile-null",
        "Authenticated unencrypted communication (retired, was used in IHE ATNA)",
        (_NULL,),
        minimum=_V10,
        maximum=_V12,
    ),
}
DEFAULT_PROFILE = "8996"

#: The TLS 1.0-1.2 suites DCMTK knows (dcmtls/libsrc/tlsciphr.cc), by their RFC names.
_CATALOGUE = (
    _NULL,
    _3DES,
    *(f"TLS_RSA_WITH_{c}" for c in ("AES_128_CBC_SHA", "CAMELLIA_128_CBC_SHA")),
    *(f"TLS_RSA_WITH_{c}" for c in ("AES_128_CBC_SHA256", "AES_128_GCM_SHA256")),
    *(f"TLS_RSA_WITH_{c}" for c in ("CAMELLIA_256_CBC_SHA", "AES_256_CBC_SHA")),
    *(f"TLS_RSA_WITH_{c}" for c in ("AES_256_CBC_SHA256", "AES_256_GCM_SHA384")),
    *(
        f"TLS_{kx}_WITH_{c}"
        for kx in ("ECDHE_ECDSA", "ECDHE_RSA")
        for c in (
            "AES_128_CBC_SHA",
            "AES_128_CBC_SHA256",
            "AES_128_GCM_SHA256",
            "AES_256_CBC_SHA",
            "AES_256_CBC_SHA384",
            "AES_256_GCM_SHA384",
            "CHACHA20_POLY1305_SHA256",
        )
    ),
    *(f"TLS_ECDHE_ECDSA_WITH_AES_{b}_CCM{s}" for b in ("128", "256") for s in ("", "_8")),
    *(
        f"TLS_{kx}_WITH_{c}"
        for kx in ("DHE_DSS", "DHE_RSA")
        for c in (
            "AES_128_CBC_SHA",
            "CAMELLIA_128_CBC_SHA",
            "AES_128_CBC_SHA256",
            "AES_128_GCM_SHA256",
            "AES_256_CBC_SHA",
            "CAMELLIA_256_CBC_SHA",
            "AES_256_CBC_SHA256",
            "AES_256_GCM_SHA384",
        )
    ),
    "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
)
_KX = {"RSA": "", "DHE_RSA": "DHE-RSA-", "DHE_DSS": "DHE-DSS-"}
_KX |= {"ECDHE_RSA": "ECDHE-RSA-", "ECDHE_ECDSA": "ECDHE-ECDSA-"}


def openssl_name(rfc_name: str) -> str | None:
    """OpenSSL's name of a TLS 1.0-1.2 suite given by its RFC name (what DCMTK's `+cs` takes),
    None when the name is not one of that form."""
    kx, sep, cipher = rfc_name.removeprefix("TLS_").partition("_WITH_")
    if not sep or kx not in _KX or not rfc_name.startswith("TLS_"):
        return None
    if cipher == "3DES_EDE_CBC_SHA":
        body = "DES-CBC3-SHA"
    elif cipher == "NULL_SHA":
        body = "NULL-SHA"
    elif cipher == "CHACHA20_POLY1305_SHA256":
        body = "CHACHA20-POLY1305"
    else:
        parts = cipher.split("_")  # e.g. AES 128 GCM SHA256 / AES 128 CCM 8
        if len(parts) < 3 or parts[0] not in ("AES", "CAMELLIA"):
            return None
        algorithm = parts[0] + parts[1]
        rest = parts[2:]
        if rest == ["CBC", "SHA"]:
            body = f"{algorithm}-SHA"
        elif rest[0] == "CBC":
            body = f"{algorithm}-{rest[1]}"
        elif rest[0] == "CCM":
            body = f"{algorithm}-CCM" + ("8" if rest[1:] == ["8"] else "")
        else:
            body = f"{algorithm}-{'-'.join(rest)}"
    return _KX[kx] + body


def _available() -> set[str]:
    """The TLS 1.0-1.2 suites this OpenSSL has, by OpenSSL name."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    probe.set_ciphers("ALL:eNULL:@SECLEVEL=0")
    return {c["name"] for c in probe.get_ciphers()}


def _supported(rfc_name: str, available: set[str]) -> bool:
    name = openssl_name(rfc_name)
    return name is not None and name in available


def list_profiles() -> str:
    """`+ph`: the profiles, marking the default and those this Python cannot provide."""
    lines = ["Supported TLS profiles are:"]
    available = _available()
    for key, profile in PROFILES.items():
        mark = " (default)" if key == DEFAULT_PROFILE else ""
        why = _unavailable(profile, available)
        if why:
            mark += " [not available: " + why + "]"
        lines.append(f"    {profile.option:<21}{profile.title}{mark}")
    return "\n".join(lines)


def list_ciphers() -> str:
    """`+cc`: the suites `+cs` accepts here (RFC names), and the fixed TLS 1.3 suites."""
    available = _available()
    lines = ["Supported TLS ciphersuites are:"]
    lines += [f"    {name}" for name in _CATALOGUE if _supported(name, available)]
    tls13 = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).get_ciphers()
    lines.append("TLS 1.3 ciphersuites (OpenSSL's defaults; Python cannot change them):")
    lines += [f"    {c['name']}" for c in tls13 if c["protocol"] == "TLSv1.3"]
    return "\n".join(lines)


def _unavailable(profile: Profile, available: set[str]) -> str:
    if profile.unsupported:
        return profile.unsupported
    missing = [c for c in profile.ciphers if not _supported(c, available)]
    if missing:
        return f"{', '.join(missing)} is not supported by {ssl.OPENSSL_VERSION}"
    return ""


def _cipher_string(settings: TlsSettings) -> tuple[Profile, str]:
    """The profile and the OpenSSL cipher list for `settings` (DCMTK's rules for `+cs`)."""
    profile = PROFILES.get(settings.profile)
    if profile is None:
        raise TlsError(f"unknown TLS profile {settings.profile!r}")
    available = _available()
    why = _unavailable(profile, available)
    if why:
        raise TlsError(f"TLS profile {profile.option} ({profile.title}) is not available: {why}")
    suites = list(profile.ciphers)
    suites += [c for c in profile.optional if _supported(c, available)]
    for extra in settings.ciphers:
        suites.append(_checked_extra(profile, extra, available))
    names = [str(openssl_name(s)) for s in dict.fromkeys(suites)]
    level = "@SECLEVEL=0" if _NULL in suites else ""
    return profile, ":".join(names) + (":" + level if level else "")


def _checked_extra(profile: Profile, suite: str, available: set[str]) -> str:
    """A `+cs` suite, refused as DCMTK's addCipherSuite refuses it."""
    if not _supported(suite, available):
        raise TlsError(f"ciphersuite '{suite}' is unknown or not supported by this OpenSSL")
    if not profile.extra_ciphers:
        raise TlsError(f"additional ciphersuites not permitted with {profile.title}")
    if suite == _NULL and profile.option != "--profile-null":
        raise TlsError(f"unencrypted ciphersuite '{suite}' not permitted with {profile.title}")
    if profile.option == "--profile-8996" and suite.endswith("_SHA"):
        raise TlsError(f"ciphersuite '{suite}' using SHA-1 MAC not permitted with {profile.title}")
    return suite


# --- building the contexts -------------------------------------------------------------------


def client_context(settings: TlsSettings) -> ssl.SSLContext:
    """The context for outgoing associations (movescu's requestor side)."""
    ctx = _base(ssl.PROTOCOL_TLS_CLIENT, settings)
    ctx.check_hostname = False  # DICOM TLS checks the chain, not host names (as DCMTK)
    ctx.verify_mode = ssl.CERT_NONE if settings.peer_certificate == "ignore" else ssl.CERT_REQUIRED
    if settings.key_file or settings.cert_file:
        _load_identity(ctx, settings)
    return ctx


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """The context for the Storage SCP (movescu's acceptor side with `+P`)."""
    if not (settings.key_file and settings.cert_file):
        raise TlsError("a TLS acceptor needs a private key and a certificate (+tls)")
    ctx = _base(ssl.PROTOCOL_TLS_SERVER, settings)
    ctx.verify_mode = {
        "require": ssl.CERT_REQUIRED,
        "verify": ssl.CERT_OPTIONAL,
        "ignore": ssl.CERT_NONE,
    }[settings.peer_certificate]
    _load_identity(ctx, settings)
    if settings.dh_params:
        _readable(settings.dh_params, "DH parameter file")
        try:
            ctx.load_dh_params(settings.dh_params)
        except (ssl.SSLError, OSError) as exc:
            raise TlsError(f"cannot load DH parameters from {settings.dh_params}: {exc}") from exc
    if settings.expect_sni is not None:
        ctx.sni_callback = _sni_checker(settings.expect_sni)
    return ctx


def _base(protocol: ssl._SSLMethod, settings: TlsSettings) -> ssl.SSLContext:
    _seed(settings)
    profile, ciphers = _cipher_string(settings)
    ctx = ssl.SSLContext(protocol)
    with warnings.catch_warnings():  # TLS 1.0 is deprecated, and only the retired profiles use it
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = profile.minimum
        ctx.maximum_version = profile.maximum
    try:
        ctx.set_ciphers(ciphers)
    except ssl.SSLError as exc:
        raise TlsError(f"cannot select cipher suites {ciphers}: {exc}") from exc
    _load_trust(ctx, settings)
    return ctx


def _readable(path: str, what: str) -> None:
    if not os.access(path, os.R_OK) or not os.path.isfile(path):
        raise TlsError(f"cannot read {what} {path}")


def _seed(settings: TlsSettings) -> None:
    """`+rs` / `+ws` / `+wf` (see the module docstring)."""
    if settings.seed_file is None:
        return
    _readable(settings.seed_file, "random seed file")
    data = Path(settings.seed_file).read_bytes()
    ssl.RAND_add(data, len(data))
    target = settings.write_seed_file or (settings.seed_file if settings.write_seed else None)
    if target is not None:
        try:
            Path(target).write_bytes(ssl.RAND_bytes(1024))
        except OSError as exc:
            raise TlsError(f"cannot write random seed file {target}: {exc.strerror}") from exc


def _load_trust(ctx: ssl.SSLContext, settings: TlsSettings) -> None:
    """`+cf`, `+cd`, `+crl`, `+crv`, `+cra`."""
    for name in settings.ca_files:
        _readable(name, "certificate file")
        try:
            if settings.der:
                ctx.load_verify_locations(cadata=Path(name).read_bytes())
            else:
                ctx.load_verify_locations(cafile=name)
        except (ssl.SSLError, ValueError) as exc:
            raise TlsError(f"cannot load trusted certificate {name}: {exc}") from exc
    for directory in settings.ca_dirs:
        if not os.path.isdir(directory):
            raise TlsError(f"cannot read certificate directory {directory}")
        _load_directory(ctx, directory, settings.der)
    for name in settings.crl_files:
        _readable(name, "CRL file")
        try:
            if settings.der:
                with _pem_file(_der_crl_to_pem(Path(name).read_bytes())) as pem:
                    ctx.load_verify_locations(cafile=pem)
            else:
                ctx.load_verify_locations(cafile=name)
        except (ssl.SSLError, ValueError) as exc:
            raise TlsError(f"cannot load CRL {name}: {exc}") from exc
    check = "leaf" if settings.crl_files and settings.crl_check == "none" else settings.crl_check
    if check == "leaf":
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    elif check == "chain":
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN


def _load_directory(ctx: ssl.SSLContext, directory: str, der: bool) -> None:
    """`+cd`: PEM directories are OpenSSL hash directories (`openssl rehash`), looked up
    during verification as DCMTK does; DER files are loaded one by one."""
    try:
        if not der:
            ctx.load_verify_locations(capath=directory)
            return
        for entry in sorted(Path(directory).iterdir()):
            if entry.is_file():
                ctx.load_verify_locations(cadata=entry.read_bytes())
    except (ssl.SSLError, ValueError, OSError) as exc:
        raise TlsError(f"cannot load certificates from {directory}: {exc}") from exc


def _load_identity(ctx: ssl.SSLContext, settings: TlsSettings) -> None:
    """`+tls key cert` with `+ps`/`+pw`/`-pw` and `-pem`/`-der`."""
    key, cert = settings.key_file or "", settings.cert_file or ""
    _readable(key, "private key file")
    _readable(cert, "certificate file")
    password: str | Callable[[], str] = (
        settings.password if settings.password is not None else _prompt
    )
    try:
        if settings.der:
            _load_der_identity(ctx, key, cert, password)
        else:
            ctx.load_cert_chain(cert, key, password=password)
    except ssl.SSLError as exc:
        reason = str(exc.reason or exc)
        if _wrong_password(reason, key):
            reason = "wrong password"
        raise TlsError(f"cannot load private key {key} with certificate {cert}: {reason}") from exc
    except (ValueError, TypeError) as exc:
        raise TlsError(f"cannot load private key {key} with certificate {cert}: {exc}") from exc


def _wrong_password(reason: str, key: str) -> bool:
    """Whether OpenSSL's `reason` means the password did not decrypt `key` (an empty password
    on an encrypted PEM key only says "PEM lib")."""
    upper = reason.upper()
    if "BAD_DECRYPT" in upper or "BAD_PASSWORD" in upper:
        return True
    try:
        return "PEM LIB" in upper and b"ENCRYPTED" in Path(key).read_bytes()[:100]
    except OSError:
        return False


def ask_password_once(settings: TlsSettings) -> TlsSettings:
    """`settings` with the `+ps` prompt answered now when the key is encrypted, so that a
    command building two contexts (requestor and acceptor) asks only once."""
    if settings.password is not None or not settings.key_file:
        return settings
    try:
        head = Path(settings.key_file).read_bytes()
    except OSError:
        return settings  # reported when the context is built
    if settings.der:
        try:
            _cryptography_serialization().load_der_private_key(head, password=None)
        except TypeError:  # encrypted
            return replace(settings, password=_prompt())
        except (ValueError, TlsError):
            return settings
        return settings
    if b"ENCRYPTED" in head:
        return replace(settings, password=_prompt())
    return settings


def _prompt() -> str:
    """`+ps`: OpenSSL's own prompt, on the terminal (or stdin when there is none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", getpass.GetPassWarning)
        try:
            return getpass.getpass("Enter PEM pass phrase:", stream=sys.stderr)
        except EOFError:
            return ""


def _load_der_identity(
    ctx: ssl.SSLContext, key: str, cert: str, password: str | Callable[[], str]
) -> None:
    """DER files: the certificate through `ssl`, the key through `cryptography`; both are
    handed to OpenSSL as temporary PEM files, the key re-encrypted with a one-time password."""
    serialization = _cryptography_serialization()
    key_bytes = Path(key).read_bytes()
    try:
        private = serialization.load_der_private_key(key_bytes, password=None)
    except TypeError:  # encrypted: ask (or use +pw / -pw)
        secret = password() if callable(password) else password
        private = serialization.load_der_private_key(key_bytes, password=secret.encode())
    once = secrets.token_urlsafe(24)
    pem_key = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(once.encode()),
    )
    pem_cert = ssl.DER_cert_to_PEM_cert(Path(cert).read_bytes()).encode()
    with _pem_file(pem_key) as key_path, _pem_file(pem_cert) as cert_path:
        ctx.load_cert_chain(cert_path, key_path, password=once)


def _cryptography_serialization() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError as exc:
        raise TlsError("DER keys and CRLs (-der) need the 'cryptography' package") from exc
    return serialization


def _der_crl_to_pem(data: bytes) -> bytes:
    serialization = _cryptography_serialization()
    from cryptography import x509

    return x509.load_der_x509_crl(data).public_bytes(serialization.Encoding.PEM)


@contextmanager
def _pem_file(data: bytes) -> Iterator[str]:
    """`data` in a private temporary file (OpenSSL's loaders take paths only)."""
    with tempfile.TemporaryDirectory(prefix="aiomove-tls-") as directory:
        path = Path(directory, "data.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        yield str(path)


def _sni_checker(expected: str) -> Callable[[ssl.SSLObject, str | None, ssl.SSLContext], Any]:
    """`--expect-sni`: a different server name ends the handshake (unrecognized_name); a
    client that sends none is accepted with a warning."""

    def check(_obj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> int | None:
        if name is None:
            log.warning("tls.sni_missing", expected=expected)
            return None
        if name.lower() != expected.lower():
            log.warning("tls.sni_mismatch", expected=expected, received=name)
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        return None

    return check


def describe_error(exc: BaseException) -> str:
    """A one-line reason for a failed TLS handshake, the same on both sides of a connection."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc)
    if isinstance(exc, TimeoutError):
        return "handshake timed out"
    return str(exc) or type(exc).__name__
