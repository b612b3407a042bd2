"""Bytes <-> dataclasses for the seven upper-layer PDUs of PS3.8 §9.3 (big endian throughout).

`encode_pdu` returns a whole PDU; `decode_pdu` takes the PDU type and the body (the bytes after
the 6-byte header, as split off by `aiomove.proto.framer.Framer`).

Decoding policy:
* Structure is strict: lengths must fit their container exactly, fixed-size PDUs are 4 bytes,
  required items are present once. Violations raise `PDUDecodeError` (nothing else escapes)
  carrying the PS3.8 Table 9-26 reason to A-ABORT with.
* Reserved fields, and bits 2-7 of the message control header (E.2), are not tested (PS3.8
  §9.3). DCMTK 3.6.7 does send 0xFF in a reserved byte of the presentation context item.
* Unrecognised item types "shall be ignored and skipped" (§9.3.1): at the top level of
  A-ASSOCIATE-RQ/AC and in user information they are kept as `UnknownItem` (lossless round
  trip); inside a presentation context item they are skipped. A *known* item type in the wrong
  place, or repeated where only one is allowed, is an unexpected PDU parameter; so
  UNRECOGNIZED_PDU_PARAMETER is never produced here. Items are accepted in any order, and a
  missing user information item reads as empty (the upper layer wants its Maximum Length).
* Values are checked only as far as the structure needs: UIDs and the version name must be
  printable ASCII (trailing NULs/spaces stripped). UID syntax and AE titles (Latin-1, trailing
  spaces/NULs stripped) are the upper layers' business: they answer with A-ASSOCIATE-RJ or a
  rejected context, not an abort. An AC's AE titles and a rejected context's transfer syntax
  are "not tested when received". Presentation context IDs must be odd (Tables 9-13/18/23).

Encoders raise `LocalProtocolError` on bad input: AE titles are 0-16 printable ASCII characters,
UIDs follow PS3.5 §9.1, numbers fit their fields. A-ASSOCIATE items go out in increasing
item-type order (§9.3.1); user information sub-items in the order given.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator
from functools import partial
from typing import TypedDict

from aiomove.errors import LocalProtocolError, RemoteProtocolError
from aiomove.proto.pdu import (
    PDU,
    PDV,
    AAbort,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    AbortReason,
    AReleaseRP,
    AReleaseRQ,
    AsynchronousOperationsWindow,
    ImplementationClassUID,
    ImplementationVersionName,
    ItemType,
    MaximumLength,
    PDataTF,
    PDUType,
    PresentationContextAC,
    PresentationContextResult,
    PresentationContextRQ,
    RoleSelection,
    SOPClassCommonExtendedNegotiation,
    SOPClassExtendedNegotiation,
    UnknownItem,
    UserIdentityAC,
    UserIdentityRQ,
    UserItem,
)

__all__ = ["PDUDecodeError", "decode_pdu", "encode_pdu", "pdata_header"]


class PDUDecodeError(RemoteProtocolError, ValueError):
    """The peer sent a malformed PDU; `reason` is the A-ABORT reason to send (Table 9-26)."""

    def __init__(
        self, message: str, reason: AbortReason = AbortReason.INVALID_PDU_PARAMETER_VALUE
    ) -> None:
        super().__init__(message)
        self.reason = reason


_HEADER = struct.Struct(">BBI")  # PDU-type, reserved, PDU-length
_ITEM_HEADER = struct.Struct(">BBH")  # item-type, reserved, item-length
# Protocol-version, reserved, called AE, calling AE, 32 reserved bytes (PS3.8 Table 9-11/9-17).
_ASSOCIATE_FIXED = struct.Struct(">HH16s16s32s")
_PDV_HEADER = struct.Struct(">IBB")  # item-length, context ID, message control header
_PDATA_HEADER = struct.Struct(">BBIIBB")  # PDU header + one PDV item header
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_TWO_U16 = struct.Struct(">HH")

_U16_MAX = 0xFFFF
_U32_MAX = 0xFFFF_FFFF
_AE_TITLE_SIZE = 16
_UID_MAX = 64  # PS3.5 §9.1
_VERSION_NAME_MAX = 16  # PS3.7 D.3.3.2
_KNOWN_ITEM_TYPES = frozenset(int(t) for t in ItemType)
# PS3.5 §9.1: dot-separated numeric components, no leading zero unless the component is "0".
_UID_RE = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*")
_PADDING = b"\x00 "  # stripped from the end of received UIDs, names and AE titles

# ============================================================================ encoding ====


def encode_pdu(pdu: PDU) -> bytes:
    """The complete PDU (6-byte header included); `LocalProtocolError` if `pdu` is invalid."""
    if isinstance(pdu, PDataTF):
        return _encode_pdata(pdu)
    if isinstance(pdu, AAssociateRQ):
        return _with_header(PDUType.A_ASSOCIATE_RQ, _encode_associate(pdu))
    if isinstance(pdu, AAssociateAC):
        return _with_header(PDUType.A_ASSOCIATE_AC, _encode_associate(pdu))
    if isinstance(pdu, AAssociateRJ):
        # PS3.8 Table 9-21: reserved, result, source, reason/diag.
        result = _check_choice(pdu.result, (1, 2), "A-ASSOCIATE-RJ result")
        source = _check_choice(pdu.source, (1, 2, 3), "A-ASSOCIATE-RJ source")
        reason = _check_range(pdu.reason, 0, 0xFF, "A-ASSOCIATE-RJ reason")
        return _with_header(PDUType.A_ASSOCIATE_RJ, bytes((0, result, source, reason)))
    if isinstance(pdu, AReleaseRQ):
        return _with_header(PDUType.A_RELEASE_RQ, bytes(4))  # PS3.8 Table 9-24
    if isinstance(pdu, AReleaseRP):
        return _with_header(PDUType.A_RELEASE_RP, bytes(4))  # PS3.8 Table 9-25
    if isinstance(pdu, AAbort):
        # PS3.8 Table 9-26: two reserved bytes, source (1 is reserved), reason/diag.
        source = _check_choice(pdu.source, (0, 2), "A-ABORT source")
        reason = _check_range(pdu.reason, 0, 0xFF, "A-ABORT reason")
        return _with_header(PDUType.A_ABORT, bytes((0, 0, source, reason)))
    raise LocalProtocolError(f"not a PDU: {pdu!r}")


def pdata_header(context_id: int, control_header: int, data_length: int) -> bytes:
    """The 12 bytes before `data_length` bytes of PDV data in a one-PDV P-DATA-TF.

    PDU header (PS3.8 Table 9-22) then PDV item header (Table 9-23, Annex E.2), so the caller
    can send the data itself without copying it.
    """
    _check_context_id(context_id, "PDV")
    if not 0 <= control_header <= 3:  # bits 2-7 are sent as 0 (PS3.8 E.2)
        raise LocalProtocolError(f"PDV message control header must be 0-3, not {control_header}")
    if not 0 <= data_length <= _U32_MAX - 6:
        raise LocalProtocolError(f"PDV data length {data_length} does not fit a P-DATA-TF")
    return _PDATA_HEADER.pack(
        PDUType.P_DATA_TF, 0, data_length + 6, data_length + 2, context_id, control_header
    )


def _with_header(pdu_type: int, body: bytes) -> bytes:
    # Only P-DATA-TF can approach the 32-bit PDU length; it is checked in _encode_pdata.
    return _HEADER.pack(pdu_type, 0, len(body)) + body


def _encode_pdata(pdu: PDataTF) -> bytes:
    if not pdu.pdvs:
        raise LocalProtocolError("a P-DATA-TF needs at least one PDV (PS3.8 §9.3.5)")
    parts: list[bytes | memoryview] = [b""]  # slot for the PDU header
    total = 0
    for pdv in pdu.pdvs:
        _check_context_id(pdv.context_id, "PDV")
        size = memoryview(pdv.data).nbytes
        parts.append(_PDV_HEADER.pack(size + 2, pdv.context_id, pdv.control_header))
        parts.append(pdv.data)
        total += 6 + size
    if total > _U32_MAX:
        raise LocalProtocolError(f"P-DATA-TF body of {total} bytes exceeds the 32-bit length")
    parts[0] = _HEADER.pack(PDUType.P_DATA_TF, 0, total)
    return b"".join(parts)


def _encode_associate(pdu: AAssociateRQ | AAssociateAC) -> bytes:
    """PS3.8 Tables 9-11 / 9-17: fixed fields, then the items in increasing type order."""
    if not pdu.presentation_contexts:
        raise LocalProtocolError("an A-ASSOCIATE PDU needs at least one presentation context")
    version = _check_range(pdu.protocol_version, 0, _U16_MAX, "protocol version")
    called = _encode_ae_title(pdu.called_ae_title, "called AE title")
    calling = _encode_ae_title(pdu.calling_ae_title, "calling AE title")
    context_name = _encode_uid(pdu.application_context, "application context name")
    user_data = b"".join(_encode_user_item(item) for item in pdu.user_information)
    is_rq = isinstance(pdu, AAssociateRQ)
    items = [
        _item(ItemType.APPLICATION_CONTEXT, context_name),
        *(_encode_context(pc, is_rq) for pc in pdu.presentation_contexts),
        _item(ItemType.USER_INFORMATION, user_data),
        *(_encode_unknown(u, in_user_information=False) for u in pdu.unknown_items),
    ]
    items.sort(key=lambda item: item[0])  # by item type; stable, so contexts keep their order
    fixed = _ASSOCIATE_FIXED.pack(version, 0, called, calling, bytes(32))
    return b"".join([fixed, *items])


def _encode_context(pc: PresentationContextRQ | PresentationContextAC, is_rq: bool) -> bytes:
    if isinstance(pc, PresentationContextRQ) and is_rq:
        return _encode_context_rq(pc)
    if isinstance(pc, PresentationContextAC) and not is_rq:
        return _encode_context_ac(pc)
    raise LocalProtocolError(f"wrong kind of presentation context for this PDU: {pc!r}")


def _encode_context_rq(pc: PresentationContextRQ) -> bytes:
    """PS3.8 Table 9-13: ID, 3 reserved bytes, one abstract and 1+ transfer syntax sub-items."""
    _check_context_id(pc.context_id, "presentation context")
    if not pc.transfer_syntaxes:
        raise LocalProtocolError(f"presentation context {pc.context_id} has no transfer syntax")
    value = [
        bytes((pc.context_id, 0, 0, 0)),
        _item(ItemType.ABSTRACT_SYNTAX, _encode_uid(pc.abstract_syntax, "abstract syntax")),
    ]
    for ts in pc.transfer_syntaxes:
        value.append(_item(ItemType.TRANSFER_SYNTAX, _encode_uid(ts, "transfer syntax")))
    return _item(ItemType.PRESENTATION_CONTEXT_RQ, b"".join(value))


def _encode_context_ac(pc: PresentationContextAC) -> bytes:
    """PS3.8 Table 9-18: ID, reserved, result/reason, reserved, one transfer syntax sub-item."""
    _check_context_id(pc.context_id, "presentation context")
    result = _check_range(pc.result, 0, 4, "presentation context result")
    # The transfer syntax is not significant when the context is rejected; it may be empty.
    ts = _encode_uid(pc.transfer_syntax, "transfer syntax", allow_empty=result != 0)
    fixed = bytes((pc.context_id, 0, result, 0))
    return _item(ItemType.PRESENTATION_CONTEXT_AC, fixed + _item(ItemType.TRANSFER_SYNTAX, ts))


def _encode_user_item(item: UserItem) -> bytes:
    """PS3.8 Annex D.1 and PS3.7 Annex D.3.3 user information sub-items."""
    match item:
        case MaximumLength():
            value = _U32.pack(_check_range(item.maximum_length, 0, _U32_MAX, "maximum length"))
            return _item(ItemType.MAXIMUM_LENGTH, value)
        case ImplementationClassUID():
            uid = _encode_uid(item.uid, "implementation class UID")
            return _item(ItemType.IMPLEMENTATION_CLASS_UID, uid)
        case AsynchronousOperationsWindow():
            invoked = _check_range(item.max_operations_invoked, 0, _U16_MAX, "operations invoked")
            done = _check_range(item.max_operations_performed, 0, _U16_MAX, "operations performed")
            return _item(ItemType.ASYNCHRONOUS_OPERATIONS_WINDOW, _TWO_U16.pack(invoked, done))
        case RoleSelection():
            uid = _encode_uid(item.sop_class_uid, "role selection SOP class UID")
            roles = bytes((1 if item.scu_role else 0, 1 if item.scp_role else 0))
            return _item(ItemType.SCP_SCU_ROLE_SELECTION, _prefixed(uid) + roles)
        case ImplementationVersionName():
            return _item(ItemType.IMPLEMENTATION_VERSION_NAME, _encode_version_name(item.name))
        case SOPClassExtendedNegotiation():
            uid = _encode_uid(item.sop_class_uid, "extended negotiation SOP class UID")
            info = bytes(item.service_class_application_information)
            return _item(ItemType.SOP_CLASS_EXTENDED_NEGOTIATION, _prefixed(uid) + info)
        case SOPClassCommonExtendedNegotiation():
            return _encode_common_extended(item)
        case UserIdentityRQ():
            kind = _check_range(item.identity_type, 0, 0xFF, "user identity type")
            fixed = bytes((kind, 1 if item.positive_response_requested else 0))
            fields = _prefixed(item.primary_field) + _prefixed(item.secondary_field)
            return _item(ItemType.USER_IDENTITY_RQ, fixed + fields)
        case UserIdentityAC():
            return _item(ItemType.USER_IDENTITY_AC, _prefixed(item.server_response))
        case UnknownItem():
            return _encode_unknown(item, in_user_information=True)
    raise LocalProtocolError(f"not a user information sub-item: {item!r}")


def _encode_common_extended(item: SOPClassCommonExtendedNegotiation) -> bytes:
    """PS3.7 Table D.3-12 (sub-item version 0) with Table D.3-13 related-class sub-fields."""
    sop = _encode_uid(item.sop_class_uid, "common extended negotiation SOP class UID")
    service = _encode_uid(item.service_class_uid, "common extended negotiation service class")
    related = b"".join(
        _prefixed(_encode_uid(uid, "related general SOP class UID"))
        for uid in item.related_general_sop_class_uids
    )
    value = _prefixed(sop) + _prefixed(service) + _prefixed(related)
    return _item(ItemType.SOP_CLASS_COMMON_EXTENDED_NEGOTIATION, value)


def _encode_unknown(item: UnknownItem, *, in_user_information: bool) -> bytes:
    item_type = _check_range(item.item_type, 0, 0xFF, "unknown item type")
    reserved = _check_range(item.reserved, 0, 0xFF, "unknown item reserved byte")
    # A 0x57 sub-item of a version other than 0 is kept unparsed (see _decode_user_information).
    future_57 = item_type == ItemType.SOP_CLASS_COMMON_EXTENDED_NEGOTIATION and reserved != 0
    if item_type in _KNOWN_ITEM_TYPES and not (in_user_information and future_57):
        raise LocalProtocolError(f"UnknownItem with the known item type 0x{item_type:02X}")
    return _item(item_type, bytes(item.value), reserved)


def _item(item_type: int, value: bytes, reserved: int = 0) -> bytes:
    """PS3.8 §9.3: item-type, reserved, 16-bit item-length, value."""
    if len(value) > _U16_MAX:
        raise LocalProtocolError(
            f"item 0x{item_type:02X} would be {len(value)} bytes long; the limit is {_U16_MAX}"
        )
    return _ITEM_HEADER.pack(item_type, reserved, len(value)) + value


def _prefixed(value: bytes) -> bytes:
    """A field preceded by its 16-bit length (PS3.7 Annex D.3.3 sub-item fields)."""
    if len(value) > _U16_MAX:
        raise LocalProtocolError(f"field of {len(value)} bytes exceeds the 16-bit length")
    return _U16.pack(len(value)) + bytes(value)


def _encode_ae_title(title: str, what: str) -> bytes:
    """PS3.8 Table 9-11: 16 bytes, space padded; PS3.5 AE: printable ASCII."""
    if not isinstance(title, str) or len(title) > _AE_TITLE_SIZE or not _printable_ascii(title):
        raise LocalProtocolError(f"{what} must be at most 16 printable ASCII characters: {title!r}")
    return title.encode("ascii").ljust(_AE_TITLE_SIZE, b" ")


def _encode_uid(uid: str, what: str, *, allow_empty: bool = False) -> bytes:
    """PS3.8 Annex F: UIDs are sent without padding."""
    if allow_empty and uid == "":
        return b""
    if not isinstance(uid, str) or len(uid) > _UID_MAX or not _UID_RE.fullmatch(uid):
        raise LocalProtocolError(f"{what} is not a valid UID (PS3.5 §9.1): {uid!r}")
    return uid.encode("ascii")


def _encode_version_name(name: str) -> bytes:
    if not isinstance(name, str) or not 1 <= len(name) <= _VERSION_NAME_MAX:
        raise LocalProtocolError(f"implementation version name must be 1-16 characters: {name!r}")
    if not _printable_ascii(name):
        raise LocalProtocolError(f"implementation version name must be ASCII: {name!r}")
    return name.encode("ascii")


def _printable_ascii(text: str) -> bool:
    return text.isascii() and text.isprintable()


def _check_context_id(context_id: int, what: str) -> None:
    # PS3.8 Tables 9-13, 9-18, 9-23: odd integers between 1 and 255.
    if not (isinstance(context_id, int) and 1 <= context_id <= 255 and context_id % 2 == 1):
        raise LocalProtocolError(f"{what} context ID must be odd, 1-255, not {context_id!r}")


def _check_range(value: int, low: int, high: int, what: str) -> int:
    if not (isinstance(value, int) and low <= value <= high):
        raise LocalProtocolError(f"{what} must be {low}-{high}, not {value!r}")
    return int(value)


def _check_choice(value: int, allowed: tuple[int, ...], what: str) -> int:
    if not isinstance(value, int) or value not in allowed:
        raise LocalProtocolError(f"{what} must be one of {allowed}, not {value!r}")
    return int(value)


# ============================================================================ decoding ====


def decode_pdu(pdu_type: int, body: bytes | memoryview) -> PDU:
    """Decode the body (bytes after the 6-byte header) of a PDU of type `pdu_type`.

    Raises `PDUDecodeError` and nothing else. P-DATA-TF PDV data are memoryview slices of
    `body` (no copy).
    """
    decoder = _DECODERS.get(pdu_type)
    if decoder is None:
        raise PDUDecodeError(
            f"unrecognised PDU type 0x{pdu_type:02X}", AbortReason.UNRECOGNIZED_PDU
        )
    view = memoryview(body)
    if view.ndim != 1 or view.itemsize != 1 or not view.c_contiguous:
        view = memoryview(view.tobytes())
    elif view.format != "B":
        view = view.cast("B")
    return decoder(view)


class _Common(TypedDict):
    """The fields A-ASSOCIATE-RQ and -AC share."""

    called_ae_title: str
    calling_ae_title: str
    user_information: tuple[UserItem, ...]
    application_context: str
    protocol_version: int
    unknown_items: tuple[UnknownItem, ...]


def _decode_associate_rq(view: memoryview) -> AAssociateRQ:
    common, raw = _decode_associate(view, "A-ASSOCIATE-RQ", ItemType.PRESENTATION_CONTEXT_RQ)
    return AAssociateRQ(presentation_contexts=tuple(map(_decode_context_rq, raw)), **common)


def _decode_associate_ac(view: memoryview) -> AAssociateAC:
    common, raw = _decode_associate(view, "A-ASSOCIATE-AC", ItemType.PRESENTATION_CONTEXT_AC)
    return AAssociateAC(presentation_contexts=tuple(map(_decode_context_ac, raw)), **common)


def _decode_associate(
    view: memoryview, name: str, context_type: int
) -> tuple[_Common, list[memoryview]]:
    """PS3.8 Tables 9-11 / 9-17: 68 bytes of fixed fields, then the variable items."""
    if len(view) < _ASSOCIATE_FIXED.size:
        raise PDUDecodeError(f"{name} is {len(view)} bytes long; its fixed fields need 68")
    version, _, called, calling, _ = _ASSOCIATE_FIXED.unpack_from(view)
    context_name: str | None = None
    contexts: list[memoryview] = []
    user: tuple[UserItem, ...] | None = None
    unknown: list[UnknownItem] = []
    for item_type, reserved, value in _iter_items(view[_ASSOCIATE_FIXED.size :], name):
        if item_type == ItemType.APPLICATION_CONTEXT:
            _forbid_repeat(context_name, "application context item", name)
            context_name = _decode_uid(value, "application context name")
        elif item_type == context_type:
            contexts.append(value)
        elif item_type == ItemType.USER_INFORMATION:
            _forbid_repeat(user, "user information item", name)
            user = _decode_user_information(value)
        elif item_type in _KNOWN_ITEM_TYPES:
            raise _unexpected(item_type, name)
        else:  # PS3.8 §9.3.1: unrecognised items are ignored (kept for a lossless round trip)
            unknown.append(UnknownItem(item_type, bytes(value), reserved))
    if context_name is None:
        raise PDUDecodeError(f"{name} has no application context item")
    if not contexts:
        raise PDUDecodeError(f"{name} has no presentation context item")
    common = _Common(
        called_ae_title=_decode_latin1(called),
        calling_ae_title=_decode_latin1(calling),
        # Required by PS3.8 (it carries the mandatory Maximum Length); a missing one is
        # tolerated as empty and left to the upper layer.
        user_information=() if user is None else user,
        application_context=context_name,
        protocol_version=version,
        unknown_items=tuple(unknown),
    )
    return common, contexts


def _decode_context_rq(value: memoryview) -> PresentationContextRQ:
    """PS3.8 Table 9-13."""
    context_id = _decode_context_header(value)
    where = f"presentation context {context_id}"
    abstract: str | None = None
    transfer: list[str] = []
    for item_type, _, sub in _iter_items(value[4:], where):
        if item_type == ItemType.ABSTRACT_SYNTAX:
            _forbid_repeat(abstract, "abstract syntax sub-item", where)
            abstract = _decode_uid(sub, f"abstract syntax of {where}")
        elif item_type == ItemType.TRANSFER_SYNTAX:
            transfer.append(_decode_uid(sub, f"transfer syntax of {where}"))
        elif item_type in _KNOWN_ITEM_TYPES:
            raise _unexpected(item_type, where)
        # else: PS3.8 §9.3.1, an unrecognised sub-item is ignored and skipped.
    if abstract is None:
        raise PDUDecodeError(f"{where} has no abstract syntax sub-item")
    if not transfer:
        raise PDUDecodeError(f"{where} has no transfer syntax sub-item")
    return PresentationContextRQ(context_id, abstract, tuple(transfer))


def _decode_context_ac(value: memoryview) -> PresentationContextAC:
    """PS3.8 Table 9-18."""
    context_id = _decode_context_header(value)
    where = f"presentation context {context_id}"
    try:
        result = PresentationContextResult(value[2])
    except ValueError:
        raise PDUDecodeError(f"{where} has an invalid result/reason {value[2]}") from None
    accepted = result == PresentationContextResult.ACCEPTANCE
    transfer: str | None = None
    for item_type, _, sub in _iter_items(value[4:], where):
        if item_type == ItemType.TRANSFER_SYNTAX:
            _forbid_repeat(transfer, "transfer syntax sub-item", where)
            # Not significant, and not to be tested, when the context is rejected.
            what = f"transfer syntax of {where}"
            transfer = _decode_uid(sub, what) if accepted else _decode_latin1(sub)
        elif item_type in _KNOWN_ITEM_TYPES:
            raise _unexpected(item_type, where)
    if transfer is None:
        if accepted:
            raise PDUDecodeError(f"accepted {where} has no transfer syntax sub-item")
        transfer = ""
    return PresentationContextAC(context_id, result, transfer)


def _decode_context_header(value: memoryview) -> int:
    if len(value) < 4:
        raise PDUDecodeError(f"presentation context item is {len(value)} bytes; it needs 4")
    context_id = value[0]
    if context_id % 2 == 0:  # odd 1-255 (PS3.8 Tables 9-13 and 9-18)
        raise PDUDecodeError(f"presentation context ID {context_id} is not odd")
    return context_id


def _decode_user_information(value: memoryview) -> tuple[UserItem, ...]:
    """PS3.8 §9.3.2.3: sub-items in any order; unknown ones kept as UnknownItem."""
    items: list[UserItem] = []
    for item_type, reserved, sub in _iter_items(value, "user information item"):
        decoder = _USER_DECODERS.get(item_type)
        if item_type == ItemType.SOP_CLASS_COMMON_EXTENDED_NEGOTIATION and reserved != 0:
            decoder = None  # a sub-item version we do not know: keep its bytes (PS3.7 D.3.3.6)
        elif decoder is None and item_type in _KNOWN_ITEM_TYPES:
            raise _unexpected(item_type, "the user information item")
        if decoder is None:
            items.append(UnknownItem(item_type, bytes(sub), reserved))
        else:
            items.append(decoder(_Reader(sub, _item_name(item_type))))
    return tuple(items)


class _Reader:
    """Sequential reads over one sub-item's value; every shortfall is a PDUDecodeError."""

    __slots__ = ("_name", "_pos", "_view")

    def __init__(self, view: memoryview, name: str) -> None:
        self._view = view
        self._name = name
        self._pos = 0

    def take(self, size: int, field: str) -> memoryview:
        end = self._pos + size
        if end > len(self._view):
            raise PDUDecodeError(
                f"{self._name}: {field} needs {size} bytes but only {self.remaining()} remain"
            )
        chunk = self._view[self._pos : end]
        self._pos = end
        return chunk

    def u8(self, field: str) -> int:
        return self.take(1, field)[0]

    def u16(self, field: str) -> int:
        chunk = self.take(2, field)
        return (chunk[0] << 8) | chunk[1]

    def flag(self, field: str) -> bool:
        value = self.u8(field)
        if value > 1:
            raise PDUDecodeError(f"{self._name}: {field} must be 0 or 1, not {value}")
        return value == 1

    def prefixed(self, field: str) -> memoryview:
        return self.take(self.u16(f"{field} length"), field)

    def uid(self, field: str) -> str:
        return _decode_uid(self.prefixed(field), f"{self._name}: {field}")

    def remaining(self) -> int:
        return len(self._view) - self._pos

    def rest(self) -> memoryview:
        return self.take(self.remaining(), "rest")

    def exact(self, size: int) -> _Reader:
        if len(self._view) != size:
            raise PDUDecodeError(f"{self._name} must be {size} bytes long, not {len(self._view)}")
        return self

    def done(self) -> None:
        if self._pos != len(self._view):
            raise PDUDecodeError(f"{self._name} has {self.remaining()} bytes after its last field")


