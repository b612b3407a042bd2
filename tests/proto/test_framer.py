"""Framer: PDUs out of a byte stream cut anywhere; header checks before any body is awaited."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiomove.errors import LocalProtocolError
from aiomove.proto.codec import PDUDecodeError, encode_pdu
from aiomove.proto.framer import MAX_ASSOCIATE_PDU_LENGTH, Framer
from aiomove.proto.pdu import PDU, PDV, AbortReason, AReleaseRQ, PDataTF

from .strategies import pdus

# DCMTK echoscu's A-ASSOCIATE-RQ as captured on loopback (0xFF in a reserved byte included).
ECHOSCU_CAPTURE = bytes.fromhex(
    "0100000000cd00010000414e592d5343502020202020202020204543484f5343552020202020202020200000"
    "00000000000000000000000000000000000000000000000000000000000010000015312e322e3834302e3130"
    "3030382e332e312e312e312000002e0100ff0030000011312e322e3834302e31303030382e312e3140000011"
    "312e322e3834302e31303030382e312e325000003a51000004000040005200001b312e322e3237362e302e37"
    "3233303031302e332e302e332e362e375500000f4f464649535f44434d544b5f333637"
)
RELEASE_RQ = b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00"


def header(pdu_type: int, length: int) -> bytes:
    return struct.pack(">BBI", pdu_type, 0, length)


def drain(framer: Framer) -> list[PDU]:
    found = []
    while (pdu := framer.next_pdu()) is not None:
        found.append(pdu)
    return found


def test_one_byte_at_a_time() -> None:
    framer = Framer(16384)
    found: list[PDU] = []
    for index in range(len(ECHOSCU_CAPTURE)):
        framer.feed(ECHOSCU_CAPTURE[index : index + 1])
        found.extend(drain(framer))
        assert framer.buffered == (index + 1) % len(ECHOSCU_CAPTURE)
    assert len(found) == 1
    assert found[0].called_ae_title == "ANY-SCP"  # type: ignore[union-attr]


def test_many_pdus_in_one_feed_and_a_partial_tail() -> None:
    framer = Framer(16384)
    framer.feed(bytearray(ECHOSCU_CAPTURE + RELEASE_RQ * 3 + RELEASE_RQ[:7]))
    found = drain(framer)
    assert found[1:] == [AReleaseRQ()] * 3
    assert framer.buffered == 7
    framer.feed(memoryview(RELEASE_RQ)[7:])
    assert framer.next_pdu() == AReleaseRQ()
    assert framer.buffered == 0


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(pdus(), min_size=1, max_size=6), st.data())
def test_arbitrary_splits_give_the_same_pdus(sent: list[PDU], data: st.DataObject) -> None:
    stream = b"".join(encode_pdu(pdu) for pdu in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    framer = Framer(0)
    received: list[PDU] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        framer.feed(stream[start:end])
        received.extend(drain(framer))
    assert received == sent
    assert framer.buffered == 0


# --- header checks happen before the body ---------------------------------------------------


@pytest.mark.parametrize("first_byte", [0x00, 0x08, 0x10, 0xFF])
def test_unknown_type_fails_on_the_first_byte(first_byte: int) -> None:
    framer = Framer(16384)
    framer.feed(bytes([first_byte]))
    with pytest.raises(PDUDecodeError, match=f"unrecognised PDU type 0x{first_byte:02X}") as e:
        framer.next_pdu()
    assert e.value.reason == AbortReason.UNRECOGNIZED_PDU


@pytest.mark.parametrize(
    ("max_pdu_length", "pdu_type", "length", "message"),
    [
        (16384, 0x04, 16385, "P-DATA-TF PDU length 16385 exceeds the limit of 16384"),
        (16384, 0x04, 0xFFFF_FFFF, "length 4294967295 exceeds the limit of 16384"),
        (0, 0x04, 0xFFFF_FFFF, "exceeds the limit of 268435456"),  # 0: hard_limit
        (16384, 0x01, MAX_ASSOCIATE_PDU_LENGTH + 1, "A-ASSOCIATE-RQ PDU length 1048577 exceeds"),
        (0, 0x02, 0xFFFF_FFFF, "A-ASSOCIATE-AC PDU length 4294967295 exceeds the limit of 1048576"),
        (16384, 0x03, 5, "A-ASSOCIATE-RJ PDU length must be 4, not 5"),
        (16384, 0x05, 0, "A-RELEASE-RQ PDU length must be 4, not 0"),
        (16384, 0x06, 0xFFFF_FFFF, "A-RELEASE-RP PDU length 4294967295 exceeds"),
        (16384, 0x07, 3, "A-ABORT PDU length must be 4, not 3"),
        (16384, 0x01, 67, "A-ASSOCIATE-RQ PDU length 67 is too short"),
        (16384, 0x04, 5, "P-DATA-TF PDU length 5 is too short"),
    ],
)
def test_bad_length_fails_on_the_header(
    max_pdu_length: int, pdu_type: int, length: int, message: str
) -> None:
    framer = Framer(max_pdu_length)
    framer.feed(header(pdu_type, length))  # the header only: no body is awaited
    with pytest.raises(PDUDecodeError, match=message) as caught:
        framer.next_pdu()
    assert caught.value.reason == AbortReason.INVALID_PDU_PARAMETER_VALUE


def test_lengths_at_the_bounds_are_accepted() -> None:
    for framer, pdu_type, length in [
        (Framer(16384), 0x04, 16384),
        (Framer(0, hard_limit=1000), 0x04, 1000),
        (Framer(16384), 0x01, MAX_ASSOCIATE_PDU_LENGTH),
    ]:
        framer.feed(header(pdu_type, length))
        assert framer.next_pdu() is None  # waiting for the body
        assert framer.buffered == 6
    limited = Framer(0, hard_limit=1000)
    limited.feed(header(0x04, 1001))
    with pytest.raises(PDUDecodeError, match="exceeds the limit of 1000"):
        limited.next_pdu()


def test_max_pdu_length_applies_to_pdata_only() -> None:
    framer = Framer(16)  # tiny, but associate PDUs are bounded separately
    framer.feed(ECHOSCU_CAPTURE)
    assert framer.next_pdu() is not None


def test_bad_body_is_reported_when_complete() -> None:
    framer = Framer(16384)
    framer.feed(header(0x04, 6) + b"\x00\x00\x00\x01")
    assert framer.next_pdu() is None
    framer.feed(b"\x01\x03")  # PDV item length 1 < 2
    with pytest.raises(PDUDecodeError, match="below the minimum of 2"):
        framer.next_pdu()


# --- poisoning and memory -------------------------------------------------------------------


def test_poisoned_after_an_error() -> None:
    framer = Framer(16384)
    framer.feed(header(0x04, 1 << 30) + RELEASE_RQ)
    with pytest.raises(PDUDecodeError):
        framer.next_pdu()
    assert framer.buffered == 0  # the bytes held are released
    assert framer.next_pdu() is None
    framer.feed(RELEASE_RQ)
    assert framer.buffered == 0
    assert framer.next_pdu() is None


def test_buffer_holds_only_what_is_unconsumed() -> None:
    framer = Framer(0)
    # One PDU of 100 KiB fed in 1 KiB pieces: the buffer grows with the feeds only.
    data = bytes(range(256)) * 400
    pdu_bytes = encode_pdu(PDataTF((PDV(1, False, True, data),)))
    for offset in range(0, len(pdu_bytes), 1024):
        framer.feed(pdu_bytes[offset : offset + 1024])
        assert framer.buffered == min(offset + 1024, len(pdu_bytes))
        if framer.buffered < len(pdu_bytes):
            assert framer.next_pdu() is None
    pdu = framer.next_pdu()
    assert isinstance(pdu, PDataTF)
    assert pdu.pdvs[0].data == data
    assert framer.buffered == 0
    # Thousands of small PDUs in one feed come out one by one, the count going down.
    framer.feed(RELEASE_RQ * 8000)
    for remaining in range(7999, -1, -1):
        assert framer.next_pdu() == AReleaseRQ()
        assert framer.buffered == remaining * len(RELEASE_RQ)


def test_large_pdu_data_is_a_read_only_view() -> None:
    framer = Framer(0)
    data = b"\xab" * (1 << 17)
    framer.feed(encode_pdu(PDataTF((PDV(3, False, True, data),))) + RELEASE_RQ[:4])
    pdu = framer.next_pdu()
    assert isinstance(pdu, PDataTF)
    view = pdu.pdvs[0].data
    assert isinstance(view, memoryview)
    assert view.readonly
    assert view == data
    assert framer.buffered == 4  # the tail moved on, and the framer still works
    framer.feed(RELEASE_RQ[4:])
    assert framer.next_pdu() == AReleaseRQ()
    framer.feed(RELEASE_RQ)  # feeding after the hand-over does not disturb the old view
    assert framer.next_pdu() == AReleaseRQ()
    assert view == data


def test_small_pdu_data_survives_later_feeds() -> None:
    framer = Framer(0)
    framer.feed(encode_pdu(PDataTF((PDV(1, True, True, b"command"),))) + RELEASE_RQ[:3])
    pdu = framer.next_pdu()
    framer.feed(RELEASE_RQ[3:] + b"\x00" * 100)
    assert framer.next_pdu() == AReleaseRQ()
    assert pdu == PDataTF((PDV(1, True, True, b"command"),))


@pytest.mark.parametrize(("max_pdu_length", "hard_limit"), [(-1, 1 << 28), (0, 0)])
def test_invalid_bounds(max_pdu_length: int, hard_limit: int) -> None:
    with pytest.raises(LocalProtocolError):
        Framer(max_pdu_length, hard_limit)


# --- fuzz -------------------------------------------------------------------------------------


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=80), max_size=8))
def test_random_bytes_raise_only_decode_errors(chunks: list[bytes]) -> None:
    framer = Framer(1024)
    try:
        for chunk in chunks:
            framer.feed(chunk)
            drain(framer)
    except PDUDecodeError:
        assert framer.next_pdu() is None


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(pdus(), min_size=1, max_size=4), st.data())
def test_damaged_streams_raise_only_decode_errors(sent: list[PDU], data: st.DataObject) -> None:
    stream = bytearray(b"".join(encode_pdu(pdu) for pdu in sent))
    for _ in range(data.draw(st.integers(1, 3))):
        stream[data.draw(st.integers(0, len(stream) - 1))] = data.draw(st.integers(0, 255))
    framer = Framer(0, hard_limit=1 << 16)
    try:
        framer.feed(stream)
        drain(framer)
    except PDUDecodeError:
        assert framer.next_pdu() is None
