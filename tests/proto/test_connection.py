"""Two Connections (requestor and acceptor) wired back to back in memory."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiomove.errors import LocalProtocolError
from aiomove.proto.codec import encode_pdu
from aiomove.proto.connection import (
    DEFAULT_ARTIM_TIMEOUT,
    DEFAULT_MAX_PDU_LENGTH,
    Connection,
    Role,
)
from aiomove.proto.events import (
    Aborted,
    AssociationAccepted,
    AssociationRejected,
    AssociationRequested,
    ConnectionEvent,
    PDataReceived,
    ReleaseConfirmed,
    ReleaseRequested,
)
from aiomove.proto.fsm import State
from aiomove.proto.pdu import (
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    MaximumLength,
    PresentationContextAC,
    PresentationContextRQ,
)

VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"

RQ = AAssociateRQ(
    called_ae_title="STORE-SCP",
    calling_ae_title="AIOMOVE",
    presentation_contexts=(
        PresentationContextRQ(1, VERIFICATION, (IMPLICIT_LE,)),
        PresentationContextRQ(3, CT_IMAGE, (EXPLICIT_LE, IMPLICIT_LE)),
    ),
)
AC = AAssociateAC(
    called_ae_title="STORE-SCP",
    calling_ae_title="AIOMOVE",
    presentation_contexts=(
        PresentationContextAC(1, 0, IMPLICIT_LE),
        PresentationContextAC(3, 3, ""),  # abstract syntax not supported
    ),
)

# Hand-written from PS3.8 Tables 9-21 to 9-26.
RELEASE_RQ = bytes.fromhex("05 00 00000004 00000000")
ABORT_USER = bytes.fromhex("07 00 00000004 00 00 00 00")


def abort_bytes(source: int, reason: int) -> bytes:
    return bytes.fromhex("07 00 00000004 00 00") + bytes([source, reason])


def state_of(conn: Connection) -> State:
    """The state, unnarrowed: mypy would otherwise keep an earlier `assert` narrowing."""
    return conn.state


def events_of(conn: Connection) -> list[ConnectionEvent]:
    out = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


def only_abort(conn: Connection) -> Aborted:
    """The one event queued, which must be an Aborted with a detail."""
    [event] = events_of(conn)
    assert isinstance(event, Aborted)
    assert event.detail
    return event


def sent(conn: Connection) -> bytes:
    return b"".join(bytes(buffer) for buffer in conn.data_to_send())


class Pair:
    """A requestor and an acceptor joined by an in-memory 'transport'."""

    def __init__(self, **kwargs: int) -> None:
        self.req = Connection(Role.REQUESTOR, **kwargs)
        self.acc = Connection(Role.ACCEPTOR, **kwargs)
        self.now = 0.0
        self.closed = False

    def connect(self) -> None:
        self.req.request_association(RQ, self.now)
        self.acc.transport_connected(self.now)
        self.req.transport_connected(self.now)

    def pump(self) -> None:
        """Deliver queued bytes both ways until both are quiet; model the shell's close."""
        moved = True
        while moved:
            moved = False
            for src, dst in ((self.req, self.acc), (self.acc, self.req)):
                buffers = src.data_to_send()
                if buffers and dst.state is not State.STA1:
                    moved = True
                    for buffer in buffers:  # one write per buffer: PDUs arrive in pieces
                        dst.receive_data(buffer, self.now)
            if not self.closed:
                for a, b in ((self.req, self.acc), (self.acc, self.req)):
                    if a.state is State.STA1 and b.state is not State.STA1:
                        self.closed = True  # the shell of `a` closes the socket
                        b.receive_data(b"", self.now)
                        moved = True
                        break

    def associate(self) -> None:
        self.connect()
        self.pump()
        sent_rq = self.req.request
        assert sent_rq is not None
        assert events_of(self.acc) == [AssociationRequested(sent_rq)]
        self.acc.accept(AC, self.now)
        self.pump()
        assert [type(e) for e in events_of(self.req)] == [AssociationAccepted]
        assert state_of(self.req) is state_of(self.acc) is State.STA6


