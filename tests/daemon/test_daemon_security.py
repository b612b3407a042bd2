"""The daemon's Storage SCP applies `[security]`, `[security.tls]` and `only_moved`.

A real daemon process listens with DICOM TLS (PS3.15 Annex B, client certificates required)
and accepts only the calling AE title ALLOWED. Over TLS, ALLOWED is accepted but its
C-STORE, part of no C-MOVE of the daemon, is refused with 0x0124 (only_moved, the default);
STRANGER is rejected (A-ASSOCIATE-RJ); a plain TCP association does not get through.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import anyio
import pytest
import trustme

from aiomove.association import Peer, Timeouts, connect
from aiomove.errors import AiomoveError, AssociationRejected
from aiomove.proto import uids
from aiomove.proto.pdu import RejectResult
from aiomove.storage import NOT_AUTHORIZED
from aiomove.tls import TlsSettings, client_context
from tests.daemon.daemon_util import HOST, daemon_process, ports, write_config
from tests.store_util import CT_IMAGE, c_store, encode, make_dataset

pytestmark = pytest.mark.interop

AE = "AIOMOVE"
UID = "1.2.826.0.1.3680043.8.498.1"
TIMEOUTS = Timeouts(connect=30, acse=30, dimse=30)


def identity(ca: trustme.CA, directory: Path, name: str) -> tuple[Path, Path]:
    cert = ca.issue_cert(f"{name.lower()}.test")
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path


async def store_as(port: int, calling: str, ctx: ssl.SSLContext | None) -> int:
    """One C-STORE from `calling`; its status."""
    peer = Peer(HOST, port, AE, ssl_context=ctx)
    contexts = [(CT_IMAGE, (uids.EXPLICIT_VR_LE,))]
    async with connect(
        peer, ae_title=calling, contexts=contexts, timeouts=TIMEOUTS, ssl_context=ctx
    ) as assoc:
        data = encode(make_dataset(UID), uids.EXPLICIT_VR_LE)
        rsp = await c_store(assoc, data, UID)
        return rsp.status


def test_storage_scp_security_tls_and_only_moved(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    scp_cert, scp_key = identity(ca, tmp_path, "scp")
    scu_cert, scu_key = identity(ca, tmp_path, "scu")
    storage_port, http_port = ports(2)
    config = write_config(
        tmp_path / "aiomove.toml",
        {
            "store": f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}",
            "output": "out",
            "ae_title": AE,
            "host": HOST,
            "port": storage_port,
            "http_port": http_port,
            "log_level": "debug",
        },
        {},
    )
    with config.open("a") as out:
        out.write(
            '\n[security]\naccept_aet = ["ALLOWED"]\n[security.tls]\n'
            f'cert_file = "{scp_cert.name}"\nkey_file = "{scp_key.name}"\nca_file = "ca.pem"\n'
        )
    client = client_context(
        TlsSettings(
            cert_file=str(scu_cert), key_file=str(scu_key), ca_files=(str(tmp_path / "ca.pem"),)
        )
    )
    with daemon_process(config, http_port, tmp_path / "daemon.log") as daemon:
        try:
            assert anyio.run(store_as, storage_port, "ALLOWED", client) == NOT_AUTHORIZED
            with pytest.raises(AssociationRejected) as rejected:
                anyio.run(store_as, storage_port, "STRANGER", client)
            assert rejected.value.result == RejectResult.PERMANENT
            with pytest.raises(AiomoveError):  # no TLS: no association
                anyio.run(store_as, storage_port, "ALLOWED", None)
        except BaseException:
            print(daemon.logs()[-20000:])
            raise
    assert not list((tmp_path / "out").rglob("*.dcm"))
