"""PS3.8 §9.2: the state table itself, then every (state, event) cell driven through Connection.

The expected table below was written again from PS3.8 Table 9-10, per state (column) rather
than per event (row) as in `aiomove.proto.fsm`, so a slip in one is unlikely to be copied into
the other. PDU bytes are built by hand from PS3.8 Tables 9-11 to 9-26, not by the codec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from aiomove.errors import LocalProtocolError
from aiomove.proto.connection import DEFAULT_ARTIM_TIMEOUT, Connection, Role
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
from aiomove.proto.fsm import TRANSITIONS, Action, Event, State
from aiomove.proto.pdu import (
    PDV,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    MaximumLength,
    PresentationContextAC,
    PresentationContextRQ,
)

# --- golden table: PS3.8 Table 9-10, column by column ----------------------------------------

EXPECTED_TABLE = {
    "Sta1": "Evt1 AE-1, Evt5 AE-5",
    "Sta2": "Evt3 AA-1, Evt4 AA-1, Evt6 AE-6, Evt10 AA-1, Evt12 AA-1, Evt13 AA-1, Evt16 AA-2, "
    "Evt17 AA-5, Evt18 AA-2, Evt19 AA-1",
    "Sta3": "Evt3 AA-8, Evt4 AA-8, Evt6 AA-8, Evt7 AE-7, Evt8 AE-8, Evt10 AA-8, Evt12 AA-8, "
    "Evt13 AA-8, Evt15 AA-1, Evt16 AA-3, Evt17 AA-4, Evt19 AA-8",
    "Sta4": "Evt2 AE-2, Evt15 AA-2, Evt17 AA-4",
    "Sta5": "Evt3 AE-3, Evt4 AE-4, Evt6 AA-8, Evt10 AA-8, Evt12 AA-8, Evt13 AA-8, Evt15 AA-1, "
    "Evt16 AA-3, Evt17 AA-4, Evt19 AA-8",
    "Sta6": "Evt3 AA-8, Evt4 AA-8, Evt6 AA-8, Evt9 DT-1, Evt10 DT-2, Evt11 AR-1, Evt12 AR-2, "
    "Evt13 AA-8, Evt15 AA-1, Evt16 AA-3, Evt17 AA-4, Evt19 AA-8",
    "Sta7": "Evt3 AA-8, Evt4 AA-8, Evt6 AA-8, Evt10 AR-6, Evt12 AR-8, Evt13 AR-3, Evt15 AA-1, "
    "Evt16 AA-3, Evt17 AA-4, Evt19 AA-8",
    "Sta8": "Evt3 AA-8, Evt4 AA-8, Evt6 AA-8, Evt9 AR-7, Evt10 AA-8, Evt12 AA-8, Evt13 AA-8, "
    "Evt14 AR-4, Evt15 AA-1, Evt16 AA-3, Evt17 AA-4, Evt19 AA-8",
    "Sta9": "Evt3 AA-8, Evt4 AA-8, Evt6 AA-8, Evt10 AA-8, Evt12 AA-8, Evt13 AA-8, Evt14 AR-9, "
    "Evt15 AA-1, Evt16 AA-3, Evt17 AA-4, Evt19 AA-8",
    "Sta10": "Evt3 AA-8, Evt4 AA-8, Evt6 AA-8, Evt10 AA-8, Evt12 AA-8, Evt13 AR-10, Evt15 AA-1, "
    "Evt16 AA-3, Evt17 AA-4, Evt19 AA-8",
    "Sta11": "Evt3 AA-8, Evt4 AA-8, Evt6 AA-8, Evt10 AA-8, Evt12 AA-8, Evt13 AR-3, Evt15 AA-1, "
    "Evt16 AA-3, Evt17 AA-4, Evt19 AA-8",
    "Sta12": "Evt3 AA-8, Evt4 AA-8, Evt6 AA-8, Evt10 AA-8, Evt12 AA-8, Evt13 AA-8, Evt14 AR-4, "
    "Evt15 AA-1, Evt16 AA-3, Evt17 AA-4, Evt19 AA-8",
    "Sta13": "Evt3 AA-6, Evt4 AA-6, Evt6 AA-7, Evt10 AA-6, Evt12 AA-6, Evt13 AA-6, Evt16 AA-2, "
    "Evt17 AR-5, Evt18 AA-2, Evt19 AA-7",
}

# PS3.8 Tables 9-6 to 9-9: the next state(s) of each action.
EXPECTED_NEXT = {
    "AE-1": {4}, "AE-2": {5}, "AE-3": {6}, "AE-4": {1}, "AE-5": {2}, "AE-6": {3, 13},
    "AE-7": {6}, "AE-8": {13}, "DT-1": {6}, "DT-2": {6}, "AR-1": {7}, "AR-2": {8},
    "AR-3": {1}, "AR-4": {13}, "AR-5": {1}, "AR-6": {7}, "AR-7": {8}, "AR-8": {9, 10},
    "AR-9": {11}, "AR-10": {12}, "AA-1": {13}, "AA-2": {1}, "AA-3": {1}, "AA-4": {1},
    "AA-5": {1}, "AA-6": {13}, "AA-7": {13}, "AA-8": {13},
}  # fmt: skip


def expected_cells() -> dict[tuple[int, int], str]:
    cells = {}
    for column, text in EXPECTED_TABLE.items():
        for cell in text.split(", "):
            event, action = cell.split()
            cells[int(column.removeprefix("Sta")), int(event.removeprefix("Evt"))] = action
    return cells


def test_table_matches_ps3_8_table_9_10() -> None:
    actual = {(int(s), int(e)): a.value for (s, e), a in TRANSITIONS.items()}
    expected = expected_cells()
    assert len(expected) == 123
    assert actual == expected


def test_enumerations() -> None:
    assert [int(s) for s in State] == list(range(1, 14))
    assert [int(e) for e in Event] == list(range(1, 20))
    assert State.STA1.__doc__ == "Idle"
    assert State.STA13.description.startswith("Awaiting Transport Connection Close Indication")
    assert Event.EVT18.description == "ARTIM timer expired (Association reject/release timer)"
    labels = [f"AE-{i}" for i in range(1, 9)] + ["DT-1", "DT-2"]
    labels += [f"AR-{i}" for i in range(1, 11)] + [f"AA-{i}" for i in range(1, 9)]
    assert [a.value for a in Action] == labels
    assert {a.value: {int(s) for s in a.next_states} for a in Action} == EXPECTED_NEXT
    assert Action("AE-6") is Action.AE_6


def test_every_action_leads_where_the_table_says() -> None:
    # Each action used in the table has a next state set; AE-6 and AR-8 are the only forks.
    forks = {a for a in Action if len(a.next_states) > 1}
    assert forks == {Action.AE_6, Action.AR_8}
    assert set(TRANSITIONS.values()) == set(Action)


# --- hand-built PDUs (PS3.8 §9.3) ------------------------------------------------------------

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
APP_CONTEXT = "1.2.840.10008.3.1.1.1"


def pdu(pdu_type: int, body: bytes) -> bytes:
    """PS3.8 §9.3.1: type, reserved, 32-bit big-endian length, body."""
    return bytes([pdu_type, 0]) + len(body).to_bytes(4, "big") + body


def item(item_type: int, value: bytes) -> bytes:
    """PS3.8 §9.3.2: type, reserved, 16-bit big-endian length, value."""
    return bytes([item_type, 0]) + len(value).to_bytes(2, "big") + value


def associate_fixed(called: str, calling: str, version: int = 1) -> bytes:
    """PS3.8 Table 9-11 / 9-17 bytes 7-74."""
    return (
        version.to_bytes(2, "big")
        + b"\x00\x00"
        + called.encode().ljust(16, b" ")
        + calling.encode().ljust(16, b" ")
        + bytes(32)
    )


def user_info(max_length: int | None) -> bytes:
    """PS3.8 §9.3.2.3 with the Maximum Length sub-item of Table D.1-1."""
    sub = b"" if max_length is None else item(0x51, max_length.to_bytes(4, "big"))
    return item(0x50, sub)


def rq_bytes(max_length: int | None = 16384, version: int = 1) -> bytes:
    context = item(
        0x20,
        bytes([1, 0, 0, 0]) + item(0x30, VERIFICATION.encode()) + item(0x40, IMPLICIT_LE.encode()),
    )
    body = (
        associate_fixed("ANY-SCP", "AIOMOVE", version)
        + item(0x10, APP_CONTEXT.encode())
        + context
        + user_info(max_length)
    )
    return pdu(0x01, body)


def ac_bytes(max_length: int = 16384, context_id: int = 1) -> bytes:
    context = item(0x21, bytes([context_id, 0, 0, 0]) + item(0x40, IMPLICIT_LE.encode()))
    body = (
        associate_fixed("ANY-SCP", "AIOMOVE")
        + item(0x10, APP_CONTEXT.encode())
        + context
        + user_info(max_length)
    )
    return pdu(0x02, body)


RQ = AAssociateRQ(
    called_ae_title="ANY-SCP",
    calling_ae_title="AIOMOVE",
    presentation_contexts=(PresentationContextRQ(1, VERIFICATION, (IMPLICIT_LE,)),),
    user_information=(MaximumLength(16384),),
)
AC = AAssociateAC(
    called_ae_title="ANY-SCP",
    calling_ae_title="AIOMOVE",
    presentation_contexts=(PresentationContextAC(1, 0, IMPLICIT_LE),),
    user_information=(MaximumLength(16384),),
)
RJ = AAssociateRJ(result=1, source=1, reason=7)

RQ_BYTES = rq_bytes()
AC_BYTES = ac_bytes()
# PS3.8 Table 9-21: reserved, result 1 (permanent), source 1 (user), reason 7 (called AE).
RJ_BYTES = bytes.fromhex("03 00 00000004 00 01 01 07")
RELEASE_RQ = bytes.fromhex("05 00 00000004 00000000")  # Table 9-24
RELEASE_RP = bytes.fromhex("06 00 00000004 00000000")  # Table 9-25
# Table 9-26: reserved, reserved, source 2 (provider), reason 5 (unexpected PDU parameter).
ABORT_IN = bytes.fromhex("07 00 00000004 00 00 02 05")
# Tables 9-22/9-23: one PDV, length 4, context 1, control 03 (command, last), 2 data bytes.
PDATA_IN = bytes.fromhex("04 00 00000008 00000004 01 03 ABCD")
PDATA_OUT = bytes.fromhex("04 00 00000008 00000004 01 03 0102")
UNKNOWN_PDU = bytes.fromhex("08 00 00000004 00000000")  # PDU type 08H does not exist


def abort_bytes(source: int, reason: int) -> bytes:
    return bytes.fromhex("07 00 00000004 00 00") + bytes([source, reason])


# --- driving a Connection into each state -------------------------------------------------------

REQ, ACC = Role.REQUESTOR, Role.ACCEPTOR
ROLES_IN_STATE = {
    1: (REQ, ACC), 2: (ACC,), 3: (ACC,), 4: (REQ,), 5: (REQ,), 6: (REQ, ACC),
    7: (REQ, ACC), 8: (REQ, ACC), 9: (REQ,), 10: (ACC,), 11: (REQ,), 12: (ACC,),
    13: (REQ, ACC),
}  # fmt: skip


def drain(conn: Connection) -> tuple[list[ConnectionEvent], bytes]:
    events = []
    while (event := conn.next_event()) is not None:
        events.append(event)
    return events, b"".join(bytes(b) for b in conn.data_to_send())


def associate(conn: Connection) -> None:
    if conn.role is REQ:
        conn.request_association(RQ, 0.0)
        conn.transport_connected(0.0)
        conn.receive_data(AC_BYTES, 0.0)
    else:
        conn.transport_connected(0.0)
        conn.receive_data(RQ_BYTES, 0.0)
        conn.accept(AC, 0.0)


def reach(state: int, role: Role) -> Connection:
    """A Connection brought to `state` by real primitives and PDUs, outputs drained."""
    conn = Connection(role)
    if state in (2, 3):
        conn.transport_connected(0.0)
        if state == 3:
            conn.receive_data(RQ_BYTES, 0.0)
    elif state in (4, 5):
        conn.request_association(RQ, 0.0)
        if state == 5:
            conn.transport_connected(0.0)
    elif state >= 6:
        associate(conn)
        if state == 8:
            conn.receive_data(RELEASE_RQ, 0.0)
        elif state == 13:
            conn.abort(0.0)
        elif state >= 7:
            conn.release(0.0)
        if state in (9, 10, 11, 12):  # release collision
            conn.receive_data(RELEASE_RQ, 0.0)
        if state == 11:
            conn.release_response(0.0)
        if state == 12:
            conn.receive_data(RELEASE_RP, 0.0)
    drain(conn)
    assert conn.state == state, f"could not reach Sta{state} as {role.value}"
    return conn


NOW = 1000.0  # when the event is fired; states are reached at 0.0
PDU_INPUT = {3: AC_BYTES, 4: RJ_BYTES, 6: RQ_BYTES, 10: PDATA_IN, 12: RELEASE_RQ}
PDU_INPUT |= {13: RELEASE_RP, 16: ABORT_IN, 19: UNKNOWN_PDU}

FIRE: dict[int, Callable[[Connection], None]] = {
    1: lambda c: c.request_association(RQ, NOW),
    2: lambda c: c.transport_connected(NOW),
    5: lambda c: c.transport_connected(NOW),
    7: lambda c: c.accept(AC, NOW),
    8: lambda c: c.reject(RJ, NOW),
    9: lambda c: c.send_pdv(1, True, True, b"\x01\x02", NOW),
    11: lambda c: c.release(NOW),
    14: lambda c: c.release_response(NOW),
    15: lambda c: c.abort(NOW),
    17: lambda c: c.transport_closed(NOW),
    18: lambda c: c.handle_timeout(NOW),
}


def feeder(data: bytes) -> Callable[[Connection], None]:
    return lambda conn: conn.receive_data(data, NOW)


FIRE |= {number: feeder(data) for number, data in PDU_INPUT.items()}


# --- what each cell must do -------------------------------------------------------------------


@dataclass
class Outcome:
    state: int
    events: list[ConnectionEvent]
    sent: bytes = b""
    deadline: str = "same"  # "same", "none" or "restart" (NOW + ARTIM)


ACCEPTED = AssociationAccepted(AC)
PROVIDER = Aborted(2, 0, False, "")


def expected_outcome(state: int, event: int, role: Role, action: str) -> Outcome:
    """PS3.8 Tables 9-6 to 9-9, spelled out for the inputs above."""
    decode_reason = 1  # UNKNOWN_PDU: unrecognized-pdu (Table 9-26)
    reason = decode_reason if event == 19 else 2  # otherwise unexpected-pdu
    outcomes = {
        "AE-1": Outcome(4, []),
        "AE-2": Outcome(5, [], RQ_BYTES),
        "AE-3": Outcome(6, [ACCEPTED]),
        "AE-4": Outcome(1, [AssociationRejected(RJ)], deadline="none"),
        "AE-5": Outcome(2, [], deadline="restart"),
        "AE-6": Outcome(3, [AssociationRequested(RQ)], deadline="none"),
        "AE-7": Outcome(6, [], AC_BYTES),
        "AE-8": Outcome(13, [], RJ_BYTES, "restart"),
        "DT-1": Outcome(6, [], PDATA_OUT),
        "DT-2": Outcome(6, [PDataReceived((PDV(1, True, True, b"\xab\xcd"),))]),
        "AR-1": Outcome(7, [], RELEASE_RQ),
        "AR-2": Outcome(8, [ReleaseRequested(collision=False)]),
        "AR-3": Outcome(1, [ReleaseConfirmed()], deadline="none"),
        "AR-4": Outcome(13, [], RELEASE_RP, "restart"),
        "AR-5": Outcome(1, [], deadline="none"),
        "AR-6": Outcome(7, [PDataReceived((PDV(1, True, True, b"\xab\xcd"),))]),
        "AR-7": Outcome(8, [], PDATA_OUT),
        "AR-8": Outcome(9 if role is REQ else 10, [ReleaseRequested(collision=True)]),
        "AR-9": Outcome(11, [], RELEASE_RP),
        "AR-10": Outcome(12, [ReleaseConfirmed()]),
        # AA-1 sends a service-user A-ABORT; in Sta2 the local user is told why.
        "AA-1": Outcome(
            13, [] if event == 15 else [Aborted(0, 0, False, "")], abort_bytes(0, 0), "restart"
        ),
        "AA-2": Outcome(1, [], deadline="none"),
        "AA-3": Outcome(1, [Aborted(2, 5, True, "")], deadline="none"),
        "AA-4": Outcome(1, [PROVIDER], deadline="none"),
        "AA-5": Outcome(1, [PROVIDER], deadline="none"),
        "AA-6": Outcome(13, []),
        "AA-7": Outcome(13, [], abort_bytes(2, reason)),
        "AA-8": Outcome(13, [Aborted(2, reason, False, "")], abort_bytes(2, reason), "restart"),
    }
    outcome = outcomes[action]
    if action == "AA-2" and state == 2:  # the acceptor never got an association
        outcome.events = [Aborted(2, 5, True, "") if event == 16 else PROVIDER]
    return outcome


def comparable(events: list[ConnectionEvent]) -> list[object]:
    """Events with Aborted.detail blanked (checked separately: non-empty)."""
    out: list[object] = []
    for event in events:
        if isinstance(event, Aborted):
            assert event.detail, event
            out.append(Aborted(event.source, event.reason, event.by_peer, ""))
        else:
            out.append(event)
    return out


def cells() -> list[object]:
    params: list[object] = []
    for state in range(1, 14):
        for event in range(1, 20):
            roles = list(ROLES_IN_STATE[state])
            if event == 2:  # TRANSPORT CONNECT confirmation: requestor only
                roles = [r for r in roles if r is REQ]
            if event in (1, 5):  # A-ASSOCIATE request / connect indication start a role
                roles = [r for r in roles if r is (REQ if event == 1 else ACC)]
            name = f"Sta{state}-Evt{event}"
            for role in roles:
                params.append(pytest.param(state, event, role, id=f"{name}-{role.value}"))
            if not roles:
                params.append(pytest.param(state, event, None, id=f"{name}-unreachable"))
    return params


@pytest.mark.parametrize(("state", "event", "role"), cells())
def test_cell(state: int, event: int, role: Role | None) -> None:
    action = expected_cells().get((state, event))
    if role is None:
        # Unreachable: e.g. Sta2 exists only for an acceptor, Evt2 only for a requestor.
        assert action is None
        return
    conn = reach(state, role)
    deadline = conn.next_deadline
    if action is None:
        if event == 18:  # no ARTIM running where Evt18 is blank: a timeout does nothing
            assert deadline is None
            conn.handle_timeout(NOW)
        else:
            with pytest.raises(LocalProtocolError):
                FIRE[event](conn)
        assert conn.state == state
        assert drain(conn) == ([], b"")
        assert conn.next_deadline == deadline
        return
    FIRE[event](conn)
    outcome = expected_outcome(state, event, role, action)
    events, sent = drain(conn)
    assert conn.state == outcome.state
    assert comparable(events) == outcome.events
    assert sent == outcome.sent
    if outcome.deadline == "same":
        assert conn.next_deadline == deadline
    elif outcome.deadline == "none":
        assert conn.next_deadline is None
    else:
        assert conn.next_deadline == NOW + DEFAULT_ARTIM_TIMEOUT


def test_states_with_artim_running() -> None:
    # PS3.8 §9.2.2: only AE-5 (Sta2) and AE-6/AE-8/AR-4/AA-1/AA-8 (Sta13) start ARTIM.
    for state, roles in ROLES_IN_STATE.items():
        for role in roles:
            running = reach(state, role).next_deadline is not None
            assert running == (state in (2, 13)), (state, role)
            if running:
                assert reach(state, role).next_deadline == DEFAULT_ARTIM_TIMEOUT


def test_pdu_events_need_an_open_transport() -> None:
    for state, role in [(1, REQ), (1, ACC), (4, REQ)]:
        conn = reach(state, role)
        for data in (*PDU_INPUT.values(), b""):
            with pytest.raises(LocalProtocolError):
                conn.receive_data(data, NOW)
        assert conn.state == state


def test_receive_empty_bytes_is_evt17() -> None:
    for state, action in [(2, "AA-5"), (6, "AA-4"), (13, "AR-5")]:
        conn = reach(state, ACC)
        conn.receive_data(b"", NOW)
        assert conn.state == 1, action
        assert comparable(drain(conn)[0]) == ([] if state == 13 else [PROVIDER])


def test_artim_expiry_in_sta2_explains() -> None:
    conn = reach(2, ACC)
    conn.handle_timeout(DEFAULT_ARTIM_TIMEOUT - 0.001)
    assert conn.state == 2
    conn.handle_timeout(DEFAULT_ARTIM_TIMEOUT)
    assert conn.state == 1
    [event] = drain(conn)[0]
    assert isinstance(event, Aborted)
    assert "no A-ASSOCIATE-RQ within 30 s" in event.detail
