"""DIMSE command set codec: golden bytes from PS3.7 Table E.1-1, pydicom/pynetdicom as peers."""

from __future__ import annotations

import dataclasses
import struct
from io import BytesIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset

from aiomove.errors import LocalProtocolError, RemoteProtocolError, StatusError
from aiomove.proto import dimse
from aiomove.proto.dimse import (
    CCancelRQ,
    CEchoRQ,
    CEchoRSP,
    CFindRQ,
    CFindRSP,
    CGetRQ,
    CGetRSP,
    CMoveRQ,
    CMoveRSP,
    CommandField,
    CStoreRQ,
    CStoreRSP,
    DimseDecodeError,
    Priority,
    decode_command,
    encode_command,
    make_response,
)
from aiomove.proto.status import Status


def hdr(element: int, length: int) -> bytes:
    """Implicit VR LE element header for (0000,element): group, element (2 x US), length (UL)."""
    return struct.pack("<HHI", 0x0000, element, length)


# --- golden bytes, written from PS3.7 §9.3 / Table E.1-1 -----------------------------------

# C-ECHO-RQ as DCMTK echoscu sends it (its elements and values were checked against echoscu
# talking to a pynetdicom SCP on loopback).
ECHO_RQ = (
    hdr(0x0000, 4) + struct.pack("<I", 56)  # CommandGroupLength UL = 56 bytes follow
    + hdr(0x0002, 18) + b"1.2.840.10008.1.1\x00"  # AffectedSOPClassUID, 17 chars + NUL pad
    + hdr(0x0100, 2) + struct.pack("<H", 0x0030)  # CommandField C-ECHO-RQ
    + hdr(0x0110, 2) + struct.pack("<H", 1)  # MessageID 1
    + hdr(0x0800, 2) + struct.pack("<H", 0x0101)  # CommandDataSetType: no data set
)  # fmt: skip

ECHO_RSP = (
    hdr(0x0000, 4) + struct.pack("<I", 66)  # 26 + 4 x 10
    + hdr(0x0002, 18) + b"1.2.840.10008.1.1\x00"  # AffectedSOPClassUID
    + hdr(0x0100, 2) + struct.pack("<H", 0x8030)  # CommandField C-ECHO-RSP
    + hdr(0x0120, 2) + struct.pack("<H", 1)  # MessageIDBeingRespondedTo 1
    + hdr(0x0800, 2) + struct.pack("<H", 0x0101)  # no data set
    + hdr(0x0900, 2) + struct.pack("<H", 0x0000)  # Status success
)  # fmt: skip

# C-MOVE-RQ as DCMTK movescu sends it (Study Root, -aem DEST; checked the same way).
MOVE_RQ = (
    hdr(0x0000, 4) + struct.pack("<I", 88)  # 36 + 10 + 10 + 12 + 10 + 10
    + hdr(0x0002, 28) + b"1.2.840.10008.5.1.4.1.2.2.2\x00"  # Study Root MOVE, 27 + NUL
    + hdr(0x0100, 2) + struct.pack("<H", 0x0021)  # CommandField C-MOVE-RQ
    + hdr(0x0110, 2) + struct.pack("<H", 1)  # MessageID 1
    + hdr(0x0600, 4) + b"DEST"  # MoveDestination AE, even already
    + hdr(0x0700, 2) + struct.pack("<H", 0)  # Priority MEDIUM
    + hdr(0x0800, 2) + struct.pack("<H", 0x0001)  # CommandDataSetType: identifier follows
)  # fmt: skip

# C-STORE-RQ of a C-MOVE sub-operation (PS3.7 Table 9.3-1 with the two U elements).
STORE_RQ = (
    hdr(0x0000, 4) + struct.pack("<I", 118)  # 34 + 10 + 10 + 10 + 10 + 18 + 16 + 10
    + hdr(0x0002, 26) + b"1.2.840.10008.5.1.4.1.1.2\x00"  # CT Image Storage, 25 + NUL
    + hdr(0x0100, 2) + struct.pack("<H", 0x0001)  # CommandField C-STORE-RQ
    + hdr(0x0110, 2) + struct.pack("<H", 7)  # MessageID 7
    + hdr(0x0700, 2) + struct.pack("<H", 2)  # Priority LOW
    + hdr(0x0800, 2) + struct.pack("<H", 0x0001)  # data set follows
    + hdr(0x1000, 10) + b"1.2.3.4.5\x00"  # AffectedSOPInstanceUID, 9 + NUL
    + hdr(0x1030, 8) + b"MOVESCU "  # MoveOriginatorApplicationEntityTitle, 7 + space
    + hdr(0x1031, 2) + struct.pack("<H", 3)  # MoveOriginatorMessageID 3
)  # fmt: skip