def test_association_data_and_release() -> None:
    pair = Pair()
    pair.connect()
    assert state_of(pair.req) is State.STA5
    assert state_of(pair.acc) is State.STA2
    assert pair.acc.next_deadline == DEFAULT_ARTIM_TIMEOUT
    pair.pump()
    assert state_of(pair.acc) is State.STA3
    assert pair.acc.next_deadline is None  # AE-6 stops ARTIM
    [requested] = events_of(pair.acc)
    assert isinstance(requested, AssociationRequested)
    # The requestor's RQ went out with our Maximum Length (PS3.7 D.3.3.1) added.
    assert requested.rq == replace(RQ, user_information=(MaximumLength(16384),))
    assert requested.rq == pair.req.request == pair.acc.request
    pair.acc.accept(AC, 1.0)
    pair.pump()
    [accepted] = events_of(pair.req)
    assert isinstance(accepted, AssociationAccepted)
    assert accepted.ac == pair.req.accept_pdu == pair.acc.accept_pdu
    assert pair.req.peer_max_pdu_length == pair.acc.peer_max_pdu_length == 16384

    # P-DATA both ways, each side fragmenting to the peer's maximum itself.
    pair.req.send_pdv(1, True, True, b"\x01" * 10, 2.0)
    pair.acc.send_pdv(1, False, False, b"\x02" * 16378, 2.0)  # exactly 16384 with the PDV header
    pair.acc.send_pdv(1, False, True, memoryview(b"\x03\x04"), 2.0)
    pair.pump()
    [from_req] = events_of(pair.acc)
    assert isinstance(from_req, PDataReceived)
    [pdv] = from_req.pdvs
    assert (pdv.context_id, pdv.is_command, pdv.is_last) == (1, True, True)
    assert bytes(pdv.data) == b"\x01" * 10
    got = events_of(pair.req)
    assert [type(e) for e in got] == [PDataReceived, PDataReceived]
    datas = [bytes(e.pdvs[0].data) for e in got if isinstance(e, PDataReceived)]
    assert datas == [b"\x02" * 16378, b"\x03\x04"]

    pair.req.release(3.0)
    assert state_of(pair.req) is State.STA7
    pair.pump()
    assert events_of(pair.acc) == [ReleaseRequested(collision=False)]
    assert state_of(pair.acc) is State.STA8
    pair.acc.release_response(3.0)
    assert state_of(pair.acc) is State.STA13
    assert pair.acc.next_deadline == 3.0 + DEFAULT_ARTIM_TIMEOUT  # AR-4
    pair.pump()
    assert events_of(pair.req) == [ReleaseConfirmed()]
    assert state_of(pair.req) is State.STA1  # AR-3: the requestor's shell closes
    assert state_of(pair.acc) is State.STA1  # AR-5 on the close
    assert pair.acc.next_deadline is None
    assert events_of(pair.acc) == []


def test_release_collision() -> None:
    pair = Pair()
    pair.associate()
    pair.req.release(1.0)
    pair.acc.release(1.0)
    assert state_of(pair.req) is state_of(pair.acc) is State.STA7
    # Both A-RELEASE-RQs cross on the wire.
    req_rq, acc_rq = sent(pair.req), sent(pair.acc)
    assert req_rq == acc_rq == RELEASE_RQ
    pair.acc.receive_data(req_rq, 1.0)
    pair.req.receive_data(acc_rq, 1.0)
    assert state_of(pair.req) is State.STA9  # AR-8, requestor
    assert state_of(pair.acc) is State.STA10  # AR-8, acceptor
    assert events_of(pair.req) == events_of(pair.acc) == [ReleaseRequested(collision=True)]
    # The acceptor must wait for the requestor's answer (Sta10 has no Evt14).
    with pytest.raises(LocalProtocolError):
        pair.acc.release_response(1.0)
    pair.req.release_response(2.0)  # AR-9
    assert state_of(pair.req) is State.STA11
    pair.pump()
    assert state_of(pair.acc) is State.STA12  # AR-10
    assert events_of(pair.acc) == [ReleaseConfirmed()]
    assert state_of(pair.req) is State.STA11
    pair.acc.release_response(3.0)  # AR-4
    assert state_of(pair.acc) is State.STA13
    pair.pump()
    assert events_of(pair.req) == [ReleaseConfirmed()]  # AR-3
    assert state_of(pair.req) is state_of(pair.acc) is State.STA1


