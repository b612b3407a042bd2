"""The fuzzing contracts, shared by the hypothesis tests and the atheris harnesses in fuzz/.

Each `check_*` function feeds hostile input to one piece of the sans-IO core and asserts what
that piece promises about peer input; a broken promise is an `AssertionError` (or whatever
unexpected exception escaped). The `*_target(data)` functions turn one flat byte string into
those inputs so that a coverage-guided fuzzer can drive them; the seed corpus (fuzz/corpus.py)
writes its inputs in the same layouts.

Contracts (from the modules' docstrings):
- `decode_pdu` raises `PDUDecodeError` and nothing else, with a PS3.8 Table 9-26 reason.
- `Framer`: the same PDUs (or the same error) however the stream is split; a length above the
  bound fails on the header alone; after draining, fewer than bound + 6 bytes stay buffered;
  poisoned after an error.
- `Connection`: peer bytes never raise; a protocol error queues an A-ABORT and emits
  `Aborted`; peer bytes alone make it send nothing but A-ABORT or (AE-6) A-ASSOCIATE-RJ.
- `decode_command` raises `DimseDecodeError` and nothing else.
- `DimseAssembler.feed` raises `RemoteProtocolError` (DimseProtocolError / DimseDecodeError).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from aiomove.errors import LocalProtocolError, RemoteProtocolError
from aiomove.proto import dimse
from aiomove.proto.codec import PDUDecodeError, decode_pdu, encode_pdu
from aiomove.proto.connection import Connection, Role
from aiomove.proto.events import Aborted, AssociationRejected, ConnectionEvent
from aiomove.proto.framer import MAX_ASSOCIATE_PDU_LENGTH, Framer
from aiomove.proto.fsm import State
from aiomove.proto.pdata import (
    MAX_COMMAND_SET_LENGTH,
    CommandReceived,
    DataReceived,
    DimseAssembler,
)
from aiomove.proto.pdu import (
    PDU,
    PDV,
    AAbort,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    AbortReason,
    AbortSource,
)
from aiomove.proto.status import StatusCategory, category
from tests.proto.test_connection import AC as AC
from tests.proto.test_connection import CT_IMAGE as CT_IMAGE
from tests.proto.test_connection import IMPLICIT_LE as IMPLICIT_LE
from tests.proto.test_connection import RQ as RQ

_HEADER_SIZE = 6

# --- PDU decoder ---------------------------------------------------------------------------


def _canonical(pdu: PDU) -> PDU:
    """`pdu` as the encoder would write it back: top-level unknown items in type order."""
    if isinstance(pdu, AAssociateRQ | AAssociateAC):
        items = tuple(sorted(pdu.unknown_items, key=lambda item: item.item_type))
        return replace(pdu, unknown_items=items)
    return pdu


def check_decode_pdu(pdu_type: int, body: bytes) -> PDU | None:
    """Decode a body; only PDUDecodeError may escape, and what decodes re-encodes stably."""
    try:
        pdu = decode_pdu(pdu_type, body)
    except PDUDecodeError as exc:
        error = exc
    else:
        return _check_reencodes(pdu_type, pdu)
    assert error.reason in AbortReason.__members__.values(), error.reason
    assert str(error)
    return None


def _check_reencodes(pdu_type: int, pdu: PDU) -> PDU:
    try:
        wire = encode_pdu(pdu)
    except LocalProtocolError:
        return pdu  # decoding is more lenient than encoding (e.g. Latin-1 AE titles)
    assert wire[0] == pdu_type
    assert int.from_bytes(wire[2:6], "big") == len(wire) - _HEADER_SIZE
    again = decode_pdu(wire[0], wire[_HEADER_SIZE:])
    assert again == _canonical(pdu), (pdu, again)
    return pdu


def pdu_target(data: bytes) -> None:
    """A whole PDU: the type byte, then the body after the 6-byte header (length ignored)."""
    if data:
        check_decode_pdu(data[0], data[_HEADER_SIZE:])


# --- framer --------------------------------------------------------------------------------

FramerResult = tuple[str, object]


def _bound(max_pdu_length: int) -> int:
    return max(max_pdu_length or (1 << 28), MAX_ASSOCIATE_PDU_LENGTH)


def _drain(framer: Framer, out: list[FramerResult], bound: int) -> None:
    while True:
        try:
            pdu = framer.next_pdu()
        except PDUDecodeError as exc:
            out.append(("error", exc.reason))
            assert framer.buffered == 0  # poisoned: nothing kept
            return
        if pdu is None:
            # Header judged as soon as complete, body never more than one PDU: bounded.
            assert framer.buffered < bound + _HEADER_SIZE, framer.buffered
            return
        out.append(("pdu", pdu))


def frame(stream: bytes, cuts: Sequence[int], max_pdu_length: int) -> list[FramerResult]:
    """Feed `stream` split at `cuts` to a fresh Framer; every PDU or error, in order."""
    framer = Framer(max_pdu_length)
    bound = _bound(max_pdu_length)
    out: list[FramerResult] = []
    for piece in split(stream, cuts):
        framer.feed(piece)
        _drain(framer, out, bound)
        if out and out[-1][0] == "error":
            framer.feed(piece)  # poisoned: ignored
            assert framer.buffered == 0
            assert framer.next_pdu() is None
    return out


def check_framer(stream: bytes, cuts: Sequence[int], max_pdu_length: int) -> list[FramerResult]:
    whole = frame(stream, [], max_pdu_length)
    pieces = frame(stream, cuts, max_pdu_length)
    assert pieces == whole, (pieces, whole)
    errors = [i for i, (kind, _) in enumerate(whole) if kind == "error"]
    assert errors in ([], [len(whole) - 1])  # an error ends the stream
    return whole


def split(data: bytes, cuts: Sequence[int]) -> Iterator[bytes]:
    """`data` in pieces at the given offsets (out-of-range and repeated cuts ignored)."""
    bounds = sorted({0, len(data), *(c for c in cuts if 0 < c < len(data))})
    for start, end in itertools.pairwise(bounds):
        yield data[start:end]


def _cuts_from(seed: int, size: int) -> list[int]:
    """Deterministic, irregular cut points (for byte-driven harnesses); at most about 64."""
    step = max(seed % 13 + 1, size // 64)
    return list(range(step, size, step + seed % 5))


def framer_target(data: bytes) -> None:
    """First byte: split pattern and P-DATA bound; the rest: the stream."""
    if not data:
        return
    bound = (0, 16384, 64, 1 << 20)[data[0] & 3]
    check_framer(data[1:], _cuts_from(data[0] >> 2, len(data) - 1), bound)


# --- connection (PS3.8 state machine) ------------------------------------------------------

# The association both ends agree on: the protocol tests' own RQ/AC (tests/proto).
MAX_PDU = 16384


def _pump(a: Connection, b: Connection) -> None:
    """Deliver what each side queued to the other, until both are quiet."""
    moved = True
    while moved:
        moved = False
        for src, dst in ((a, b), (b, a)):
            for buffer in src.data_to_send():
                moved = True
                dst.receive_data(bytes(buffer), 0.0)


def _events(conn: Connection) -> list[ConnectionEvent]:
    out = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


def _acceptor_fresh() -> Connection:
    acc = Connection(Role.ACCEPTOR, max_pdu_length=MAX_PDU)
    acc.transport_connected(0.0)
    return acc


def _pair() -> tuple[Connection, Connection]:
    """Requestor and acceptor, transports up, the request delivered (acceptor in Sta3)."""
    req = Connection(Role.REQUESTOR, max_pdu_length=MAX_PDU)
    acc = _acceptor_fresh()
    req.request_association(RQ, 0.0)
    req.transport_connected(0.0)
    _pump(req, acc)
    return req, acc


def _associated() -> tuple[Connection, Connection]:
    req, acc = _pair()
    acc.accept(AC, 0.0)
    _pump(req, acc)
    return req, acc


def _requestor_awaiting_ac() -> Connection:
    req = Connection(Role.REQUESTOR, max_pdu_length=MAX_PDU)
    req.request_association(RQ, 0.0)
    req.transport_connected(0.0)
    return req


def _requestor_established() -> Connection:
    return _associated()[0]


def _acceptor_established() -> Connection:
    return _associated()[1]


def _requestor_releasing() -> Connection:
    req = _requestor_established()
    req.release(0.0)
    return req


def _acceptor_release_requested() -> Connection:
    req, acc = _associated()
    req.release(0.0)
    _pump(req, acc)
    return acc


def _acceptor_releasing() -> Connection:
    acc = _acceptor_established()
    acc.release(0.0)
    return acc


def _requestor_release_requested() -> Connection:
    req, acc = _associated()
    acc.release(0.0)
    _pump(req, acc)
    return req


def _collision() -> tuple[Connection, Connection]:
    """Both sides sent A-RELEASE-RQ and received the other's: requestor Sta9, acceptor Sta10."""
    req, acc = _associated()
    req.release(0.0)
    acc.release(0.0)
    from_req, from_acc = req.data_to_send(), acc.data_to_send()
    for buffer in from_req:
        acc.receive_data(buffer, 0.0)
    for buffer in from_acc:
        req.receive_data(buffer, 0.0)
    return req, acc