# Final C-MOVE-RSP with failures, an error comment and an offending element.
MOVE_RSP = (
    hdr(0x0000, 4) + struct.pack("<I", 140)  # 36 + 10 + 10 + 10 + 10 + 12 + 12 + 4 x 10
    + hdr(0x0002, 28) + b"1.2.840.10008.5.1.4.1.2.2.2\x00"
    + hdr(0x0100, 2) + struct.pack("<H", 0x8021)  # CommandField C-MOVE-RSP
    + hdr(0x0120, 2) + struct.pack("<H", 1)  # MessageIDBeingRespondedTo
    + hdr(0x0800, 2) + struct.pack("<H", 0x0101)  # no data set
    + hdr(0x0900, 2) + struct.pack("<H", 0xA900)  # Status: identifier does not match
    + hdr(0x0901, 4) + struct.pack("<HH", 0x0010, 0x0020)  # OffendingElement (0010,0020)
    + hdr(0x0902, 4) + b"Bad "  # ErrorComment LO, 3 + space
    + hdr(0x1020, 2) + struct.pack("<H", 0)  # remaining
    + hdr(0x1021, 2) + struct.pack("<H", 5)  # completed
    + hdr(0x1022, 2) + struct.pack("<H", 2)  # failed
    + hdr(0x1023, 2) + struct.pack("<H", 1)  # warning
)  # fmt: skip

STUDY_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"

GOLDEN = [
    (ECHO_RQ, CEchoRQ(message_id=1)),
    (
        ECHO_RSP,
        CEchoRSP(
            message_id_being_responded_to=1, status=0, affected_sop_class_uid="1.2.840.10008.1.1"
        ),
    ),
    (MOVE_RQ, CMoveRQ(message_id=1, affected_sop_class_uid=STUDY_MOVE, move_destination="DEST")),
    (
        STORE_RQ,
        CStoreRQ(
            message_id=7,
            affected_sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            affected_sop_instance_uid="1.2.3.4.5",
            priority=Priority.LOW,
            move_originator_ae_title="MOVESCU",
            move_originator_message_id=3,
        ),
    ),
    (
        MOVE_RSP,
        CMoveRSP(
            message_id_being_responded_to=1,
            status=0xA900,
            affected_sop_class_uid=STUDY_MOVE,
            number_of_remaining_suboperations=0,
            number_of_completed_suboperations=5,
            number_of_failed_suboperations=2,
            number_of_warning_suboperations=1,
            offending_element=(0x00100020,),
            error_comment="Bad",
        ),
    ),
]


def test_golden_lengths_match_their_group_length() -> None:
    # Guards the hand-written literals themselves: header (12) + announced length.
    for golden, _ in GOLDEN:
        assert len(golden) == 12 + struct.unpack_from("<I", golden, 8)[0]
    assert len(ECHO_RQ) == 68


@pytest.mark.parametrize(("golden", "message"), GOLDEN)
def test_encode_golden(golden: bytes, message: dimse.DimseMessage) -> None:
    assert encode_command(message) == golden


@pytest.mark.parametrize(("golden", "message"), GOLDEN)
def test_decode_golden(golden: bytes, message: dimse.DimseMessage) -> None:
    assert decode_command(golden) == message
    assert decode_command(memoryview(golden)) == message


def read_with_pydicom(data: bytes) -> Dataset:
    return read_dataset(BytesIO(data), is_implicit_VR=True, is_little_endian=True)


@pytest.mark.parametrize(("golden", "message"), GOLDEN)
def test_golden_read_by_pydicom(golden: bytes, message: dimse.DimseMessage) -> None:
    ds = read_with_pydicom(golden)
    assert ds.CommandGroupLength == len(golden) - 12
    assert ds.CommandField == message.command_field
    assert (ds.CommandDataSetType != 0x0101) is message.has_dataset


