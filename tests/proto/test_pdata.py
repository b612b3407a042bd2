"""PDV fragmentation and DIMSE reassembly (PS3.8 §9.3.5, Annex E; PS3.7 §8)."""

from __future__ import annotations

import itertools
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiomove.errors import LocalProtocolError, RemoteProtocolError
from aiomove.proto.dimse import (
    CEchoRQ,
    CStoreRQ,
    DimseDecodeError,
    encode_command,
)
from aiomove.proto.pdata import (
    MAX_COMMAND_SET_LENGTH,
    UNLIMITED_PDV_LENGTH,
    CommandReceived,
    DataReceived,
    DimseAssembler,
    DimseProtocolError,
    Fragmenter,
    fragment,
    max_pdv_data_length,
)
from aiomove.proto.pdu import PDV

STORE = CStoreRQ(message_id=1, affected_sop_class_uid="1.2.3", affected_sop_instance_uid="4.5")
STORE_BYTES = encode_command(STORE)
ECHO_BYTES = encode_command(CEchoRQ(message_id=2))


def cmd(data: bytes | memoryview, context_id: int = 1, last: bool = True) -> PDV:
    return PDV(context_id, True, last, data)


def dat(data: bytes | memoryview, context_id: int = 1, last: bool = True) -> PDV:
    return PDV(context_id, False, last, data)


def as_tuple(pdv: PDV) -> tuple[int, bool, bool, bytes]:
    return (pdv.context_id, pdv.is_command, pdv.is_last, bytes(pdv.data))


# Max PDU lengths: 0 (no limit), the smallest that carries data (7), odd and tiny ones,
# and usual ones. Payload sizes straddle their multiples; large payloads only go with PDU
# sizes that keep the PDV count (and the test time) reasonable.
max_pdu_lengths = st.sampled_from([0, 7, 8, 9, 10, 13, 16, 17, 64, 1000, 16384]) | st.integers(
    7, 4096
)
_PATTERN = bytes(range(251)) * 300  # 75 kB that does not repeat with any small PDV size
MAX_PDVS = 3000


@st.composite
def sized_payloads(draw: st.DrawFn) -> tuple[bytes, int]:
    """(payload, max PDU length) with at most about MAX_PDVS PDVs."""
    max_pdu = draw(max_pdu_lengths)
    limit = max_pdu - 6 if max_pdu else UNLIMITED_PDV_LENGTH
    cap = min(len(_PATTERN), MAX_PDVS * limit)
    size = draw(st.integers(0, cap) | st.sampled_from([limit - 1, limit, limit + 1, 2 * limit]))
    size = min(max(size, 0), cap)
    if draw(st.booleans()):
        return _PATTERN[:size], max_pdu
    return draw(st.binary(min_size=min(size, 2000), max_size=min(size, 2000))), max_pdu


# --- fragment ------------------------------------------------------------------------------


def test_pdv_data_limit() -> None:
    assert max_pdv_data_length(16384) == 16378  # PS3.8 §9.3.5.1: 4 + 1 + 1 bytes per PDV
    assert max_pdv_data_length(7) == 1
    assert max_pdv_data_length(0) == UNLIMITED_PDV_LENGTH == 1 << 24


@pytest.mark.parametrize("bad", [1, 2, 6])
def test_max_pdu_length_without_room(bad: int) -> None:
    with pytest.raises(LocalProtocolError):
        list(fragment(1, b"abc", is_command=False, max_pdu_length=bad))
    with pytest.raises(LocalProtocolError):
        Fragmenter(1, max_pdu_length=bad)


def test_fragment_exact_split() -> None:
    pdvs = list(fragment(3, b"abcdefgh", is_command=True, max_pdu_length=10))  # 4 per PDV
    assert [as_tuple(p) for p in pdvs] == [(3, True, False, b"abcd"), (3, True, True, b"efgh")]


def test_fragment_uneven_split() -> None:
    pdvs = list(fragment(5, b"abcdefghi", is_command=False, max_pdu_length=10))
    assert [bytes(p.data) for p in pdvs] == [b"abcd", b"efgh", b"i"]
    assert [p.is_last for p in pdvs] == [False, False, True]


def test_fragment_empty() -> None:
    assert [as_tuple(p) for p in fragment(1, b"", is_command=False, max_pdu_length=100)] == [
        (1, False, True, b"")
    ]


def test_fragment_does_not_copy() -> None:
    data = bytes(range(200))
    for pdv in fragment(1, data, is_command=False, max_pdu_length=50):
        assert isinstance(pdv.data, memoryview)
        assert pdv.data.obj is data


def test_fragment_unlimited_caps_pdvs() -> None:
    data = bytes(UNLIMITED_PDV_LENGTH + 5)
    sizes = [len(p.data) for p in fragment(1, data, is_command=False, max_pdu_length=0)]
    assert sizes == [UNLIMITED_PDV_LENGTH, 5]


