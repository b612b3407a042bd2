"""DIMSE-C command sets: the messages of PS3.7 §9.3 and their encoding (PS3.7 §6.3.1, Annex E).

A command set is a group 0000 data set, always in Implicit VR Little Endian whatever the
presentation context's transfer syntax, starting with (0000,0000) CommandGroupLength (UL) that
gives the byte length of the rest of the group. This module encodes and decodes it by hand:
it runs once per message (twice per stored instance), so no pydicom `Dataset` is built.

Element values:
- US as `int`; UI, AE, LO as `str` without padding; AT (VM 1-n) as `tuple[int, ...]` of
  32-bit tags (group << 16 | element).
- Padding on encode (PS3.5 §6.2): UI with NUL, AE and LO with space, to even length.
- On decode, an element with an empty value (length 0, or only padding) counts as absent;
  unknown group 0000 elements are skipped; elements may come in any order (PS3.5 §7.1 asks
  for ascending order, but nothing here depends on it) but never twice.
- Text is ASCII on encode (the command set has no Specific Character Set: default repertoire,
  PS3.5 §6.1.2.1); decoding is byte-transparent (latin-1) so a peer's odd bytes never make a
  whole message undecodable.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from dataclasses import dataclass
from typing import Any, ClassVar, Final, overload

from aiomove.errors import LocalProtocolError, RemoteProtocolError
from aiomove.proto.status import Status
from aiomove.proto.uids import VERIFICATION


class DimseDecodeError(RemoteProtocolError):
    """The peer sent a command set that is not a valid DIMSE-C command (PS3.7 §9.3, Annex E)."""


class CommandField(enum.IntEnum):
    """(0000,0100) Command Field values, PS3.7 Table E.1-1 / §9.3."""

    C_STORE_RQ = 0x0001
    C_STORE_RSP = 0x8001
    C_GET_RQ = 0x0010
    C_GET_RSP = 0x8010
    C_FIND_RQ = 0x0020
    C_FIND_RSP = 0x8020
    C_MOVE_RQ = 0x0021
    C_MOVE_RSP = 0x8021
    C_ECHO_RQ = 0x0030
    C_ECHO_RSP = 0x8030
    C_CANCEL_RQ = 0x0FFF


class Priority(enum.IntEnum):
    """(0000,0700) Priority, PS3.7 §9.1.1.1.9 (note the odd order of the values)."""

    MEDIUM = 0x0000
    HIGH = 0x0001
    LOW = 0x0002


#: (0000,0800) value meaning "no data set follows" (PS3.7 Table E.1-1).
NO_DATASET: Final = 0x0101
#: Any other value means a data set follows; 0x0001 is what DCMTK and pynetdicom send.
DATASET_PRESENT: Final = 0x0001

# --- the command elements (group 0000; the constants are element numbers) ------------------

COMMAND_GROUP_LENGTH: Final = 0x0000
AFFECTED_SOP_CLASS_UID: Final = 0x0002
REQUESTED_SOP_CLASS_UID: Final = 0x0003
COMMAND_FIELD: Final = 0x0100
MESSAGE_ID: Final = 0x0110
MESSAGE_ID_BEING_RESPONDED_TO: Final = 0x0120
MOVE_DESTINATION: Final = 0x0600
PRIORITY: Final = 0x0700
COMMAND_DATA_SET_TYPE: Final = 0x0800
STATUS: Final = 0x0900
OFFENDING_ELEMENT: Final = 0x0901
ERROR_COMMENT: Final = 0x0902
ERROR_ID: Final = 0x0903
AFFECTED_SOP_INSTANCE_UID: Final = 0x1000
REQUESTED_SOP_INSTANCE_UID: Final = 0x1001
EVENT_TYPE_ID: Final = 0x1002
ATTRIBUTE_IDENTIFIER_LIST: Final = 0x1005
ACTION_TYPE_ID: Final = 0x1008
NUMBER_OF_REMAINING_SUBOPERATIONS: Final = 0x1020
NUMBER_OF_COMPLETED_SUBOPERATIONS: Final = 0x1021
NUMBER_OF_FAILED_SUBOPERATIONS: Final = 0x1022
NUMBER_OF_WARNING_SUBOPERATIONS: Final = 0x1023
MOVE_ORIGINATOR_AE_TITLE: Final = 0x1030
MOVE_ORIGINATOR_MESSAGE_ID: Final = 0x1031

#: PS3.7 Table E.1-1: element -> (keyword, VR).
COMMAND_ELEMENTS: Final[dict[int, tuple[str, str]]] = {
    COMMAND_GROUP_LENGTH: ("CommandGroupLength", "UL"),
    AFFECTED_SOP_CLASS_UID: ("AffectedSOPClassUID", "UI"),
    REQUESTED_SOP_CLASS_UID: ("RequestedSOPClassUID", "UI"),
    COMMAND_FIELD: ("CommandField", "US"),
    MESSAGE_ID: ("MessageID", "US"),
    MESSAGE_ID_BEING_RESPONDED_TO: ("MessageIDBeingRespondedTo", "US"),
    MOVE_DESTINATION: ("MoveDestination", "AE"),
    PRIORITY: ("Priority", "US"),
    COMMAND_DATA_SET_TYPE: ("CommandDataSetType", "US"),
    STATUS: ("Status", "US"),
    OFFENDING_ELEMENT: ("OffendingElement", "AT"),
    ERROR_COMMENT: ("ErrorComment", "LO"),
    ERROR_ID: ("ErrorID", "US"),
    AFFECTED_SOP_INSTANCE_UID: ("AffectedSOPInstanceUID", "UI"),
    REQUESTED_SOP_INSTANCE_UID: ("RequestedSOPInstanceUID", "UI"),
    EVENT_TYPE_ID: ("EventTypeID", "US"),
    ATTRIBUTE_IDENTIFIER_LIST: ("AttributeIdentifierList", "AT"),
    ACTION_TYPE_ID: ("ActionTypeID", "US"),
    NUMBER_OF_REMAINING_SUBOPERATIONS: ("NumberOfRemainingSuboperations", "US"),
    NUMBER_OF_COMPLETED_SUBOPERATIONS: ("NumberOfCompletedSuboperations", "US"),
    NUMBER_OF_FAILED_SUBOPERATIONS: ("NumberOfFailedSuboperations", "US"),
    NUMBER_OF_WARNING_SUBOPERATIONS: ("NumberOfWarningSuboperations", "US"),
    MOVE_ORIGINATOR_AE_TITLE: ("MoveOriginatorApplicationEntityTitle", "AE"),
    MOVE_ORIGINATOR_MESSAGE_ID: ("MoveOriginatorMessageID", "US"),
}

# Message attribute -> element. `has_dataset` stands for CommandDataSetType and the class
# variable `command_field` for CommandField.
_ATTRIBUTE_ELEMENTS: Final[dict[str, int]] = {
    "affected_sop_class_uid": AFFECTED_SOP_CLASS_UID,
    "command_field": COMMAND_FIELD,
    "message_id": MESSAGE_ID,
    "message_id_being_responded_to": MESSAGE_ID_BEING_RESPONDED_TO,
    "move_destination": MOVE_DESTINATION,
    "priority": PRIORITY,
    "has_dataset": COMMAND_DATA_SET_TYPE,
    "status": STATUS,
    "offending_element": OFFENDING_ELEMENT,
    "error_comment": ERROR_COMMENT,
    "affected_sop_instance_uid": AFFECTED_SOP_INSTANCE_UID,
    "number_of_remaining_suboperations": NUMBER_OF_REMAINING_SUBOPERATIONS,
    "number_of_completed_suboperations": NUMBER_OF_COMPLETED_SUBOPERATIONS,
    "number_of_failed_suboperations": NUMBER_OF_FAILED_SUBOPERATIONS,
    "number_of_warning_suboperations": NUMBER_OF_WARNING_SUBOPERATIONS,
    "move_originator_ae_title": MOVE_ORIGINATOR_AE_TITLE,
    "move_originator_message_id": MOVE_ORIGINATOR_MESSAGE_ID,
}

# --- messages -------------------------------------------------------------------------------


class _Response:
    """Helpers shared by the -RSP messages (all of them carry a Status)."""

    __slots__ = ()
    status: int

    @property
    def status_obj(self) -> Status:
        """`status` as a `Status`, with its category and description."""
        return Status(self.status)

    def raise_for_status(self) -> None:
        """Raise `aiomove.errors.StatusError` for a failure or cancel status."""
        self.status_obj.raise_for_status()


@dataclass(frozen=True, slots=True, kw_only=True)
class CEchoRQ:
    """PS3.7 §9.3.5.1 (Table 9.3-12)."""

    command_field: ClassVar[CommandField] = CommandField.C_ECHO_RQ
    message_id: int
    affected_sop_class_uid: str = VERIFICATION
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CEchoRSP(_Response):
    """PS3.7 §9.3.5.2 (Table 9.3-13)."""

    command_field: ClassVar[CommandField] = CommandField.C_ECHO_RSP
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    error_comment: str | None = None
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CStoreRQ:
    """PS3.7 §9.3.1.1 (Table 9.3-1). The move originator pair is set for C-MOVE sub-operations."""

    command_field: ClassVar[CommandField] = CommandField.C_STORE_RQ
    message_id: int
    affected_sop_class_uid: str
    affected_sop_instance_uid: str
    priority: int = Priority.MEDIUM
    move_originator_ae_title: str | None = None
    move_originator_message_id: int | None = None
    has_dataset: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class CStoreRSP(_Response):
    """PS3.7 §9.3.1.2 (Table 9.3-2)."""

    command_field: ClassVar[CommandField] = CommandField.C_STORE_RSP
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    affected_sop_instance_uid: str | None = None
    offending_element: tuple[int, ...] | None = None
    error_comment: str | None = None
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CFindRQ:
    """PS3.7 §9.3.2.1 (Table 9.3-3); the identifier is the data set."""

    command_field: ClassVar[CommandField] = CommandField.C_FIND_RQ
    message_id: int
    affected_sop_class_uid: str
    priority: int = Priority.MEDIUM
    has_dataset: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class CFindRSP(_Response):
    """PS3.7 §9.3.2.2 (Table 9.3-4); pending responses carry an identifier."""

    command_field: ClassVar[CommandField] = CommandField.C_FIND_RSP
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    offending_element: tuple[int, ...] | None = None
    error_comment: str | None = None
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CGetRQ:
    """PS3.7 §9.3.3.1 (Table 9.3-5); the identifier is the data set."""

    command_field: ClassVar[CommandField] = CommandField.C_GET_RQ
    message_id: int
    affected_sop_class_uid: str
    priority: int = Priority.MEDIUM
    has_dataset: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class CGetRSP(_Response):
    """PS3.7 §9.3.3.2 (Table 9.3-6). Counters are None when absent.

    A final response with failures may carry an identifier listing the failed SOP instances.
    """

    command_field: ClassVar[CommandField] = CommandField.C_GET_RSP
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    number_of_remaining_suboperations: int | None = None
    number_of_completed_suboperations: int | None = None
    number_of_failed_suboperations: int | None = None
    number_of_warning_suboperations: int | None = None
    offending_element: tuple[int, ...] | None = None
    error_comment: str | None = None
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CMoveRQ:
    """PS3.7 §9.3.4.1 (Table 9.3-7); the identifier is the data set."""

    command_field: ClassVar[CommandField] = CommandField.C_MOVE_RQ
    message_id: int
    affected_sop_class_uid: str
    move_destination: str
    priority: int = Priority.MEDIUM
    has_dataset: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class CMoveRSP(_Response):
    """PS3.7 §9.3.4.2 (Table 9.3-8). Counters are None when absent."""

    command_field: ClassVar[CommandField] = CommandField.C_MOVE_RSP
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    number_of_remaining_suboperations: int | None = None
    number_of_completed_suboperations: int | None = None
    number_of_failed_suboperations: int | None = None
    number_of_warning_suboperations: int | None = None
    offending_element: tuple[int, ...] | None = None
    error_comment: str | None = None
    has_dataset: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CCancelRQ:
    """PS3.7 §9.3.2.3 / §9.3.3.3 / §9.3.4.3 (Table 9.3-9): cancels a FIND, GET or MOVE."""

    command_field: ClassVar[CommandField] = CommandField.C_CANCEL_RQ
    message_id_being_responded_to: int
    has_dataset: bool = False


DimseRequest = CEchoRQ | CStoreRQ | CFindRQ | CGetRQ | CMoveRQ
DimseResponse = CEchoRSP | CStoreRSP | CFindRSP | CGetRSP | CMoveRSP
DimseMessage = DimseRequest | DimseResponse | CCancelRQ

_MESSAGE_TYPES: Final = (
    CEchoRQ,
    CEchoRSP,
    CStoreRQ,
    CStoreRSP,
    CFindRQ,
    CFindRSP,
    CGetRQ,
    CGetRSP,
    CMoveRQ,
    CMoveRSP,
    CCancelRQ,
)
_TYPE_BY_FIELD: Final[dict[int, type[DimseMessage]]] = {t.command_field: t for t in _MESSAGE_TYPES}

# Elements a received message must carry (the "M" rows of the PS3.7 §9.3 tables).
_REQUEST_BASE: Final = frozenset({COMMAND_FIELD, COMMAND_DATA_SET_TYPE, MESSAGE_ID})
_RESPONSE_BASE: Final = frozenset(
    {COMMAND_FIELD, COMMAND_DATA_SET_TYPE, MESSAGE_ID_BEING_RESPONDED_TO, STATUS}
)
_MANDATORY: Final[dict[type[DimseMessage], frozenset[int]]] = {
    CEchoRQ: _REQUEST_BASE | {AFFECTED_SOP_CLASS_UID},
    CStoreRQ: _REQUEST_BASE | {AFFECTED_SOP_CLASS_UID, PRIORITY, AFFECTED_SOP_INSTANCE_UID},
    CFindRQ: _REQUEST_BASE | {AFFECTED_SOP_CLASS_UID, PRIORITY},
    CGetRQ: _REQUEST_BASE | {AFFECTED_SOP_CLASS_UID, PRIORITY},
    CMoveRQ: _REQUEST_BASE | {AFFECTED_SOP_CLASS_UID, PRIORITY, MOVE_DESTINATION},
    CEchoRSP: _RESPONSE_BASE,
    CStoreRSP: _RESPONSE_BASE,
    CFindRSP: _RESPONSE_BASE,
    CGetRSP: _RESPONSE_BASE,
    CMoveRSP: _RESPONSE_BASE,
    CCancelRQ: frozenset({COMMAND_FIELD, COMMAND_DATA_SET_TYPE, MESSAGE_ID_BEING_RESPONDED_TO}),
}


def _layout(cls: type[DimseMessage]) -> tuple[tuple[int, str], ...]:
    """(element, attribute) pairs of a message type, in ascending element order."""
    names = ["command_field", *(f.name for f in dataclasses.fields(cls))]
    return tuple(sorted((_ATTRIBUTE_ELEMENTS[name], name) for name in names))


_LAYOUT: Final = {cls: _layout(cls) for cls in _MESSAGE_TYPES}

# --- encoding -------------------------------------------------------------------------------

_HEADER: Final = struct.Struct("<HHI")  # implicit VR LE element header: group, element, length
_US: Final = struct.Struct("<H")
_UL: Final = struct.Struct("<I")
_MAX_TEXT: Final = {"UI": 64, "AE": 16, "LO": 64}  # PS3.5 Table 6.2-1, in characters


def _text(element: int, vr: str, value: str) -> bytes:
    keyword = COMMAND_ELEMENTS[element][0]
    if not value.isascii() or "\\" in value or not value.isprintable():
        raise LocalProtocolError(f"{keyword} must be printable ASCII without '\\': {value!r}")
    if not value.strip(" "):
        raise LocalProtocolError(f"{keyword} must not be empty")
    if len(value) > _MAX_TEXT[vr]:
        raise LocalProtocolError(f"{keyword} longer than {_MAX_TEXT[vr]} characters: {value!r}")
    raw = value.encode("ascii")
    if len(raw) % 2:
        raw += b"\x00" if vr == "UI" else b" "  # PS3.5 §6.2: UI pads with NUL, text with space
    return raw


def _us(element: int, value: int) -> bytes:
    if not 0 <= value <= 0xFFFF:
        keyword = COMMAND_ELEMENTS[element][0]
        raise LocalProtocolError(f"{keyword} out of range for US: {value!r}")
    return _US.pack(value)


def _at(element: int, tags: tuple[int, ...]) -> bytes:
    if not tags or not all(0 <= tag <= 0xFFFFFFFF for tag in tags):
        keyword = COMMAND_ELEMENTS[element][0]
        raise LocalProtocolError(f"{keyword} needs one or more 32-bit tags: {tags!r}")
    # PS3.5 §6.2 AT: each tag is group then element, each a 16-bit little endian number.
    return b"".join(struct.pack("<HH", tag >> 16, tag & 0xFFFF) for tag in tags)


def _encode_value(element: int, value: Any) -> bytes:
    vr = COMMAND_ELEMENTS[element][1]
    if vr == "US":
        return _us(element, int(value))
    if vr == "AT":
        return _at(element, tuple(value))
    return _text(element, vr, str(value))


def encode_command(msg: DimseMessage) -> bytes:
    """The command set of `msg`, CommandGroupLength first (PS3.7 §6.3.1, §9.3).

    Raises LocalProtocolError for values that cannot be encoded (US out of range, UID or AE
    title too long, non-ASCII text...).
    """
    parts: list[bytes] = []
    for element, name in _LAYOUT[type(msg)]:
        value = getattr(msg, name)
        if element == COMMAND_DATA_SET_TYPE:
            value = DATASET_PRESENT if value else NO_DATASET
        elif value is None:
            continue
        payload = _encode_value(element, value)
        parts.append(_HEADER.pack(0x0000, element, len(payload)))
        parts.append(payload)
    body = b"".join(parts)
    return _HEADER.pack(0x0000, COMMAND_GROUP_LENGTH, 4) + _UL.pack(len(body)) + body


# --- decoding -------------------------------------------------------------------------------


def _decode_value(element: int, raw: memoryview) -> int | str | tuple[int, ...] | None:
    """The value of a known element, or None when it is empty (counted as absent)."""
    keyword, vr = COMMAND_ELEMENTS[element]
    if not raw:
        return None
    if vr == "US":
        if len(raw) != 2:
            raise DimseDecodeError(f"{keyword}: US value of {len(raw)} bytes")
        return int(_US.unpack(raw)[0])
    if vr == "AT":
        if len(raw) % 4:
            raise DimseDecodeError(f"{keyword}: AT value of {len(raw)} bytes")
        pairs = struct.iter_unpack("<HH", raw)
        return tuple((group << 16) | elem for group, elem in pairs)
    text = bytes(raw).decode("latin-1")
    # UI is padded with NUL (some peers use space); AE/LO leading/trailing spaces are
    # not significant (PS3.5 Table 6.2-1).
    text = text.rstrip("\x00 ") if vr == "UI" else text.strip("\x00 ")
    return text or None


def _read_elements(data: memoryview) -> dict[int, int | str | tuple[int, ...]]:
    """Known, non-empty elements of a whole command set, keyed by element number."""
    size = len(data)
    if size < 12:
        raise DimseDecodeError(f"command set of {size} bytes is too short")
    group, element, length = _HEADER.unpack_from(data, 0)
    if (group, element, length) != (0x0000, COMMAND_GROUP_LENGTH, 4):
        raise DimseDecodeError("command set does not start with (0000,0000) UL of 4 bytes")
    (group_length,) = _UL.unpack_from(data, 8)
    if group_length != size - 12:
        raise DimseDecodeError(f"CommandGroupLength {group_length} but {size - 12} bytes follow")
    found: dict[int, int | str | tuple[int, ...]] = {}
    seen: set[int] = {COMMAND_GROUP_LENGTH}
    pos = 12
    while pos < size:
        if size - pos < 8:
            raise DimseDecodeError("truncated element header in command set")
        group, element, length = _HEADER.unpack_from(data, pos)
        pos += 8
        if group != 0x0000:
            raise DimseDecodeError(f"element ({group:04X},{element:04X}) outside group 0000")
        if length > size - pos:  # also catches undefined length 0xFFFFFFFF
            raise DimseDecodeError(f"element (0000,{element:04X}) overruns the command set")
        if element in seen:
            raise DimseDecodeError(f"element (0000,{element:04X}) appears twice")
        seen.add(element)
        if element in COMMAND_ELEMENTS:  # PS3.7 §6.3.1: unknown elements are skipped
            value = _decode_value(element, data[pos : pos + length])
            if value is not None:
                found[element] = value
        pos += length
    return found


def decode_command(data: bytes | memoryview) -> DimseMessage:
    """Decode a complete command set; raises DimseDecodeError if it is malformed."""
    elements = _read_elements(memoryview(data).cast("B"))
    field = elements.get(COMMAND_FIELD)
    if not isinstance(field, int):
        raise DimseDecodeError("command set without CommandField")
    cls = _TYPE_BY_FIELD.get(field)
    if cls is None:
        raise DimseDecodeError(f"unsupported CommandField 0x{field:04X}")
    missing = _MANDATORY[cls] - elements.keys()
    if missing:
        names = ", ".join(COMMAND_ELEMENTS[e][0] for e in sorted(missing))
        raise DimseDecodeError(f"{cls.command_field.name} without {names}")
    kwargs: dict[str, Any] = {}
    for element, name in _LAYOUT[cls]:
        if element == COMMAND_DATA_SET_TYPE:
            kwargs[name] = elements[element] != NO_DATASET
        elif element != COMMAND_FIELD and element in elements:
            kwargs[name] = elements[element]
    return cls(**kwargs)


# --- responses ------------------------------------------------------------------------------

_RESPONSE_TYPE: Final[dict[type[DimseRequest], type[DimseResponse]]] = {
    CEchoRQ: CEchoRSP,
    CStoreRQ: CStoreRSP,
    CFindRQ: CFindRSP,
    CGetRQ: CGetRSP,
    CMoveRQ: CMoveRSP,
}


@overload
def make_response(rq: CEchoRQ, status: int | Status, **fields: Any) -> CEchoRSP: ...
@overload
def make_response(rq: CStoreRQ, status: int | Status, **fields: Any) -> CStoreRSP: ...
@overload
def make_response(rq: CFindRQ, status: int | Status, **fields: Any) -> CFindRSP: ...
@overload
def make_response(rq: CGetRQ, status: int | Status, **fields: Any) -> CGetRSP: ...
@overload
def make_response(rq: CMoveRQ, status: int | Status, **fields: Any) -> CMoveRSP: ...
@overload
def make_response(rq: CCancelRQ, status: int | Status, **fields: Any) -> None: ...
@overload
def make_response(
    rq: DimseMessage, status: int | Status, **fields: Any
) -> DimseResponse | None: ...
def make_response(rq: DimseMessage, status: int | Status, **fields: Any) -> DimseResponse | None:
    """The response to `rq`: Message ID Being Responded To, Affected SOP Class UID (and for
    C-STORE the Affected SOP Instance UID) copied from the request, PS3.7 §9.3 "(=)" rows.

    `fields` set or override any other attribute of the response (counters, error comment,
    `has_dataset=True` for a pending C-FIND-RSP with its identifier...). C-CANCEL-RQ has no
    response (PS3.7 §9.3.2.3): None. Asking for the response to a response is a
    LocalProtocolError.
    """
    if isinstance(rq, CCancelRQ):
        return None
    if not isinstance(rq, CEchoRQ | CStoreRQ | CFindRQ | CGetRQ | CMoveRQ):
        raise LocalProtocolError(f"{type(rq).__name__} is not a request (PS3.7 §9.3)")
    cls = _RESPONSE_TYPE[type(rq)]
    kwargs: dict[str, Any] = {
        "message_id_being_responded_to": rq.message_id,
        "status": status.code if isinstance(status, Status) else status,
        "affected_sop_class_uid": rq.affected_sop_class_uid,
    }
    if isinstance(rq, CStoreRQ):
        kwargs["affected_sop_instance_uid"] = rq.affected_sop_instance_uid
    kwargs.update(fields)
    return cls(**kwargs)