def test_pydicom_reads_store_rq_fields() -> None:
    ds = read_with_pydicom(STORE_RQ)
    assert ds.AffectedSOPInstanceUID == "1.2.3.4.5"
    assert ds.MoveOriginatorApplicationEntityTitle.strip() == "MOVESCU"
    assert ds.MoveOriginatorMessageID == 3
    assert ds.Priority == 2


def test_pydicom_reads_move_rsp_fields() -> None:
    ds = read_with_pydicom(MOVE_RSP)
    assert ds.Status == 0xA900
    assert ds.OffendingElement == 0x00100020
    assert ds.ErrorComment == "Bad"
    assert [ds.NumberOfCompletedSuboperations, ds.NumberOfFailedSuboperations] == [5, 2]


def test_element_table_matches_pydicom_dictionary() -> None:
    for element, (keyword, vr) in dimse.COMMAND_ELEMENTS.items():
        assert dictionary_VR(element) == vr
        assert keyword_for_tag(element) == keyword


def test_command_field_values() -> None:
    # PS3.7 Table E.1-1 / §9.3: response = request | 0x8000, C-CANCEL-RQ = 0x0FFF.
    expected = {
        "C_STORE_RQ": 0x0001,
        "C_STORE_RSP": 0x8001,
        "C_GET_RQ": 0x0010,
        "C_GET_RSP": 0x8010,
        "C_FIND_RQ": 0x0020,
        "C_FIND_RSP": 0x8020,
        "C_MOVE_RQ": 0x0021,
        "C_MOVE_RSP": 0x8021,
        "C_ECHO_RQ": 0x0030,
        "C_ECHO_RSP": 0x8030,
        "C_CANCEL_RQ": 0x0FFF,
    }
    assert {field.name: field.value for field in CommandField} == expected
    assert {p.name: p.value for p in Priority} == {"MEDIUM": 0, "HIGH": 1, "LOW": 2}


# --- pynetdicom as an independent encoder ------------------------------------------------


def pynetdicom_bytes(primitive: object, message_cls: type) -> bytes:
    from pynetdicom.dsutils import encode

    message = message_cls()
    message.primitive_to_message(primitive)
    data = encode(message.command_set, True, True)
    assert isinstance(data, bytes)
    return data


def test_move_rq_matches_pynetdicom() -> None:
    from pynetdicom.dimse_messages import C_MOVE_RQ
    from pynetdicom.dimse_primitives import C_MOVE

    primitive = C_MOVE()
    primitive.MessageID = 1
    primitive.AffectedSOPClassUID = STUDY_MOVE
    primitive.MoveDestination = "DEST"
    primitive.Priority = 0
    primitive.Identifier = BytesIO(b"\x08\x00")
    assert pynetdicom_bytes(primitive, C_MOVE_RQ) == MOVE_RQ


def test_store_rq_matches_pynetdicom() -> None:
    from pynetdicom.dimse_messages import C_STORE_RQ
    from pynetdicom.dimse_primitives import C_STORE

    primitive = C_STORE()
    primitive.MessageID = 7
    primitive.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    primitive.AffectedSOPInstanceUID = "1.2.3.4.5"
    primitive.Priority = 2
    primitive.MoveOriginatorApplicationEntityTitle = "MOVESCU"
    primitive.MoveOriginatorMessageID = 3
    primitive.DataSet = BytesIO(b"\x08\x00")
    assert pynetdicom_bytes(primitive, C_STORE_RQ) == STORE_RQ


def test_move_rsp_pending_matches_pynetdicom() -> None:
    from pynetdicom.dimse_messages import C_MOVE_RSP
    from pynetdicom.dimse_primitives import C_MOVE

    primitive = C_MOVE()
    primitive.MessageIDBeingRespondedTo = 9
    primitive.AffectedSOPClassUID = STUDY_MOVE
    primitive.Status = 0xFF00
    primitive.NumberOfRemainingSuboperations = 3
    primitive.NumberOfCompletedSuboperations = 1
    primitive.NumberOfFailedSuboperations = 0
    primitive.NumberOfWarningSuboperations = 0
    ours = CMoveRSP(
        message_id_being_responded_to=9,
        status=0xFF00,
        affected_sop_class_uid=STUDY_MOVE,
        number_of_remaining_suboperations=3,
        number_of_completed_suboperations=1,
        number_of_failed_suboperations=0,
        number_of_warning_suboperations=0,
    )
    assert encode_command(ours) == pynetdicom_bytes(primitive, C_MOVE_RSP)


