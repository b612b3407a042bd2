"""The DICOM upper-layer state machine of PS3.8 §9.2, as data.

`State` (Tables 9-1..9-5), `Event` (the rows of Table 9-10), `Action` (Tables 9-6..9-9, each
with its possible next states) and `TRANSITIONS`, which is Table 9-10 cell by cell: a
`(state, event)` pair that is absent is a blank cell, i.e. an event that cannot happen there.
`aiomove.proto.connection` runs this table; nothing here performs an action.

The table was checked cell by cell against PS3.8 Table 9-10 as reproduced by pynetdicom 3
(`pynetdicom/fsm.py` TRANSITION_TABLE) and DCMTK (`dcmnet/libsrc/dulfsm.cc` StateTable); they
agree with each other and with this table except where noted below:

* DCMTK adds Evt18 (ARTIM expiry) actions in Sta5 and Sta7 (`AA_2T`, "not per the standard",
  as their comment says): a local answer timeout. Here those cells stay blank; the layer above
  owns the ACSE timeout (PS3.8 §9.1.5 note: ARTIM is not meant to oversee establishment or
  release).
* Old DCMTK (1999) had AE-4 for Evt6 (A-ASSOCIATE-RQ PDU) in Sta5; later DCMTK, pynetdicom and
  the standard have AA-8.
* Evt18 in Sta13 is AA-2 (stop ARTIM, close the transport) in all sources, not AR-5 (which is
  Evt17 in Sta13). Both lead to Sta1 with ARTIM stopped.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["TRANSITIONS", "Action", "Event", "State"]


class State(enum.IntEnum):
    """PS3.8 Tables 9-1 to 9-5; `description` (and `__doc__`) is the standard's definition."""

    STA1 = 1
    STA2 = 2
    STA3 = 3
    STA4 = 4
    STA5 = 5
    STA6 = 6
    STA7 = 7
    STA8 = 8
    STA9 = 9
    STA10 = 10
    STA11 = 11
    STA12 = 12
    STA13 = 13

    @property
    def description(self) -> str:
        return _STATE_TEXT[self]


_STATE_TEXT = {
    State.STA1: "Idle",
    State.STA2: "Transport connection open (Awaiting A-ASSOCIATE-RQ PDU)",
    State.STA3: "Awaiting local A-ASSOCIATE response primitive (from local user)",
    State.STA4: "Awaiting transport connection opening to complete (from local transport service)",
    State.STA5: "Awaiting A-ASSOCIATE-AC or A-ASSOCIATE-RJ PDU",
    State.STA6: "Association established and ready for data transfer",
    State.STA7: "Awaiting A-RELEASE-RP PDU",
    State.STA8: "Awaiting local A-RELEASE response primitive (from local user)",
    State.STA9: "Release collision requestor side; awaiting A-RELEASE response (from local user)",
    State.STA10: "Release collision acceptor side; awaiting A-RELEASE-RP PDU",
    State.STA11: "Release collision requestor side; awaiting A-RELEASE-RP PDU",
    State.STA12: "Release collision acceptor side; awaiting A-RELEASE response primitive (from "
    "local user)",
    State.STA13: "Awaiting Transport Connection Close Indication (Association no longer exists)",
}


class Event(enum.IntEnum):
    """The events (rows) of PS3.8 Table 9-10; `description` (and `__doc__`) is its text."""

    EVT1 = 1
    EVT2 = 2
    EVT3 = 3
    EVT4 = 4
    EVT5 = 5
    EVT6 = 6
    EVT7 = 7
    EVT8 = 8
    EVT9 = 9
    EVT10 = 10
    EVT11 = 11
    EVT12 = 12
    EVT13 = 13
    EVT14 = 14
    EVT15 = 15
    EVT16 = 16
    EVT17 = 17
    EVT18 = 18
    EVT19 = 19

    @property
    def description(self) -> str:
        return _EVENT_TEXT[self]


