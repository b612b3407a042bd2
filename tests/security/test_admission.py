"""Who may associate, and how many at once: calling AE allow-list, association and
connection limits, the idle timeout. A-ASSOCIATE-RJ fields are checked on the wire bytes
(PS3.8 Table 9-21) and through real peers (aiomove's connect(), DCMTK echoscu)."""

from __future__ import annotations

import struct
from contextlib import AsyncExitStack

import anyio
import pytest
import structlog.testing

from aiomove.association import Peer, Timeouts, connect
from aiomove.errors import AssociationRejected
from aiomove.server import AcceptorConfig
from tests.net.hostile_util import RawPeer, associate_rq
from tests.peers import dcmtk
from tests.security.util import HANG, assert_serving, events, running

pytestmark = pytest.mark.anyio


def rj_fields(pdu: bytes | None) -> tuple[int, int, int]:
    """(result, source, reason) of an A-ASSOCIATE-RJ PDU, asserting its shape."""
    assert pdu is not None, "closed without an answer"
    assert pdu[:6] == bytes.fromhex("03 00 00000004"), f"not an A-ASSOCIATE-RJ: {pdu.hex(' ')}"
    return pdu[7], pdu[8], pdu[9]


async def raw_request(port: int, calling: str = "HOSTILE") -> tuple[int, int, int]:
    peer = await RawPeer.connect(port)
    try:
        with anyio.fail_after(HANG):
            await peer.send(associate_rq(called="STORESCP", calling=calling))
            return rj_fields(await peer.read_pdu())
    finally:
        await peer.aclose()


async def echoscu(port: int, *args: str) -> tuple[int, str]:
    done = await anyio.run_process(
        [dcmtk("echoscu"), "-aec", "STORESCP", *args, "127.0.0.1", str(port)], check=False
    )
    return done.returncode, done.stderr.decode(errors="replace") + done.stdout.decode()


# --- calling AE titles -----------------------------------------------------------------------


async def test_calling_ae_not_on_the_list_is_rejected() -> None:
    config = AcceptorConfig(ae_title="STORESCP", calling_ae_titles=frozenset({"GOOD", "PACS"}))
    with structlog.testing.capture_logs() as logs:
        async with running(config) as port:
            # permanent (1), service-user (1), calling-AE-title-not-recognized (3)
            assert await raw_request(port, calling="INTRUDER") == (1, 1, 3)
            with pytest.raises(AssociationRejected) as info:
                async with connect(Peer("127.0.0.1", port, "STORESCP"), ae_title="OTHER"):
                    pass  # pragma: no cover
            assert (info.value.result, info.value.source, info.value.reason) == (1, 1, 3)
            code, output = await echoscu(port, "-aet", "INTRUDER")
            assert code != 0
            assert "Calling AE Title Not Recognized" in output
            code, output = await echoscu(port, "-aet", "PACS")
            assert code == 0, output
    rejected = events(logs, "association.rejected")
    assert {e["calling_ae"] for e in rejected} == {"INTRUDER", "OTHER"}
    assert {e["reason"] for e in rejected} == {3}


# --- association and connection limits -------------------------------------------------------


async def test_associations_beyond_the_limit_are_rejected_transient() -> None:
    config = AcceptorConfig(ae_title="STORESCP", max_associations=2)
    with structlog.testing.capture_logs() as logs:
        async with running(config) as port, AsyncExitStack() as stack:
            held = [
                await stack.enter_async_context(
                    connect(Peer("127.0.0.1", port, "STORESCP"), ae_title=f"HOLD{i}")
                )
                for i in range(2)
            ]
            # rejected-transient (2), service-provider presentation (3), local-limit-exceeded (2)
            assert await raw_request(port) == (2, 3, 2)
            code, output = await echoscu(port)
            assert code != 0
            assert "Local Limit Exceeded" in output
            # the held ones still work, and a slot freed is a slot to take
            assert (await held[0].echo(timeout=HANG)).is_success
            await held[1].release()
            await assert_serving(port)
    exceeded = events(logs, "association.limit_exceeded")
    assert len(exceeded) == 2
    assert exceeded[0]["limit"] == 2


