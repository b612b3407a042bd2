"""PDU codec: golden bytes written from the PS3.8 §9.3 / PS3.7 Annex D.3.3 tables, property
round trips, every decoder error path, encoder validation, and pynetdicom as an independent peer.
"""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiomove.errors import LocalProtocolError, RemoteProtocolError
from aiomove.proto.codec import PDUDecodeError, decode_pdu, encode_pdu, pdata_header
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
    MaximumLength,
    PDataTF,
    PresentationContextAC,
    PresentationContextRQ,
    RoleSelection,
    SOPClassCommonExtendedNegotiation,
    SOPClassExtendedNegotiation,
    UnknownItem,
    UserIdentityAC,
    UserIdentityRQ,
    UserItem,
)

from .strategies import pdus

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STORAGE_SERVICE = "1.2.840.10008.4.2"
DCMTK_367_UID = "1.2.276.0.7230010.3.0.3.6.7"

INVALID = AbortReason.INVALID_PDU_PARAMETER_VALUE
UNEXPECTED = AbortReason.UNEXPECTED_PDU_PARAMETER

# --- golden bytes -------------------------------------------------------------------------
# Every length below was counted by hand; test_golden_lengths re-counts them.

# A-ASSOCIATE-RQ / -AC fixed fields after the PDU header (PS3.8 Tables 9-11 and 9-17).
FIXED = (
    b"\x00\x01"  # protocol-version: bit 0 = version 1
    b"\x00\x00"  # reserved
    b"ANY-SCP         "  # called AE title, 16 bytes, space padded
    b"ECHOSCU         "  # calling AE title
) + bytes(32)  # reserved
# Application Context Item (Table 9-12): type 10H, reserved, length 21, name.
APP = b"\x10\x00\x00\x151.2.840.10008.3.1.1.1"
AS_VERIFICATION = b"\x30\x00\x00\x111.2.840.10008.1.1"  # abstract syntax (9-14), 17 bytes
TS_IMPLICIT = b"\x40\x00\x00\x111.2.840.10008.1.2"  # transfer syntax (9-15), 17 bytes
# Presentation Context Item RQ (Table 9-13): type 20H, length 46, ID 1, 3 reserved, sub-items.
PC_RQ = b"\x20\x00\x00\x2e\x01\x00\x00\x00" + AS_VERIFICATION + TS_IMPLICIT
MAX_16384 = b"\x51\x00\x00\x04\x00\x00\x40\x00"  # Maximum Length sub-item (Table D.1-1)
IMPL_UID_DCMTK = b"\x52\x00\x00\x1b1.2.276.0.7230010.3.0.3.6.7"  # Table D.3-1, 27 bytes
IMPL_VERSION_DCMTK = b"\x55\x00\x00\x0fOFFIS_DCMTK_367"  # Table D.3-3, 15 bytes
# User Information Item (Table 9-16): type 50H, length 58 = 8 + 31 + 19.
USER_ECHOSCU = b"\x50\x00\x00\x3a" + MAX_16384 + IMPL_UID_DCMTK + IMPL_VERSION_DCMTK

# What DCMTK 3.6.7 `echoscu` sends (captured on loopback), with its one quirk removed: it
# puts 0xFF in the third reserved byte of the presentation context item.
ECHOSCU_RQ = (
    b"\x01"  # PDU-type A-ASSOCIATE-RQ
    b"\x00"  # reserved
    b"\x00\x00\x00\xcd" + FIXED + APP + PC_RQ + USER_ECHOSCU  # PDU-length 205 = 68 + 25 + 50 + 62
)
ECHOSCU_RQ_OBJ = AAssociateRQ(
    called_ae_title="ANY-SCP",
    calling_ae_title="ECHOSCU",
    presentation_contexts=(PresentationContextRQ(1, VERIFICATION, (IMPLICIT_LE,)),),
    user_information=(
        MaximumLength(16384),
        ImplementationClassUID(DCMTK_367_UID),
        ImplementationVersionName("OFFIS_DCMTK_367"),
    ),
)

# A-ASSOCIATE-AC (Table 9-17) answering with context 1 accepted and context 3 rejected.
AC_BYTES = (
    b"\x02"  # PDU-type A-ASSOCIATE-AC
    b"\x00"  # reserved
    b"\x00\x00\x00\xa6"  # PDU-length 166 = 68 + 25 + 29 + 12 + 32
    + FIXED  # AE titles echo the request (PS3.8 Table 9-17)
    + APP
    # Presentation Context Item AC (Table 9-18): type 21H, length 25,
    # ID 1, reserved, result 0 (acceptance), reserved, transfer syntax sub-item.
    + b"\x21\x00\x00\x19"
    b"\x01\x00\x00\x00"
    + TS_IMPLICIT
    # ID 3, result 3 (abstract-syntax-not-supported), empty transfer syntax sub-item.
    + b"\x21\x00\x00\x08"
    b"\x03\x00\x03\x00"
    b"\x40\x00\x00\x00"
    # User Information Item: length 28 = 8 + 9 + 11.
     + b"\x50\x00\x00\x1c"
    b"\x51\x00\x00\x04\x00\x00\x00\x00"  # Maximum Length 0 = unlimited
    b"\x52\x00\x00\x05"
    b"1.2.3"  # implementation class UID
    b"\x55\x00\x00\x07"
    b"AIOMOVE"  # implementation version name
)
AC_OBJ = AAssociateAC(
    called_ae_title="ANY-SCP",
    calling_ae_title="ECHOSCU",
    presentation_contexts=(
        PresentationContextAC(1, 0, IMPLICIT_LE),
        PresentationContextAC(3, 3, ""),
    ),
    user_information=(
        MaximumLength(0),
        ImplementationClassUID("1.2.3"),
        ImplementationVersionName("AIOMOVE"),
    ),
)

# A-ASSOCIATE-RJ (Table 9-21): reserved, result 1 permanent, source 1 service-user,
# reason 7 called-AE-title-not-recognized.
RJ_BYTES = b"\x03\x00\x00\x00\x00\x04\x00\x01\x01\x07"
# P-DATA-TF (Tables 9-22, 9-23, Annex E.2) with two PDV items:
PDATA_BYTES = (
    b"\x04\x00\x00\x00\x00\x11"  # PDU-type 04H, reserved, PDU-length 17 = 8 + 9
    b"\x00\x00\x00\x04"  # PDV item-length 4
    b"\x01"  # presentation context ID 1
    b"\x03"  # message control header: command, last fragment
    b"\x08\x00"  # data
    b"\x00\x00\x00\x05"  # PDV item-length 5
    b"\x03"  # presentation context ID 3
    b"\x00"  # message control header: data set, not last
    b"abc"  # data
)
PDATA_OBJ = PDataTF((PDV(1, True, True, b"\x08\x00"), PDV(3, False, False, b"abc")))
RELEASE_RQ_BYTES = b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00"  # Table 9-24
RELEASE_RP_BYTES = b"\x06\x00\x00\x00\x00\x04\x00\x00\x00\x00"  # Table 9-25
# A-ABORT (Table 9-26): 2 reserved, source 2 (provider), reason 6 (invalid parameter value).
ABORT_PROVIDER_BYTES = b"\x07\x00\x00\x00\x00\x04\x00\x00\x02\x06"
ABORT_USER_BYTES = b"\x07\x00\x00\x00\x00\x04\x00\x00\x00\x00"

