"""Hostile peers on a real socket: each bad input ends its own association, never the server.

The issue's requirement: random bytes, truncated PDUs, lengths that lie, a 4 GB length field,
a peer that connects and says nothing, a peer that vanishes mid-PDU - each ends that
association with A-ABORT or a close within the configured timeout, and the server keeps
answering echoes. The client side gets the mirror image: a fake acceptor that stalls, answers
garbage or hangs up, and `connect()` must raise the right error and close its socket.

How the tests tell "the server reacted to the input" from "a timer fired":
* Before an association exists (Sta2), ARTIM expiry closes the transport without sending
  anything (PS3.8 Table 9-10, Sta2 + Evt18 -> AA-2). So an A-ABORT there is the server's answer
  to the input, and the server (FAST config) must also close within its ARTIM bound.
* Where the input alone must end the connection (during data transfer, or a peer vanishing)
  the server runs with 30 s timers (SLOW) and the test allows a few seconds, so an A-ABORT or
  close that arrives is caused by the input, not a timer. Tests about the timers themselves
  (a silent or idle peer) and the concurrent mix use 0.5 s timers (FAST).

PS3.8 AA-1 (an invalid or unexpected PDU in Sta2) sends A-ABORT with source 0, service-user,
whose reason "shall not be significant"; a provider-source (2) abort there is also accepted,
but then its reason must be the right one. During data transfer AA-8 requires source 2.

Every test ends by checking that the same server still completes a real C-ECHO, and no test
may leave an "association.crashed" log event behind (the server would swallow a crash).
Timeouts appear only as hang detectors; synchronisation uses stream EOFs and events.
"""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import cast

import anyio
import anyio.abc
import pytest
import structlog.testing
from anyio.abc import SocketAttribute

from aiomove.association import Peer, Timeouts, connect
from aiomove.errors import (
    AcseTimeout,
    AssociationAborted,
    AssociationRequestFailed,
    DimseTimeout,
)
from aiomove.server import AcceptorConfig, handle_connection, serve
from tests.net.hostile_util import (
    RELEASE_RP,
    RELEASE_RQ,
    RawPeer,
    abort_fields,
    associate_ac,
    associate_rq,
    associate_rq_body,
    command_set,
    echo_rq_command,
    element,
    item,
    p_data,
    parse_command,
    pdu,
    pdv,
)

pytestmark = pytest.mark.anyio

MAX_PDU = 16384
TIMER = 0.5  # the FAST server's ACSE (ARTIM) and DIMSE timeouts, seconds
FAST = AcceptorConfig(max_pdu_length=MAX_PDU, timeouts=Timeouts(acse=TIMER, dimse=TIMER))
SLOW = AcceptorConfig(max_pdu_length=MAX_PDU, timeouts=Timeouts(acse=30.0, dimse=30.0))
HANG = 5.0  # hang detector for what must happen at once (far below SLOW's timers)
WITHIN_TIMER = 3 * TIMER + 1.0  # hang detector for what a FAST timer must end

# PS3.8 Table 9-26 A-ABORT reasons (service-provider source); 3 is reserved.
DEFINED_REASONS = frozenset({0, 1, 2, 4, 5, 6})
UNRECOGNIZED = frozenset({1})  # unrecognized-PDU: an unknown PDU type
UNEXPECTED = frozenset({2})  # unexpected-PDU: a known PDU in the wrong state
MALFORMED = frozenset({0, 4, 5, 6})  # not specified, or a bad / unexpected / invalid parameter
TOO_LONG = frozenset({0, 6})  # a length beyond our bounds: invalid-PDU-parameter value


# --- fixtures and checks ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_crash() -> Iterator[None]:
    """The server contains every failure in its connection task; a crash would only be logged."""
    with structlog.testing.capture_logs() as logs:
        yield
    crashes = [entry for entry in logs if entry.get("event") == "association.crashed"]
    assert not crashes, crashes


async def assert_serving(port: int) -> None:
    """A real association and C-ECHO against the server under test."""
    with anyio.fail_after(HANG):
        peer = Peer("127.0.0.1", port, "AIOMOVE")
        async with connect(peer, ae_title="GOOD", timeouts=Timeouts(acse=HANG)) as assoc:
            assert (await assoc.echo(timeout=HANG)).is_success