def _requestor_collision_answered() -> Connection:
    req = _collision()[0]
    req.release_response(0.0)  # AR-9: Sta11, awaiting the acceptor's A-RELEASE-RP
    return req


def _acceptor_collision_confirmed() -> Connection:
    req, acc = _collision()
    req.release_response(0.0)
    for buffer in req.data_to_send():
        acc.receive_data(buffer, 0.0)  # AR-10: Sta12, to answer with its own RP
    return acc


def _acceptor_aborted() -> Connection:
    acc = _acceptor_established()
    acc.abort(0.0)
    return acc


#: Named starting points: a Connection in the given role and state, with its queues empty.
SETUPS: dict[str, tuple[Callable[[], Connection], State]] = {
    "acceptor-sta2": (_acceptor_fresh, State.STA2),
    "acceptor-sta3": (lambda: _pair()[1], State.STA3),
    "acceptor-sta6": (_acceptor_established, State.STA6),
    "acceptor-sta7": (_acceptor_releasing, State.STA7),
    "acceptor-sta8": (_acceptor_release_requested, State.STA8),
    "acceptor-sta10": (lambda: _collision()[1], State.STA10),
    "acceptor-sta12": (_acceptor_collision_confirmed, State.STA12),
    "acceptor-sta13": (_acceptor_aborted, State.STA13),
    "requestor-sta5": (_requestor_awaiting_ac, State.STA5),
    "requestor-sta6": (_requestor_established, State.STA6),
    "requestor-sta7": (_requestor_releasing, State.STA7),
    "requestor-sta8": (_requestor_release_requested, State.STA8),
    "requestor-sta9": (lambda: _collision()[0], State.STA9),
    "requestor-sta11": (_requestor_collision_answered, State.STA11),
}
SETUP_NAMES = tuple(SETUPS)


