"""Fuzzing the PS3.8 state machine: a Connection, in each role and reachable state, fed
arbitrary or damaged peer bytes never raises, and answers a fault with A-ABORT."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiomove.proto.codec import encode_pdu
from aiomove.proto.events import Aborted
from aiomove.proto.fsm import State
from aiomove.proto.pdu import PDV, AAbort, AbortReason, AbortSource, PDataTF, PDUType
from tests.proto.strategies import pdus
from tests.proto.test_codec import PDU_GOLDENS

from .mutations import cuts, lying_lengths, mutated
from .targets import SETUP_NAMES, check_connection, feed

GOLDEN_WIRES = [wire for _, wire, _ in PDU_GOLDENS]
# P-DATA-TF on the accepted context 1, so that damage hits an association in use.
ECHO_PDATA = encode_pdu(PDataTF((PDV(1, True, True, b"\x00\x00\x00\x00\x04\x00\x00\x00"),)))
SETUPS = st.sampled_from(SETUP_NAMES)
_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]
_NOT_PDU_TYPES = [t for t in range(256) if t not in set(PDUType)]
VALID_WIRES = st.sampled_from([*GOLDEN_WIRES, ECHO_PDATA]) | pdus().map(encode_pdu)


@settings(max_examples=200)
@given(SETUPS, st.binary(max_size=300), cuts())
def test_arbitrary_bytes(setup: str, stream: bytes, where: list[int]) -> None:
    check_connection(setup, stream, where)


@settings(max_examples=120)
@given(
    SETUPS,
    st.builds(  # a plausible header makes the body decoders run
        lambda t, body: bytes([t, 0]) + len(body).to_bytes(4, "big") + body,
        st.integers(1, 7),
        st.binary(max_size=200),
    ),
    cuts(),
)
def test_plausible_headers(setup: str, stream: bytes, where: list[int]) -> None:
    check_connection(setup, stream, where)


@settings(max_examples=100, suppress_health_check=_SLOW)
@given(SETUPS, st.data(), cuts())
def test_damaged_conversations(setup: str, data: st.DataObject, where: list[int]) -> None:
    wires = data.draw(st.lists(VALID_WIRES, min_size=1, max_size=4))
    i = data.draw(st.integers(0, len(wires) - 1))
    if data.draw(st.booleans()):
        wires[i] = data.draw(lying_lengths(wires[i]))[0]
    else:
        wires[i] = data.draw(mutated(wires[i]))
    check_connection(setup, b"".join(wires), where)


@pytest.mark.parametrize("setup", SETUP_NAMES)
@settings(max_examples=20)
@given(first=st.sampled_from(_NOT_PDU_TYPES), rest=st.binary(max_size=40))
def test_garbage_aborts_in_every_state(setup: str, first: int, rest: bytes) -> None:
    """An unknown PDU type aborts on its first byte (PS3.8 Evt19: AA-1, AA-7 or AA-8)."""
    result = check_connection(setup, bytes([first]) + rest, [1])
    assert result.state is State.STA13
    assert result.max_buffered <= 1
    if setup == "acceptor-sta2":  # AA-1: the provider aborts as if it were the user
        expected = AAbort(AbortSource.SERVICE_USER, AbortReason.NOT_SPECIFIED)
    else:  # AA-7 / AA-8
        expected = AAbort(AbortSource.SERVICE_PROVIDER, AbortReason.UNRECOGNIZED_PDU)
    assert result.sent == (expected,)
    if setup != "acceptor-sta13":  # in Sta13 the association is already gone: no event
        [event] = result.events
        assert isinstance(event, Aborted)
        assert not event.by_peer


@pytest.mark.parametrize("setup", SETUP_NAMES)
@pytest.mark.parametrize("pdu_type", list(PDUType))
def test_oversize_length_aborts_on_the_header(setup: str, pdu_type: PDUType) -> None:
    """A PDU length of 2**32-1 aborts after 6 bytes; the body that follows is ignored."""
    header = bytes([pdu_type, 0, 0xFF, 0xFF, 0xFF, 0xFF])
    result = feed(setup, header + bytes(1 << 16), [6, 4096])
    assert result.state is State.STA13
    assert result.max_buffered == 0
    [abort] = result.sent
    assert isinstance(abort, AAbort)


@pytest.mark.parametrize("setup", ["acceptor-sta6", "requestor-sta6"])
def test_pdu_length_longer_than_sent_waits_then_aborts_on_the_next_pdu(setup: str) -> None:
    """A PDU length that claims more than was sent swallows the next PDU as its body."""
    lying = bytearray(ECHO_PDATA)
    lying[2:6] = (len(ECHO_PDATA) - 6 + 10).to_bytes(4, "big")
    waiting = feed(setup, bytes(lying), [])
    assert (waiting.state, waiting.events, waiting.sent) == (State.STA6, (), ())
    assert waiting.max_buffered == len(ECHO_PDATA)
    # The 10 missing bytes come from the next PDU: the P-DATA-TF's PDV lengths no longer fit.
    result = check_connection(setup, bytes(lying) + ECHO_PDATA, [len(lying)])
    assert result.state is State.STA13
    assert result.sent == (AAbort(AbortSource.SERVICE_PROVIDER, 6),)