@asynccontextmanager
async def running(config: AcceptorConfig) -> AsyncIterator[int]:
    """serve() in a task group; on a clean exit, check it still answers echoes."""
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, config)
        yield port
        await assert_serving(port)
        tg.cancel_scope.cancel()


def check_abort(data: bytes, *, user_ok: bool, reasons: frozenset[int]) -> None:
    """`data` is exactly one A-ABORT PDU (then the close); see the module docstring.

    `user_ok`: a service-user abort (source 0, reason 00H per PS3.8 Table 9-26) is also right.
    """
    source, reason = abort_fields(data)
    if user_ok and source == 0:
        assert reason == 0, f"service-user A-ABORT with reason {reason}, not 00H"
        return
    assert source == 2, f"A-ABORT source {source}, expected service-provider (2)"
    assert reason in reasons, f"A-ABORT reason {reason}, expected one of {sorted(reasons)}"


def check_abort_or_nothing(data: bytes) -> None:
    """A close with nothing sent, or one A-ABORT of either source before it."""
    if data:
        check_abort(data, user_ok=True, reasons=DEFINED_REASONS)


async def exchange(
    port: int,
    payload: bytes,
    *,
    within: float,
    associate: bool = False,
    half_close: bool = False,
) -> bytes:
    """Connect, optionally associate, send `payload`, and return all the server sent until EOF.

    The server must close its side within `within` seconds. `half_close` shuts our sending
    side down after the payload (a peer vanishing), while still reading what comes back.
    """
    peer = await RawPeer.connect(port)
    try:
        with anyio.fail_after(within):
            if associate:
                await peer.associate()
            if payload:
                await peer.send(payload)
            if half_close:
                await peer.stream.send_eof()
            return await peer.read_to_eof()
    finally:
        await peer.aclose()


# --- the hand-built bytes are right ----------------------------------------------------------


async def test_raw_association_echo_and_release_work() -> None:
    """The builders in hostile_util make a valid association, C-ECHO and release."""
    async with running(SLOW) as port:
        peer = await RawPeer.connect(port)
        with anyio.fail_after(HANG):
            await peer.associate()
            await peer.send(p_data(pdv(1, echo_rq_command(7), command=True)))
            rsp = await peer.read_pdu()
            assert rsp is not None
            assert rsp[0] == 0x04
            (pdv_length,) = struct.unpack(">L", rsp[6:10])
            assert (rsp[10], rsp[11]) == (1, 0x03)  # context 1, command, last
            fields = parse_command(rsp[12 : 10 + pdv_length])
            assert fields[0x0100] == struct.pack("<H", 0x8030)  # C-ECHO-RSP
            assert fields[0x0120] == struct.pack("<H", 7)
            assert fields[0x0900] == struct.pack("<H", 0)
            await peer.send(RELEASE_RQ)
            assert await peer.read_pdu() == RELEASE_RP
        await peer.aclose()  # PS3.8 AR-3: the requestor closes the transport


# --- before an association exists (Sta2) -------------------------------------------------------


def random_payloads(seed: int, count: int) -> list[bytes]:
    """Random byte strings; every other one starts with a valid PDU type to get further in."""
    rng = random.Random(seed)
    payloads = []
    for i in range(count):
        data = bytearray(rng.randbytes(rng.randint(1, 300)))
        if i % 2 == 0:
            data[0] = rng.randint(1, 7)
        payloads.append(bytes(data))
    return payloads


@pytest.mark.parametrize("seed", [1, 2])
async def test_random_bytes_end_the_connection(seed: int) -> None:
    async with running(FAST) as port:

        async def one(payload: bytes) -> None:
            data = await exchange(port, payload, within=WITHIN_TIMER)
            check_abort_or_nothing(data)

        async with anyio.create_task_group() as tg:
            for payload in random_payloads(seed, 8):
                tg.start_soon(one, payload)