@pytest.mark.parametrize("aborter", ["req", "acc"])
def test_abort_each_way(aborter: str) -> None:
    pair = Pair()
    pair.associate()
    local, peer = (pair.req, pair.acc) if aborter == "req" else (pair.acc, pair.req)
    local.abort(5.0)
    assert state_of(local) is State.STA13
    assert local.next_deadline == 5.0 + DEFAULT_ARTIM_TIMEOUT
    assert events_of(local) == []  # the local user asked for it
    wire = sent(local)
    assert wire == ABORT_USER
    peer.receive_data(wire, 5.0)
    assert state_of(peer) is State.STA1  # AA-3
    aborted = only_abort(peer)
    assert aborted == Aborted(0, 0, True, aborted.detail)
    assert "service-user" in aborted.detail
    local.receive_data(b"", 5.5)  # the peer's shell closed: AR-5
    assert state_of(local) is State.STA1
    assert local.next_deadline is None


def test_artim_expiry_without_a_request() -> None:
    acc = Connection(Role.ACCEPTOR, artim_timeout=2.5)
    acc.transport_connected(10.0)
    assert acc.next_deadline == 12.5
    acc.handle_timeout(12.4)
    assert state_of(acc) is State.STA2
    acc.receive_data(RELEASE_RQ[:3], 12.45)  # half a PDU does not stop the timer
    acc.handle_timeout(12.5)
    assert state_of(acc) is State.STA1  # AA-2: the shell closes
    aborted = only_abort(acc)
    assert aborted == Aborted(2, 0, False, "no A-ASSOCIATE-RQ within 2.5 s (ARTIM)")
    assert sent(acc) == b""


def test_artim_expiry_waiting_for_close() -> None:
    pair = Pair()
    pair.associate()
    pair.acc.abort(1.0)
    sent(pair.acc)
    pair.acc.handle_timeout(1.0 + DEFAULT_ARTIM_TIMEOUT)  # AA-2 in Sta13: the peer never closed
    assert state_of(pair.acc) is State.STA1
    assert events_of(pair.acc) == []


def test_pdu_too_large_aborts() -> None:
    pair = Pair()
    pair.associate()
    # A P-DATA-TF header announcing 0xFFFFFFFF bytes: refused before any body arrives.
    pair.acc.receive_data(bytes.fromhex("04 00 FFFFFFFF 0000"), 7.0)
    assert state_of(pair.acc) is State.STA13
    aborted = only_abort(pair.acc)
    assert (aborted.source, aborted.reason, aborted.by_peer) == (2, 6, False)
    assert "4294967295" in aborted.detail
    wire = sent(pair.acc)
    assert wire == abort_bytes(2, 6)  # invalid-PDU-parameter value
    assert pair.acc.next_deadline == 7.0 + DEFAULT_ARTIM_TIMEOUT
    # The stream is lost: whatever follows is ignored, even a well-formed PDU.
    pair.acc.receive_data(RELEASE_RQ + ABORT_USER, 8.0)
    assert state_of(pair.acc) is State.STA13
    assert events_of(pair.acc) == []
    assert sent(pair.acc) == b""
    pair.req.receive_data(wire, 8.0)  # the requestor gets the A-ABORT (AA-3) ...
    assert state_of(pair.req) is State.STA1
    aborted = only_abort(pair.req)
    assert aborted == Aborted(2, 6, True, aborted.detail)
    pair.acc.receive_data(b"", 8.0)  # ... and its shell closes: AR-5
    assert state_of(pair.acc) is State.STA1


def test_limit_follows_our_max_pdu_length() -> None:
    pair = Pair(max_pdu_length=1000)
    pair.associate()
    assert pair.req.peer_max_pdu_length == 1000
    pair.req.send_pdv(1, False, True, b"\x00" * 994, 0.0)  # 1000 bytes: allowed
    pair.pump()
    assert [type(e) for e in events_of(pair.acc)] == [PDataReceived]
    # Bypass the requestor's own check to play a peer that ignores our Maximum Length.
    too_big = bytes.fromhex("04 00 000003E9 000003E5 01 02") + bytes(995)
    pair.acc.receive_data(too_big, 0.0)
    assert sent(pair.acc) == abort_bytes(2, 6)
    assert state_of(pair.acc) is State.STA13


