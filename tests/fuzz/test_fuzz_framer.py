"""Fuzzing the framer: split-independent, bounded, refusing oversize lengths on the header."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiomove.proto.codec import PDUDecodeError, encode_pdu
from aiomove.proto.framer import MAX_ASSOCIATE_PDU_LENGTH, Framer
from aiomove.proto.pdu import PDUType
from tests.proto.strategies import pdus
from tests.proto.test_codec import PDU_GOLDENS

from .mutations import cuts, lying_lengths, mutated
from .targets import check_framer

GOLDEN_WIRES = [wire for _, wire, _ in PDU_GOLDENS]
BOUNDS = st.sampled_from([0, 16, 64, 16384])
_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]
VALID_WIRES = st.sampled_from(GOLDEN_WIRES) | pdus().map(encode_pdu)


@settings(max_examples=200)
@given(st.binary(max_size=400), cuts(), BOUNDS)
def test_arbitrary_streams(stream: bytes, where: list[int], bound: int) -> None:
    check_framer(stream, where, bound)


@settings(max_examples=100, suppress_health_check=_SLOW)
@given(st.data(), cuts(), BOUNDS)
def test_damaged_pdu_streams(data: st.DataObject, where: list[int], bound: int) -> None:
    wires = data.draw(st.lists(VALID_WIRES, min_size=1, max_size=4))
    i = data.draw(st.integers(0, len(wires) - 1))
    if data.draw(st.booleans()):
        wires[i] = data.draw(lying_lengths(wires[i]))[0]
    else:
        wires[i] = data.draw(mutated(wires[i]))
    results = check_framer(b"".join(wires), where, bound)
    # Everything before the damaged PDU comes out intact.
    assert results[:i] == check_framer(b"".join(wires[:i]), [], bound)


@pytest.mark.parametrize("pdu_type", list(PDUType))
@pytest.mark.parametrize("length", [MAX_ASSOCIATE_PDU_LENGTH + 1, 0xFFFF_FFFF])
def test_oversize_length_fails_on_the_header(pdu_type: PDUType, length: int) -> None:
    framer = Framer(16384)
    header = bytes([pdu_type, 0]) + length.to_bytes(4, "big")
    for byte in header[:-1]:
        framer.feed(bytes([byte]))
        assert framer.next_pdu() is None
    framer.feed(header[-1:])
    with pytest.raises(PDUDecodeError, match="exceeds the limit"):
        framer.next_pdu()
    # Poisoned: the body that follows is dropped, not buffered.
    framer.feed(bytes(1 << 16))
    assert framer.buffered == 0
    assert framer.next_pdu() is None


@settings(max_examples=50)
@given(st.integers(0, 0xFFFF_FFFF), st.sampled_from([0, 7, 16384]))
def test_buffering_is_bounded_by_the_declared_limit(length: int, bound: int) -> None:
    """Feed a P-DATA-TF header and 64 KiB of body: either refused at once, or at most
    one PDU (up to the bound) is ever held."""
    framer = Framer(bound)
    limit = bound or (1 << 28)
    framer.feed(bytes([4, 0]) + length.to_bytes(4, "big"))
    try:
        for _ in range(16):
            framer.feed(b"\x00" * 4096)
            while framer.next_pdu() is not None:
                pass
            assert framer.buffered < limit + 6
    except PDUDecodeError:
        assert framer.buffered == 0  # poisoned: nothing kept