_EVENT_TEXT = {
    Event.EVT1: "A-ASSOCIATE Request (local user)",
    Event.EVT2: "Transport Conn. Confirm (local transport service)",
    Event.EVT3: "A-ASSOCIATE-AC PDU (received on transport connection)",
    Event.EVT4: "A-ASSOCIATE-RJ PDU (received on transport connection)",
    Event.EVT5: "Transport connection indication (local transport service)",
    Event.EVT6: "A-ASSOCIATE-RQ PDU (received on transport connection)",
    Event.EVT7: "A-ASSOCIATE response primitive (accept)",
    Event.EVT8: "A-ASSOCIATE response primitive (reject)",
    Event.EVT9: "P-DATA request primitive",
    Event.EVT10: "P-DATA-TF PDU",
    Event.EVT11: "A-RELEASE Request primitive",
    Event.EVT12: "A-RELEASE-RQ PDU (received on open transport connection)",
    Event.EVT13: "A-RELEASE-RP PDU (received on transport connection)",
    Event.EVT14: "A-RELEASE Response primitive",
    Event.EVT15: "A-ABORT Request primitive",
    Event.EVT16: "A-ABORT PDU (received on open transport connection)",
    Event.EVT17: "Transport connection closed indication (local transport service)",
    Event.EVT18: "ARTIM timer expired (Association reject/release timer)",
    Event.EVT19: "Unrecognized or invalid PDU received",
}


class Action(enum.Enum):
    """PS3.8 Tables 9-6 to 9-9. The value is the standard's label ("AE-1").

    `next_states` lists where the action can lead: one state, except AE-6 (Sta3 if the
    service-provider finds the request acceptable, else Sta13) and AR-8 (Sta9 for the
    association-requestor, Sta10 for the acceptor).
    """

    AE_1 = "AE-1"
    AE_2 = "AE-2"
    AE_3 = "AE-3"
    AE_4 = "AE-4"
    AE_5 = "AE-5"
    AE_6 = "AE-6"
    AE_7 = "AE-7"
    AE_8 = "AE-8"
    DT_1 = "DT-1"
    DT_2 = "DT-2"
    AR_1 = "AR-1"
    AR_2 = "AR-2"
    AR_3 = "AR-3"
    AR_4 = "AR-4"
    AR_5 = "AR-5"
    AR_6 = "AR-6"
    AR_7 = "AR-7"
    AR_8 = "AR-8"
    AR_9 = "AR-9"
    AR_10 = "AR-10"
    AA_1 = "AA-1"
    AA_2 = "AA-2"
    AA_3 = "AA-3"
    AA_4 = "AA-4"
    AA_5 = "AA-5"
    AA_6 = "AA-6"
    AA_7 = "AA-7"
    AA_8 = "AA-8"

    @property
    def description(self) -> str:
        return _ACTION_TEXT[self][0]

    @property
    def next_states(self) -> tuple[State, ...]:
        return _ACTION_TEXT[self][1]