def _decode_maximum_length(r: _Reader) -> MaximumLength:
    return MaximumLength(_U32.unpack(r.exact(4).rest())[0])  # PS3.8 Table D.1-1


def _decode_implementation_class_uid(r: _Reader) -> ImplementationClassUID:
    return ImplementationClassUID(_decode_uid(r.rest(), "implementation class UID"))


def _decode_async_window(r: _Reader) -> AsynchronousOperationsWindow:
    invoked, performed = _TWO_U16.unpack(r.exact(4).rest())  # PS3.7 Table D.3-7
    return AsynchronousOperationsWindow(invoked, performed)


def _decode_role_selection(r: _Reader) -> RoleSelection:
    uid = r.uid("SOP class UID")  # PS3.7 Table D.3-9
    item = RoleSelection(uid, scu_role=r.flag("SCU role"), scp_role=r.flag("SCP role"))
    r.done()
    return item


def _decode_version_name(r: _Reader) -> ImplementationVersionName:
    return ImplementationVersionName(_decode_uid(r.rest(), "implementation version name"))


def _decode_extended(r: _Reader) -> SOPClassExtendedNegotiation:
    uid = r.uid("SOP class UID")  # PS3.7 Table D.3-11
    return SOPClassExtendedNegotiation(uid, bytes(r.rest()))