@pytest.mark.parametrize("pdu_type", [0x00, 0x08, 0x09, 0xFF])
async def test_unknown_pdu_type_is_aborted(pdu_type: int) -> None:
    """PS3.8 Evt19 (unrecognised PDU): A-ABORT, reason 1 if the source is the provider."""
    async with running(FAST) as port:
        data = await exchange(port, pdu(pdu_type, bytes(4)), within=WITHIN_TIMER)
        check_abort(data, user_ok=True, reasons=UNRECOGNIZED)


@pytest.mark.parametrize("length", [0xFFFFFFFF, 0x80000000])
async def test_huge_length_in_associate_rq_is_aborted_at_once(length: int) -> None:
    """A 4 GB PDU length is refused from the header alone, not after waiting for the body.

    Were the server to wait for the body, ARTIM would end the connection without an A-ABORT.
    """
    body = associate_rq_body()
    async with running(FAST) as port:
        data = await exchange(port, pdu(0x01, body, length), within=WITHIN_TIMER)
        check_abort(data, user_ok=True, reasons=TOO_LONG)


def _overrunning_user_item() -> bytes:
    body = associate_rq_body()
    user_info = item(0x50, item(0x51, struct.pack(">L", MAX_PDU), length=0x0100))
    return pdu(0x01, body[: body.index(b"\x50\x00")] + user_info)


LYING_ASSOCIATE_RQS = {
    "context item overruns the PDU": associate_rq(context_item_length=0x0400),
    "user sub-item overruns its item": _overrunning_user_item(),
    "shorter than the fixed fields": pdu(0x01, bytes(10)),
    "context item length 0": associate_rq(context_item_length=0),
    "protocol fields then junk items": pdu(0x01, associate_rq_body()[:68] + b"\x10\x00\xff\xff"),
}


@pytest.mark.parametrize("raw", LYING_ASSOCIATE_RQS.values(), ids=LYING_ASSOCIATE_RQS.keys())
async def test_associate_rq_with_lying_inner_lengths_is_aborted(raw: bytes) -> None:
    async with running(FAST) as port:
        data = await exchange(port, raw, within=WITHIN_TIMER)
        check_abort(data, user_ok=True, reasons=MALFORMED)


async def test_pdu_length_shorter_than_sent_then_garbage_is_aborted() -> None:
    """The PDU length cuts the RQ inside an item; what follows it is garbage."""
    body = associate_rq_body()
    raw = pdu(0x01, body, len(body) - 30) + random.Random(3).randbytes(64)
    async with running(FAST) as port:
        data = await exchange(port, raw, within=WITHIN_TIMER)
        check_abort(data, user_ok=True, reasons=MALFORMED)


TRUNCATED = {
    "inside the header": associate_rq()[:3],
    "inside the body": associate_rq()[:40],
    "all but one byte": associate_rq()[:-1],
    "length larger than sent": pdu(0x01, associate_rq_body(), len(associate_rq_body()) + 100),
}


@pytest.mark.parametrize("raw", TRUNCATED.values(), ids=TRUNCATED.keys())
async def test_peer_vanishing_mid_pdu_is_closed(raw: bytes) -> None:
    """The peer stops sending mid-PDU: the server closes its side too.

    The server runs with 30 s timers, so the close must come from the peer's EOF.
    """
    async with running(SLOW) as port:
        data = await exchange(port, raw, within=HANG, half_close=True)
        check_abort_or_nothing(data)
        # ... and once more with the peer really gone (nothing to observe but the echo after).
        peer = await RawPeer.connect(port)
        await peer.send(raw)
        await peer.aclose()


async def test_silent_peer_is_closed_after_artim() -> None:
    """Connect and say nothing: ARTIM (the ACSE timeout) closes the connection."""
    async with running(FAST) as port:
        data = await exchange(port, b"", within=WITHIN_TIMER)
        check_abort_or_nothing(data)


# --- after a valid association (Sta6) ----------------------------------------------------------