_S = State
_ACTION_TEXT: dict[Action, tuple[str, tuple[State, ...]]] = {
    # Table 9-6: association establishment.
    Action.AE_1: (
        "Issue TRANSPORT CONNECT request primitive to local transport service",
        (_S.STA4,),
    ),
    Action.AE_2: ("Send A-ASSOCIATE-RQ-PDU", (_S.STA5,)),
    Action.AE_3: ("Issue A-ASSOCIATE confirmation (accept) primitive", (_S.STA6,)),
    Action.AE_4: (
        "Issue A-ASSOCIATE confirmation (reject) primitive and close transport connection",
        (_S.STA1,),
    ),
    Action.AE_5: ("Issue Transport connection response primitive; start ARTIM timer", (_S.STA2,)),
    Action.AE_6: (
        "Stop ARTIM timer and if A-ASSOCIATE-RQ acceptable by service-provider: issue "
        "A-ASSOCIATE indication primitive (Sta3); otherwise issue A-ASSOCIATE-RJ-PDU and start "
        "ARTIM timer (Sta13)",
        (_S.STA3, _S.STA13),
    ),
    Action.AE_7: ("Send A-ASSOCIATE-AC PDU", (_S.STA6,)),
    Action.AE_8: ("Send A-ASSOCIATE-RJ PDU and start ARTIM timer", (_S.STA13,)),
    # Table 9-7: data transfer.
    Action.DT_1: ("Send P-DATA-TF PDU", (_S.STA6,)),
    Action.DT_2: ("Send P-DATA indication primitive", (_S.STA6,)),
    # Table 9-8: association release.
    Action.AR_1: ("Send A-RELEASE-RQ PDU", (_S.STA7,)),
    Action.AR_2: ("Issue A-RELEASE indication primitive", (_S.STA8,)),
    Action.AR_3: (
        "Issue A-RELEASE confirmation primitive, and close transport connection",
        (_S.STA1,),
    ),
    Action.AR_4: ("Issue A-RELEASE-RP PDU and start ARTIM timer", (_S.STA13,)),
    Action.AR_5: ("Stop ARTIM timer", (_S.STA1,)),
    Action.AR_6: ("Issue P-DATA indication", (_S.STA7,)),
    Action.AR_7: ("Issue P-DATA-TF PDU", (_S.STA8,)),
    Action.AR_8: (
        "Issue A-RELEASE indication (release collision): if association-requestor, next state "
        "is Sta9; if not, next state is Sta10",
        (_S.STA9, _S.STA10),
    ),
    Action.AR_9: ("Send A-RELEASE-RP PDU", (_S.STA11,)),
    Action.AR_10: ("Issue A-RELEASE confirmation primitive", (_S.STA12,)),
    # Table 9-9: association abort.
    Action.AA_1: (
        "Send A-ABORT PDU (service-user source) and start (or restart if already started) "
        "ARTIM timer",
        (_S.STA13,),
    ),
    Action.AA_2: ("Stop ARTIM timer if running. Close transport connection", (_S.STA1,)),
    Action.AA_3: (
        "If (service-user initiated abort): issue A-ABORT indication and close transport "
        "connection; otherwise (service-provider initiated abort): issue A-P-ABORT indication "
        "and close transport connection",
        (_S.STA1,),
    ),
    Action.AA_4: ("Issue A-P-ABORT indication primitive", (_S.STA1,)),
    Action.AA_5: ("Stop ARTIM timer", (_S.STA1,)),
    Action.AA_6: ("Ignore PDU", (_S.STA13,)),
    Action.AA_7: ("Send A-ABORT PDU", (_S.STA13,)),
    Action.AA_8: (
        "Send A-ABORT PDU (service-provider source), issue an A-P-ABORT indication, and start "
        "ARTIM timer",
        (_S.STA13,),
    ),
}

# `help(State.STA2)` and friends show the standard's words.
for _member, _text in [*_STATE_TEXT.items(), *_EVENT_TEXT.items()]:
    _member.__doc__ = _text
for _action, (_text, _) in _ACTION_TEXT.items():
    _action.__doc__ = _text
del _member, _action, _text

_A = Action
__: None = None  # a blank cell

