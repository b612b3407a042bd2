"""Fuzzing the PDU decoder: whatever the body, `PDUDecodeError` or a PDU, nothing else."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiomove.proto.codec import PDUDecodeError, decode_pdu, encode_pdu
from aiomove.proto.pdu import PDU
from tests.proto.strategies import pdus
from tests.proto.test_codec import PDU_GOLDENS

from .mutations import length_fields, lying_lengths, mutated, with_length
from .targets import check_decode_pdu

GOLDEN_WIRES = [wire for _, wire, _ in PDU_GOLDENS]
_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]
VALID_WIRES = st.sampled_from(GOLDEN_WIRES) | pdus().map(encode_pdu)


@settings(max_examples=300)
@given(st.integers(1, 7) | st.integers(0, 255), st.binary(max_size=300))
def test_arbitrary_bodies(pdu_type: int, body: bytes) -> None:
    check_decode_pdu(pdu_type, body)


@settings(max_examples=120, suppress_health_check=_SLOW)
@given(st.data())
def test_mutated_valid_pdus(data: st.DataObject) -> None:
    wire = data.draw(VALID_WIRES)
    damaged = data.draw(mutated(wire))
    if len(damaged) >= 6:
        check_decode_pdu(damaged[0], damaged[6:])


@settings(max_examples=120, suppress_health_check=_SLOW)
@given(st.data())
def test_lying_length_fields(data: st.DataObject) -> None:
    wire = data.draw(VALID_WIRES)
    damaged, field, value = data.draw(lying_lengths(wire))
    decoded = check_decode_pdu(damaged[0], damaged[6:])
    # The PDU length is the framer's business (decode_pdu gets the body already cut); any
    # inner length that overruns its container must be refused.
    if field.offset != 2 and value > field.room:
        assert decoded is None, (damaged.hex(), field, value)


@pytest.mark.parametrize("wire", GOLDEN_WIRES, ids=[name for name, _, _ in PDU_GOLDENS])
def test_every_overrunning_length_is_refused(wire: bytes) -> None:
    for field in length_fields(wire)[1:]:
        for value in (field.room + 1, (1 << (8 * field.size)) - 1):
            with pytest.raises(PDUDecodeError, match=r"length|remain|overrun"):
                decode_pdu(wire[0], with_length(wire, field, value)[6:])


@settings(max_examples=60)
@given(pdus())
def test_valid_pdus_round_trip(pdu: PDU) -> None:
    wire = encode_pdu(pdu)
    assert decode_pdu(wire[0], wire[6:]) == pdu


def test_lying_lengths_allocate_nothing_large() -> None:
    """All-ones lengths in a small PDU are refused without allocating what they claim."""
    tracemalloc.start()
    try:
        for wire in GOLDEN_WIRES:
            for field in length_fields(wire)[1:]:
                with pytest.raises(PDUDecodeError):
                    decode_pdu(wire[0], with_length(wire, field, (1 << (8 * field.size)) - 1)[6:])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
