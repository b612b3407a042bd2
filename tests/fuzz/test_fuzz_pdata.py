"""Fuzzing P-DATA reassembly: any PDV sequence gives valid DIMSE events or a
`RemoteProtocolError`; data set bytes pass unchanged; command sets stay bounded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiomove.errors import RemoteProtocolError
from aiomove.proto import dimse
from aiomove.proto.pdata import (
    MAX_COMMAND_SET_LENGTH,
    CommandReceived,
    DataReceived,
    DimseAssembler,
    DimseProtocolError,
    fragment,
)
from aiomove.proto.pdu import PDV
from tests.proto.test_dimse import ECHO_RQ, MOVE_RSP, STORE_RQ

from .targets import check_assembler

PENDING_MOVE_RSP = dimse.encode_command(
    dimse.CMoveRSP(message_id_being_responded_to=1, status=0xFF00, has_dataset=True)
)
COMMANDS = [ECHO_RQ, STORE_RQ, MOVE_RSP, PENDING_MOVE_RSP]


@st.composite
def messages(draw: st.DrawFn) -> list[PDV]:
    """One valid DIMSE message (its data set if announced), fragmented at random sizes."""
    command = draw(st.sampled_from(COMMANDS))
    context_id = draw(st.sampled_from([1, 3]))
    pdvs = list(fragment(context_id, command, is_command=True, max_pdu_length=draw(SIZES)))
    if dimse.decode_command(command).has_dataset:
        data = draw(st.binary(max_size=60))
        pdvs += fragment(context_id, data, is_command=False, max_pdu_length=draw(SIZES))
    return [PDV(p.context_id, p.is_command, p.is_last, bytes(p.data)) for p in pdvs]


SIZES = st.integers(7, 80)


@st.composite
def damaged(draw: st.DrawFn, pdvs: list[PDV]) -> list[PDV]:
    """Wrong context IDs, flags out of order or missing, PDVs dropped, repeated or moved."""
    out = list(pdvs)
    for _ in range(draw(st.integers(1, 3))):
        if not out:
            break
        i = draw(st.integers(0, len(out) - 1))
        pdv = out[i]
        kind = draw(st.sampled_from(["context", "command", "last", "drop", "repeat", "move"]))
        if kind == "context":
            out[i] = PDV(draw(st.integers(0, 255)), pdv.is_command, pdv.is_last, pdv.data)
        elif kind == "command":
            out[i] = PDV(pdv.context_id, not pdv.is_command, pdv.is_last, pdv.data)
        elif kind == "last":
            out[i] = PDV(pdv.context_id, pdv.is_command, not pdv.is_last, pdv.data)
        elif kind == "drop":
            del out[i]
        elif kind == "repeat":
            out.insert(i, pdv)
        else:
            out.insert(draw(st.integers(0, len(out))), out.pop(i))
    return out


ARBITRARY_PDVS = st.builds(
    PDV,
    st.sampled_from([1, 3]) | st.integers(0, 255),
    st.booleans(),
    st.booleans(),
    st.binary(max_size=40) | st.sampled_from(COMMANDS),
)


@settings(max_examples=200)
@given(st.lists(ARBITRARY_PDVS, max_size=8), st.booleans())
def test_arbitrary_pdv_sequences(pdvs: list[PDV], ignore_pending: bool) -> None:
    check_assembler(pdvs, ignore_pending=ignore_pending)


@settings(max_examples=200)
@given(st.lists(messages(), min_size=1, max_size=3))
def test_valid_message_sequences(sequence: list[list[PDV]]) -> None:
    # (With ignore_pending_datasets, the data set of a pending C-MOVE-RSP would be an error.)
    pdvs = [pdv for message in sequence for pdv in message]
    out = check_assembler(pdvs)
    assert not any(isinstance(event, Exception) for event in out)
    commands = [e for e in out if isinstance(e, CommandReceived)]
    assert len(commands) == len(sequence)


@settings(max_examples=300)
@given(st.lists(messages(), min_size=1, max_size=3).flatmap(
    lambda seq: damaged([pdv for message in seq for pdv in message])
), st.booleans())  # fmt: skip
def test_damaged_message_sequences(pdvs: list[PDV], ignore_pending: bool) -> None:
    check_assembler(pdvs, ignore_pending=ignore_pending)


def test_endless_command_set_is_refused_at_the_bound() -> None:
    assembler = DimseAssembler()
    fed, step = 0, 4096 + 6  # each fragment counts with its PDV item header
    while fed + step <= MAX_COMMAND_SET_LENGTH:
        assert assembler.feed(PDV(1, True, False, bytes(4096))) == []
        fed += step
    with pytest.raises(DimseProtocolError, match="longer than"):
        assembler.feed(PDV(1, True, False, bytes(4096)))


def test_errors_are_the_documented_ones() -> None:
    """The error types the fuzz contract accepts are the peer's fault, not ours."""
    assert issubclass(DimseProtocolError, RemoteProtocolError)
    assert issubclass(dimse.DimseDecodeError, RemoteProtocolError)
    out = check_assembler([PDV(1, True, True, b"garbage")])
    assert isinstance(out[-1], dimse.DimseDecodeError)
    out = check_assembler([PDV(1, False, True, b"data")])
    assert isinstance(out[-1], DimseProtocolError)
    out = check_assembler([*fragment(1, STORE_RQ, is_command=True, max_pdu_length=0)])
    [event] = out
    assert isinstance(event, CommandReceived)
    assert event.message.has_dataset
    out = check_assembler([PDV(1, True, True, STORE_RQ), PDV(1, False, True, b"x")])
    assert isinstance(out[-1], DataReceived)
    assert out[-1].is_last