# PS3.8 Table 9-10, one row per event, one column per state (Sta1 .. Sta13); `__` = blank cell.
# fmt: off
_TABLE: dict[Event, tuple[Action | None, ...]] = {
    #             Sta1      Sta2      Sta3      Sta4      Sta5      Sta6      Sta7
    #             Sta8      Sta9      Sta10     Sta11     Sta12     Sta13
    Event.EVT1:  (_A.AE_1,  __,       __,       __,       __,       __,       __,
                  __,       __,       __,       __,       __,       __),
    Event.EVT2:  (__,       __,       __,       _A.AE_2,  __,       __,       __,
                  __,       __,       __,       __,       __,       __),
    Event.EVT3:  (__,       _A.AA_1,  _A.AA_8,  __,       _A.AE_3,  _A.AA_8,  _A.AA_8,
                  _A.AA_8,  _A.AA_8,  _A.AA_8,  _A.AA_8,  _A.AA_8,  _A.AA_6),
    Event.EVT4:  (__,       _A.AA_1,  _A.AA_8,  __,       _A.AE_4,  _A.AA_8,  _A.AA_8,
                  _A.AA_8,  _A.AA_8,  _A.AA_8,  _A.AA_8,  _A.AA_8,  _A.AA_6),
    Event.EVT5:  (_A.AE_5,  __,       __,       __,       __,       __,       __,
                  __,       __,       __,       __,       __,       __),
    Event.EVT6:  (__,       _A.AE_6,  _A.AA_8,  __,       _A.AA_8,  _A.AA_8,  _A.AA_8,
                  _A.AA_8,  _A.AA_8,  _A.AA_8,  _A.AA_8,  _A.AA_8,  _A.AA_7),
    Event.EVT7:  (__,       __,       _A.AE_7,  __,       __,       __,       __,
                  __,       __,       __,       __,       __,       __),
    Event.EVT8:  (__,       __,       _A.AE_8,  __,       __,       __,       __,
                  __,       __,       __,       __,       __,       __),
    Event.EVT9:  (__,       __,       __,       __,       __,       _A.DT_1,  __,
                  _A.AR_7,  __,       __,       __,       __,       __),
    Event.EVT10: (__,       _A.AA_1,  _A.AA_8,  __,       _A.AA_8,  _A.DT_2,  _A.AR_6,
                  _A.AA_8,  _A.AA_8,  _A.AA_8,  _A.AA_8,  _A.AA_8,  _A.AA_6),
    Event.EVT11: (__,       __,       __,       __,       __,       _A.AR_1,  __,
                  __,       __,       __,       __,       __,       __),
    Event.EVT12: (__,       _A.AA_1,  _A.AA_8,  __,       _A.AA_8,  _A.AR_2,  _A.AR_8,
                  _A.AA_8,  _A.AA_8,  _A.AA_8,  _A.AA_8,  _A.AA_8,  _A.AA_6),
    Event.EVT13: (__,       _A.AA_1,  _A.AA_8,  __,       _A.AA_8,  _A.AA_8,  _A.AR_3,
                  _A.AA_8,  _A.AA_8,  _A.AR_10, _A.AR_3,  _A.AA_8,  _A.AA_6),
    Event.EVT14: (__,       __,       __,       __,       __,       __,       __,
                  _A.AR_4,  _A.AR_9,  __,       __,       _A.AR_4,  __),
    Event.EVT15: (__,       __,       _A.AA_1,  _A.AA_2,  _A.AA_1,  _A.AA_1,  _A.AA_1,
                  _A.AA_1,  _A.AA_1,  _A.AA_1,  _A.AA_1,  _A.AA_1,  __),
    Event.EVT16: (__,       _A.AA_2,  _A.AA_3,  __,       _A.AA_3,  _A.AA_3,  _A.AA_3,
                  _A.AA_3,  _A.AA_3,  _A.AA_3,  _A.AA_3,  _A.AA_3,  _A.AA_2),
    Event.EVT17: (__,       _A.AA_5,  _A.AA_4,  _A.AA_4,  _A.AA_4,  _A.AA_4,  _A.AA_4,
                  _A.AA_4,  _A.AA_4,  _A.AA_4,  _A.AA_4,  _A.AA_4,  _A.AR_5),
    Event.EVT18: (__,       _A.AA_2,  __,       __,       __,       __,       __,
                  __,       __,       __,       __,       __,       _A.AA_2),
    Event.EVT19: (__,       _A.AA_1,  _A.AA_8,  __,       _A.AA_8,  _A.AA_8,  _A.AA_8,
                  _A.AA_8,  _A.AA_8,  _A.AA_8,  _A.AA_8,  _A.AA_8,  _A.AA_7),
}
# fmt: on


def _build() -> Mapping[tuple[State, Event], Action]:
    cells: dict[tuple[State, Event], Action] = {}
    for event, row in _TABLE.items():
        assert len(row) == len(State), f"{event.name} row has {len(row)} cells"
        for state, action in zip(State, row, strict=True):
            if action is not None:
                cells[state, event] = action
    return MappingProxyType(cells)


#: PS3.8 Table 9-10: (current state, event) -> action. Blank cells are absent.
TRANSITIONS: Mapping[tuple[State, Event], Action] = _build()