@settings(deadline=None)
@given(sized_payloads())
def test_fragment_fits_and_reassembles(sized: tuple[bytes, int]) -> None:
    payload, max_pdu = sized
    limit = max_pdu - 6 if max_pdu else UNLIMITED_PDV_LENGTH
    pdvs = list(fragment(7, payload, is_command=False, max_pdu_length=max_pdu))
    assert all(len(p.data) <= limit for p in pdvs)
    assert [p.is_last for p in pdvs] == [False] * (len(pdvs) - 1) + [True]
    assert all(len(p.data) == limit for p in pdvs[:-1])  # only the last may be short
    assert len(pdvs) == max(1, -(-len(payload) // limit))

    assembler = DimseAssembler()
    events = []
    for pdv in fragment(7, STORE_BYTES, is_command=True, max_pdu_length=max_pdu):
        events += assembler.feed(pdv)
    assert events == [CommandReceived(7, STORE)]
    assert assembler.awaiting_data
    received = []
    for pdv in pdvs:
        (event,) = assembler.feed(pdv)
        assert isinstance(event, DataReceived)
        assert event.data is pdv.data  # streamed through, not copied
        received.append((bytes(event.data), event.is_last, event.context_id))
    assert b"".join(chunk for chunk, _, _ in received) == payload
    assert [last for _, last, _ in received] == [p.is_last for p in pdvs]
    assert {ctx for _, _, ctx in received} == {7}
    assert assembler.idle


# --- Fragmenter ----------------------------------------------------------------------------


@st.composite
def chunkings(draw: st.DrawFn) -> tuple[bytes, list[bytes], int]:
    payload, max_pdu = draw(sized_payloads())
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=12)))
    bounds = [0, *cuts, len(payload)]
    return payload, [payload[a:b] for a, b in itertools.pairwise(bounds)], max_pdu


@settings(deadline=None)
@given(chunkings(), st.booleans())
def test_fragmenter_equals_fragment(
    chunked: tuple[bytes, list[bytes], int], is_command: bool
) -> None:
    payload, chunks, max_pdu = chunked
    fragmenter = Fragmenter(9, max_pdu_length=max_pdu, is_command=is_command)
    out: list[PDV] = []
    for chunk in chunks:
        emitted = fragmenter.feed(chunk)
        assert not any(p.is_last for p in emitted)
        out += emitted
    out += fragmenter.finish()
    expected = fragment(9, payload, is_command=is_command, max_pdu_length=max_pdu)
    assert [as_tuple(p) for p in out] == [as_tuple(p) for p in expected]


def test_fragmenter_holds_back_for_the_last_flag() -> None:
    fragmenter = Fragmenter(1, max_pdu_length=10)  # 4 bytes per PDV
    assert fragmenter.feed(b"abcd") == []  # a full PDV, but it might be the last one
    assert [as_tuple(p) for p in fragmenter.feed(b"e")] == [(1, False, False, b"abcd")]
    assert [as_tuple(p) for p in fragmenter.finish()] == [(1, False, True, b"e")]


def test_fragmenter_nothing_fed() -> None:
    assert [as_tuple(p) for p in Fragmenter(3, max_pdu_length=100).finish()] == [
        (3, False, True, b"")
    ]


def test_fragmenter_copies_out_of_reused_buffers() -> None:
    fragmenter = Fragmenter(1, max_pdu_length=10)
    buffer = bytearray(b"abcdefgh")
    first = fragmenter.feed(buffer)
    buffer[:] = b"XXXXXXXX"  # the caller reuses its buffer
    rest = fragmenter.finish()
    assert b"".join(bytes(p.data) for p in first + rest) == b"abcdefgh"


def test_fragmenter_misuse() -> None:
    fragmenter = Fragmenter(1, max_pdu_length=100)
    fragmenter.finish()
    with pytest.raises(LocalProtocolError):
        fragmenter.feed(b"x")
    with pytest.raises(LocalProtocolError):
        fragmenter.finish()