def _decode_common_extended(r: _Reader) -> SOPClassCommonExtendedNegotiation:
    sop = r.uid("SOP class UID")  # PS3.7 Table D.3-12
    service = r.uid("service class UID")
    related_bytes = r.prefixed("related general SOP class identification")
    r.done()
    related = _Reader(related_bytes, "related general SOP class identification")
    uids: list[str] = []
    while related.remaining():
        uids.append(related.uid("related general SOP class UID"))  # PS3.7 Table D.3-13
    return SOPClassCommonExtendedNegotiation(sop, service, tuple(uids))


def _decode_user_identity_rq(r: _Reader) -> UserIdentityRQ:
    kind = r.u8("user identity type")  # PS3.7 Table D.3-14
    positive = r.flag("positive response requested")
    primary = bytes(r.prefixed("primary field"))
    secondary = bytes(r.prefixed("secondary field"))
    r.done()
    return UserIdentityRQ(kind, positive, primary, secondary)


def _decode_user_identity_ac(r: _Reader) -> UserIdentityAC:
    response = bytes(r.prefixed("server response"))  # PS3.7 Table D.3-15
    r.done()
    return UserIdentityAC(response)


def _decode_pdata(view: memoryview) -> PDataTF:
    """PS3.8 Tables 9-22/9-23 and Annex E.2; PDV data are slices of `view`."""
    pdvs: list[PDV] = []
    pos, size = 0, len(view)
    if size == 0:
        raise PDUDecodeError("P-DATA-TF without any PDV item")
    while pos < size:
        if size - pos < 4:
            raise PDUDecodeError(f"P-DATA-TF has {size - pos} trailing bytes after its PDV items")
        (length,) = _U32.unpack_from(view, pos)
        if length < 2:
            raise PDUDecodeError(f"PDV item length {length} is below the minimum of 2")
        end = pos + 4 + length
        if end > size:
            raise PDUDecodeError(
                f"PDV item length {length} overruns the P-DATA-TF ({size - pos - 4} bytes left)"
            )
        context_id, control = view[pos + 4], view[pos + 5]
        if context_id % 2 == 0:  # odd 1-255 (PS3.8 Table 9-23)
            raise PDUDecodeError(f"PDV presentation context ID {context_id} is not odd")
        # Message control header bits 0/1 (PS3.8 E.2); bits 2-7 are not tested.
        pdvs.append(PDV(context_id, bool(control & 1), bool(control & 2), view[pos + 6 : end]))
        pos = end
    return PDataTF(tuple(pdvs))


