"""DICOM TLS between aiomove's commands and real peers on loopback: DCMTK 3.6.7 (`storescp`,
`echoscu`, `storescu` with `+tls`) and Orthanc (`DicomTlsEnabled`) as a TLS C-MOVE source
whose C-STORE sub-associations come back over TLS to `aiomove move`'s Storage SCP."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from tests.peers import dcmtk, free_port, stop, wait_listening
from tests.sampledata import make_study
from tests.sources import HOST, orthanc
from tests.tls.pki import Pair, Pki, encrypted

pytestmark = pytest.mark.interop
TIMEOUT = 120


def aiomove(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiomove", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def trust(pki: Pki, ca: Path | None = None) -> list[str]:
    return ["+cf", str(ca or pki.ca)]


@contextlib.contextmanager
def storescp_tls(pki: Pki, tmp_path: Path, *args: str) -> Iterator[tuple[int, Path]]:
    """DCMTK storescp with TLS and a debug log, which names the negotiated protocol."""
    port = free_port()
    log = tmp_path / "storescp.log"
    out = tmp_path / "dcmtk-out"
    out.mkdir(exist_ok=True)
    cmd = [dcmtk("storescp"), "-d", *pki.server.args(), *trust(pki), *args]
    with log.open("wb") as sink:
        proc = subprocess.Popen([*cmd, "-od", str(out), str(port)], stdout=sink, stderr=sink)
    try:
        wait_listening(proc, port)
        yield port, log
    finally:
        stop(proc)


@contextlib.contextmanager
def aiomove_store_scp(tmp_path: Path, *args: str) -> Iterator[tuple[int, Path]]:
    """`aiomove store-scp` with `args` (its TLS options); yields its port and output dir."""
    port = free_port()
    out = tmp_path / "aiomove-out"
    out.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiomove", "store-scp", *args, "-od", str(out), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_listening(proc, port, within=60)
        yield port, out
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        stop(proc)


def echoscu(pair: Pair | None, *args: str) -> subprocess.CompletedProcess[str]:
    identity = pair.args() if pair else []
    return subprocess.run(
        [dcmtk("echoscu"), *identity, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


# --- aiomove echo -> DCMTK storescp +tls -------------------------------------------------------


@pytest.mark.parametrize(("profile", "protocol"), [((), "TLSv1.3"), (("+pz",), "TLSv1.2")])
def test_echo_to_dcmtk_storescp_with_mutual_authentication(
    pki: Pki, tmp_path: Path, profile: tuple[str, ...], protocol: str
) -> None:
    """DCMTK's default profile lets TLS 1.3 through; its Extended BCP 195 profile (+pz) is
    TLS 1.2 only: aiomove's default profile negotiates each."""
    with storescp_tls(pki, tmp_path, *profile) as (port, log):
        done = aiomove("echo", *pki.client.args(), *trust(pki), HOST, str(port))
    assert done.returncode == 0, done.stderr
    assert f"Protocol    : {protocol}" in log.read_text()


def test_echo_with_an_untrusted_server_fails_like_a_failed_association(
    pki: Pki, tmp_path: Path
) -> None:
    with storescp_tls(pki, tmp_path) as (port, _):
        done = aiomove("echo", *pki.client.args(), *trust(pki, pki.other_ca), HOST, str(port))
    assert done.returncode == 61
    assert "TLS handshake" in done.stderr
    assert "certificate verify failed: self-signed certificate in certificate chain" in done.stderr