PDU_GOLDENS: list[tuple[str, bytes, PDU]] = [
    ("A-ASSOCIATE-RQ echoscu", ECHOSCU_RQ, ECHOSCU_RQ_OBJ),
    ("A-ASSOCIATE-AC", AC_BYTES, AC_OBJ),
    ("A-ASSOCIATE-RJ", RJ_BYTES, AAssociateRJ(result=1, source=1, reason=7)),
    ("P-DATA-TF", PDATA_BYTES, PDATA_OBJ),
    ("A-RELEASE-RQ", RELEASE_RQ_BYTES, AReleaseRQ()),
    ("A-RELEASE-RP", RELEASE_RP_BYTES, AReleaseRP()),
    ("A-ABORT provider", ABORT_PROVIDER_BYTES, AAbort(source=2, reason=6)),
    ("A-ABORT user", ABORT_USER_BYTES, AAbort()),
]

# User information sub-items, each alone (PS3.8 Annex D.1, PS3.7 Annex D.3.3).
SUB_ITEM_GOLDENS: list[tuple[str, bytes, UserItem]] = [
    ("max length", MAX_16384, MaximumLength(16384)),
    ("max length max", b"\x51\x00\x00\x04\xff\xff\xff\xff", MaximumLength(0xFFFF_FFFF)),
    ("implementation class UID", IMPL_UID_DCMTK, ImplementationClassUID(DCMTK_367_UID)),
    (
        "async operations window",  # Table D.3-7: invoked 5, performed 3
        b"\x53\x00\x00\x04\x00\x05\x00\x03",
        AsynchronousOperationsWindow(5, 3),
    ),
    (
        "role selection",  # Table D.3-9: UID-length 25, UID, SCU-role 1, SCP-role 0
        b"\x54\x00\x00\x1d\x00\x191.2.840.10008.5.1.4.1.1.2\x01\x00",
        RoleSelection(CT_IMAGE, scu_role=True, scp_role=False),
    ),
    (
        "role selection SCP",
        b"\x54\x00\x00\x1d\x00\x191.2.840.10008.5.1.4.1.1.2\x00\x01",
        RoleSelection(CT_IMAGE, scu_role=False, scp_role=True),
    ),
    (
        "implementation version name",
        IMPL_VERSION_DCMTK,
        ImplementationVersionName("OFFIS_DCMTK_367"),
    ),
    (
        "SOP class extended negotiation",  # Table D.3-11: UID-length 27, UID, app info
        b"\x56\x00\x00\x20\x00\x1b1.2.840.10008.5.1.4.1.2.2.2\x01\x01\x00",
        SOPClassExtendedNegotiation(STUDY_ROOT_MOVE, b"\x01\x01\x00"),
    ),
    (
        "SOP class common extended negotiation",  # Tables D.3-12 and D.3-13
        b"\x57\x00\x00\x4d"  # type 57H, sub-item version 0, length 77
        b"\x00\x1b"
        b"1.2.840.10008.5.1.4.1.1.2.1"  # SOP class UID
        b"\x00\x11"
        b"1.2.840.10008.4.2"  # service class UID
        b"\x00\x1b"  # related general SOP class identification length 27
        b"\x00\x19"
        b"1.2.840.10008.5.1.4.1.1.2",  # one related general SOP class UID
        SOPClassCommonExtendedNegotiation(ENHANCED_CT, STORAGE_SERVICE, (CT_IMAGE,)),
    ),
    (
        "SOP class common extended negotiation, no related class",
        b"\x57\x00\x00\x32\x00\x1b1.2.840.10008.5.1.4.1.1.2.1\x00\x111.2.840.10008.4.2\x00\x00",
        SOPClassCommonExtendedNegotiation(ENHANCED_CT, STORAGE_SERVICE, ()),
    ),
    (
        "user identity RQ, username and passcode",  # Table D.3-14
        b"\x58\x00\x00\x10\x02\x01\x00\x04user\x00\x06secret",
        UserIdentityRQ(2, True, b"user", b"secret"),
    ),
    (
        "user identity RQ, username only",
        b"\x58\x00\x00\x0b\x01\x00\x00\x05alice\x00\x00",
        UserIdentityRQ(1, False, b"alice"),
    ),
    (
        "user identity AC",  # Table D.3-15
        b"\x59\x00\x00\x06\x00\x04tokn",
        UserIdentityAC(b"tokn"),
    ),
    ("unknown sub-item", b"\x7f\x05\x00\x03abc", UnknownItem(0x7F, b"abc", 5)),
    ("0x57 of an unknown version", b"\x57\x01\x00\x02xy", UnknownItem(0x57, b"xy", 1)),
]


def rq_with_user_data(user_data: bytes, *, extra: bytes = b"") -> bytes:
    """ECHOSCU_RQ with `user_data` as the user information item's value, then `extra` items."""
    body = FIXED + APP + PC_RQ + b"\x50\x00" + struct.pack(">H", len(user_data)) + user_data
    body += extra
    return b"\x01\x00" + struct.pack(">I", len(body)) + body


def rq_obj(*user: UserItem, unknown: tuple[UnknownItem, ...] = ()) -> AAssociateRQ:
    return AAssociateRQ(
        "ANY-SCP",
        "ECHOSCU",
        ECHOSCU_RQ_OBJ.presentation_contexts,
        user_information=user,
        unknown_items=unknown,
    )


def decode(pdu_bytes: bytes) -> PDU:
    return decode_pdu(pdu_bytes[0], pdu_bytes[6:])


def test_golden_lengths() -> None:
    # Guards the hand arithmetic: each PDU-length field equals the body size.
    for _, golden, _ in PDU_GOLDENS:
        assert struct.unpack(">I", golden[2:6])[0] == len(golden) - 6
    assert len(FIXED) == 68
    assert len(PC_RQ) == 50
    assert len(USER_ECHOSCU) == 62
    for _, golden, _ in SUB_ITEM_GOLDENS:
        assert struct.unpack(">H", golden[2:4])[0] == len(golden) - 4


@pytest.mark.parametrize(
    ("golden", "obj"), [g[1:] for g in PDU_GOLDENS], ids=[g[0] for g in PDU_GOLDENS]
)
def test_pdu_golden_both_ways(golden: bytes, obj: PDU) -> None:
    assert encode_pdu(obj) == golden
    assert decode(golden) == obj