def _decode_short(pdu_type: PDUType, view: memoryview) -> PDU:
    """A-ASSOCIATE-RJ, A-RELEASE-RQ/RP, A-ABORT: exactly 4 bytes (PS3.8 Tables 9-21, 9-24-26)."""
    if len(view) != 4:
        name = pdu_type.name.replace("_", "-")
        raise PDUDecodeError(f"{name} PDU length must be 4, not {len(view)}")
    if pdu_type == PDUType.A_ASSOCIATE_RJ:  # reserved, result, source, reason/diag
        return AAssociateRJ(result=view[1], source=view[2], reason=view[3])
    if pdu_type == PDUType.A_ABORT:  # reserved, reserved, source, reason/diag
        return AAbort(source=view[2], reason=view[3])
    return AReleaseRQ() if pdu_type == PDUType.A_RELEASE_RQ else AReleaseRP()  # all reserved


def _iter_items(view: memoryview, where: str) -> Iterator[tuple[int, int, memoryview]]:
    """(item-type, reserved byte, value) for each item filling `view` exactly (PS3.8 §9.3)."""
    pos, size = 0, len(view)
    while pos < size:
        if size - pos < _ITEM_HEADER.size:
            raise PDUDecodeError(f"{where} has {size - pos} trailing bytes after its items")
        item_type, reserved, length = _ITEM_HEADER.unpack_from(view, pos)
        end = pos + _ITEM_HEADER.size + length
        if end > size:
            raise PDUDecodeError(
                f"item 0x{item_type:02X} in {where} has length {length} but only "
                f"{size - pos - _ITEM_HEADER.size} bytes remain"
            )
        yield item_type, reserved, view[pos + _ITEM_HEADER.size : end]
        pos = end