def test_echo_ignore_peer_cert_accepts_an_expired_server(pki: Pki, tmp_path: Path) -> None:
    port = free_port()
    cmd = [dcmtk("storescp"), *pki.expired.args(), *trust(pki), "-ic", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        wait_listening(proc, port)
        refused = aiomove("echo", *pki.client.args(), *trust(pki), HOST, str(port))
        accepted = aiomove("echo", *pki.client.args(), "-ic", HOST, str(port))
    finally:
        stop(proc)
    assert refused.returncode == 61
    assert accepted.returncode == 0, accepted.stderr


# --- DCMTK echoscu / storescu -> aiomove store-scp +tls --------------------------------------


def test_dcmtk_echoscu_to_aiomove_store_scp(pki: Pki, tmp_path: Path) -> None:
    with aiomove_store_scp(tmp_path, *pki.server.args(), *trust(pki)) as (port, _):
        good = echoscu(pki.client, *trust(pki), HOST, str(port))
        untrusted = echoscu(pki.client, *trust(pki, pki.other_ca), HOST, str(port))
        expired = echoscu(pki.expired, *trust(pki), HOST, str(port))
        anonymous = echoscu(None, "+tla", *trust(pki), HOST, str(port))
    assert good.returncode == 0, good.stderr
    assert untrusted.returncode != 0  # echoscu refuses our certificate
    assert expired.returncode != 0  # we refuse its certificate
    assert anonymous.returncode != 0  # -rc (default): a client certificate is required


def test_store_scp_crl_refuses_a_revoked_client(pki: Pki, tmp_path: Path) -> None:
    scp = [*pki.server.args(), *trust(pki), "+crl", str(pki.crl)]
    with aiomove_store_scp(tmp_path, *scp) as (port, _):
        good = echoscu(pki.client, *trust(pki), HOST, str(port))
        revoked = echoscu(pki.revoked, *trust(pki), HOST, str(port))
    assert good.returncode == 0, good.stderr
    assert revoked.returncode != 0


def test_store_scp_verify_peer_cert_accepts_anonymous_clients(pki: Pki, tmp_path: Path) -> None:
    with aiomove_store_scp(tmp_path, *pki.server.args(), *trust(pki), "-vc") as (port, _):
        anonymous = echoscu(None, "+tla", *trust(pki), HOST, str(port))
    assert anonymous.returncode == 0, anonymous.stderr


def test_dcmtk_storescu_sends_files_over_tls(pki: Pki, tmp_path: Path) -> None:
    files = [str(get_testdata_file(name)) for name in ("CT_small.dcm", "MR_small.dcm")]
    with aiomove_store_scp(tmp_path, *pki.server.args(), *trust(pki)) as (port, out):
        sent = subprocess.run(
            [dcmtk("storescu"), *pki.client.args(), *trust(pki), HOST, str(port), *files],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=dict(os.environ, TCP_NODELAY="1"),
        )
    assert sent.returncode == 0, sent.stderr
    received = {pydicom.dcmread(p).SOPInstanceUID for p in out.iterdir()}
    assert received == {pydicom.dcmread(f).SOPInstanceUID for f in files}


# --- aiomove move <-> Orthanc with DicomTlsEnabled -------------------------------------------


def _orthanc_tls(pki: Pki) -> dict[str, object]:
    return {
        "DicomTlsEnabled": True,
        "DicomTlsCertificate": str(pki.server.cert),
        "DicomTlsPrivateKey": str(pki.server.key),
        "DicomTlsTrustedCertificates": str(pki.ca),
        "DicomTlsRemoteCertificateRequired": True,
    }


def test_move_from_orthanc_over_tls_both_ways(pki: Pki, tmp_path: Path) -> None:
    """The C-MOVE association and Orthanc's C-STORE sub-associations are both TLS, each side
    checking the other's certificate."""
    study = make_study(tmp_path / "study", n_series=1, n_instances=3)
    out = tmp_path / "received"
    out.mkdir()
    scp_port = free_port()
    with orthanc(tmp_path, study.files, extra_config=_orthanc_tls(pki)) as source:
        source.rest(
            "PUT",
            "/modalities/MOVESCU",
            {"AET": "MOVESCU", "Host": HOST, "Port": scp_port, "UseDicomTls": True},
        )
        done = aiomove(
            *("move", *pki.client.args(), *trust(pki), "+P", str(scp_port), "-S"),
            *("-od", str(out), "--study-uid", study.study_uid, "--linger", "1"),
            *(HOST, str(source.port)),
        )
        plain = aiomove(
            *("move", "+P", str(free_port()), "-S", "--study-uid", study.study_uid),
            *(HOST, str(source.port)),
        )
    assert done.returncode == 0, done.stderr
    received = {pydicom.dcmread(p).SOPInstanceUID for p in out.rglob("*") if p.is_file()}
    assert received == set(study.instance_uids)
    assert plain.returncode == 61  # Orthanc speaks TLS only on its DICOM port now


# --- exit codes and listings --------------------------------------------------------------------


def test_move_exits_70_when_the_tls_layer_cannot_be_created(pki: Pki, tmp_path: Path) -> None:
    query = ["-k", "PatientID=1", HOST, "104"]
    missing = aiomove("move", "+tls", "/no/key.pem", str(pki.client.cert), *query)
    profile = aiomove("move", *pki.client.args(), "+pm", *query)
    cipher = aiomove("move", *pki.client.args(), "+cs", "TLS_NO_SUCH_SUITE", *query)
    scp = aiomove("store-scp", "+tls", str(pki.client.key), "/no/cert.pem", "-od", ".", "11112")
    locked = encrypted(pki.client, tmp_path, b"secret")
    wrong = aiomove("move", *locked.args(), "+pw", "guess", "+P", "11112", *query)
    assert wrong.returncode == 70
    assert "wrong password" in wrong.stderr
    assert (missing.returncode, profile.returncode, cipher.returncode) == (70, 70, 70)
    assert "cannot read private key file /no/key.pem" in missing.stderr
    assert "Python's ssl module cannot enable TLS 1.3 suites" in profile.stderr
    assert scp.returncode == 70
    assert "cannot read certificate file /no/cert.pem" in scp.stderr


def test_echo_and_find_exit_1_when_the_tls_layer_cannot_be_created(pki: Pki) -> None:
    """echoscu and findscu 3.6.7 have no TLS exit code and exit 1 (echoscu's 70 means
    "association aborted")."""
    echo = aiomove("echo", "+tls", "/no/key.pem", str(pki.client.cert), HOST, "104")
    find = aiomove("find", "+tls", "/no/key.pem", str(pki.client.cert), "-k", "0010,0020=1")
    assert echo.returncode == 1
    assert "cannot read private key file" in echo.stderr
    assert find.returncode == 1


def test_tls_options_without_enable_tls_are_syntax_errors() -> None:
    done = aiomove("move", "-ic", "-k", "PatientID=1", HOST, "104")
    assert done.returncode == 1
    assert "--ignore-peer-cert only allowed with --enable-tls" in done.stderr
    echo = aiomove("echo", "+cf", "ca.pem", HOST, "104")
    assert echo.returncode == 1
    assert "--add-cert-file only allowed with --enable-tls or --anonymous-tls" in echo.stderr


@pytest.mark.parametrize("command", ["move", "store-scp", "find", "retrieve"])
def test_list_profiles_and_ciphers_exit_0(command: str) -> None:
    profiles = aiomove(command, "+ph")
    ciphers = aiomove(command, "--list-ciphers")
    assert profiles.returncode == 0, profiles.stderr
    assert "--profile-8996       BCP 195 RFC 8996 TLS Profile (default)" in profiles.stdout
    assert ciphers.returncode == 0, ciphers.stderr
    assert "    TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n" in ciphers.stdout