def start(setup: str) -> Connection:
    make, state = SETUPS[setup]
    conn = make()
    assert conn.state is state, (setup, conn.state)
    conn.data_to_send()
    _events(conn)
    return conn


@dataclass(frozen=True)
class Outcome:
    """Everything a Connection produced from the peer's bytes."""

    state: State
    events: tuple[ConnectionEvent, ...]
    sent: tuple[PDU, ...]
    max_buffered: int


def feed(setup: str, stream: bytes, cuts: Sequence[int]) -> Outcome:
    """Feed `stream` in pieces to a fresh connection of `setup`; never raises for the peer."""
    conn = start(setup)
    events: list[ConnectionEvent] = []
    wire: list[bytes] = []
    max_buffered = 0
    for piece in split(stream, cuts):
        if conn.state is State.STA1:
            break  # the shell closed the transport; no more input exists
        conn.receive_data(piece, 0.0)
        # The framer never holds more than one PDU (a private attribute: memory is the point).
        max_buffered = max(max_buffered, conn._framer.buffered)
        events.extend(_events(conn))
        wire.extend(bytes(buffer) for buffer in conn.data_to_send())
    return Outcome(conn.state, tuple(events), _parse_sent(b"".join(wire)), max_buffered)


def _parse_sent(wire: bytes) -> tuple[PDU, ...]:
    """What the connection sent must be whole, well-formed PDUs."""
    framer = Framer(0)
    framer.feed(wire)
    pdus = []
    while (pdu := framer.next_pdu()) is not None:
        pdus.append(pdu)
    assert framer.buffered == 0, "partial PDU sent"
    return tuple(pdus)