@pytest.mark.parametrize(
    ("garbage", "reason"),
    [
        (bytes.fromhex("99 00 00000002 ABCD"), 1),  # unrecognized PDU type
        (bytes.fromhex("05 00 00000003 000000"), 6),  # A-RELEASE-RQ must be 4 bytes long
        (bytes.fromhex("04 00 00000006 00000001 01 00"), 6),  # PDV item shorter than 2
    ],
)
def test_garbage_aborts(garbage: bytes, reason: int) -> None:
    pair = Pair()
    pair.associate()
    pair.req.receive_data(garbage + RELEASE_RQ, 1.0)
    assert state_of(pair.req) is State.STA13
    aborted = only_abort(pair.req)
    assert (aborted.source, aborted.reason, aborted.by_peer) == (2, reason, False)
    assert sent(pair.req) == abort_bytes(2, reason)  # once: the A-RELEASE-RQ after is ignored


def test_garbage_before_the_request_aborts_as_user() -> None:
    acc = Connection(Role.ACCEPTOR)
    acc.transport_connected(0.0)
    acc.receive_data(b"GET / HTTP/1.1\r\n\r\n", 1.0)
    assert state_of(acc) is State.STA13  # AA-1
    assert sent(acc) == ABORT_USER  # PS3.8 AA-1: service-user source
    aborted = only_abort(acc)
    assert "0x47" in aborted.detail  # 'G' is not a PDU type


def test_codec_bug_does_not_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(pdu_type: int, body: bytes | memoryview) -> None:
        raise RuntimeError("bug")

    pair = Pair()
    pair.associate()
    monkeypatch.setattr("aiomove.proto.framer.decode_pdu", broken)
    pair.acc.receive_data(RELEASE_RQ + RELEASE_RQ, 0.0)
    assert state_of(pair.acc) is State.STA13
    assert only_abort(pair.acc).detail == "internal error decoding a PDU: RuntimeError('bug')"
    assert sent(pair.acc) == abort_bytes(2, 0)
    buffered = pair.acc._framer.buffered
    pair.acc.receive_data(RELEASE_RQ, 0.0)  # ignored too: the stream is lost ...
    assert events_of(pair.acc) == []
    assert sent(pair.acc) == b""
    assert pair.acc._framer.buffered == buffered  # ... and not even buffered


def test_unexpected_pdu_aborts() -> None:
    pair = Pair()
    pair.associate()
    pair.acc.receive_data(bytes.fromhex("06 00 00000004 00000000"), 0.0)
    assert state_of(pair.acc) is State.STA13  # A-RELEASE-RP in Sta6: AA-8
    assert sent(pair.acc) == abort_bytes(2, 2)  # unexpected-PDU
    aborted = only_abort(pair.acc)
    assert "unexpected A-RELEASE-RP PDU in Sta6" in aborted.detail


def test_several_pdus_in_one_chunk_and_byte_by_byte() -> None:
    pair = Pair()
    pair.associate()
    pair.acc.send_pdv(1, True, False, b"ab", 0.0)
    pair.acc.send_pdv(1, True, True, b"cd", 0.0)
    pair.acc.release(0.0)
    wire = sent(pair.acc)
    for i in range(len(wire)):
        pair.req.receive_data(wire[i : i + 1], 0.0)
    got = events_of(pair.req)
    assert [type(e) for e in got] == [PDataReceived, PDataReceived, ReleaseRequested]
    # And all at once, to a second requestor.
    other = Pair()
    other.associate()
    other.req.receive_data(wire, 0.0)
    assert events_of(other.req) == got
    assert state_of(other.req) is state_of(pair.req) is State.STA8


def test_send_pdv_does_not_copy_and_checks() -> None:
    pair = Pair()
    pair.associate()
    payload = memoryview(bytearray(b"\x05" * 100))
    pair.req.send_pdv(1, False, True, payload, 0.0)
    header, data = pair.req.data_to_send()
    assert data is payload
    assert bytes(header) == bytes.fromhex("04 00 0000006A 00000066 01 02")
    before = pair.req.state
    with pytest.raises(LocalProtocolError, match="not accepted"):
        pair.req.send_pdv(3, False, True, b"x", 0.0)  # context 3 was rejected
    with pytest.raises(LocalProtocolError, match="maximum"):
        pair.req.send_pdv(1, False, True, bytes(16379), 0.0)  # 16385 > 16384
    assert state_of(pair.req) is before
    assert pair.req.data_to_send() == []