# --- property tests ------------------------------------------------------------------------

_uid_component = st.one_of(st.just("0"), st.integers(1, 10**12).map(str))
uids = (
    st.lists(_uid_component, min_size=2, max_size=12).map(".".join).filter(lambda s: len(s) <= 64)
)
ae_titles = st.from_regex(r"[A-Za-z0-9_\-]([A-Za-z0-9_ \-]{0,14}[A-Za-z0-9_\-])?", fullmatch=True)
comments = st.from_regex(r"[A-Za-z0-9:.,]([A-Za-z0-9 :.,()]{0,62}[A-Za-z0-9.)])?", fullmatch=True)
us = st.integers(0, 0xFFFF)
opt_us = st.none() | us
tags = st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=4).map(tuple)
flags = st.booleans()

messages = st.one_of(
    st.builds(CEchoRQ, message_id=us, affected_sop_class_uid=uids, has_dataset=flags),
    st.builds(
        CEchoRSP,
        message_id_being_responded_to=us,
        status=us,
        affected_sop_class_uid=st.none() | uids,
        error_comment=st.none() | comments,
        has_dataset=flags,
    ),
    st.builds(
        CStoreRQ,
        message_id=us,
        affected_sop_class_uid=uids,
        affected_sop_instance_uid=uids,
        priority=us,
        move_originator_ae_title=st.none() | ae_titles,
        move_originator_message_id=opt_us,
        has_dataset=flags,
    ),
    st.builds(
        CStoreRSP,
        message_id_being_responded_to=us,
        status=us,
        affected_sop_class_uid=st.none() | uids,
        affected_sop_instance_uid=st.none() | uids,
        offending_element=st.none() | tags,
        error_comment=st.none() | comments,
        has_dataset=flags,
    ),
    *(
        st.builds(cls, message_id=us, affected_sop_class_uid=uids, priority=us, has_dataset=flags)
        for cls in (CFindRQ, CGetRQ)
    ),
    st.builds(
        CFindRSP,
        message_id_being_responded_to=us,
        status=us,
        affected_sop_class_uid=st.none() | uids,
        offending_element=st.none() | tags,
        error_comment=st.none() | comments,
        has_dataset=flags,
    ),
    st.builds(
        CMoveRQ,
        message_id=us,
        affected_sop_class_uid=uids,
        move_destination=ae_titles,
        priority=us,
        has_dataset=flags,
    ),
    *(
        st.builds(
            cls,
            message_id_being_responded_to=us,
            status=us,
            affected_sop_class_uid=st.none() | uids,
            number_of_remaining_suboperations=opt_us,
            number_of_completed_suboperations=opt_us,
            number_of_failed_suboperations=opt_us,
            number_of_warning_suboperations=opt_us,
            offending_element=st.none() | tags,
            error_comment=st.none() | comments,
            has_dataset=flags,
        )
        for cls in (CGetRSP, CMoveRSP)
    ),
    st.builds(CCancelRQ, message_id_being_responded_to=us, has_dataset=flags),
)

# Our attribute -> pydicom keyword, to build the same command set with pydicom.
KEYWORDS = {
    "affected_sop_class_uid": "AffectedSOPClassUID",
    "message_id": "MessageID",
    "message_id_being_responded_to": "MessageIDBeingRespondedTo",
    "move_destination": "MoveDestination",
    "priority": "Priority",
    "status": "Status",
    "offending_element": "OffendingElement",
    "error_comment": "ErrorComment",
    "affected_sop_instance_uid": "AffectedSOPInstanceUID",
    "number_of_remaining_suboperations": "NumberOfRemainingSuboperations",
    "number_of_completed_suboperations": "NumberOfCompletedSuboperations",
    "number_of_failed_suboperations": "NumberOfFailedSuboperations",
    "number_of_warning_suboperations": "NumberOfWarningSuboperations",
    "move_originator_ae_title": "MoveOriginatorApplicationEntityTitle",
    "move_originator_message_id": "MoveOriginatorMessageID",
}