@pytest.mark.parametrize(
    ("golden", "item"), [g[1:] for g in SUB_ITEM_GOLDENS], ids=[g[0] for g in SUB_ITEM_GOLDENS]
)
def test_user_sub_item_golden_both_ways(golden: bytes, item: UserItem) -> None:
    pdu_bytes = rq_with_user_data(golden)
    assert encode_pdu(rq_obj(item)) == pdu_bytes
    assert decode(pdu_bytes) == rq_obj(item)


def test_user_sub_items_keep_their_order() -> None:
    # PS3.8 §9.3.2.3: any order; the codec neither sorts nor drops.
    golden = SUB_ITEM_GOLDENS[::-1]
    pdu_bytes = rq_with_user_data(b"".join(g[1] for g in golden))
    obj = rq_obj(*(g[2] for g in golden))
    assert encode_pdu(obj) == pdu_bytes
    assert decode(pdu_bytes) == obj


def test_unknown_top_level_items_are_kept_in_item_type_order() -> None:
    # PS3.8 §9.3.1: unrecognised items are ignored by the receiver; items go in increasing type
    # order, so 0x05 is written before the application context and 0x60 after user info.
    low = b"\x05\x00\x00\x01L"
    high = b"\x60\x07\x00\x02hi"
    body = FIXED + low + APP + PC_RQ + USER_ECHOSCU + high
    golden = b"\x01\x00" + struct.pack(">I", len(body)) + body
    obj = AAssociateRQ(
        "ANY-SCP",
        "ECHOSCU",
        ECHOSCU_RQ_OBJ.presentation_contexts,
        ECHOSCU_RQ_OBJ.user_information,
        unknown_items=(UnknownItem(0x05, b"L"), UnknownItem(0x60, b"hi", 7)),
    )
    assert encode_pdu(obj) == golden
    assert decode(golden) == obj


def test_pdata_header_golden() -> None:
    header = pdata_header(context_id=5, control_header=0x02, data_length=10)
    assert header == (
        b"\x04\x00"  # P-DATA-TF, reserved
        b"\x00\x00\x00\x10"  # PDU-length 16 = 10 + 6
        b"\x00\x00\x00\x0c"  # PDV item-length 12 = 10 + 2
        b"\x05"  # presentation context ID
        b"\x02"  # data set, last fragment
    )
    data = bytes(range(10))
    assert header + data == encode_pdu(PDataTF((PDV(5, False, True, data),)))


# --- what decoding tolerates ----------------------------------------------------------------


def test_dcmtk_reserved_byte_is_not_tested() -> None:
    # DCMTK 3.6.7 echoscu sends 0xFF in byte 7 of the presentation context item (reserved).
    captured = bytearray(ECHOSCU_RQ)
    pc_offset = 6 + 68 + 25
    assert captured[pc_offset : pc_offset + 8] == b"\x20\x00\x00\x2e\x01\x00\x00\x00"
    captured[pc_offset + 6] = 0xFF
    assert decode(bytes(captured)) == ECHOSCU_RQ_OBJ


def test_all_reserved_fields_ignored() -> None:
    body = bytearray(ECHOSCU_RQ[6:])
    body[2:4] = b"\xff\xff"  # reserved after protocol-version
    body[36:68] = b"\xee" * 32  # reserved 43-74
    body[68 + 1] = 0xAA  # application context item reserved byte
    assert decode_pdu(1, bytes(body)) == ECHOSCU_RQ_OBJ
    assert decode_pdu(3, b"\xff\x01\x01\x07") == AAssociateRJ(1, 1, 7)
    assert decode_pdu(5, b"\xff\xff\xff\xff") == AReleaseRQ()
    assert decode_pdu(6, b"\xff\xff\xff\xff") == AReleaseRP()
    assert decode_pdu(7, b"\xff\xff\x02\x01") == AAbort(2, 1)


def test_control_header_reserved_bits_ignored() -> None:
    pdata = decode_pdu(4, b"\x00\x00\x00\x03\x01\xfcx")
    assert pdata == PDataTF((PDV(1, False, False, b"x"),))


def test_padding_stripped_from_uids_and_ae_titles() -> None:
    body = (
        b"\x00\x01\x00\x00"
        b"  LEADING\x00\x00\x00\x00\x00\x00\x00"  # NUL padding; leading spaces are kept
        b"ECHOSCU         "
    ) + bytes(32)
    body += b"\x10\x00\x00\x161.2.840.10008.3.1.1.1\x00"  # UID padded with NUL
    body += b"\x20\x00\x00\x30\x01\x00\x00\x00"
    body += b"\x30\x00\x00\x121.2.840.10008.1.1\x00"
    body += b"\x40\x00\x00\x121.2.840.10008.1.2 "  # old peers pad with a space
    body += b"\x50\x00\x00\x00"
    pdu = decode_pdu(1, body)
    assert isinstance(pdu, AAssociateRQ)
    assert pdu.called_ae_title == "  LEADING"
    assert pdu.calling_ae_title == "ECHOSCU"
    assert pdu.application_context == "1.2.840.10008.3.1.1.1"
    assert pdu.presentation_contexts == (PresentationContextRQ(1, VERIFICATION, (IMPLICIT_LE,)),)
    assert pdu.user_information == ()


def test_unknown_sub_item_in_presentation_context_is_skipped() -> None:
    # PS3.8 §9.3.1: "Items of unrecognized types shall be ignored and skipped."
    pc = b"\x20\x00\x00\x33\x01\x00\x00\x00" + AS_VERIFICATION + b"\x77\x00\x00\x01!" + TS_IMPLICIT
    body = FIXED + APP + pc + USER_ECHOSCU
    assert decode_pdu(1, body) == ECHOSCU_RQ_OBJ


def test_missing_user_information_is_tolerated_as_empty() -> None:
    assert decode_pdu(1, FIXED + APP + PC_RQ) == rq_obj()


def test_rejected_context_transfer_syntax_is_not_tested() -> None:
    # PS3.8 Table 9-18: not significant (and not tested) unless the result is acceptance.
    def ac(context: bytes) -> PDU:
        return decode_pdu(2, FIXED + APP + context + b"\x50\x00\x00\x00")

    garbage = ac(b"\x21\x00\x00\x0a\x05\x00\x04\x00\x40\x00\x00\x02\xff\x01")
    assert garbage == AAssociateAC("ANY-SCP", "ECHOSCU", (PresentationContextAC(5, 4, "\xff\x01"),))
    missing = ac(b"\x21\x00\x00\x04\x05\x00\x01\x00")
    assert missing == AAssociateAC("ANY-SCP", "ECHOSCU", (PresentationContextAC(5, 1, ""),))