def test_peer_maximum_length() -> None:
    # PS3.8 D.1: 0 means no limit; an absent sub-item means DEFAULT_MAX_PDU_LENGTH here.
    pair = Pair(max_pdu_length=0)
    pair.associate()
    assert pair.req.peer_max_pdu_length == pair.acc.peer_max_pdu_length == 0
    pair.req.send_pdv(1, False, True, bytes(100_000), 0.0)
    pair.pump()
    [event] = events_of(pair.acc)
    assert isinstance(event, PDataReceived)
    assert len(event.pdvs[0].data) == 100_000

    # An A-ASSOCIATE-RQ without any user information: PS3.8 Table 9-11, built by hand.
    context = bytes.fromhex("20 00 0019 01 000000 30 00 0011") + VERIFICATION.encode()
    context = context[:2] + (len(context) - 4 + 21).to_bytes(2, "big") + context[4:]
    context += bytes.fromhex("40 00 0011") + IMPLICIT_LE.encode()
    body = bytes.fromhex("0001 0000") + b"STORE-SCP".ljust(16) + b"OLDPEER".ljust(16) + bytes(32)
    body += bytes.fromhex("10 00 0015") + b"1.2.840.10008.3.1.1.1" + context
    acc = Connection(Role.ACCEPTOR)
    acc.transport_connected(0.0)
    acc.receive_data(bytes.fromhex("01 00") + len(body).to_bytes(4, "big") + body, 0.0)
    assert state_of(acc) is State.STA3
    assert acc.peer_max_pdu_length == DEFAULT_MAX_PDU_LENGTH


def test_provider_rejects_unknown_protocol_version() -> None:
    pair = Pair()
    pair.req.request_association(replace(RQ, protocol_version=0x0002), 0.0)
    pair.acc.transport_connected(0.0)
    pair.req.transport_connected(0.0)
    pair.acc.receive_data(sent(pair.req), 4.0)
    assert state_of(pair.acc) is State.STA13  # AE-6, "otherwise" branch
    rj = AAssociateRJ(1, 2, 2)  # permanent, ACSE provider, protocol-version-not-supported
    assert events_of(pair.acc) == [AssociationRejected(rj)]
    wire = sent(pair.acc)
    assert wire == bytes.fromhex("03 00 00000004 00 01 02 02")
    assert pair.acc.next_deadline == 4.0 + DEFAULT_ARTIM_TIMEOUT
    pair.req.receive_data(wire, 4.0)
    assert events_of(pair.req) == [AssociationRejected(rj)]
    assert state_of(pair.req) is State.STA1  # AE-4: the requestor's shell closes


def test_user_reject() -> None:
    pair = Pair()
    pair.connect()
    pair.pump()
    events_of(pair.acc)
    pair.acc.reject(AAssociateRJ(2, 1, 1), 0.0)  # transient, user, no reason given
    assert state_of(pair.acc) is State.STA13
    pair.pump()
    assert events_of(pair.req) == [AssociationRejected(AAssociateRJ(2, 1, 1))]
    assert state_of(pair.req) is state_of(pair.acc) is State.STA1


def test_ac_answering_unproposed_context_is_invalid() -> None:
    pair = Pair()
    pair.connect()
    pair.pump()
    bogus = replace(AC, presentation_contexts=(PresentationContextAC(5, 0, IMPLICIT_LE),))
    with pytest.raises(LocalProtocolError, match="not proposed"):
        pair.acc.accept(bogus, 0.0)
    assert state_of(pair.acc) is State.STA3  # nothing changed
    assert pair.acc.data_to_send() == []
    # Played by a peer that does send it (encoded by the codec): Evt19 for the requestor, AA-8.
    pair.req.receive_data(encode_pdu(replace(bogus, user_information=(MaximumLength(0),))), 0.0)
    assert state_of(pair.req) is State.STA13
    assert sent(pair.req) == abort_bytes(2, 6)
    assert "[5]" in only_abort(pair.req).detail