@pytest.mark.parametrize("length", [MAX_PDU + 1, 8 * MAX_PDU, 0xFFFFFFFF])
async def test_pdata_longer_than_advertised_max_is_aborted(length: int) -> None:
    """PS3.8 D.1: the Maximum Length we advertised bounds every P-DATA-TF we receive.

    Only the start of the body is sent: the header alone must condemn the PDU.
    """
    start = p_data(pdv(1, echo_rq_command(), command=True), length=length)
    async with running(SLOW) as port:
        data = await exchange(port, start, within=HANG, associate=True)
        check_abort(data, user_ok=False, reasons=TOO_LONG)


_ECHO = echo_rq_command()
LYING_PDATA = {
    "PDV length overruns the PDU": p_data(struct.pack(">LBB", 200, 1, 3) + _ECHO[:10]),
    "PDV length below 2": p_data(struct.pack(">LBB", 1, 1, 3) + _ECHO),
    "PDU length cuts the PDV": p_data(pdv(1, _ECHO, command=True), length=20) + _ECHO[14:],
    "PDV on a context never proposed": p_data(pdv(99, _ECHO, command=True)),
}
UNEXPECTED_PDUS = {
    "A-ASSOCIATE-RQ again": associate_rq(),
    "A-RELEASE-RP out of turn": RELEASE_RP,
}


@pytest.mark.parametrize(
    ("raw", "reasons"),
    [
        *(pytest.param(raw, MALFORMED, id=name) for name, raw in LYING_PDATA.items()),
        *(pytest.param(raw, UNEXPECTED, id=name) for name, raw in UNEXPECTED_PDUS.items()),
    ],
)
async def test_invalid_pdu_during_data_transfer_is_aborted(
    raw: bytes, reasons: frozenset[int]
) -> None:
    """PS3.8 AA-8: A-ABORT with the service-provider source, then the transport closes."""
    async with running(SLOW) as port:
        data = await exchange(port, raw, within=HANG, associate=True)
        check_abort(data, user_ok=False, reasons=reasons)


MALFORMED_COMMANDS = {
    "garbage": b"\xde\xad\xbe\xef\x01",
    "element length overruns": command_set(element(0, 0x0100, b"\x30\x00", length=0xFFFF)),
    "no Command Field": command_set(element(0, 0x0002, b"1.2.840.10008.1.1\x00")),
    "not group 0000": element(0x0008, 0x0016, b"1.2.840.10008.1.1\x00"),
    "group length lies": element(0, 0, struct.pack("<L", 1000)) + _ECHO[12:],
}


@pytest.mark.parametrize("command", MALFORMED_COMMANDS.values(), ids=MALFORMED_COMMANDS.keys())
async def test_malformed_dimse_command_is_aborted(command: bytes) -> None:
    """A command set that does not decode ends the association (A-ABORT, either source)."""
    async with running(SLOW) as port:
        raw = p_data(pdv(1, command, command=True))
        data = await exchange(port, raw, within=HANG, associate=True)
        check_abort(data, user_ok=True, reasons=MALFORMED)


async def test_peer_vanishing_mid_pdata_is_closed() -> None:
    raw = p_data(pdv(1, _ECHO, command=True))[:30]
    async with running(SLOW) as port:
        data = await exchange(port, raw, within=HANG, associate=True, half_close=True)
        check_abort_or_nothing(data)


async def test_idle_association_is_ended_after_dimse_timeout() -> None:
    async with running(FAST) as port:
        data = await exchange(port, b"", within=WITHIN_TIMER, associate=True)
        check_abort_or_nothing(data)


class MemoryByteStream(anyio.abc.ByteStream):
    """A byte stream over two memory object streams, so a test decides when the peer reads."""

    def __init__(
        self,
        incoming: anyio.abc.ObjectReceiveStream[bytes],
        outgoing: anyio.abc.ObjectSendStream[bytes],
    ) -> None:
        self.incoming = incoming
        self.outgoing = outgoing

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self.incoming.receive()  # the test only feeds small chunks

    async def send(self, item: bytes) -> None:
        await self.outgoing.send(bytes(item))

    async def send_eof(self) -> None:
        await self.outgoing.aclose()

    async def aclose(self) -> None:
        await self.incoming.aclose()
        await self.outgoing.aclose()


