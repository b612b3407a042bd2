"""Shared pieces of the security tests: a running server, raw C-STOREs, log capture.

Raw C-STORE command sets are written field by field from PS3.7 Table 9.3-1 with the hostile
helpers' encoders (tests/net/hostile_util.py), so that hostile values (NULs, "../", lying
lengths) reach the server exactly as written.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from pydicom.dataset import Dataset

from aiomove.association import Peer, Timeouts, connect
from aiomove.proto import uids
from aiomove.server import AcceptorConfig, serve
from tests.net.hostile_util import RawPeer, command_set, element, p_data, parse_command, pdv

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
HANG = 30.0  # hang detector only: nothing in these tests should come near it


async def assert_serving(port: int, called: str = "STORESCP", calling: str = "GOOD") -> None:
    """A real association and C-ECHO against the server under test."""
    with anyio.fail_after(HANG):
        peer = Peer("127.0.0.1", port, called)
        async with connect(peer, ae_title=calling, timeouts=Timeouts(acse=HANG)) as assoc:
            assert (await assoc.echo(timeout=HANG)).is_success


@asynccontextmanager
async def running(config: AcceptorConfig, check: bool = True) -> AsyncIterator[int]:
    """serve() on loopback in a task group; on a clean exit, check it still answers echoes."""
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, config, "127.0.0.1")
        yield port
        if check:
            await assert_serving(port, config.ae_title)
        tg.cancel_scope.cancel()


def _ui(value: str | bytes) -> bytes:
    raw = value.encode("latin-1") if isinstance(value, str) else value
    return raw + b"\x00" if len(raw) % 2 else raw


def store_rq_command(sop_instance_uid: str | bytes, message_id: int = 1) -> bytes:
    """C-STORE-RQ (PS3.7 Table 9.3-1), implicit VR LE; the instance UID is sent verbatim."""
    return command_set(
        element(0, 0x0002, _ui(CT_IMAGE)),
        element(0, 0x0100, struct.pack("<H", 0x0001)),
        element(0, 0x0110, struct.pack("<H", message_id)),
        element(0, 0x0700, struct.pack("<H", 0)),
        element(0, 0x0800, struct.pack("<H", 0x0000)),  # a data set follows
        element(0, 0x1000, _ui(sop_instance_uid)),
    )


def find_rq_command(message_id: int = 1) -> bytes:
    """C-FIND-RQ (PS3.7 Table 9.3-3) with a data set, on the CT context: a request a Storage
    SCP has no handler for (it drains the identifier, then answers 0x0211)."""
    return command_set(
        element(0, 0x0002, _ui(CT_IMAGE)),
        element(0, 0x0100, struct.pack("<H", 0x0020)),
        element(0, 0x0110, struct.pack("<H", message_id)),
        element(0, 0x0700, struct.pack("<H", 0)),
        element(0, 0x0800, struct.pack("<H", 0x0000)),  # a data set follows
    )


async def raw_storage_association(port: int, calling: str = "HOSTILE") -> RawPeer:
    """A raw association proposing CT Image Storage in implicit VR LE as context 1."""
    peer = await RawPeer.connect(port)
    await peer.associate(
        called="STORESCP",
        calling=calling,
        abstract_syntax=CT_IMAGE,
        transfer_syntaxes=(uids.IMPLICIT_VR_LE,),
    )
    return peer


def data_pdus(data: bytes, piece: int = 8000, *, last: bool = True) -> list[bytes]:
    """`data` as P-DATA-TF PDUs of one data PDV each (context 1), the final one marked
    last (unless `last` is False: more data follows)."""
    pieces = [data[i : i + piece] for i in range(0, len(data), piece)] or [b""]
    return [
        p_data(pdv(1, chunk, command=False, last=last and i == len(pieces) - 1))
        for i, chunk in enumerate(pieces)
    ]


async def read_status(peer: RawPeer) -> int:
    """The Status (0000,0900) of the next response, a single-PDV P-DATA-TF."""
    with anyio.fail_after(HANG):
        answer = await peer.read_pdu()
    assert answer is not None, "closed instead of answering"
    assert answer[0] == 0x04, f"expected P-DATA, got {answer[:16].hex(' ')}"
    # one PDV: 4-byte length, context ID, control header, then the command set
    fields = parse_command(answer[6 + 6 :])
    (status,) = struct.unpack("<H", fields[0x0900])
    return int(status)


async def raw_store(peer: RawPeer, sop_instance_uid: str | bytes, data: bytes) -> int:
    """One C-STORE on a raw association; the status of the C-STORE-RSP."""
    await peer.send(p_data(pdv(1, store_rq_command(sop_instance_uid), command=True)))
    for pdu in data_pdus(data):
        await peer.send(pdu)
    return await read_status(peer)


def small_dataset(sop_instance_uid: str, pixel_bytes: int = 512) -> bytes:
    """A small CT data set in implicit VR little endian."""
    from tests.store_util import encode, make_dataset

    ds: Dataset = make_dataset(sop_instance_uid, pixel_bytes=pixel_bytes)
    return encode(ds, uids.IMPLICIT_VR_LE)


def listing(directory: Path) -> list[str]:
    """Every entry below `directory` (temporary files start with a dot: they show here)."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def events(logs: Sequence[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    return [entry for entry in logs if entry.get("event") == name]