def pydicom_encode(message: dimse.DimseMessage) -> bytes:
    ds = Dataset()
    ds.CommandGroupLength = 0
    ds.CommandField = int(message.command_field)
    ds.CommandDataSetType = 0x0001 if message.has_dataset else 0x0101
    for field in dataclasses.fields(message):
        name = field.name
        value = getattr(message, name)
        if name != "has_dataset" and value is not None:
            setattr(ds, KEYWORDS[name], list(value) if isinstance(value, tuple) else value)

    def write(dataset: Dataset) -> bytes:
        out = DicomBytesIO()
        out.is_little_endian, out.is_implicit_VR = True, True
        write_dataset(out, dataset)
        return out.getvalue()

    ds.CommandGroupLength = len(write(ds)) - 12
    return write(ds)


@settings(deadline=None)  # CPU-bound; shared CI machines vary in speed
@given(messages)
def test_round_trip(message: dimse.DimseMessage) -> None:
    assert decode_command(encode_command(message)) == message


@settings(deadline=None)  # CPU-bound; shared CI machines vary in speed
@given(messages)
def test_encoding_equals_pydicom(message: dimse.DimseMessage) -> None:
    assert encode_command(message) == pydicom_encode(message)


@settings(deadline=None)  # CPU-bound; shared CI machines vary in speed
@given(messages)
def test_pydicom_encoding_decodes(message: dimse.DimseMessage) -> None:
    assert decode_command(pydicom_encode(message)) == message


# --- decoding rules ------------------------------------------------------------------------


def command(*elements: bytes) -> bytes:
    """A command set from element bytes, with a correct CommandGroupLength in front."""
    body = b"".join(elements)
    return hdr(0x0000, 4) + struct.pack("<I", len(body)) + body


def us_el(element: int, value: int) -> bytes:
    return hdr(element, 2) + struct.pack("<H", value)


VERIFICATION_EL = hdr(0x0002, 18) + b"1.2.840.10008.1.1\x00"
ECHO_BODY = [VERIFICATION_EL, us_el(0x0100, 0x0030), us_el(0x0110, 1), us_el(0x0800, 0x0101)]


def test_command_helper_reproduces_golden() -> None:
    assert command(*ECHO_BODY) == ECHO_RQ


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (ECHO_RQ[:11], "shorter than the group length element"),
        (ECHO_RQ[12:], "no group length element"),
        (hdr(0x0000, 2) + b"\x38\x00" + ECHO_RQ[12:], "group length of 2 bytes"),
        (ECHO_RQ + b"\x00\x00", "bytes beyond the group length"),
        (ECHO_RQ[:-2], "fewer bytes than the group length"),
        (command(*ECHO_BODY, b"\x00\x00\x02\x09"), "counted but truncated header"),
        (command(*ECHO_BODY, struct.pack("<HHI", 0x0008, 0x0016, 0)), "element of group 0008"),
        (command(*ECHO_BODY, hdr(0x0902, 10) + b"abc"), "value overruns"),
        (command(*ECHO_BODY, hdr(0x0902, 0xFFFFFFFF)), "undefined length"),
        (command(*ECHO_BODY, us_el(0x0110, 2)), "MessageID twice"),
        (command(*ECHO_BODY, hdr(0x0000, 4) + b"\x00" * 4), "group length twice"),
        (command(*ECHO_BODY, hdr(0x0900, 3) + b"\x00\x00\x00"), "US of 3 bytes"),
        (command(*ECHO_BODY, hdr(0x0901, 6) + b"\x10\x00" * 3), "AT not a multiple of 4"),
        (command(VERIFICATION_EL, us_el(0x0110, 1), us_el(0x0800, 0x0101)), "no CommandField"),
        (command(*ECHO_BODY[:3]), "no CommandDataSetType"),
        (command(ECHO_BODY[0], ECHO_BODY[1], ECHO_BODY[3]), "C-ECHO-RQ without MessageID"),
        (command(*ECHO_BODY[1:]), "C-ECHO-RQ without AffectedSOPClassUID"),
        (command(VERIFICATION_EL, us_el(0x0100, 0x0130), *ECHO_BODY[2:]), "N-GET-RSP"),
        (command(VERIFICATION_EL, us_el(0x0100, 0x0031), *ECHO_BODY[2:]), "unknown field"),
        (command(MOVE_RQ[12:68] + MOVE_RQ[80:]), "C-MOVE-RQ without MoveDestination"),
    ],
)
def test_malformed_command_sets(data: bytes, why: str) -> None:
    with pytest.raises(DimseDecodeError):
        decode_command(data)