async def test_peer_that_stops_reading_is_ended() -> None:
    """A peer that sends a request and never reads the answer must not pin its connection.

    Otherwise every such peer holds a task and a socket for as long as it likes (seen on a
    real socket: still ESTABLISHED with 2.5 MB queued long after the DIMSE timeout). The
    server's writes need a bound, as its reads have (DCMTK: dcmSocketSendTimeout).
    """
    to_server, server_in = anyio.create_memory_object_stream[bytes](16)
    server_out, from_server = anyio.create_memory_object_stream[bytes](0)  # no buffering
    with to_server, server_in, server_out, from_server:
        await to_server.send(associate_rq())
        await to_server.send(p_data(pdv(1, _ECHO, command=True)))
        # handle_connection only asks a SocketStream for the peer's address, and copes
        # without one.
        stream = cast(anyio.abc.SocketStream, MemoryByteStream(server_in, server_out))
        with anyio.fail_after(WITHIN_TIMER):
            async with anyio.create_task_group() as tg:
                tg.start_soon(handle_connection, stream, FAST)
                assert (await from_server.receive())[0] == 0x02  # A-ASSOCIATE-AC; then no reads
        # handle_connection returned: the stalled association was ended


# --- many at once ------------------------------------------------------------------------------


async def test_hostile_connections_concurrently_with_good_echoes() -> None:
    """Twenty hostile peers of every kind at once, with real C-ECHOs interleaved."""
    cases: list[tuple[bytes, bool, bool]] = [  # payload, associate first, half-close
        *((payload, False, False) for payload in random_payloads(7, 4)),
        (pdu(0x09, bytes(4)), False, False),
        (pdu(0x01, associate_rq_body(), 0xFFFFFFFF), False, False),
        (b"", False, False),  # silent
        (associate_rq()[:40], False, True),  # vanishes mid-PDU
        *((raw, False, False) for raw in LYING_ASSOCIATE_RQS.values()),
        (p_data(pdv(1, _ECHO, command=True), length=0xFFFFFFFF), True, False),
        (p_data(pdv(1, MALFORMED_COMMANDS["garbage"], command=True)), True, False),
        *((raw, True, False) for raw in list(LYING_PDATA.values())[:3]),
        (b"", True, False),  # idle after association
        (p_data(pdv(1, _ECHO, command=True))[:30], True, True),
    ]
    assert len(cases) == 20
    echoes = 0

    async def hostile(port: int, payload: bytes, associate: bool, half_close: bool) -> None:
        data = await exchange(
            port, payload, within=WITHIN_TIMER, associate=associate, half_close=half_close
        )
        check_abort_or_nothing(data)

    async def good(port: int) -> None:
        nonlocal echoes
        await assert_serving(port)
        echoes += 1

    async with running(FAST) as port, anyio.create_task_group() as tg:
        for i, case in enumerate(cases):
            tg.start_soon(hostile, port, *case)
            if i % 2:
                tg.start_soon(good, port)
    assert echoes == 10


# --- the client against a hostile acceptor -----------------------------------------------------


@dataclass
class Seen:
    """What the fake acceptor observed of the client."""

    request: bytes | None = None
    tail: bytes | None = None  # everything after the exchange, up to the client's close
    done: anyio.Event = field(default_factory=anyio.Event)


Behaviour = Callable[[RawPeer, Seen], Awaitable[None]]


@asynccontextmanager
async def fake_acceptor(behaviour: Behaviour) -> AsyncIterator[tuple[Peer, Seen]]:
    """A one-connection TCP server that reads the A-ASSOCIATE-RQ and then runs `behaviour`."""
    seen = Seen()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(SocketAttribute.local_port)

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            peer = RawPeer(stream)
            seen.request = await peer.read_pdu()
            assert seen.request is not None
            assert seen.request[0] == 0x01
            await behaviour(peer, seen)
            seen.done.set()

    async def run() -> None:
        async with listener:
            await listener.serve(handle)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        yield Peer("127.0.0.1", port, "FAKE"), seen
        with anyio.fail_after(HANG):
            await seen.done.wait()  # the acceptor saw the client close its socket
        tg.cancel_scope.cancel()


