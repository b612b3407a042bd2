"""A sans-IO DICOM upper-layer connection: PS3.8 §9.2 driven by `aiomove.proto.fsm`.

Like h11's `Connection`, this object does no I/O and reads no clock. The shell (an anyio
task) tells it what happened - a local primitive, bytes received, the transport opening or
closing, the time - and drains what it produced: bytes to write (`data_to_send`) and
indications/confirmations for the user (`next_event`). Each input is one or more events of
PS3.8 Table 9-10; the table picks the action, the action runs here.

Rules for the shell:

* Write everything from `data_to_send()` before acting on a state change; when `state`
  becomes STA1 after the transport was up, close the transport. In STA13 keep reading until
  the peer closes (`receive_data(b"")` / `transport_closed`) or `handle_timeout` fires ARTIM.
* Call `handle_timeout(now)` when `next_deadline` passes.
* A local primitive that is not allowed in the current state (a blank cell of Table 9-10)
  raises `LocalProtocolError` and changes nothing. Whatever the peer sends never raises:
  protocol errors become A-ABORTs and `Aborted` events.
* One `Connection` serves one transport connection; make a new one for the next.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from aiomove.errors import LocalProtocolError
from aiomove.proto.codec import PDUDecodeError, encode_pdu, pdata_header
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
from aiomove.proto.framer import Framer
from aiomove.proto.fsm import TRANSITIONS, Action, Event, State
from aiomove.proto.pdu import (
    PDU,
    AAbort,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    AbortReason,
    AbortSource,
    AReleaseRP,
    AReleaseRQ,
    MaximumLength,
    PDataTF,
    PresentationContextResult,
    RejectResult,
    RejectSource,
    UserItem,
    user_item,
)

__all__ = ["DEFAULT_ARTIM_TIMEOUT", "DEFAULT_MAX_PDU_LENGTH", "Connection", "Role"]

#: The largest P-DATA-TF PDU we accept unless told otherwise (DCMTK's default, PS3.8 D.1).
DEFAULT_MAX_PDU_LENGTH = 16384
#: Seconds; PS3.8 §9.1.5 leaves the value to the implementation (DCMTK: 30 s).
DEFAULT_ARTIM_TIMEOUT = 30.0

# PS3.8 §9.3.1: every PDU starts with type (1), reserved (1) and a 32-bit length.
_MAX_PDU_FIELD = 0xFFFFFFFF
# PS3.8 §9.3.5.1: a PDV item adds its length (4), context ID (1) and control header (1).
_PDV_OVERHEAD = 6

_PDU_EVENTS: dict[type, Event] = {
    AAssociateAC: Event.EVT3,
    AAssociateRJ: Event.EVT4,
    AAssociateRQ: Event.EVT6,
    PDataTF: Event.EVT10,
    AReleaseRQ: Event.EVT12,
    AReleaseRP: Event.EVT13,
    AAbort: Event.EVT16,
}

_PDU_NAMES: dict[type, str] = {
    AAssociateAC: "A-ASSOCIATE-AC",
    AAssociateRJ: "A-ASSOCIATE-RJ",
    AAssociateRQ: "A-ASSOCIATE-RQ",
    PDataTF: "P-DATA-TF",
    AReleaseRQ: "A-RELEASE-RQ",
    AReleaseRP: "A-RELEASE-RP",
    AAbort: "A-ABORT",
}


class Role(enum.Enum):
    """Which end of the association this connection is (PS3.8 §9.2: AR-8 depends on it)."""

    REQUESTOR = "requestor"
    ACCEPTOR = "acceptor"


@dataclass(frozen=True, slots=True)
class _Trigger:
    """One occurrence of an event, with what its action needs."""

    event: Event
    now: float
    pdu: PDU | None = None
    # For Evt19 and unexpected PDUs: the A-ABORT reason and a human explanation.
    reason: int = AbortReason.UNEXPECTED_PDU
    detail: str = ""
    # Evt1/7/8: the PDU already encoded (so that encoding errors precede any change);
    # Evt9: the P-DATA-TF buffers, queued as they are.
    buffers: tuple[bytes | memoryview, ...] = ()


class Connection:
    """One end of one DICOM upper-layer association over one transport connection.

    Attributes:
        role: requestor or acceptor.
        state: the PS3.8 §9.2.1 state.
        peer_max_pdu_length: the largest P-DATA-TF variable field the peer accepts (PS3.8
            D.1), from the Maximum Length sub-item of its A-ASSOCIATE-RQ or -AC; 0 means no
            limit. Before the peer's PDU arrives it is 0. If the peer left the (mandatory,
            PS3.7 D.3.3.1) sub-item out, DEFAULT_MAX_PDU_LENGTH is assumed: a safe size any
            receiver handles, where "no limit" could overrun a peer that has one.
        request: the A-ASSOCIATE-RQ sent (requestor) or received (acceptor).
        accept_pdu: the A-ASSOCIATE-AC received (requestor) or sent (acceptor).
    """

    def __init__(
        self,
        role: Role,
        *,
        max_pdu_length: int = DEFAULT_MAX_PDU_LENGTH,
        artim_timeout: float = DEFAULT_ARTIM_TIMEOUT,
    ) -> None:
        if not 0 <= max_pdu_length <= _MAX_PDU_FIELD:
            raise ValueError(f"max_pdu_length {max_pdu_length} is not in 0..{_MAX_PDU_FIELD}")
        if artim_timeout <= 0:
            raise ValueError(f"artim_timeout must be positive, not {artim_timeout}")
        self.role = role
        self.state = State.STA1
        self.peer_max_pdu_length = 0
        self.request: AAssociateRQ | None = None
        self.accept_pdu: AAssociateAC | None = None
        self._max_pdu_length = max_pdu_length
        self._artim_timeout = artim_timeout
        self._artim_deadline: float | None = None
        self._framer = Framer(max_pdu_length)
        # Stream lost: the framer poisons itself after PDUDecodeError, but not after an
        # unexpected exception from the codec, so we keep our own flag.
        self._decode_failed = False
        self._started = False
        self._accepted_contexts: frozenset[int] = frozenset()
        self._request_bytes: tuple[bytes | memoryview, ...] = ()
        self._events: deque[ConnectionEvent] = deque()
        self._outbound: list[bytes | memoryview] = []

    def __repr__(self) -> str:
        return f"<Connection {self.role.value} {self.state.name}>"

    # --- outputs ---------------------------------------------------------------------------

    @property
    def next_deadline(self) -> float | None:
        """When the ARTIM timer expires (PS3.8 §9.1.5), or None if it is not running."""
        return self._artim_deadline

    def next_event(self) -> ConnectionEvent | None:
        """Pop the oldest event not yet returned, or None."""
        return self._events.popleft() if self._events else None

    def data_to_send(self) -> list[bytes | memoryview]:
        """Take every buffer queued for the peer, in order (for one vectored write)."""
        out, self._outbound = self._outbound, []
        return out

    # --- local primitives ------------------------------------------------------------------

    def request_association(self, rq: AAssociateRQ, now: float) -> None:
        """A-ASSOCIATE request (Evt1). AE-1: the shell then opens the transport."""
        if self.role is not Role.REQUESTOR:
            raise LocalProtocolError("only the association-requestor sends A-ASSOCIATE-RQ")
        self._check_fresh()
        self._lookup(Event.EVT1)
        rq = replace(rq, user_information=self._own_user_items(rq.user_information))
        # Encode now so that a bad request fails here, not later in transport_connected.
        self._run(_Trigger(Event.EVT1, now, pdu=rq, buffers=(encode_pdu(rq),)))

    def transport_connected(self, now: float) -> None:
        """The transport is open: Evt2 (requestor, AE-2) or Evt5 (acceptor, AE-5)."""
        if self.role is Role.REQUESTOR:
            self._fire(_Trigger(Event.EVT2, now))
        else:
            self._check_fresh()
            self._fire(_Trigger(Event.EVT5, now))

    def accept(self, ac: AAssociateAC, now: float) -> None:
        """A-ASSOCIATE response, accept (Evt7, AE-7)."""
        self._lookup(Event.EVT7)
        assert self.request is not None  # Sta3 is only reached through AE-6
        proposed = {pc.context_id for pc in self.request.presentation_contexts}
        unknown = sorted({pc.context_id for pc in ac.presentation_contexts} - proposed)
        if unknown:
            raise LocalProtocolError(f"presentation context IDs {unknown} were not proposed")
        ac = replace(ac, user_information=self._own_user_items(ac.user_information))
        self._run(_Trigger(Event.EVT7, now, pdu=ac, buffers=(encode_pdu(ac),)))

    def reject(self, rj: AAssociateRJ, now: float) -> None:
        """A-ASSOCIATE response, reject (Evt8, AE-8)."""
        self._lookup(Event.EVT8)
        self._run(_Trigger(Event.EVT8, now, pdu=rj, buffers=(encode_pdu(rj),)))

    def send_pdv(
        self,
        context_id: int,
        is_command: bool,
        is_last: bool,
        data: bytes | memoryview,
        now: float,
    ) -> None:
        """P-DATA request (Evt9): one P-DATA-TF PDU holding one PDV (PS3.8 §9.3.5).

        `data` is queued as is, not copied: do not change it until it has been written. The
        caller fragments messages so that len(data) + 6 <= peer_max_pdu_length (PS3.8 D.1).
        """
        self._lookup(Event.EVT9)
        size = data.nbytes if isinstance(data, memoryview) else len(data)
        if context_id not in self._accepted_contexts:
            raise LocalProtocolError(f"presentation context {context_id} was not accepted")
        limit = self.peer_max_pdu_length or _MAX_PDU_FIELD
        if size + _PDV_OVERHEAD > limit:
            raise LocalProtocolError(
                f"PDV of {size} bytes needs a P-DATA-TF of {size + _PDV_OVERHEAD} bytes, "
                f"more than the peer's maximum {limit}"
            )
        control = (0x01 if is_command else 0x00) | (0x02 if is_last else 0x00)
        header = pdata_header(context_id, control, size)
        buffers = (header, data) if size else (header,)
        self._run(_Trigger(Event.EVT9, now, buffers=buffers))

    def release(self, now: float) -> None:
        """A-RELEASE request (Evt11, AR-1)."""
        self._fire(_Trigger(Event.EVT11, now))

    def release_response(self, now: float) -> None:
        """A-RELEASE response (Evt14: AR-4, or AR-9 in a collision)."""
        self._fire(_Trigger(Event.EVT14, now))

    def abort(self, now: float) -> None:
        """A-ABORT request (Evt15): AA-1 sends A-ABORT (service-user source); AA-2 in Sta4."""
        self._fire(_Trigger(Event.EVT15, now))

    # --- transport and timer ---------------------------------------------------------------

    def receive_data(self, data: bytes | memoryview, now: float) -> None:
        """Bytes from the peer; b"" means the peer closed the transport (Evt17).

        Each complete PDU is one event (Evt3/4/6/10/12/13/16), or Evt19 if it cannot be
        decoded or is invalid where it arrives. After a decode error the rest of the stream
        is ignored: PDU boundaries are lost.
        """
        if self.state in (State.STA1, State.STA4):
            raise LocalProtocolError(f"no open transport connection in {self.state.name}")
        if len(data) == 0:
            self._fire(_Trigger(Event.EVT17, now))
            return
        if self._decode_failed:
            return
        self._framer.feed(data)
        while not self._ended() and not self._decode_failed:
            trigger = self._next_pdu_trigger(now)
            if trigger is None:
                return
            self._fire(trigger)

    def transport_closed(self, now: float) -> None:
        """The transport closed (Evt17), or failed to open (Sta4)."""
        self._fire(_Trigger(Event.EVT17, now))

    def handle_timeout(self, now: float) -> None:
        """Fire Evt18 if the ARTIM timer has expired at `now`; otherwise do nothing."""
        if self._artim_deadline is not None and now >= self._artim_deadline:
            self._fire(_Trigger(Event.EVT18, now))

    # --- table driving ---------------------------------------------------------------------

    def _lookup(self, event: Event) -> Action:
        action = TRANSITIONS.get((self.state, event))
        if action is None:
            raise LocalProtocolError(
                f"{event.description} (Evt{event.value}) is not allowed in "
                f"Sta{self.state.value} ({self.state.description})"
            )
        return action

    def _fire(self, trigger: _Trigger) -> None:
        self._lookup(trigger.event)
        self._run(trigger)

    def _run(self, trigger: _Trigger) -> None:
        action = TRANSITIONS[self.state, trigger.event]
        next_state = _ACTIONS[action](self, trigger)
        assert next_state in action.next_states, (action, next_state)
        self.state = next_state

    def _ended(self) -> bool:
        return self.state is State.STA1

    def _check_fresh(self) -> None:
        if self._started:
            raise LocalProtocolError("this connection has ended; use a new Connection")

    def _next_pdu_trigger(self, now: float) -> _Trigger | None:
        try:
            pdu = self._framer.next_pdu()
        except PDUDecodeError as exc:
            self._decode_failed = True
            return _Trigger(Event.EVT19, now, reason=exc.reason, detail=str(exc))
        except Exception as exc:  # a codec bug must not escape to the shell either
            self._decode_failed = True
            detail = f"internal error decoding a PDU: {exc!r}"
            return _Trigger(Event.EVT19, now, reason=AbortReason.NOT_SPECIFIED, detail=detail)
        if pdu is None:
            return None
        problem = self._invalid_here(pdu)
        if problem:
            return _Trigger(Event.EVT19, now, pdu, AbortReason.INVALID_PDU_PARAMETER_VALUE, problem)
        name = _PDU_NAMES[type(pdu)]
        detail = f"unexpected {name} PDU in Sta{self.state.value} ({self.state.description})"
        return _Trigger(_PDU_EVENTS[type(pdu)], now, pdu, detail=detail)

    def _invalid_here(self, pdu: PDU) -> str:
        """Why a well-formed PDU is invalid in this state ("" if it is not): Evt19."""
        if isinstance(pdu, AAssociateAC) and self.state is State.STA5:
            assert self.request is not None
            proposed = {pc.context_id for pc in self.request.presentation_contexts}
            unknown = sorted({pc.context_id for pc in pdu.presentation_contexts} - proposed)
            if unknown:
                return f"A-ASSOCIATE-AC answers presentation context IDs {unknown} not proposed"
        if isinstance(pdu, PDataTF) and self.state in (State.STA6, State.STA7):
            bad = sorted({v.context_id for v in pdu.pdvs} - self._accepted_contexts)
            if bad:
                return f"P-DATA-TF uses presentation context IDs {bad} that were not accepted"
        return ""

    # --- helpers for the actions -----------------------------------------------------------

    def _own_user_items(self, items: tuple[UserItem, ...]) -> tuple[UserItem, ...]:
        """Announce our max_pdu_length (PS3.7 D.3.3.1 makes the sub-item mandatory)."""
        given = user_item(items, MaximumLength)
        if given is None:
            return (MaximumLength(self._max_pdu_length), *items)
        if given.maximum_length != self._max_pdu_length:
            raise LocalProtocolError(
                f"Maximum Length sub-item {given.maximum_length} differs from this "
                f"connection's max_pdu_length {self._max_pdu_length}"
            )
        return items

    def _learn_peer(self, items: tuple[UserItem, ...]) -> None:
        given = user_item(items, MaximumLength)
        self.peer_max_pdu_length = DEFAULT_MAX_PDU_LENGTH if given is None else given.maximum_length

    def _set_accepted(self, ac: AAssociateAC) -> None:
        self.accept_pdu = ac
        self._accepted_contexts = frozenset(
            pc.context_id
            for pc in ac.presentation_contexts
            if pc.result == PresentationContextResult.ACCEPTANCE
        )

    def _send(self, pdu: PDU) -> None:
        self._outbound.append(encode_pdu(pdu))

    def _start_artim(self, now: float) -> None:
        self._artim_deadline = now + self._artim_timeout

    def _stop_artim(self) -> None:
        self._artim_deadline = None

    def _emit(self, event: ConnectionEvent) -> None:
        self._events.append(event)

    # --- PS3.8 Table 9-6: association establishment ----------------------------------------

    def _ae_1(self, t: _Trigger) -> State:
        assert isinstance(t.pdu, AAssociateRQ)
        self._started = True
        self.request = t.pdu
        self._request_bytes = t.buffers
        return State.STA4

    def _ae_2(self, t: _Trigger) -> State:
        self._outbound.extend(self._request_bytes)
        return State.STA5

    def _ae_3(self, t: _Trigger) -> State:
        assert isinstance(t.pdu, AAssociateAC)
        self._set_accepted(t.pdu)
        self._learn_peer(t.pdu.user_information)
        self._emit(AssociationAccepted(t.pdu))
        return State.STA6

    def _ae_4(self, t: _Trigger) -> State:
        assert isinstance(t.pdu, AAssociateRJ)
        self._emit(AssociationRejected(t.pdu))
        return State.STA1

    def _ae_5(self, t: _Trigger) -> State:
        self._started = True
        self._start_artim(t.now)
        return State.STA2

    def _ae_6(self, t: _Trigger) -> State:
        assert isinstance(t.pdu, AAssociateRQ)
        self._stop_artim()
        self.request = t.pdu
        self._learn_peer(t.pdu.user_information)
        # PS3.8 §9.3.2: a version-1 receiver only tests bit 0 of Protocol-version.
        if t.pdu.protocol_version & 0x0001:
            self._emit(AssociationRequested(t.pdu))
            return State.STA3
        rj = AAssociateRJ(
            result=RejectResult.PERMANENT,
            source=RejectSource.SERVICE_PROVIDER_ACSE,
            reason=2,  # PS3.8 Table 9-21: protocol-version-not-supported
        )
        self._send(rj)
        self._emit(AssociationRejected(rj))
        self._start_artim(t.now)
        return State.STA13

    def _ae_7(self, t: _Trigger) -> State:
        assert isinstance(t.pdu, AAssociateAC)
        self._outbound.extend(t.buffers)
        self._set_accepted(t.pdu)
        return State.STA6

    def _ae_8(self, t: _Trigger) -> State:
        self._outbound.extend(t.buffers)
        self._start_artim(t.now)
        return State.STA13

    # --- Table 9-7: data transfer ----------------------------------------------------------

    def _dt_1(self, t: _Trigger) -> State:
        self._outbound.extend(t.buffers)
        return State.STA6

    def _dt_2(self, t: _Trigger) -> State:
        assert isinstance(t.pdu, PDataTF)
        self._emit(PDataReceived(t.pdu.pdvs))
        return State.STA6

    # --- Table 9-8: association release ----------------------------------------------------

    def _ar_1(self, t: _Trigger) -> State:
        self._send(AReleaseRQ())
        return State.STA7

    def _ar_2(self, t: _Trigger) -> State:
        self._emit(ReleaseRequested(collision=False))
        return State.STA8

    def _ar_3(self, t: _Trigger) -> State:
        self._emit(ReleaseConfirmed())
        return State.STA1

    def _ar_4(self, t: _Trigger) -> State:
        self._send(AReleaseRP())
        self._start_artim(t.now)
        return State.STA13

    def _ar_5(self, t: _Trigger) -> State:
        self._stop_artim()
        return State.STA1

    def _ar_6(self, t: _Trigger) -> State:
        assert isinstance(t.pdu, PDataTF)
        self._emit(PDataReceived(t.pdu.pdvs))
        return State.STA7

    def _ar_7(self, t: _Trigger) -> State:
        self._outbound.extend(t.buffers)
        return State.STA8

    def _ar_8(self, t: _Trigger) -> State:
        self._emit(ReleaseRequested(collision=True))
        return State.STA9 if self.role is Role.REQUESTOR else State.STA10

    def _ar_9(self, t: _Trigger) -> State:
        self._send(AReleaseRP())
        return State.STA11

    def _ar_10(self, t: _Trigger) -> State:
        self._emit(ReleaseConfirmed())
        return State.STA12

    # --- Table 9-9: association abort ------------------------------------------------------

    def _aa_1(self, t: _Trigger) -> State:
        abort = AAbort(AbortSource.SERVICE_USER, AbortReason.NOT_SPECIFIED)
        self._send(abort)
        self._start_artim(t.now)
        if t.event is not Event.EVT15:
            # Sta2: the peer sent something other than A-ASSOCIATE-RQ; the local user hears.
            self._emit(Aborted(abort.source, abort.reason, False, t.detail))
        return State.STA13

    def _aa_2(self, t: _Trigger) -> State:
        self._stop_artim()
        if self.state is State.STA2:  # the association never started; say why it ends
            if isinstance(t.pdu, AAbort):
                detail = "peer sent A-ABORT before A-ASSOCIATE-RQ"
                self._emit(Aborted(t.pdu.source, t.pdu.reason, True, detail))
            else:
                detail = f"no A-ASSOCIATE-RQ within {self._artim_timeout:g} s (ARTIM)"
                self._emit(self._provider_abort(detail))
        return State.STA1

    def _aa_3(self, t: _Trigger) -> State:
        assert isinstance(t.pdu, AAbort)
        who = "service-user" if t.pdu.source == AbortSource.SERVICE_USER else "service-provider"
        detail = f"peer sent A-ABORT ({who} source, reason {t.pdu.reason})"
        self._emit(Aborted(t.pdu.source, t.pdu.reason, True, detail))
        return State.STA1

    def _aa_4(self, t: _Trigger) -> State:
        if self.state is State.STA4:
            detail = "transport connection could not be opened"
        else:
            detail = f"transport connection closed in Sta{self.state.value}"
        self._emit(self._provider_abort(detail))
        return State.STA1

    def _aa_5(self, t: _Trigger) -> State:
        self._stop_artim()
        self._emit(self._provider_abort("transport connection closed before A-ASSOCIATE-RQ"))
        return State.STA1

    def _aa_6(self, t: _Trigger) -> State:
        return State.STA13

    def _aa_7(self, t: _Trigger) -> State:
        self._send(AAbort(AbortSource.SERVICE_PROVIDER, t.reason))
        return State.STA13

    def _aa_8(self, t: _Trigger) -> State:
        self._send(AAbort(AbortSource.SERVICE_PROVIDER, t.reason))
        self._emit(Aborted(AbortSource.SERVICE_PROVIDER, t.reason, False, t.detail))
        self._start_artim(t.now)
        return State.STA13

    @staticmethod
    def _provider_abort(detail: str) -> Aborted:
        return Aborted(AbortSource.SERVICE_PROVIDER, AbortReason.NOT_SPECIFIED, False, detail)


_ACTIONS: dict[Action, Callable[[Connection, _Trigger], State]] = {
    Action.AE_1: Connection._ae_1,
    Action.AE_2: Connection._ae_2,
    Action.AE_3: Connection._ae_3,
    Action.AE_4: Connection._ae_4,
    Action.AE_5: Connection._ae_5,
    Action.AE_6: Connection._ae_6,
    Action.AE_7: Connection._ae_7,
    Action.AE_8: Connection._ae_8,
    Action.DT_1: Connection._dt_1,
    Action.DT_2: Connection._dt_2,
    Action.AR_1: Connection._ar_1,
    Action.AR_2: Connection._ar_2,
    Action.AR_3: Connection._ar_3,
    Action.AR_4: Connection._ar_4,
    Action.AR_5: Connection._ar_5,
    Action.AR_6: Connection._ar_6,
    Action.AR_7: Connection._ar_7,
    Action.AR_8: Connection._ar_8,
    Action.AR_9: Connection._ar_9,
    Action.AR_10: Connection._ar_10,
    Action.AA_1: Connection._aa_1,
    Action.AA_2: Connection._aa_2,
    Action.AA_3: Connection._aa_3,
    Action.AA_4: Connection._aa_4,
    Action.AA_5: Connection._aa_5,
    Action.AA_6: Connection._aa_6,
    Action.AA_7: Connection._aa_7,
    Action.AA_8: Connection._aa_8,
}
assert set(_ACTIONS) == set(Action)
