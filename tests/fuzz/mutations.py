"""Hypothesis strategies that damage valid bytes the way a broken or hostile peer would.

`length_fields` finds every length field of an encoded PDU (PS3.8 §9.3: the PDU length, the
item and sub-item lengths of A-ASSOCIATE PDUs, the PDV item lengths of P-DATA-TF), so that
`lying_lengths` can make exactly those fields lie.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from hypothesis import strategies as st

_CONTAINERS = {0x20, 0x21, 0x50}  # items whose value is itself a list of sub-items
_CONTEXT_FIXED = 4  # presentation context ID and 3 more bytes before its sub-items


@dataclass(frozen=True)
class LengthField:
    """A big endian length field at `offset`, `size` bytes wide, counting `room` bytes that
    actually follow it within its container (so a value above `room` overruns)."""

    offset: int
    size: int
    value: int
    room: int


def _items(data: bytes, start: int, end: int, nested: bool) -> Iterator[LengthField]:
    pos = start
    while pos + 4 <= end:
        item_type = data[pos]
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        yield LengthField(pos + 2, 2, length, end - pos - 4)
        body, stop = pos + 4, min(pos + 4 + length, end)
        if nested and item_type in _CONTAINERS:
            skip = 0 if item_type == 0x50 else _CONTEXT_FIXED
            yield from _items(data, body + skip, stop, nested=False)
        pos = body + length


def length_fields(pdu: bytes) -> list[LengthField]:
    """The length fields of one well-formed encoded PDU."""
    fields = [LengthField(2, 4, int.from_bytes(pdu[2:6], "big"), len(pdu) - 6)]
    if pdu[0] in (0x01, 0x02):
        fields += _items(pdu, 6 + 68, len(pdu), nested=True)
    elif pdu[0] == 0x04:
        pos = 6
        while pos + 4 <= len(pdu):
            length = int.from_bytes(pdu[pos : pos + 4], "big")
            fields.append(LengthField(pos, 4, length, len(pdu) - pos - 4))
            pos += 4 + length
    return fields


def with_length(data: bytes, field: LengthField, value: int) -> bytes:
    return (
        data[: field.offset] + value.to_bytes(field.size, "big") + data[field.offset + field.size :]
    )


@st.composite
def lying_lengths(draw: st.DrawFn, pdu: bytes) -> tuple[bytes, LengthField, int]:
    """`pdu` with one length field changed to a lie (too long, too short, all ones, zero)."""
    field = draw(st.sampled_from(length_fields(pdu)))
    top = (1 << (8 * field.size)) - 1
    value = draw(
        st.sampled_from([0, top, field.value + 1, max(field.value - 1, 0), field.room + 1])
        | st.integers(0, top)
    )
    value = min(value, top)
    return with_length(pdu, field, value), field, value


@st.composite
def mutated(draw: st.DrawFn, data: bytes, max_edits: int = 4) -> bytes:
    """`data` after a few random edits: bit flips, truncation, insertion, deletion, repeats."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, max_edits))):
        pos = draw(st.integers(0, len(out)))
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "repeat", "set"]))
        if kind == "flip" and out:
            pos = min(pos, len(out) - 1)
            out[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del out[pos:]
        elif kind == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del out[pos : pos + draw(st.integers(1, 8))]
        elif kind == "repeat":
            out[pos:pos] = out[pos : pos + draw(st.integers(1, 32))]
        elif kind == "set" and out:
            pos = min(pos, len(out) - 1)
            out[pos] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF]))
    return bytes(out)


def cuts(max_offset: int = 400) -> st.SearchStrategy[list[int]]:
    """Where to split a byte stream between receive calls."""
    return st.lists(st.integers(0, max_offset), max_size=8)