async def await_close(peer: RawPeer, seen: Seen) -> None:
    seen.tail = await peer.read_to_eof()


async def test_client_acse_timeout_when_acceptor_never_answers() -> None:
    async with fake_acceptor(await_close) as (peer, seen):
        with anyio.fail_after(HANG), pytest.raises(AcseTimeout):
            async with connect(peer, timeouts=Timeouts(acse=0.5)):
                pytest.fail("associated with a server that never answered")
    assert seen.tail is not None
    check_abort_or_nothing(seen.tail)


GARBAGE_ANSWERS = {
    "unknown PDU type": (pdu(0x09, bytes(4)), UNRECOGNIZED),
    "HTTP": (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", UNRECOGNIZED),
    "AC too short": (pdu(0x02, bytes(4)), MALFORMED),
    "AC with overrunning item": (pdu(0x02, associate_ac()[6:74] + b"\x10\x00\x01\x00"), MALFORMED),
    "4 GB AC": (pdu(0x02, b"", 0xFFFFFFFF), TOO_LONG),
    "A-RELEASE-RQ": (RELEASE_RQ, UNEXPECTED),
}


@pytest.mark.parametrize(
    ("answer", "reasons"), GARBAGE_ANSWERS.values(), ids=GARBAGE_ANSWERS.keys()
)
async def test_client_rejects_garbage_answer(answer: bytes, reasons: frozenset[int]) -> None:
    async def send_garbage(peer: RawPeer, seen: Seen) -> None:
        await peer.send(answer)
        seen.tail = await peer.read_to_eof()

    async with fake_acceptor(send_garbage) as (peer, seen):
        with anyio.fail_after(HANG), pytest.raises(AssociationRequestFailed):
            async with connect(peer, timeouts=Timeouts(acse=30.0)):
                pytest.fail("associated with a server that answered garbage")
    assert seen.tail is not None
    check_abort(seen.tail, user_ok=False, reasons=reasons)  # PS3.8 AA-8 in Sta5


async def accept_then(peer: RawPeer) -> bytes:
    """Answer the RQ with an AC for context 1 and return the client's next PDU (the C-ECHO)."""
    await peer.send(associate_ac())
    request = await peer.read_pdu()
    assert request is not None
    assert request[0] == 0x04
    return request


async def echo(peer: Peer, timeouts: Timeouts, sockets: list[socket.socket]) -> None:
    """Associate and C-ECHO, keeping the client's socket to check that it gets closed."""
    async with connect(peer, timeouts=timeouts) as assoc:
        sockets.append(assoc.link.stream.extra(SocketAttribute.raw_socket))
        await assoc.echo()


async def test_client_acceptor_hangs_up_mid_echo() -> None:
    sockets: list[socket.socket] = []

    async def hang_up(peer: RawPeer, seen: Seen) -> None:
        await accept_then(peer)
        await peer.send(p_data(pdv(1, b"\x00" * 8, command=True), length=100)[:16])
        await peer.stream.send_eof()
        seen.tail = await peer.read_to_eof()

    async with fake_acceptor(hang_up) as (peer, seen):
        with anyio.fail_after(HANG), pytest.raises(AssociationAborted):
            await echo(peer, Timeouts(acse=30.0, dimse=30.0), sockets)
    assert sockets[0].fileno() == -1
    assert seen.tail == b""  # PS3.8 AA-4: the transport is gone, nothing more to send


async def test_client_dimse_timeout_when_echo_never_answered() -> None:
    sockets: list[socket.socket] = []

    async def stall(peer: RawPeer, seen: Seen) -> None:
        await accept_then(peer)
        seen.tail = await peer.read_to_eof()

    async with fake_acceptor(stall) as (peer, seen):
        with anyio.fail_after(HANG), pytest.raises(DimseTimeout):
            await echo(peer, Timeouts(acse=30.0, dimse=0.5), sockets)
    assert sockets[0].fileno() == -1
    assert seen.tail is not None
    assert abort_fields(seen.tail)[0] == 0  # the client's user gave up: service-user A-ABORT
