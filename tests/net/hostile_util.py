"""Hand-built upper-layer bytes and raw-socket helpers for the hostile-peer tests.

Every PDU here is written field by field from the PS3.8 §9.3 tables (and the C-ECHO command
set from PS3.7 §9.3.5 / Annex E), not produced by aiomove's codec, so that the tests do not
trust the code they test. Only the few shapes the tests need are covered.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.9.7433.99"

#: PS3.8 §9.3.6: A-RELEASE-RQ, and §9.3.7 A-RELEASE-RP, both with four reserved bytes.
RELEASE_RQ = bytes.fromhex("05 00 00000004 00000000")
RELEASE_RP = bytes.fromhex("06 00 00000004 00000000")


def uid(value: str) -> bytes:
    """PS3.8 Annex F: UIDs are not padded in items; values in a data set pad to even with NUL."""
    return value.encode("ascii")


def ae(title: str) -> bytes:
    """PS3.8 §9.3.2: AE titles are 16 bytes, space padded."""
    return title.encode("ascii").ljust(16, b" ")


def item(item_type: int, body: bytes, length: int | None = None) -> bytes:
    """A variable item: type, reserved, 2-byte length (PS3.8 §9.3.2.x); `length` may lie."""
    return struct.pack(">BBH", item_type, 0, len(body) if length is None else length) + body


def pdu(pdu_type: int, body: bytes, length: int | None = None) -> bytes:
    """A PDU: type, reserved, 4-byte big-endian length (PS3.8 §9.3.1); `length` may lie."""
    return struct.pack(">BBL", pdu_type, 0, len(body) if length is None else length) + body


def user_information(max_pdu_length: int) -> bytes:
    """Item 0x50 with Maximum Length (0x51, PS3.8 D.1) and Implementation Class UID (0x52)."""
    return item(
        0x50,
        item(0x51, struct.pack(">L", max_pdu_length)) + item(0x52, uid(IMPLEMENTATION_CLASS_UID)),
    )


def associate_rq_body(
    *,
    called: str = "AIOMOVE",
    calling: str = "HOSTILE",
    context_id: int = 1,
    abstract_syntax: str = VERIFICATION,
    transfer_syntaxes: Iterable[str] = (IMPLICIT_VR_LE,),
    max_pdu_length: int = 16384,
    context_item_length: int | None = None,
) -> bytes:
    """The variable part of A-ASSOCIATE-RQ (PS3.8 Table 9-11) after the 6-byte header."""
    fixed = struct.pack(">HH", 0x0001, 0) + ae(called) + ae(calling) + bytes(32)
    context = struct.pack(">BBBB", context_id, 0, 0, 0) + item(0x30, uid(abstract_syntax))
    for ts in transfer_syntaxes:
        context += item(0x40, uid(ts))
    return (
        fixed
        + item(0x10, uid(APPLICATION_CONTEXT))
        + item(0x20, context, context_item_length)
        + user_information(max_pdu_length)
    )


def associate_rq(**kwargs: object) -> bytes:
    return pdu(0x01, associate_rq_body(**kwargs))  # type: ignore[arg-type]


def associate_ac(
    *, context_id: int = 1, result: int = 0, transfer_syntax: str = IMPLICIT_VR_LE
) -> bytes:
    """A-ASSOCIATE-AC (PS3.8 Table 9-17) accepting one context (item 0x21, Table 9-18)."""
    fixed = struct.pack(">HH", 0x0001, 0) + ae("AIOMOVE") + ae("HOSTILE") + bytes(32)
    context = struct.pack(">BBBB", context_id, 0, result, 0) + item(0x40, uid(transfer_syntax))
    body = fixed + item(0x10, uid(APPLICATION_CONTEXT)) + item(0x21, context)
    return pdu(0x02, body + user_information(16384))


def pdv(context_id: int, data: bytes, *, command: bool, last: bool = True) -> bytes:
    """A PDV item (PS3.8 §9.3.5.1): 4-byte length, context ID, message control header (E.2)."""
    header = (0x01 if command else 0x00) | (0x02 if last else 0x00)
    return struct.pack(">LBB", len(data) + 2, context_id, header) + data


def p_data(*pdvs: bytes, length: int | None = None) -> bytes:
    return pdu(0x04, b"".join(pdvs), length)


def element(group: int, elem: int, value: bytes, length: int | None = None) -> bytes:
    """One implicit VR little endian element (PS3.5 §7.1.3); command sets always use it."""
    return struct.pack("<HHL", group, elem, len(value) if length is None else length) + value


def command_set(*elements: bytes) -> bytes:
    """Prefix the elements with Command Group Length (0000,0000) UL (PS3.7 E.1)."""
    body = b"".join(elements)
    return element(0, 0, struct.pack("<L", len(body))) + body


def echo_rq_command(message_id: int = 1) -> bytes:
    """C-ECHO-RQ (PS3.7 Table 9.3-12): SOP class, Command Field 0x0030, ID, no data set."""
    return command_set(
        element(0, 0x0002, uid(VERIFICATION) + b"\x00"),  # 17 chars: NUL pad to even
        element(0, 0x0100, struct.pack("<H", 0x0030)),
        element(0, 0x0110, struct.pack("<H", message_id)),
        element(0, 0x0800, struct.pack("<H", 0x0101)),  # no data set
    )


def parse_command(data: bytes) -> dict[int, bytes]:
    """Element values of an implicit VR LE group-0000 command set, keyed by element number."""
    out: dict[int, bytes] = {}
    pos = 0
    while pos < len(data):
        group, elem, length = struct.unpack_from("<HHL", data, pos)
        assert group == 0, f"element ({group:04X},{elem:04X}) outside the command group"
        out[elem] = data[pos + 8 : pos + 8 + length]
        pos += 8 + length
    assert pos == len(data), "command set elements overrun"
    return out


def abort_fields(data: bytes) -> tuple[int, int]:
    """(source, reason) of exactly one A-ABORT PDU (PS3.8 Table 9-26), asserting its shape."""
    assert len(data) == 10, f"expected one 10-byte A-ABORT PDU, got {data.hex(' ')}"
    assert data[:6] == bytes.fromhex("07 00 00000004"), f"not an A-ABORT: {data.hex(' ')}"
    return data[8], data[9]


class RawPeer:
    """One raw TCP connection to an acceptor, reading whole PDUs by their length field."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.reader = BufferedByteReceiveStream(stream)

    @classmethod
    async def connect(cls, port: int) -> RawPeer:
        return cls(await anyio.connect_tcp("127.0.0.1", port))

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    async def read_pdu(self) -> bytes | None:
        """The next whole PDU (header included), or None if the peer closed between PDUs."""
        try:
            header = await self.reader.receive_exactly(6)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
            return None
        (length,) = struct.unpack(">L", header[2:])
        assert length < 1 << 20, f"implausible PDU from the server: {header.hex(' ')}"
        return header + await self.reader.receive_exactly(length)

    async def read_to_eof(self) -> bytes:
        """Everything until the peer closes (a reset counts as a close)."""
        chunks = [self.reader.buffer]
        self.reader = BufferedByteReceiveStream(self.stream)
        while True:
            try:
                chunks.append(await self.stream.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return b"".join(chunks)

    async def associate(self, **kwargs: object) -> None:
        """A-ASSOCIATE-RQ for Verification; asserts the answer is an A-ASSOCIATE-AC."""
        await self.send(associate_rq(**kwargs))
        answer = await self.read_pdu()
        assert answer is not None, "server closed instead of answering A-ASSOCIATE-RQ"
        assert answer[0] == 0x02, f"expected A-ASSOCIATE-AC, got {answer[:16].hex(' ')}"

    async def aclose(self) -> None:
        await self.stream.aclose()