def _forbid_repeat(previous: object, what: str, where: str) -> None:
    if previous is not None:
        raise PDUDecodeError(
            f"{where} has more than one {what}", AbortReason.UNEXPECTED_PDU_PARAMETER
        )


def _item_name(item_type: int) -> str:
    return f"{ItemType(item_type).name.lower().replace('_', ' ')} item (0x{item_type:02X})"


def _unexpected(item_type: int, where: str) -> PDUDecodeError:
    return PDUDecodeError(
        f"unexpected {_item_name(item_type)} in {where}",
        AbortReason.UNEXPECTED_PDU_PARAMETER,
    )


def _decode_uid(value: memoryview, what: str) -> str:
    """Printable ASCII; trailing NULs (and spaces from old peers) stripped (PS3.8 Annex F)."""
    raw = bytes(value).rstrip(_PADDING)
    text = raw.decode("latin-1")
    if not _printable_ascii(text):
        raise PDUDecodeError(f"{what} is not printable ASCII: {raw[:80]!r}")
    return text


def _decode_latin1(value: bytes | memoryview) -> str:
    """AE titles (checked by the upper layer) and values that are not to be tested."""
    return bytes(value).rstrip(_PADDING).decode("latin-1")


_SHORT_PDUS = (PDUType.A_ASSOCIATE_RJ, PDUType.A_RELEASE_RQ, PDUType.A_RELEASE_RP, PDUType.A_ABORT)
_DECODERS: dict[int, Callable[[memoryview], PDU]] = {
    PDUType.A_ASSOCIATE_RQ: _decode_associate_rq,
    PDUType.A_ASSOCIATE_AC: _decode_associate_ac,
    PDUType.P_DATA_TF: _decode_pdata,
    **{t: partial(_decode_short, t) for t in _SHORT_PDUS},
}

_USER_DECODERS: dict[int, Callable[[_Reader], UserItem]] = {
    ItemType.MAXIMUM_LENGTH: _decode_maximum_length,
    ItemType.IMPLEMENTATION_CLASS_UID: _decode_implementation_class_uid,
    ItemType.ASYNCHRONOUS_OPERATIONS_WINDOW: _decode_async_window,
    ItemType.SCP_SCU_ROLE_SELECTION: _decode_role_selection,
    ItemType.IMPLEMENTATION_VERSION_NAME: _decode_version_name,
    ItemType.SOP_CLASS_EXTENDED_NEGOTIATION: _decode_extended,
    ItemType.SOP_CLASS_COMMON_EXTENDED_NEGOTIATION: _decode_common_extended,
    ItemType.USER_IDENTITY_RQ: _decode_user_identity_rq,
    ItemType.USER_IDENTITY_AC: _decode_user_identity_ac,
}