async def test_connections_beyond_the_hard_limit_are_closed_unread() -> None:
    """Connections that have not associated yet count too: a flood of silent sockets cannot
    pile up tasks; one beyond `max_connections` is closed before anything is read."""
    config = AcceptorConfig(
        ae_title="STORESCP",
        max_associations=1,
        max_connections=2,
        timeouts=Timeouts(acse=HANG, dimse=HANG),
    )
    with structlog.testing.capture_logs() as logs:
        async with running(config, check=False) as port:
            silent = [await RawPeer.connect(port) for _ in range(2)]
            try:
                flood = await RawPeer.connect(port)
                with anyio.fail_after(HANG):
                    await flood.send(associate_rq(called="STORESCP"))
                    assert await flood.read_to_eof() == b""
                await flood.aclose()
            finally:
                for peer in silent:
                    await peer.aclose()
            # the silent ones are gone: the server serves again
            with anyio.fail_after(HANG):
                while True:
                    try:
                        await assert_serving(port)
                        break
                    except (AssociationRejected, OSError, anyio.BrokenResourceError):
                        await anyio.sleep(0.05)
    assert events(logs, "connection.refused_overload")


# --- idle peers --------------------------------------------------------------------------------


def test_idle_timeout_bounds_the_dimse_timeout() -> None:
    assert AcceptorConfig(idle_timeout=5.0).session_timeouts.dimse == 5.0
    assert (
        AcceptorConfig(idle_timeout=5.0, timeouts=Timeouts(dimse=None)).session_timeouts.dimse
        == 5.0
    )
    assert (
        AcceptorConfig(idle_timeout=5.0, timeouts=Timeouts(dimse=1.0)).session_timeouts.dimse == 1.0
    )
    assert (
        AcceptorConfig(idle_timeout=None, timeouts=Timeouts(dimse=None)).session_timeouts.dimse
        is None
    )
    assert AcceptorConfig().idle_timeout == 300.0


async def test_idle_association_is_aborted_after_the_idle_timeout_even_without_dimse_timeout() -> (
    None
):
    """DCMTK's default -td is unlimited; the idle timeout still ends a silent association."""
    config = AcceptorConfig(
        ae_title="STORESCP", idle_timeout=0.5, timeouts=Timeouts(acse=HANG, dimse=None)
    )
    with structlog.testing.capture_logs() as logs:
        async with running(config) as port:
            peer = await RawPeer.connect(port)
            try:
                with anyio.fail_after(HANG):
                    await peer.associate(called="STORESCP")
                    data = await peer.read_to_eof()
            finally:
                await peer.aclose()
    assert data == bytes.fromhex("07 00 00000004 0000 0000")  # A-ABORT, service-user
    assert events(logs, "association.idle_timeout")


async def test_max_pdu_length_bounds_what_is_accepted() -> None:
    """The Maximum Length we advertise (PS3.8 D.1) is what we enforce: one byte more aborts."""
    from tests.net.hostile_util import echo_rq_command, p_data, pdv

    config = AcceptorConfig(ae_title="STORESCP", max_pdu_length=4096)
    async with running(config) as port:
        peer = await RawPeer.connect(port)
        try:
            with anyio.fail_after(HANG):
                await peer.associate(called="STORESCP")
                body = pdv(1, echo_rq_command(), command=True)
                await peer.send(p_data(body, length=4097) + bytes(64))
                data = await peer.read_to_eof()
        finally:
            await peer.aclose()
    assert data[:6] == bytes.fromhex("07 00 00000004"), data.hex(" ")
    source, reason = struct.unpack("BB", data[8:10])
    assert source == 2  # service-provider
    assert reason in (0, 6)  # not specified / invalid-PDU-parameter value