def test_decode_error_is_a_remote_protocol_error() -> None:
    assert issubclass(DimseDecodeError, RemoteProtocolError)


@pytest.mark.parametrize(
    ("elements", "missing"),
    [
        # C-STORE-RQ without AffectedSOPInstanceUID, then without Priority.
        ([us_el(0x0100, 0x0001), us_el(0x0110, 1), us_el(0x0700, 0)], "AffectedSOPInstanceUID"),
        (
            [us_el(0x0100, 0x0001), us_el(0x0110, 1), hdr(0x1000, 2) + b"1\x00"],
            "Priority",
        ),
        ([us_el(0x0100, 0x8001), us_el(0x0120, 1)], "Status"),
        ([us_el(0x0100, 0x8021), us_el(0x0900, 0)], "MessageIDBeingRespondedTo"),
        ([us_el(0x0100, 0x0FFF)], "MessageIDBeingRespondedTo"),
        ([us_el(0x0100, 0x0020), us_el(0x0110, 1), us_el(0x0700, 0)], "AffectedSOPClassUID"),
    ],
)
def test_missing_mandatory_element_is_named(elements: list[bytes], missing: str) -> None:
    cls_uid = [] if missing == "AffectedSOPClassUID" else [hdr(0x0002, 2) + b"1\x00"]
    data = command(*cls_uid, *elements, us_el(0x0800, 0x0101))
    with pytest.raises(DimseDecodeError, match=missing):
        decode_command(data)


def test_empty_mandatory_value_counts_as_missing() -> None:
    blank_destination = MOVE_RQ.replace(hdr(0x0600, 4) + b"DEST", hdr(0x0600, 4) + b"    ")
    with pytest.raises(DimseDecodeError, match="MoveDestination"):
        decode_command(blank_destination)


def test_unknown_elements_are_skipped() -> None:
    data = command(
        hdr(0x0001, 4) + b"\x00\x00\x00\x00",  # CommandLengthToEnd (retired)
        *ECHO_BODY,
        us_el(0x0850, 3),  # NumberOfMatches (retired)
        hdr(0x4000, 4) + b"hi  ",  # DialogReceiver LT (retired)
        hdr(0x7777, 3) + b"odd",  # not in any dictionary
    )
    assert decode_command(data) == CEchoRQ(message_id=1)


def test_element_order_is_not_enforced() -> None:
    assert decode_command(command(*reversed(ECHO_BODY))) == CEchoRQ(message_id=1)


def test_lenient_padding_on_decode() -> None:
    data = STORE_RQ.replace(b"1.2.3.4.5\x00", b"1.2.3.4.5 ").replace(b"MOVESCU ", b" MOVESCU")
    message = decode_command(data)
    assert isinstance(message, CStoreRQ)
    assert message.affected_sop_instance_uid == "1.2.3.4.5"
    assert message.move_originator_ae_title == "MOVESCU"


@pytest.mark.parametrize(("value", "present"), [(0x0101, False), (0x0001, True), (0, True)])
def test_data_set_type(value: int, present: bool) -> None:
    data = command(*ECHO_BODY[:3], us_el(0x0800, value))
    assert decode_command(data).has_dataset is present
    assert CFindRQ(message_id=1, affected_sop_class_uid="1.2").has_dataset is True


def test_empty_optional_element_is_absent() -> None:
    data = command(*ECHO_BODY, hdr(0x0902, 0))  # zero-length ErrorComment... on an RQ
    assert decode_command(data) == CEchoRQ(message_id=1)
    rsp = command(ECHO_RSP[12:], hdr(0x1020, 0))  # zero-length NumberOfRemaining...
    assert decode_command(rsp) == decode_command(ECHO_RSP)