def test_pdata_on_unaccepted_context_is_invalid() -> None:
    pair = Pair()
    pair.associate()
    # Context 3 was rejected by the acceptor (result 3).
    pair.acc.receive_data(bytes.fromhex("04 00 00000007 00000003 03 02 FF"), 0.0)
    assert state_of(pair.acc) is State.STA13
    assert sent(pair.acc) == abort_bytes(2, 6)


def test_local_misuse() -> None:
    acc = Connection(Role.ACCEPTOR)
    with pytest.raises(LocalProtocolError):
        acc.request_association(RQ, 0.0)  # acceptors do not request
    with pytest.raises(LocalProtocolError):
        acc.receive_data(b"\x01", 0.0)  # no transport yet
    req = Connection(Role.REQUESTOR, max_pdu_length=32768)
    with pytest.raises(LocalProtocolError, match="Maximum Length"):
        req.request_association(replace(RQ, user_information=(MaximumLength(16384),)), 0.0)
    with pytest.raises(LocalProtocolError):
        req.request_association(replace(RQ, calling_ae_title="X" * 17), 0.0)  # codec refuses
    assert state_of(req) is State.STA1
    assert req.request is None
    # One Connection per transport connection.
    req.request_association(RQ, 0.0)
    req.transport_closed(0.0)  # connect failed: AA-4
    assert state_of(req) is State.STA1
    assert [type(e) for e in events_of(req)] == [Aborted]
    with pytest.raises(LocalProtocolError, match="new Connection"):
        req.request_association(RQ, 1.0)
    with pytest.raises(ValueError, match="max_pdu_length"):
        Connection(Role.REQUESTOR, max_pdu_length=-1)
    with pytest.raises(ValueError, match="artim_timeout"):
        Connection(Role.REQUESTOR, artim_timeout=0)


# --- fuzzing -------------------------------------------------------------------------------------

_ABORTS_OR_REJECT = {
    ABORT_USER,
    *(abort_bytes(2, reason) for reason in range(7)),
    bytes.fromhex("03 00 00000004 00 01 02 02"),
}


def feed_in_pieces(conn: Connection, data: bytes, cuts: list[int]) -> None:
    """Feed `data` split at `cuts`, never passing b"" (which would mean "closed")."""
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    for start, end in itertools.pairwise(bounds):
        if conn.state is State.STA1:
            return
        conn.receive_data(data[start:end], 0.0)


def outcome(conn: Connection) -> tuple[State, list[ConnectionEvent], list[bytes]]:
    return conn.state, events_of(conn), [bytes(b) for b in conn.data_to_send()]


@settings(max_examples=300, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=300),
        # Plausible headers make the fuzzer reach the body decoders.
        st.builds(
            lambda t, body: bytes([t, 0]) + len(body).to_bytes(4, "big") + body,
            st.integers(1, 8),
            st.binary(max_size=200),
        ),
    ),
    cuts=st.lists(st.integers(0, 300), max_size=5),
)
def test_random_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    acc = Connection(Role.ACCEPTOR)
    acc.transport_connected(0.0)
    feed_in_pieces(acc, data, cuts)
    state, events, wire = outcome(acc)
    assert state in (State.STA1, State.STA2, State.STA3, State.STA13)
    assert all(w in _ABORTS_OR_REJECT for w in wire), wire
    for event in events:
        if isinstance(event, Aborted):
            assert not event.detail.startswith("internal error"), event.detail
    # Sans-IO: how the bytes were cut does not matter.
    whole = Connection(Role.ACCEPTOR)
    whole.transport_connected(0.0)
    feed_in_pieces(whole, data, [])
    assert outcome(whole) == (state, events, wire)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(min_size=1, max_size=300))
def test_random_bytes_when_associated(data: bytes) -> None:
    pair = Pair()
    pair.associate()
    pair.req.receive_data(data, 0.0)
    state, _, wire = outcome(pair.req)
    assert state in (State.STA1, State.STA6, State.STA8, State.STA13)
    assert all(w in _ABORTS_OR_REJECT for w in wire), wire
    if state is State.STA13:
        assert len(wire) == 1  # exactly one A-ABORT, then silence