def check_connection(setup: str, stream: bytes, cuts: Sequence[int]) -> Outcome:
    result = feed(setup, stream, cuts)
    whole = feed(setup, stream, [])
    assert replace(result, max_buffered=0) == replace(whole, max_buffered=0), "split matters"
    assert result.max_buffered < MAX_ASSOCIATE_PDU_LENGTH + _HEADER_SIZE
    for pdu in result.sent:
        # Peer bytes alone make the provider answer with A-ABORT, or A-ASSOCIATE-RJ for an
        # unsupported protocol version (AE-6); everything else needs a local primitive.
        if isinstance(pdu, AAssociateRJ):
            assert setup == "acceptor-sta2", pdu
            assert (pdu.source, pdu.reason) == (2, 2), pdu
        else:
            assert isinstance(pdu, AAbort), pdu
            assert pdu.source in (AbortSource.SERVICE_USER, AbortSource.SERVICE_PROVIDER)
    # Bounded output: one PDU for the first fault, then in Sta13 one A-ABORT per A-ASSOCIATE-RQ
    # (AA-7, at least 74 bytes each) and one for an undecodable PDU, after which all is ignored.
    assert len(result.sent) <= 2 + len(stream) // 74, result.sent
    for event in result.events:
        if isinstance(event, Aborted):
            assert not event.detail.startswith("internal error"), event.detail
            if not event.by_peer:  # our provider gave up: it must have told the peer
                assert any(isinstance(pdu, AAbort) for pdu in result.sent), result
        if isinstance(event, AssociationRejected):
            assert setup in ("acceptor-sta2", "requestor-sta5"), event
    if result.state is State.STA13 and setup != "acceptor-sta13":
        assert result.sent, "Sta13 reached without telling the peer"
    return result


