"""Slow and stalled peers (slowloris): none holds its connection past its deadlines.

Deadlines are per PDU, not per byte (a byte every now and then does not extend them), and a
data set must keep up a minimum rate once its allowance is spent. Each test checks that the
server ended the connection *before* the trickle could finish, which it would otherwise do.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
import structlog.testing

from aiomove.association import Timeouts
from aiomove.server import AcceptorConfig, ActiveAssociations
from aiomove.storage import FileSink, storage_config
from tests.net.hostile_util import RawPeer, associate_rq, echo_rq_command, p_data, pdv
from tests.security.util import (
    HANG,
    data_pdus,
    events,
    find_rq_command,
    listing,
    raw_storage_association,
    read_status,
    running,
    small_dataset,
    store_rq_command,
)

pytestmark = pytest.mark.anyio

TICK = 0.05  # seconds between trickled pieces


async def trickle(peer: RawPeer, data: bytes, piece: int = 1) -> int:
    """Send `data` `piece` bytes per TICK until done or the server hangs up; bytes sent."""
    sent = 0
    try:
        while sent < len(data):
            await peer.send(data[sent : sent + piece])
            sent += piece
            await anyio.sleep(TICK)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    return min(sent, len(data))


async def test_associate_rq_trickled_byte_by_byte_is_cut_at_artim() -> None:
    """ARTIM (the ACSE timeout) bounds the whole A-ASSOCIATE-RQ, however it trickles in."""
    config = AcceptorConfig(ae_title="STORESCP", timeouts=Timeouts(acse=0.5, dimse=HANG))
    rq = associate_rq(called="STORESCP")  # ~150 bytes: 7 s at one byte per TICK
    async with running(config) as port:
        peer = await RawPeer.connect(port)
        try:
            with anyio.fail_after(HANG):
                sent = await trickle(peer, rq)
                rest = await peer.read_to_eof()
        finally:
            await peer.aclose()
    assert sent < len(rq)
    assert not rest.startswith(b"\x02")  # never an A-ASSOCIATE-AC


async def test_pdu_trickled_byte_by_byte_is_cut_at_the_idle_timeout() -> None:
    config = AcceptorConfig(
        ae_title="STORESCP", idle_timeout=0.5, timeouts=Timeouts(acse=HANG, dimse=None)
    )
    echo = p_data(pdv(1, echo_rq_command(), command=True))
    with structlog.testing.capture_logs() as logs:
        async with running(config) as port:
            peer = await RawPeer.connect(port)
            try:
                with anyio.fail_after(HANG):
                    await peer.associate(called="STORESCP")
                    sent = await trickle(peer, echo)
                    rest = await peer.read_to_eof()
            finally:
                await peer.aclose()
    assert sent < len(echo)
    assert not rest.startswith(b"\x04")  # no C-ECHO-RSP
    assert events(logs, "association.idle_timeout")


async def test_data_set_trickled_in_valid_pdvs_is_cut_by_the_minimum_rate(tmp_path: Path) -> None:
    """Each tiny PDV arrives well within the idle timeout, but 200 bytes/s is below 1 KiB/s:
    once the allowance (the idle timeout) is spent the association is aborted, no file left."""
    registry = ActiveAssociations()
    config = storage_config(
        "STORESCP",
        FileSink(tmp_path),
        idle_timeout=1.0,
        timeouts=Timeouts(acse=HANG, dimse=None),
        registry=registry,
        min_rate=1024,
    )
    data = small_dataset("1.2.3.200", pixel_bytes=4096)
    pdus = data_pdus(data, 10)  # ~430 PDUs: 20 s at one per TICK
    with structlog.testing.capture_logs() as logs:
        async with running(config) as port:
            peer = await raw_storage_association(port)
            try:
                with anyio.fail_after(HANG):
                    await peer.send(p_data(pdv(1, store_rq_command("1.2.3.200"), command=True)))
                    sent = await trickle(peer, b"".join(pdus), piece=len(pdus[0]))
                    await peer.read_to_eof()
            finally:
                await peer.aclose()
            with anyio.fail_after(HANG):
                await registry.wait_for(lambda: not registry)
            assert listing(tmp_path) == []
    assert sent < len(b"".join(pdus))
    slow = events(logs, "c_store.too_slow")
    assert [e["uid"] for e in slow] == ["1.2.3.200"]
    assert not events(logs, "association.idle_timeout")  # logged once, as what it was
    assert not events(logs, "dimse.data_set_too_slow")


async def test_data_set_of_an_unsupported_request_is_paced_too(tmp_path: Path) -> None:
    """A C-FIND-RQ on a Storage SCP is answered 0x0211 after its identifier is drained; that
    drain keeps the same minimum rate: a trickled identifier cannot hold the slot forever."""
    registry = ActiveAssociations()
    config = storage_config(
        "STORESCP",
        FileSink(tmp_path),
        idle_timeout=1.0,
        timeouts=Timeouts(acse=HANG, dimse=None),
        registry=registry,
        min_rate=1024,
    )
    pdus = data_pdus(bytes(4096), 10)  # ~410 PDUs: 20 s at one per TICK
    with structlog.testing.capture_logs() as logs:
        async with running(config) as port:
            peer = await raw_storage_association(port)
            try:
                with anyio.fail_after(HANG):
                    await peer.send(p_data(pdv(1, find_rq_command(), command=True)))
                    sent = await trickle(peer, b"".join(pdus), piece=len(pdus[0]))
                    rest = await peer.read_to_eof()
            finally:
                await peer.aclose()
            with anyio.fail_after(HANG):
                await registry.wait_for(lambda: not registry)
    assert sent < len(b"".join(pdus))
    assert not rest.startswith(b"\x04")  # no C-FIND-RSP: aborted
    assert [e["limit"] for e in events(logs, "dimse.data_set_too_slow")] == [1024]
    assert events(logs, "dimse.unsupported_request")
    assert not events(logs, "association.idle_timeout")


async def test_a_fast_sender_earns_credit_for_a_slow_stretch(tmp_path: Path) -> None:
    """1 MiB at once, then a trickle longer than the allowance: the credit (1 s per KiB
    received) covers it, so the instance is stored."""
    config = storage_config(
        "STORESCP",
        FileSink(tmp_path),
        idle_timeout=1.0,
        timeouts=Timeouts(acse=HANG, dimse=None),
        min_rate=1024,
    )
    data = small_dataset("1.2.3.210", pixel_bytes=1 << 20)
    head, tail = data[: len(data) - 400], data[len(data) - 400 :]
    async with running(config) as port:
        peer = await raw_storage_association(port)
        try:
            with anyio.fail_after(HANG):
                await peer.send(p_data(pdv(1, store_rq_command("1.2.3.210"), command=True)))
                for pdu in data_pdus(head, 16000, last=False):
                    await peer.send(pdu)
                slow = data_pdus(tail, 10)  # 40 PDUs, 2 s: twice the allowance
                assert await trickle(peer, b"".join(slow), piece=len(slow[0])) == len(
                    b"".join(slow)
                )
                assert await read_status(peer) == 0
        finally:
            await peer.aclose()
    assert listing(tmp_path) == ["CT.1.2.3.210"]
