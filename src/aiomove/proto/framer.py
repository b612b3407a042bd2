"""Split a byte stream into PDUs (PS3.8 §9.3: 1-byte type, 1 reserved, 32-bit length, body).

Bytes go in with `feed()` in pieces of any size; `next_pdu()` returns one decoded PDU at a time,
or None while more bytes are needed. The header is judged as soon as it is there: an unknown
PDU type (first byte) or a length above the bound fails at once, before any body is awaited or
allocated, so a peer cannot make us hold more than one PDU's worth of bytes (plus what the
caller fed in one go). The bounds are the Maximum Length we advertised (PS3.8 Annex D.1) for
P-DATA-TF, and `MAX_ASSOCIATE_PDU_LENGTH` for everything else.

Buffering is a bytearray with a read offset: consumed bytes are dropped in bulk, never by
re-copying the whole buffer per PDU. A large PDU that fills the buffer is handed over without
copying: the buffer itself becomes the PDU's storage and only the few bytes after it move to a
fresh one, so P-DATA data (memoryview slices of the body) cost no copy at all.

After a `PDUDecodeError` the framer is poisoned (the stream position is lost): `feed()` is
ignored and `next_pdu()` returns None.
"""

from __future__ import annotations

import struct

from aiomove.errors import LocalProtocolError
from aiomove.proto.codec import PDUDecodeError, decode_pdu
from aiomove.proto.pdu import PDU, AbortReason, PDUType

__all__ = ["MAX_ASSOCIATE_PDU_LENGTH", "Framer"]

#: Bound on the PDU length of every PDU type except P-DATA-TF. An A-ASSOCIATE-RQ with 128
#: presentation contexts of several transfer syntaxes each stays well below 100 KiB.
MAX_ASSOCIATE_PDU_LENGTH = 1 << 20

_HEADER = struct.Struct(">BBI")  # PDU-type, reserved, PDU-length
# Smallest legal PDU length per type: the A-ASSOCIATE fixed fields (Tables 9-11, 9-17), one
# PDV item header (Table 9-23); the other four are exactly 4 bytes (Tables 9-21, 9-24-26).
_MIN_LENGTH: dict[int, int] = {
    PDUType.A_ASSOCIATE_RQ: 68,
    PDUType.A_ASSOCIATE_AC: 68,
    PDUType.A_ASSOCIATE_RJ: 4,
    PDUType.P_DATA_TF: 6,
    PDUType.A_RELEASE_RQ: 4,
    PDUType.A_RELEASE_RP: 4,
    PDUType.A_ABORT: 4,
}
_FIXED_LENGTH = frozenset(
    (PDUType.A_ASSOCIATE_RJ, PDUType.A_RELEASE_RQ, PDUType.A_RELEASE_RP, PDUType.A_ABORT)
)
_COMPACT_AT = 1 << 16  # drop a consumed prefix once it is this large and half the buffer


class Framer:
    """Incremental PDU reader for one connection."""

    __slots__ = ("_buffer", "_pdata_bound", "_poisoned", "_pos")

    def __init__(self, max_pdu_length: int, hard_limit: int = 1 << 28) -> None:
        """`max_pdu_length`: the Maximum Length we advertised; 0 (no limit) uses `hard_limit`."""
        if max_pdu_length < 0 or hard_limit < 1:
            raise LocalProtocolError(f"invalid PDU bounds {max_pdu_length}, {hard_limit}")
        self._pdata_bound = max_pdu_length or hard_limit
        self._buffer = bytearray()
        self._pos = 0  # start of the unconsumed bytes in _buffer
        self._poisoned = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a PDU."""
        return len(self._buffer) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if not self._poisoned:
            self._buffer += data

    def next_pdu(self) -> PDU | None:
        """The next complete PDU, or None if more bytes are needed (or after an error)."""
        if self._poisoned:
            return None
        try:
            return self._next_pdu()
        except PDUDecodeError:
            self._poisoned = True
            self._buffer = bytearray()
            self._pos = 0
            raise

    def _next_pdu(self) -> PDU | None:
        buffer, pos = self._buffer, self._pos
        if len(buffer) - pos < _HEADER.size:
            if len(buffer) > pos and buffer[pos] not in _MIN_LENGTH:
                raise _unrecognised(buffer[pos])  # no need to wait for the length
            return None
        pdu_type, _, length = _HEADER.unpack_from(buffer, pos)
        self._check_header(pdu_type, length)
        start = pos + _HEADER.size
        end = start + length
        if len(buffer) < end:
            return None
        return decode_pdu(pdu_type, self._take(start, end))

    def _check_header(self, pdu_type: int, length: int) -> None:
        if pdu_type not in _MIN_LENGTH:
            raise _unrecognised(pdu_type)
        name = PDUType(pdu_type).name.replace("_", "-")
        bound = self._pdata_bound if pdu_type == PDUType.P_DATA_TF else MAX_ASSOCIATE_PDU_LENGTH
        if length > bound:
            raise PDUDecodeError(f"{name} PDU length {length} exceeds the limit of {bound}")
        if pdu_type in _FIXED_LENGTH and length != 4:
            raise PDUDecodeError(f"{name} PDU length must be 4, not {length}")
        if length < _MIN_LENGTH[pdu_type]:
            raise PDUDecodeError(f"{name} PDU length {length} is too short")

    def _take(self, start: int, end: int) -> bytes | memoryview:
        """The body buffer[start:end], consuming everything up to `end`."""
        buffer = self._buffer
        rest = len(buffer) - end
        if end - start >= _COMPACT_AT and rest <= end - start:
            # Hand the buffer over to the PDU and keep only what follows it: copying `rest`
            # bytes instead of the (larger) body.
            self._buffer = buffer[end:]
            self._pos = 0
            return memoryview(buffer).toreadonly()[start:end]
        with memoryview(buffer) as view, view[start:end] as body:
            copy = bytes(body)
        self._consume(end)
        return copy

    def _consume(self, end: int) -> None:
        if end == len(self._buffer):
            self._buffer.clear()
            self._pos = 0
        elif end >= _COMPACT_AT and 2 * end >= len(self._buffer):
            del self._buffer[:end]
            self._pos = 0
        else:
            self._pos = end


def _unrecognised(pdu_type: int) -> PDUDecodeError:
    return PDUDecodeError(f"unrecognised PDU type 0x{pdu_type:02X}", AbortReason.UNRECOGNIZED_PDU)