def test_ac_ae_titles_are_not_tested() -> None:
    body = bytearray(AC_BYTES[6:])
    body[4:20] = b"\xe9\x01" + b" " * 14  # not ASCII: PS3.8 Table 9-17 says not tested
    pdu = decode_pdu(2, bytes(body))
    assert isinstance(pdu, AAssociateAC)
    assert pdu.called_ae_title == "\xe9\x01"


def test_pdv_data_is_a_zero_copy_view() -> None:
    body = PDATA_BYTES[6:]
    pdu = decode_pdu(4, body)
    assert isinstance(pdu, PDataTF)
    for pdv in pdu.pdvs:
        assert isinstance(pdv.data, memoryview)
        assert pdv.data.obj is body
    from_view = decode_pdu(4, memoryview(bytearray(body)))
    assert from_view == PDATA_OBJ


def test_unknown_sub_item_in_accepted_context_is_skipped() -> None:
    context = b"\x21\x00\x00\x1e\x01\x00\x00\x00" + b"\x77\x00\x00\x01!" + TS_IMPLICIT
    pdu = decode_pdu(2, FIXED + APP + context + b"\x50\x00\x00\x00")
    assert pdu == AAssociateAC("ANY-SCP", "ECHOSCU", (PresentationContextAC(1, 0, IMPLICIT_LE),))


def test_body_may_be_any_byte_buffer() -> None:
    body = b"\x00\x00\x02\x06"
    as_chars = memoryview(body).cast("c")  # format "c", not "B"
    assert decode_pdu(7, as_chars) == AAbort(2, 6)  # type: ignore[arg-type]
    assert decode_pdu(7, memoryview(b"\x00-\x00-\x02-\x06-")[::2]) == AAbort(2, 6)  # strided
    assert decode_pdu(7, bytearray(body)) == AAbort(2, 6)  # type: ignore[arg-type]


def test_pdata_over_4_gib_is_refused() -> None:
    chunk = memoryview(bytes(1 << 20))  # the same MiB 4096 times: no 4 GiB allocation
    pdu = PDataTF(tuple(PDV(1, False, False, chunk) for _ in range(4096)))
    with pytest.raises(LocalProtocolError, match="exceeds the 32-bit length"):
        encode_pdu(pdu)


# --- every decoder error --------------------------------------------------------------------

AC_CONTEXT_ITEM = b"\x21\x00\x00\x08\x01\x00\x00\x00\x40\x00\x00\x00"
TWO_AS_PC = b"\x20\x00\x00\x43\x01\x00\x00\x00" + AS_VERIFICATION + AS_VERIFICATION + TS_IMPLICIT
PC_WITH_51 = b"\x20\x00\x00\x36\x01\x00\x00\x00" + AS_VERIFICATION + TS_IMPLICIT + MAX_16384


def rq(*items: bytes) -> bytes:
    return FIXED + b"".join(items)


def ac(*items: bytes) -> bytes:
    return FIXED + APP + b"".join(items) + b"\x50\x00\x00\x00"


def user(*sub_items: bytes) -> bytes:
    data = b"".join(sub_items)
    return FIXED + APP + PC_RQ + b"\x50\x00" + struct.pack(">H", len(data)) + data