def test_fragmenter_memory_is_bounded() -> None:
    max_pdu = 16 * 1024
    chunk = bytes(100_000)
    fragmenter = Fragmenter(1, max_pdu_length=max_pdu)
    tracemalloc.start()
    try:
        for _ in range(300):  # 30 MB through
            fragmenter.feed(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 300_000  # the chunk's PDVs (~100 kB) and one held PDV, never the stream


# --- DimseAssembler ------------------------------------------------------------------------


def test_command_in_fragments_is_decoded_on_last() -> None:
    assembler = DimseAssembler()
    assert assembler.feed(cmd(ECHO_BYTES[:10], last=False)) == []
    assert not assembler.idle
    assert assembler.feed(cmd(ECHO_BYTES[10:30], last=False)) == []
    assert assembler.feed(cmd(ECHO_BYTES[30:])) == [CommandReceived(1, CEchoRQ(message_id=2))]
    assert assembler.idle
    assert not assembler.awaiting_data


def test_command_fragments_survive_buffer_reuse() -> None:
    assembler = DimseAssembler()
    buffer = bytearray(ECHO_BYTES[:20])
    assembler.feed(cmd(memoryview(buffer), last=False))
    buffer[:] = bytes(20)  # the transport reuses its receive buffer
    assert assembler.feed(cmd(ECHO_BYTES[20:])) == [CommandReceived(1, CEchoRQ(message_id=2))]


def test_messages_follow_each_other() -> None:
    assembler = DimseAssembler()
    assert assembler.feed(cmd(STORE_BYTES, context_id=3)) == [CommandReceived(3, STORE)]
    assert assembler.feed(dat(b"ab", context_id=3, last=False)) == [DataReceived(3, b"ab", False)]
    assert assembler.feed(dat(b"cd", context_id=3)) == [DataReceived(3, b"cd", True)]
    assert assembler.feed(cmd(ECHO_BYTES, context_id=5)) == [
        CommandReceived(5, CEchoRQ(message_id=2))
    ]
    assert assembler.idle


def test_command_fragments_on_two_contexts() -> None:
    assembler = DimseAssembler()
    assembler.feed(cmd(ECHO_BYTES[:10], context_id=1, last=False))
    with pytest.raises(DimseProtocolError):
        assembler.feed(cmd(ECHO_BYTES[10:], context_id=3))


def test_command_set_size_is_bounded() -> None:
    assembler = DimseAssembler()
    # The bound counts each fragment's PDV item header (6 bytes) with its data.
    assembler.feed(cmd(bytes(MAX_COMMAND_SET_LENGTH - 6), last=False))  # exactly at the bound
    with pytest.raises(DimseProtocolError):
        assembler.feed(cmd(b"\x00", last=False))


def test_empty_command_fragments_are_not_free() -> None:
    """Found by fuzzing: empty non-last fragments once grew memory without limit."""
    assembler = DimseAssembler()
    for _ in range(MAX_COMMAND_SET_LENGTH // 6):
        assembler.feed(cmd(b"", last=False))
    with pytest.raises(DimseProtocolError):
        assembler.feed(cmd(b"", last=False))


def test_data_without_command() -> None:
    with pytest.raises(DimseProtocolError):
        DimseAssembler().feed(dat(b"ab"))


def test_data_after_command_without_data_set() -> None:
    assembler = DimseAssembler()
    assembler.feed(cmd(ECHO_BYTES))
    with pytest.raises(DimseProtocolError):
        assembler.feed(dat(b"ab"))


def test_data_on_another_context() -> None:
    assembler = DimseAssembler()
    assembler.feed(cmd(STORE_BYTES, context_id=1))
    with pytest.raises(DimseProtocolError):
        assembler.feed(dat(b"ab", context_id=3))


def test_data_inside_command_set() -> None:
    assembler = DimseAssembler()
    assembler.feed(cmd(STORE_BYTES[:20], last=False))
    with pytest.raises(DimseProtocolError):
        assembler.feed(dat(b"ab"))


def test_command_before_announced_data_set() -> None:
    assembler = DimseAssembler()
    assembler.feed(cmd(STORE_BYTES))
    with pytest.raises(DimseProtocolError):
        assembler.feed(cmd(ECHO_BYTES))


def test_command_while_data_set_incoming() -> None:
    assembler = DimseAssembler()
    assembler.feed(cmd(STORE_BYTES))
    assembler.feed(dat(b"ab", last=False))
    with pytest.raises(DimseProtocolError):
        assembler.feed(cmd(ECHO_BYTES))


def test_malformed_command_is_a_decode_error() -> None:
    with pytest.raises(DimseDecodeError):
        DimseAssembler().feed(cmd(ECHO_BYTES[:-2]))


def test_errors_are_remote_protocol_errors() -> None:
    assert issubclass(DimseProtocolError, RemoteProtocolError)
    assert issubclass(DimseDecodeError, RemoteProtocolError)


@settings(max_examples=30, deadline=None)
@given(st.integers(7, 300))
def test_streamed_data_set_memory_is_bounded(max_pdu: int) -> None:
    # A large data set streams through: the assembler keeps nothing per data PDV.
    assembler = DimseAssembler()
    assembler.feed(cmd(STORE_BYTES))
    block = memoryview(bytes(max_pdu - 6))
    tracemalloc.start()
    try:
        for _ in range(2000):
            assembler.feed(dat(block, last=False))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50_000
    assert assembler.feed(dat(b"")) == [DataReceived(1, b"", True)]