# --- encoding rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        CEchoRQ(message_id=0x10000),
        CEchoRQ(message_id=-1),
        CEchoRQ(message_id=1, affected_sop_class_uid="1." + "2" * 63),  # 65 characters
        CEchoRQ(message_id=1, affected_sop_class_uid="1.2.3\u00e9"),
        CEchoRQ(message_id=1, affected_sop_class_uid=""),
        CMoveRQ(message_id=1, affected_sop_class_uid=STUDY_MOVE, move_destination="A" * 17),
        CMoveRQ(message_id=1, affected_sop_class_uid=STUDY_MOVE, move_destination="   "),
        CMoveRQ(message_id=1, affected_sop_class_uid=STUDY_MOVE, move_destination="A\\B"),
        CEchoRSP(message_id_being_responded_to=1, status=0, error_comment="x" * 65),
        CEchoRSP(message_id_being_responded_to=1, status=0, error_comment="tab\there"),
        CStoreRSP(message_id_being_responded_to=1, status=0xC000, offending_element=()),
        CStoreRSP(message_id_being_responded_to=1, status=0xC000, offending_element=(1 << 32,)),
        CMoveRSP(message_id_being_responded_to=1, status=0, number_of_failed_suboperations=-1),
    ],
)
def test_unencodable_values(message: dimse.DimseMessage) -> None:
    with pytest.raises(LocalProtocolError):
        encode_command(message)


def test_maximum_lengths_encode() -> None:
    uid64 = "1." + "2" * 62
    rq = CMoveRQ(message_id=0xFFFF, affected_sop_class_uid=uid64, move_destination="A" * 16)
    assert decode_command(encode_command(rq)) == rq


# --- responses -----------------------------------------------------------------------------


def test_make_response_store() -> None:
    rq = decode_command(STORE_RQ)
    assert isinstance(rq, CStoreRQ)
    rsp = make_response(rq, 0xB007, error_comment="coerced")
    assert rsp == CStoreRSP(
        message_id_being_responded_to=7,
        status=0xB007,
        affected_sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        affected_sop_instance_uid="1.2.3.4.5",
        error_comment="coerced",
    )


def test_make_response_echo_matches_golden() -> None:
    rsp = make_response(CEchoRQ(message_id=1), Status(0))
    assert encode_command(rsp) == ECHO_RSP


def test_make_response_move_and_find() -> None:
    rq = CMoveRQ(message_id=5, affected_sop_class_uid=STUDY_MOVE, move_destination="X")
    rsp = make_response(rq, 0xFF00, number_of_remaining_suboperations=4)
    assert isinstance(rsp, CMoveRSP)
    assert (rsp.message_id_being_responded_to, rsp.number_of_remaining_suboperations) == (5, 4)
    find = make_response(
        CFindRQ(message_id=2, affected_sop_class_uid="1.2"), 0xFF00, has_dataset=True
    )
    assert isinstance(find, CFindRSP)
    assert find.has_dataset
    get = make_response(CGetRQ(message_id=3, affected_sop_class_uid="1.2"), 0)
    assert isinstance(get, CGetRSP)
    assert not get.has_dataset


def test_make_response_to_cancel_is_none() -> None:
    # PS3.7 §9.3.2.3: C-CANCEL-RQ is never answered.
    assert make_response(CCancelRQ(message_id_being_responded_to=1), 0) is None


def test_make_response_to_a_response_is_refused() -> None:
    rsp: dimse.DimseMessage = CEchoRSP(message_id_being_responded_to=1, status=0)
    with pytest.raises(LocalProtocolError):
        make_response(rsp, 0)


def test_response_status_helpers() -> None:
    rsp = decode_command(MOVE_RSP)
    assert isinstance(rsp, CMoveRSP)
    assert rsp.status_obj == Status(0xA900)
    assert rsp.status_obj.is_failure
    with pytest.raises(StatusError) as info:
        rsp.raise_for_status()
    assert info.value.status == 0xA900
    ok = decode_command(ECHO_RSP)
    assert isinstance(ok, CEchoRSP)
    ok.raise_for_status()
    assert ok.status_obj.is_success