DECODE_ERRORS: list[tuple[str, int, bytes, AbortReason, str]] = [
    # PDU level
    ("type 0x08", 0x08, b"", AbortReason.UNRECOGNIZED_PDU, "unrecognised PDU type 0x08"),
    ("type 0x00", 0x00, bytes(4), AbortReason.UNRECOGNIZED_PDU, "type 0x00"),
    ("type 0xFF", 0xFF, bytes(4), AbortReason.UNRECOGNIZED_PDU, "type 0xFF"),
    ("RJ of 3 bytes", 3, b"\x00\x01\x01", INVALID, "A-ASSOCIATE-RJ PDU length must be 4, not 3"),
    ("RELEASE-RQ of 5 bytes", 5, bytes(5), INVALID, "A-RELEASE-RQ PDU length must be 4, not 5"),
    ("RELEASE-RP empty", 6, b"", INVALID, "A-RELEASE-RP PDU length must be 4, not 0"),
    ("ABORT of 6 bytes", 7, bytes(6), INVALID, "A-ABORT PDU length must be 4, not 6"),
    # P-DATA-TF
    ("P-DATA without PDV", 4, b"", INVALID, "without any PDV"),
    ("P-DATA trailing", 4, PDATA_BYTES[6:] + b"\x00\x00\x00", INVALID, "3 trailing bytes"),
    ("PDV length 1", 4, b"\x00\x00\x00\x01\x01", INVALID, "length 1 is below the minimum of 2"),
    ("PDV length 0", 4, b"\x00\x00\x00\x00", INVALID, "length 0 is below"),
    ("PDV overrun", 4, b"\x00\x00\x00\x10\x01\x03ab", INVALID, "overruns the P-DATA-TF"),
    ("PDV even context", 4, b"\x00\x00\x00\x02\x02\x03", INVALID, "context ID 2 is not odd"),
    ("PDV context 0", 4, b"\x00\x00\x00\x02\x00\x03", INVALID, "context ID 0 is not odd"),
    # A-ASSOCIATE-RQ/AC structure
    ("RQ of 67 bytes", 1, FIXED[:67], INVALID, "67 bytes long; its fixed fields need 68"),
    ("AC empty", 2, b"", INVALID, "A-ASSOCIATE-AC is 0 bytes long"),
    ("RQ trailing", 1, rq(APP, PC_RQ, USER_ECHOSCU, b"\x60\x00"), INVALID, "2 trailing bytes"),
    (
        "RQ item overrun",
        1,
        rq(APP, PC_RQ, b"\x50\x00\x00\x40", USER_ECHOSCU[4:]),
        INVALID,
        "item 0x50 in A-ASSOCIATE-RQ has length 64 but only 58 bytes remain",
    ),
    ("RQ no app context", 1, rq(PC_RQ, USER_ECHOSCU), INVALID, "no application context item"),
    ("AC no app context", 2, FIXED + AC_CONTEXT_ITEM, INVALID, "no application context item"),
    (
        "RQ two app contexts",
        1,
        rq(APP, APP, PC_RQ, USER_ECHOSCU),
        UNEXPECTED,
        "more than one application context item",
    ),
    ("RQ no context", 1, rq(APP, USER_ECHOSCU), INVALID, "no presentation context item"),
    ("AC no context", 2, ac(), INVALID, "A-ASSOCIATE-AC has no presentation context item"),
    (
        "RQ two user info",
        1,
        rq(APP, PC_RQ, USER_ECHOSCU, USER_ECHOSCU),
        UNEXPECTED,
        "more than one user information item",
    ),
    (
        "RQ with AC context",
        1,
        rq(APP, PC_RQ, AC_CONTEXT_ITEM, USER_ECHOSCU),
        UNEXPECTED,
        "unexpected presentation context ac item (0x21) in A-ASSOCIATE-RQ",
    ),
    (
        "AC with RQ context",
        2,
        ac(AC_CONTEXT_ITEM, PC_RQ),
        UNEXPECTED,
        "presentation context rq item (0x20) in A-ASSOCIATE-AC",
    ),
    (
        "abstract syntax at top level",
        1,
        rq(APP, PC_RQ, AS_VERIFICATION, USER_ECHOSCU),
        UNEXPECTED,
        "abstract syntax item (0x30)",
    ),
    (
        "maximum length at top level",
        1,
        rq(APP, PC_RQ, MAX_16384, USER_ECHOSCU),
        UNEXPECTED,
        "maximum length item (0x51) in A-ASSOCIATE-RQ",
    ),
    # Presentation context items
    (
        "context item of 3 bytes",
        1,
        rq(APP, b"\x20\x00\x00\x03\x01\x00\x00", USER_ECHOSCU),
        INVALID,
        "presentation context item is 3 bytes; it needs 4",
    ),
    (
        "even context ID",
        1,
        rq(APP, b"\x20\x00\x00\x2e\x02\x00\x00\x00", AS_VERIFICATION, TS_IMPLICIT, USER_ECHOSCU),
        INVALID,
        "presentation context ID 2 is not odd",
    ),
    (
        "AC even context ID",
        2,
        ac(b"\x21\x00\x00\x08\x04\x00\x00\x00\x40\x00\x00\x00"),
        INVALID,
        "presentation context ID 4 is not odd",
    ),
    (
        "no abstract syntax",
        1,
        rq(APP, b"\x20\x00\x00\x19\x01\x00\x00\x00", TS_IMPLICIT, USER_ECHOSCU),
        INVALID,
        "presentation context 1 has no abstract syntax sub-item",
    ),
    (
        "no transfer syntax",
        1,
        rq(APP, b"\x20\x00\x00\x19\x01\x00\x00\x00", AS_VERIFICATION, USER_ECHOSCU),
        INVALID,
        "presentation context 1 has no transfer syntax sub-item",
    ),
    (
        "two abstract syntaxes",
        1,
        rq(APP, TWO_AS_PC, USER_ECHOSCU),
        UNEXPECTED,
        "presentation context 1 has more than one abstract syntax sub-item",
    ),
    (
        "known sub-item in context",
        1,
        rq(APP, PC_WITH_51, USER_ECHOSCU),
        UNEXPECTED,
        "maximum length item (0x51) in presentation context 1",
    ),
    (
        "sub-item overrun",
        1,
        rq(APP, b"\x20\x00\x00\x0a\x01\x00\x00\x00\x30\x00\x00\x11\x31\x2e", USER_ECHOSCU),
        INVALID,
        "item 0x30 in presentation context 1 has length 17 but only 2 bytes remain",
    ),
    (
        "abstract syntax not ASCII",
        1,
        rq(APP, b"\x20\x00\x00\x20\x01\x00\x00\x00\x30\x00\x00\x031.\x80", TS_IMPLICIT),
        INVALID,
        "abstract syntax of presentation context 1 is not printable ASCII",
    ),
    (
        "application context with a control character",
        1,
        rq(b"\x10\x00\x00\x051.2\n3", PC_RQ, USER_ECHOSCU),
        INVALID,
        "application context name is not printable ASCII",
    ),
    (
        "AC result 5",
        2,
        ac(b"\x21\x00\x00\x19\x01\x00\x05\x00", TS_IMPLICIT),
        INVALID,
        "presentation context 1 has an invalid result/reason 5",
    ),
    (
        "accepted without transfer syntax",
        2,
        ac(b"\x21\x00\x00\x04\x01\x00\x00\x00"),
        INVALID,
        "accepted presentation context 1 has no transfer syntax sub-item",
    ),
    (
        "AC two transfer syntaxes",
        2,
        ac(b"\x21\x00\x00\x2e\x01\x00\x00\x00", TS_IMPLICIT, TS_IMPLICIT),
        UNEXPECTED,
        "presentation context 1 has more than one transfer syntax sub-item",
    ),
    (
        "AC with abstract syntax",
        2,
        ac(b"\x21\x00\x00\x2e\x01\x00\x00\x00", AS_VERIFICATION, TS_IMPLICIT),
        UNEXPECTED,
        "abstract syntax item (0x30) in presentation context 1",
    ),
    (
        "accepted transfer syntax not ASCII",
        2,
        ac(b"\x21\x00\x00\x09\x01\x00\x00\x00\x40\x00\x00\x01\xff"),
        INVALID,
        "transfer syntax of presentation context 1 is not printable ASCII",
    ),
    # User information and its sub-items
    (
        "user info item overrun",
        1,
        user(b"\x51\x00\x00\x08\x00\x00\x40\x00"),
        INVALID,
        "item 0x51 in user information item has length 8 but only 4 bytes remain",
    ),
    ("user info trailing", 1, user(MAX_16384, b"\x51\x00"), INVALID, "2 trailing bytes"),
    (
        "application context inside user info",
        1,
        user(b"\x10\x00\x00\x031.2"),
        UNEXPECTED,
        "application context item (0x10) in the user information item",
    ),
    (
        "max length of 3 bytes",
        1,
        user(b"\x51\x00\x00\x03\x00\x40\x00"),
        INVALID,
        "maximum length item (0x51) must be 4 bytes long, not 3",
    ),
    (
        "max length of 5 bytes",
        1,
        user(b"\x51\x00\x00\x05\x00\x00\x40\x00\x00"),
        INVALID,
        "must be 4 bytes long, not 5",
    ),
    (
        "implementation class UID not ASCII",
        1,
        user(b"\x52\x00\x00\x02\xc3\xa9"),
        INVALID,
        "implementation class UID is not printable ASCII",
    ),
    (
        "async window of 2 bytes",
        1,
        user(b"\x53\x00\x00\x02\x00\x01"),
        INVALID,
        "asynchronous operations window item (0x53) must be 4 bytes long, not 2",
    ),
    (
        "role selection UID length truncated",
        1,
        user(b"\x54\x00\x00\x01\x00"),
        INVALID,
        "SOP class UID length needs 2 bytes but only 1 remain",
    ),
    (
        "role selection UID overrun",
        1,
        user(b"\x54\x00\x00\x04\x00\x19\x31\x2e"),
        INVALID,
        "SOP class UID needs 25 bytes but only 2 remain",
    ),
    (
        "role selection without SCP role",
        1,
        user(b"\x54\x00\x00\x06\x00\x031.2\x01"),
        INVALID,
        "SCP role needs 1 bytes but only 0 remain",
    ),
    (
        "role selection trailing byte",
        1,
        user(b"\x54\x00\x00\x08\x00\x031.2\x01\x00\xff"),
        INVALID,
        "scp scu role selection item (0x54) has 1 bytes after its last field",
    ),
    (
        "role selection role 2",
        1,
        user(b"\x54\x00\x00\x07\x00\x031.2\x02\x00"),
        INVALID,
        "SCU role must be 0 or 1, not 2",
    ),
    (
        "version name with a control character",
        1,
        user(b"\x55\x00\x00\x03a\x01b"),
        INVALID,
        "implementation version name is not printable ASCII",
    ),
    (
        "extended negotiation UID overrun",
        1,
        user(b"\x56\x00\x00\x04\x00\x091."),
        INVALID,
        "sop class extended negotiation item (0x56): SOP class UID needs 9 bytes",
    ),
    (
        "common extended: service class UID overrun",
        1,
        user(b"\x57\x00\x00\x08\x00\x031.2\x00\x051"),
        INVALID,
        "service class UID needs 5 bytes but only 1 remain",
    ),
    (
        "common extended: related identification overrun",
        1,
        user(b"\x57\x00\x00\x0f\x00\x031.2\x00\x031.2\x00\x05\x00\x031"),
        INVALID,
        "related general SOP class identification needs 5 bytes but only 3 remain",
    ),
    (
        "common extended: trailing byte",
        1,
        user(b"\x57\x00\x00\x0d\x00\x031.2\x00\x031.2\x00\x00\xff"),
        INVALID,
        "common extended negotiation item (0x57) has 1 bytes after its last field",
    ),
    (
        "common extended: related UID overrun",
        1,
        user(b"\x57\x00\x00\x0f\x00\x031.2\x00\x031.2\x00\x03\x00\x051"),
        INVALID,
        "related general SOP class UID needs 5 bytes but only 1 remain",
    ),
    (
        "common extended: related UID length truncated",
        1,
        user(b"\x57\x00\x00\x0d\x00\x031.2\x00\x031.2\x00\x01\x00"),
        INVALID,
        "related general SOP class UID length needs 2 bytes but only 1 remain",
    ),
    (
        "user identity RQ truncated",
        1,
        user(b"\x58\x00\x00\x03\x02\x01\x00"),
        INVALID,
        "primary field length needs 2 bytes but only 1 remain",
    ),
    (
        "user identity RQ empty",
        1,
        user(b"\x58\x00\x00\x00"),
        INVALID,
        "user identity type needs 1 bytes but only 0 remain",
    ),
    (
        "user identity RQ positive response 2",
        1,
        user(b"\x58\x00\x00\x06\x01\x02\x00\x00\x00\x00"),
        INVALID,
        "positive response requested must be 0 or 1, not 2",
    ),
    (
        "user identity RQ trailing byte",
        1,
        user(b"\x58\x00\x00\x07\x01\x00\x00\x00\x00\x00\xff"),
        INVALID,
        "user identity rq item (0x58) has 1 bytes after its last field",
    ),
    (
        "user identity AC truncated",
        1,
        user(b"\x59\x00\x00\x03\x00\x05a"),
        INVALID,
        "server response needs 5 bytes but only 1 remain",
    ),
    (
        "user identity AC trailing byte",
        1,
        user(b"\x59\x00\x00\x03\x00\x00\xff"),
        INVALID,
        "user identity ac item (0x59) has 1 bytes after its last field",
    ),
]