def connection_target(data: bytes) -> None:
    """First byte: which setup, and how to split; the rest: the peer's bytes."""
    if not data:
        return
    setup = SETUP_NAMES[data[0] % len(SETUP_NAMES)]
    check_connection(setup, data[1:], _cuts_from(data[0] // len(SETUP_NAMES), len(data) - 1))


# --- DIMSE command decoder -----------------------------------------------------------------


def check_command(data: bytes) -> dimse.DimseMessage | None:
    """Decode a command set; only DimseDecodeError may escape; what decodes re-encodes."""
    try:
        message = dimse.decode_command(data)
    except dimse.DimseDecodeError as exc:
        error = exc
    else:
        return _check_command_reencodes(message)
    assert str(error)
    return None


def _check_command_reencodes(message: dimse.DimseMessage) -> dimse.DimseMessage:
    assert isinstance(message, dimse._MESSAGE_TYPES)
    try:
        wire = dimse.encode_command(message)
    except LocalProtocolError:
        return message  # e.g. non-ASCII text, which decoding passes through as Latin-1
    assert dimse.decode_command(wire) == message
    return message


def dimse_target(data: bytes) -> None:
    check_command(data)


# --- P-DATA reassembly ---------------------------------------------------------------------


def parse_pdvs(data: bytes) -> list[PDV]:
    """PDVs from a compact layout: context ID, control header, 16-bit LE length, data."""
    pdvs, pos = [], 0
    while pos + 4 <= len(data):
        context_id, control = data[pos], data[pos + 1]
        size = int.from_bytes(data[pos + 2 : pos + 4], "little")
        chunk = data[pos + 4 : pos + 4 + size]
        pdvs.append(PDV(context_id, bool(control & 1), bool(control & 2), chunk))
        pos += 4 + size
    return pdvs


def pack_pdvs(pdvs: Sequence[PDV]) -> bytes:
    """The inverse of `parse_pdvs` (for seeds)."""
    out = bytearray()
    for pdv in pdvs:
        out += bytes((pdv.context_id, pdv.control_header)) + len(pdv.data).to_bytes(2, "little")
        out += pdv.data
    return bytes(out)


def check_assembler(pdvs: Sequence[PDV], *, ignore_pending: bool = False) -> list[object]:
    """Feed PDVs as a receiver does (data in a reused buffer); check what comes out.

    Returns the events, and the error last if the sequence was refused.
    """
    assembler = DimseAssembler(ignore_pending_datasets=ignore_pending)
    out: list[object] = []
    command = bytearray()
    fed_data = bytearray()
    passed_data = bytearray()
    announced: int | None = None  # context of the data set the last command announced
    scratch = bytearray(max((len(p.data) for p in pdvs), default=0))
    for pdv in pdvs:
        size = len(pdv.data)
        scratch[:size] = pdv.data
        with memoryview(scratch) as view:
            try:
                events = assembler.feed(replace(pdv, data=view[:size]))
            except RemoteProtocolError as exc:
                out.append(exc)
                return out
            for event in events:
                if isinstance(event, DataReceived):
                    passed_data += event.data
        scratch[:size] = bytes(size)  # the receiver reuses its buffer: copies must be taken
        if pdv.is_command:
            command += pdv.data
        else:
            fed_data += pdv.data
        assert len(command) <= MAX_COMMAND_SET_LENGTH
        for event in events:
            out.append(event)
            if isinstance(event, CommandReceived):
                assert announced is None, "command before the announced data set ended"
                assert event.message == _expected(bytes(command), ignore_pending)
                command.clear()
                announced = event.context_id if event.message.has_dataset else None
            else:
                assert isinstance(event, DataReceived)
                assert event.context_id == announced, "data set nobody announced"
                announced = None if event.is_last else announced
        assert assembler.awaiting_data == (announced is not None)
    assert passed_data == fed_data, "data set bytes changed on the way"
    return out


def _expected(command: bytes, ignore_pending: bool) -> dimse.DimseMessage:
    """The message a command set must give (movescu -pi drops a pending response's data set)."""
    message = dimse.decode_command(command)
    pending = category(getattr(message, "status", 0)) is StatusCategory.PENDING
    if ignore_pending and pending and isinstance(message, dimse.CMoveRSP | dimse.CGetRSP):
        message = replace(message, has_dataset=False)
    return message


def pdata_target(data: bytes) -> None:
    """First byte: `ignore_pending_datasets`; the rest: PDVs in the `parse_pdvs` layout."""
    if data:
        check_assembler(parse_pdvs(data[1:]), ignore_pending=bool(data[0] & 1))


TARGETS: dict[str, Callable[[bytes], None]] = {
    "pdu": pdu_target,
    "framer": framer_target,
    "connection": connection_target,
    "dimse": dimse_target,
    "pdata": pdata_target,
}