@pytest.mark.parametrize(
    ("pdu_type", "body", "reason", "message"),
    [e[1:] for e in DECODE_ERRORS],
    ids=[e[0] for e in DECODE_ERRORS],
)
def test_decode_error(pdu_type: int, body: bytes, reason: AbortReason, message: str) -> None:
    with pytest.raises(PDUDecodeError) as caught:
        decode_pdu(pdu_type, body)
    assert message in str(caught.value)
    assert caught.value.reason == reason


def test_decode_error_is_a_remote_protocol_error_and_value_error() -> None:
    error = PDUDecodeError("boom")
    assert isinstance(error, RemoteProtocolError)
    assert isinstance(error, ValueError)
    assert error.reason == AbortReason.INVALID_PDU_PARAMETER_VALUE


# --- properties -----------------------------------------------------------------------------


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(pdus())
def test_round_trip(pdu: PDU) -> None:
    encoded = encode_pdu(pdu)
    assert struct.unpack(">I", encoded[2:6])[0] == len(encoded) - 6
    assert decode_pdu(encoded[0], encoded[6:]) == pdu
    assert encode_pdu(decode_pdu(encoded[0], memoryview(encoded)[6:])) == encoded


@settings(max_examples=300)
@given(st.integers(0, 255), st.binary(max_size=200))
def test_random_bodies_raise_only_decode_errors(pdu_type: int, body: bytes) -> None:
    with contextlib.suppress(PDUDecodeError):
        decode_pdu(pdu_type, body)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(pdus(), st.data())
def test_mutated_pdus_raise_only_decode_errors(pdu: PDU, data: st.DataObject) -> None:
    # Damage a valid PDU body (flip, insert, delete bytes) to reach the deeper decoder paths.
    body = bytearray(encode_pdu(pdu)[6:])
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(body)))
        action = data.draw(st.sampled_from(["set", "insert", "delete"]))
        value = data.draw(st.integers(0, 255))
        if action == "insert" or position == len(body):
            body.insert(position, value)
        elif action == "set":
            body[position] = value
        else:
            del body[position]
    try:
        decoded = decode_pdu(encode_pdu(pdu)[0], bytes(body))
    except PDUDecodeError:
        return
    assert type(decoded) is type(pdu)


# --- encoder validation ---------------------------------------------------------------------


def _rq(**changes: object) -> AAssociateRQ:
    fields: dict[str, object] = {
        "called_ae_title": "ANY-SCP",
        "calling_ae_title": "ECHOSCU",
        "presentation_contexts": (PresentationContextRQ(1, VERIFICATION, (IMPLICIT_LE,)),),
    }
    fields.update(changes)
    return AAssociateRQ(**fields)  # type: ignore[arg-type]


def _ac(*contexts: PresentationContextAC, **changes: object) -> AAssociateAC:
    return AAssociateAC("ANY-SCP", "ECHOSCU", contexts, **changes)  # type: ignore[arg-type]


def _user(*items: object) -> AAssociateRQ:
    return _rq(user_information=items)


ENCODE_ERRORS: list[tuple[str, object, str]] = [
    ("not a PDU", object(), "not a PDU"),
    ("AE title of 17", _rq(called_ae_title="A" * 17), "called AE title must be at most 16"),
    ("AE title not ASCII", _rq(calling_ae_title="ÉCHO"), "calling AE title must be"),
    ("AE title control", _rq(calling_ae_title="A\nB"), "printable ASCII"),
    ("AE title not str", _rq(called_ae_title=b"AE"), "called AE title"),
    ("no context", _rq(presentation_contexts=()), "at least one presentation context"),
    (
        "even context ID",
        _rq(presentation_contexts=(PresentationContextRQ(2, VERIFICATION, (IMPLICIT_LE,)),)),
        "context ID must be odd, 1-255, not 2",
    ),
    (
        "context ID 257",
        _rq(presentation_contexts=(PresentationContextRQ(257, VERIFICATION, (IMPLICIT_LE,)),)),
        "not 257",
    ),
    (
        "context without transfer syntax",
        _rq(presentation_contexts=(PresentationContextRQ(1, VERIFICATION, ()),)),
        "presentation context 1 has no transfer syntax",
    ),
    (
        "AC context in RQ",
        _rq(presentation_contexts=(PresentationContextAC(1, 0, IMPLICIT_LE),)),
        "wrong kind of presentation context",
    ),
    (
        "UID of 65",
        _rq(presentation_contexts=(PresentationContextRQ(1, "1." + "2" * 63, (IMPLICIT_LE,)),)),
        "abstract syntax is not a valid UID",
    ),
    (
        "UID with leading zero",
        _rq(presentation_contexts=(PresentationContextRQ(1, VERIFICATION, ("1.02",)),)),
        "transfer syntax is not a valid UID",
    ),
    ("UID with a name", _rq(application_context="dicom"), "application context name is not"),
    ("UID with trailing dot", _rq(application_context="1.2."), "not a valid UID"),
    ("empty UID in RQ", _rq(application_context=""), "not a valid UID"),
    ("protocol version", _rq(protocol_version=0x10000), "protocol version must be 0-65535"),
    ("AC no context", _ac(), "at least one presentation context"),
    ("AC result 5", _ac(PresentationContextAC(1, 5, IMPLICIT_LE)), "result must be 0-4"),
    ("AC accepted without TS", _ac(PresentationContextAC(1, 0, "")), "transfer syntax is not"),
    ("AC even ID", _ac(PresentationContextAC(4, 0, IMPLICIT_LE)), "not 4"),
    (
        "RQ context in AC",
        _ac(PresentationContextRQ(1, VERIFICATION, (IMPLICIT_LE,))),  # type: ignore[arg-type]
        "wrong kind of presentation context",
    ),
    ("RJ result 3", AAssociateRJ(3, 1, 1), "A-ASSOCIATE-RJ result must be one of (1, 2)"),
    ("RJ source 0", AAssociateRJ(1, 0, 1), "A-ASSOCIATE-RJ source must be one of"),
    ("RJ reason 256", AAssociateRJ(1, 1, 256), "A-ASSOCIATE-RJ reason must be 0-255"),
    ("ABORT source 1", AAbort(source=1), "A-ABORT source must be one of (0, 2)"),
    ("ABORT reason -1", AAbort(reason=-1), "A-ABORT reason must be 0-255"),
    ("P-DATA without PDV", PDataTF(()), "at least one PDV"),
    ("PDV even context", PDataTF((PDV(2, True, True, b""),)), "PDV context ID must be odd"),
    ("PDV context 0", PDataTF((PDV(0, True, True, b""),)), "not 0"),
    ("max length -1", _user(MaximumLength(-1)), "maximum length must be 0-4294967295"),
    ("max length 2**32", _user(MaximumLength(1 << 32)), "maximum length must be"),
    ("async 65536", _user(AsynchronousOperationsWindow(65536, 0)), "operations invoked"),
    ("async -1", _user(AsynchronousOperationsWindow(0, -1)), "operations performed"),
    ("impl UID", _user(ImplementationClassUID("1..2")), "implementation class UID is not"),
    ("version name empty", _user(ImplementationVersionName("")), "must be 1-16 characters"),
    ("version name 17", _user(ImplementationVersionName("V" * 17)), "1-16 characters"),
    ("version name non-ASCII", _user(ImplementationVersionName("vé")), "must be ASCII"),
    ("role UID", _user(RoleSelection("x", True, True)), "role selection SOP class UID"),
    ("ext neg UID", _user(SOPClassExtendedNegotiation("", b"")), "extended negotiation SOP"),
    (
        "ext neg too long",
        _user(SOPClassExtendedNegotiation(CT_IMAGE, bytes(65536))),
        "item 0x56 would be 65563 bytes long; the limit is 65535",
    ),
    (
        "common ext related UID",
        _user(SOPClassCommonExtendedNegotiation(CT_IMAGE, STORAGE_SERVICE, ("1.x",))),
        "related general SOP class UID is not",
    ),
    (
        "common ext service UID",
        _user(SOPClassCommonExtendedNegotiation(CT_IMAGE, "", ())),
        "service class",
    ),
    ("identity type 256", _user(UserIdentityRQ(256, False, b"u")), "user identity type"),
    (
        "identity primary too long",
        _user(UserIdentityRQ(1, False, bytes(65536))),
        "field of 65536 bytes exceeds the 16-bit length",
    ),
    ("identity AC too long", _user(UserIdentityAC(bytes(65536))), "16-bit length"),
    ("unknown with a known type", _user(UnknownItem(0x51, b"")), "known item type 0x51"),
    ("unknown type 256", _user(UnknownItem(256, b"")), "unknown item type must be 0-255"),
    ("unknown reserved 256", _user(UnknownItem(0x70, b"", 256)), "reserved byte must be 0-255"),
    ("not a user item", _user("MaximumLength"), "not a user information sub-item"),
    (
        "top-level unknown 0x57 version 1",
        _rq(unknown_items=(UnknownItem(0x57, b"", 1),)),
        "known item type 0x57",
    ),
    (
        "top-level unknown too long",
        _rq(unknown_items=(UnknownItem(0x70, bytes(65536)),)),
        "item 0x70 would be 65536 bytes long",
    ),
]


@pytest.mark.parametrize(
    ("pdu", "message"), [e[1:] for e in ENCODE_ERRORS], ids=[e[0] for e in ENCODE_ERRORS]
)
def test_encode_error(pdu: PDU, message: str) -> None:
    with pytest.raises(LocalProtocolError) as caught:
        encode_pdu(pdu)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((2, 0, 0), "PDV context ID must be odd"),
        ((257, 0, 0), "PDV context ID"),
        ((1, 4, 0), "control header must be 0-3, not 4"),
        ((1, -1, 0), "control header"),
        ((1, 0, -1), "data length -1 does not fit"),
        ((1, 0, 0xFFFF_FFFA), "does not fit"),
    ],
)
def test_pdata_header_validation(args: tuple[int, int, int], message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        pdata_header(*args)


def test_pdata_header_largest_length() -> None:
    header = pdata_header(255, 3, 0xFFFF_FFF9)
    assert header == b"\x04\x00\xff\xff\xff\xff\xff\xff\xff\xfb\xff\x03"


def test_encoder_accepts_the_edges() -> None:
    # 16-character AE titles, 64-character UIDs, empty AE titles, rejected contexts without
    # a transfer syntax, and a 0x57 sub-item of another version inside user information.
    uid64 = "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.2456"
    assert len(uid64) == 64
    pdu = AAssociateRQ(
        "A" * 16,
        "",
        (PresentationContextRQ(255, uid64, (uid64,)),),
        (UnknownItem(0x57, b"future", 2),),
    )
    assert decode(encode_pdu(pdu)) == pdu
    ac_pdu = _ac(PresentationContextAC(1, 1, ""))
    assert decode(encode_pdu(ac_pdu)) == ac_pdu


# --- pynetdicom as an independent peer ------------------------------------------------------

STORE_RQ = AAssociateRQ(
    called_ae_title="STORESCP",
    calling_ae_title="AIOMOVE",
    presentation_contexts=(
        PresentationContextRQ(1, CT_IMAGE, (EXPLICIT_LE, IMPLICIT_LE)),
        PresentationContextRQ(3, VERIFICATION, (IMPLICIT_LE,)),
    ),
    user_information=(
        MaximumLength(32768),
        ImplementationClassUID("1.2.826.0.1.3680043.9.7"),
        ImplementationVersionName("AIOMOVE_010"),
        AsynchronousOperationsWindow(1, 1),
        RoleSelection(CT_IMAGE, scu_role=False, scp_role=True),
        SOPClassExtendedNegotiation(STUDY_ROOT_MOVE, b"\x01"),
        SOPClassCommonExtendedNegotiation(ENHANCED_CT, STORAGE_SERVICE, (CT_IMAGE,)),
        UserIdentityRQ(2, True, b"user", b"pass"),
    ),
)


def test_pynetdicom_decodes_our_associate_rq() -> None:
    from pynetdicom.pdu import A_ASSOCIATE_RQ

    encoded = encode_pdu(STORE_RQ)
    theirs = A_ASSOCIATE_RQ()
    theirs.decode(encoded)
    assert theirs.called_ae_title == "STORESCP"
    assert theirs.calling_ae_title == "AIOMOVE"
    assert theirs.application_context_name == "1.2.840.10008.3.1.1.1"
    contexts = [
        (c.context_id, c.abstract_syntax, c.transfer_syntax) for c in theirs.presentation_context
    ]
    assert contexts == [(1, CT_IMAGE, [EXPLICIT_LE, IMPLICIT_LE]), (3, VERIFICATION, [IMPLICIT_LE])]
    assert theirs.user_information is not None
    items: dict[str, Any] = {type(i).__name__: i for i in theirs.user_information.user_data}
    assert items["MaximumLengthSubItem"].maximum_length_received == 32768
    assert (
        items["ImplementationClassUIDSubItem"].implementation_class_uid == "1.2.826.0.1.3680043.9.7"
    )
    assert items["ImplementationVersionNameSubItem"].implementation_version_name == "AIOMOVE_010"
    role = items["SCP_SCU_RoleSelectionSubItem"]
    assert (role.sop_class_uid, role.scu_role, role.scp_role) == (CT_IMAGE, 0, 1)
    identity = items["UserIdentitySubItemRQ"]
    assert (identity.primary_field, identity.secondary_field) == (b"user", b"pass")
    assert theirs.encode() == encoded  # and pynetdicom writes exactly the same bytes back


def test_pynetdicom_associate_rq_decodes_here() -> None:
    from pynetdicom.pdu import A_ASSOCIATE_RQ
    from pynetdicom.pdu_primitives import (
        A_ASSOCIATE,
        ImplementationClassUIDNotification,
        MaximumLengthNotification,
    )
    from pynetdicom.presentation import PresentationContext

    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = "PYNETDICOM"
    primitive.called_ae_title = "AIOMOVE"
    context = PresentationContext()
    context.context_id = 7
    context.abstract_syntax = CT_IMAGE
    context.transfer_syntax = [EXPLICIT_LE, IMPLICIT_LE]
    primitive.presentation_context_definition_list = [context]
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = 65536
    class_uid = ImplementationClassUIDNotification()
    class_uid.implementation_class_uid = "1.2.826.0.1.3680043.9.3811.3.0.4"
    primitive.user_information = [max_length, class_uid]
    theirs = A_ASSOCIATE_RQ(primitive).encode()
    assert decode(theirs) == AAssociateRQ(
        "AIOMOVE",
        "PYNETDICOM",
        (PresentationContextRQ(7, CT_IMAGE, (EXPLICIT_LE, IMPLICIT_LE)),),
        (MaximumLength(65536), ImplementationClassUID("1.2.826.0.1.3680043.9.3811.3.0.4")),
    )


def test_pynetdicom_decodes_our_associate_ac() -> None:
    from pynetdicom.pdu import A_ASSOCIATE_AC

    encoded = encode_pdu(AC_OBJ)
    theirs = A_ASSOCIATE_AC()
    theirs.decode(encoded)
    contexts = [(c.context_id, c.result, c.transfer_syntax) for c in theirs.presentation_context]
    assert contexts == [(1, 0, IMPLICIT_LE), (3, 3, None)]  # pynetdicom: empty sub-item -> None
    # With a transfer syntax in every context, pynetdicom writes our bytes back unchanged.
    both = _ac(PresentationContextAC(1, 0, EXPLICIT_LE), PresentationContextAC(3, 4, IMPLICIT_LE))
    encoded = encode_pdu(both)
    theirs = A_ASSOCIATE_AC()
    theirs.decode(encoded)
    assert theirs.encode() == encoded


def test_pdata_both_ways_with_pynetdicom() -> None:
    from pynetdicom.pdu import P_DATA_TF
    from pynetdicom.pdu_primitives import P_DATA

    theirs = P_DATA_TF()
    theirs.decode(PDATA_BYTES)
    values = [(item.context_id, item.data) for item in theirs.presentation_data_value_items]
    assert values == [(1, b"\x03\x08\x00"), (3, b"\x00abc")]

    primitive = P_DATA()
    # pynetdicom wants [ID, PDV] lists at run time, whatever its annotation says.
    value_list: Any = [[5, b"\x02" + b"data set"], [5, b"\x01cmd"]]
    primitive.presentation_data_value_list = value_list
    assert decode(P_DATA_TF(primitive).encode()) == PDataTF(
        (PDV(5, False, True, b"data set"), PDV(5, True, False, b"cmd"))
    )


def test_short_pdus_with_pynetdicom() -> None:
    from pynetdicom.pdu import A_ABORT_RQ, A_ASSOCIATE_RJ, A_RELEASE_RP, A_RELEASE_RQ

    rj = A_ASSOCIATE_RJ()
    rj.decode(RJ_BYTES)
    assert (rj.result, rj.source, rj.reason_diagnostic) == (1, 1, 7)
    abort = A_ABORT_RQ()
    abort.decode(ABORT_PROVIDER_BYTES)
    assert (abort.source, abort.reason_diagnostic) == (2, 6)
    assert A_RELEASE_RQ().encode() == RELEASE_RQ_BYTES
    assert A_RELEASE_RP().encode() == RELEASE_RP_BYTES
