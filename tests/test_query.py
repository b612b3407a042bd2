"""C-MOVE identifiers: -k keys, query files, PS3.4 C.4.2.2.1 validation, encoding."""

from __future__ import annotations

import struct
import zlib
from io import BytesIO
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom import Dataset, config
from pydicom.dataelem import DataElement
from pydicom.dataset import FileMetaDataset
from pydicom.filereader import read_dataset
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
)

from aiomove.query import (
    Level,
    Model,
    QueryError,
    build_identifier,
    decode_identifier,
    encode_identifier,
    friendly_identifier,
    load_query_file,
    parse_key,
    parse_key_path,
    strip_uid_padding,
    uids_match,
    validate,
)

PATIENT_ID = Tag(0x0010, 0x0020)
STUDY_UID = Tag(0x0020, 0x000D)

# --- key syntax ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "tag", "value"),
    [
        ("0010,0020=PAT1", PATIENT_ID, "PAT1"),
        ("(0010,0020)=PAT1", PATIENT_ID, "PAT1"),
        ("10,20=PAT1", PATIENT_ID, "PAT1"),  # sscanf("%x,%x") takes short hex
        ("0020,000d=1.2.3", STUDY_UID, "1.2.3"),
        ("PatientID=PAT1", PATIENT_ID, "PAT1"),
        ("PatientID=A=B", PATIENT_ID, "A=B"),  # the value starts after the first '='
        ("PatientID", PATIENT_ID, None),  # zero length
        ("0010,0020", PATIENT_ID, None),
        ("PatientID=", PATIENT_ID, ""),
        ("0009,0010=CREATOR", Tag(0x0009, 0x0010), "CREATOR"),  # private creator: LO
    ],
)
def test_key_syntax(spec: str, tag: BaseTag, value: str | None) -> None:
    assert parse_key(spec) == (tag, value)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gggg,eeee=1", "bad key format or dictionary name not found in dictionary: gggg,eeee"),
        ("patientid=1", "bad key format or dictionary name not found in dictionary: patientid"),
        ("NoSuchKeyword", "bad key format or dictionary name not found in dictionary"),
        ("=X", "bad key format or dictionary name not found in dictionary: "),
        ("", "bad key format or dictionary name not found in dictionary: "),
        ("0011,1010=X", "unknown tag: (0011,1010)"),
        ("ffff,ffff=1", "unknown tag: (ffff,ffff)"),
        ("ReferencedImageSequence[0].ReferencedSOPInstanceUID=1.2", "inside a sequence"),
    ],
)
def test_bad_keys(spec: str, message: str) -> None:
    with pytest.raises(QueryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_key(spec)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("Rows=abc", r'\(0028,0010\)="abc" \(not an integer for VR US\)'),
        ("Rows=70000", r"out of range for VR US"),
        ("StudyDate=abc", r"Invalid value for VR DA"),
        ("StudyInstanceUID=1.2.abc", r"Invalid value for VR UI"),
        ("QueryRetrieveLevel=study", r"Invalid value for VR CS"),
        ("PatientID=" + "x" * 65, r"exceeds the maximum length of 64"),
        ("ExposureTime=1.5", r"Invalid value for VR IS"),
        ("ReferencedImageSequence=X", r"\(VR SQ\)"),
        ("PixelData=1", r"\(VR OB\)"),
    ],
)
def test_bad_value_for_vr(spec: str, reason: str) -> None:
    with pytest.raises(QueryError, match="cannot put tag value: .*" + reason):
        build_identifier(None, [spec])


def test_values_take_their_vr() -> None:
    ds = build_identifier(
        None,
        [
            "Rows=512",
            "SOPInstanceUID=1.2.3\\1.2.4",
            "PixelSpacing=0.5\\0.5",
            "ImageComments=a\\b",  # LT: a backslash is a character, not a separator
            "FrameIncrementPointer=FrameTime",
            "PatientName=Doe*",  # wildcards are characters of the query, not invalid ones
            "ModalitiesInStudy=C?",
            "StudyDate=20240101-20241231",  # a range
            "PatientBirthDate",
            "ReferencedImageSequence",
        ],
    )
    assert ds.Rows == 512
    assert list(ds.SOPInstanceUID) == ["1.2.3", "1.2.4"]
    assert [float(v) for v in ds.PixelSpacing] == [0.5, 0.5]
    assert ds.ImageComments == "a\\b"
    assert ds.FrameIncrementPointer == Tag(0x0018, 0x1063)
    assert (ds.PatientName, ds.ModalitiesInStudy) == ("Doe*", "C?")
    assert ds["PatientBirthDate"].is_empty
    assert ds["ReferencedImageSequence"].VR == "SQ"
    assert len(ds.ReferencedImageSequence) == 0


def test_sequence_paths() -> None:
    path = parse_key_path("ReferencedSeriesSequence[1].(0020,000E)=1.2.3")
    assert path.items == ((Tag(0x0008, 0x1115), 1),)
    assert path.tag == Tag(0x0020, 0x000E)
    ds = build_identifier(None, ["ReferencedSeriesSequence[1].SeriesInstanceUID=1.2.3"])
    assert len(ds.ReferencedSeriesSequence) == 2
    assert ds.ReferencedSeriesSequence[1].SeriesInstanceUID == "1.2.3"
    with pytest.raises(QueryError, match="needs an item index"):
        parse_key_path("ReferencedSeriesSequence.SeriesInstanceUID=1")
    with pytest.raises(QueryError, match="is not a sequence"):
        parse_key_path("PatientID[0].SeriesInstanceUID=1")


# --- query files -----------------------------------------------------------------------------


def _query(**keys: str) -> Dataset:
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def test_keys_replace_or_insert_into_a_loaded_file(tmp_path: Path) -> None:
    path = tmp_path / "q.dcm"
    original = _query(QueryRetrieveLevel="PATIENT", PatientID="PAT001", PatientName="Doe^J")
    original.file_meta = FileMetaDataset()
    original.file_meta.MediaStorageSOPClassUID = UID(Model.PATIENT_ROOT.find_uid)
    original.file_meta.MediaStorageSOPInstanceUID = UID("1.2.3.4")
    original.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    original.save_as(path, enforce_file_format=True)
    assert path.read_bytes()[128:132] == b"DICM"
    base = load_query_file(path)
    assert base.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian

    ds = build_identifier(base, ["PatientID=PAT002", "StudyInstanceUID=1.2.3", "PatientName"])
    assert ds.PatientID == "PAT002"  # replaced
    assert ds.StudyInstanceUID == "1.2.3"  # inserted
    assert ds["PatientName"].is_empty  # replaced by a zero-length key
    assert ds.QueryRetrieveLevel == "PATIENT"  # kept
    assert not hasattr(ds, "file_meta")
    assert (base.PatientID, base.PatientName, "StudyInstanceUID" in base) == (
        "PAT001",
        "Doe^J",
        False,
    )


def test_query_file_without_meta(tmp_path: Path) -> None:
    path = tmp_path / "q.dcm"
    _query(QueryRetrieveLevel="STUDY", StudyInstanceUID="1.2.3").save_as(
        path, implicit_vr=True, little_endian=True, enforce_file_format=False
    )
    ds = load_query_file(path)
    assert (ds.QueryRetrieveLevel, ds.StudyInstanceUID) == ("STUDY", "1.2.3")


def test_keys_alone_form_the_query() -> None:
    ds = build_identifier(None, ["QueryRetrieveLevel=STUDY", "0020,000D=1.2.3"])
    assert [e.keyword for e in ds] == ["QueryRetrieveLevel", "StudyInstanceUID"]


def test_later_keys_win() -> None:
    assert build_identifier(None, ["PatientID=A", "0010,0020=B"]).PatientID == "B"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read query file"),
        (b"", "invalid DICOM query file"),
        (b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff", "invalid DICOM query file"),
    ],
)
def test_bad_query_files(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "q.dcm"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(QueryError, match=message):
        load_query_file(path)


# --- levels and models -----------------------------------------------------------------------


def test_models() -> None:
    # PS3.4 Annex C.6 SOP Class UIDs, written down from the standard.
    assert Model.PATIENT_ROOT.find_uid == "1.2.840.10008.5.1.4.1.2.1.1"
    assert Model.PATIENT_ROOT.move_uid == "1.2.840.10008.5.1.4.1.2.1.2"
    assert Model.PATIENT_ROOT.get_uid == "1.2.840.10008.5.1.4.1.2.1.3"
    assert Model.STUDY_ROOT.move_uid == "1.2.840.10008.5.1.4.1.2.2.2"
    assert Model.PATIENT_STUDY_ONLY.move_uid == "1.2.840.10008.5.1.4.1.2.3.2"
    assert Model.STUDY_ROOT.levels == (Level.STUDY, Level.SERIES, Level.IMAGE)
    assert Model.PATIENT_STUDY_ONLY.levels == (Level.PATIENT, Level.STUDY)
    assert [Model(v) for v in ("patient", "study", "psonly")] == list(Model)  # -P -S -O


def test_level_parse() -> None:
    assert Level.parse(" series ") is Level.SERIES
    with pytest.raises(QueryError, match="--level: 'FRAME' is not one of"):
        Level.parse("FRAME")


# --- validation (PS3.4 C.4.2.2.1) ------------------------------------------------------------

UNIQUE = {
    Level.PATIENT: ("PatientID", "PAT1"),
    Level.STUDY: ("StudyInstanceUID", "1.2.3"),
    Level.SERIES: ("SeriesInstanceUID", "1.2.3.4"),
    Level.IMAGE: ("SOPInstanceUID", "1.2.3.4.5"),
}


def _proper(model: Model, level: Level) -> Dataset:
    """The identifier PS3.4 wants: the level and the unique keys down to it."""
    ds = _query(QueryRetrieveLevel=str(level), SpecificCharacterSet="ISO_IR 100")
    for key in model.levels[: model.levels.index(level) + 1]:
        setattr(ds, *UNIQUE[key])
    return ds


MODEL_LEVELS = [(m, lvl) for m in Model for lvl in m.levels]


@pytest.mark.parametrize(("model", "level"), MODEL_LEVELS)
def test_proper_identifiers_have_no_warnings(model: Model, level: Level) -> None:
    assert validate(_proper(model, level), model) == []


@pytest.mark.parametrize(("model", "level"), MODEL_LEVELS)
def test_a_list_of_uids_at_the_retrieve_level(model: Model, level: Level) -> None:
    ds = _proper(model, level)
    keyword, value = UNIQUE[level]
    setattr(ds, keyword, [value, value + ".9"])
    warnings = validate(ds, model)
    if level == Level.PATIENT:  # Patient ID takes one value only
        assert warnings == ["PatientID (0010,0020) has 2 values: only one is allowed here"]
    else:
        assert warnings == []


TAG_TEXT = {
    Level.PATIENT: "(0010,0020)",
    Level.STUDY: "(0020,000d)",
    Level.SERIES: "(0020,000e)",
    Level.IMAGE: "(0008,0018)",
}
BELOW_TOP = [(m, lvl) for m, lvl in MODEL_LEVELS if lvl != m.levels[0]]


@pytest.mark.parametrize(("model", "level"), BELOW_TOP)
def test_higher_keys_are_required_and_single(model: Model, level: Level) -> None:
    top = model.levels[0]
    keyword, value = UNIQUE[top]
    name = f"{keyword} {TAG_TEXT[top]}"
    ds = _proper(model, level)
    delattr(ds, keyword)
    assert validate(ds, model) == [
        f"{name} is missing: a {level} level C-MOVE in the {model.label} model needs it"
    ]
    setattr(ds, keyword, [value, value + ".9"])
    assert validate(ds, model) == [f"{name} has 2 values: only one is allowed here"]


OUTSIDE = [(m, lvl) for m in Model for lvl in Level if lvl not in m.levels]


@pytest.mark.parametrize(("model", "level"), OUTSIDE)
def test_level_outside_the_model(model: Model, level: Level) -> None:
    warnings = validate(_query(QueryRetrieveLevel=str(level)), model)
    assert warnings == [
        f"QueryRetrieveLevel (0008,0052) {level} is not a level of the {model.label} model "
        f"({', '.join(model.levels)})"
    ]


def test_specific_warnings() -> None:
    study = _proper(Model.STUDY_ROOT, Level.STUDY)
    assert validate(study, Model.STUDY_ROOT) == []
    study.PatientID = "PAT1"
    assert validate(study, Model.STUDY_ROOT) == [
        "PatientID (0010,0020) is not a key of the Study Root model"
    ]
    study.SeriesInstanceUID = "1.2.3.4"
    study.PatientName = "Doe"
    assert validate(study, Model.STUDY_ROOT) == [
        "PatientName (0010,0010) is not a unique key: C-MOVE matches on unique keys only",
        "PatientID (0010,0020) is not a key of the Study Root model",
        "SeriesInstanceUID (0020,000e) is below the STUDY retrieve level",
    ]
    empty = _proper(Model.PATIENT_ROOT, Level.STUDY)
    empty.PatientID = ""
    assert validate(empty, Model.PATIENT_ROOT) == [
        "PatientID (0010,0020) is empty: a unique key needs a value"
    ]
    assert validate(_query(PatientID="1"), Model.PATIENT_ROOT) == [
        "QueryRetrieveLevel (0008,0052) is missing or empty: the peer cannot tell what to retrieve"
    ]
    assert validate(_query(QueryRetrieveLevel="FRAME"), Model.PATIENT_ROOT) == [
        "QueryRetrieveLevel (0008,0052) 'FRAME' is not PATIENT, STUDY, SERIES or IMAGE"
    ]
    bad = _proper(Model.STUDY_ROOT, Level.STUDY)
    bad["StudyInstanceUID"] = DataElement(STUDY_UID, "UI", "1.02", validation_mode=config.IGNORE)
    assert validate(bad, Model.STUDY_ROOT) == [
        "StudyInstanceUID (0020,000d) value '1.02' is not a valid UID"
    ]


# --- friendly flags --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "level"),
    [
        ({"patient_id": "P"}, "PATIENT"),
        ({"patient_id": "P", "study_uid": "1.2"}, "STUDY"),
        ({"accession": "A1"}, "STUDY"),
        ({"study_uid": "1.2", "series_uid": "1.3"}, "SERIES"),
        ({"series_uid": "1.3", "sop_uids": ["1.4"]}, "IMAGE"),
        ({"sop_uids": ["1.4", "1.5"], "level": "series"}, "SERIES"),
        ({"patient_id": "P", "study_uid": "1.2", "level": Level.PATIENT}, "PATIENT"),
    ],
)
def test_friendly_flags_choose_the_level(flags: dict[str, object], level: str) -> None:
    ds = friendly_identifier(**flags)  # type: ignore[arg-type]
    assert ds.QueryRetrieveLevel == level


def test_friendly_identifier_contents() -> None:
    ds = friendly_identifier(
        patient_id="P1", study_uid="1.2", series_uid="1.2.3", sop_uids=["1.2.3.4", "1.2.3.5"]
    )
    assert (ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID) == ("P1", "1.2", "1.2.3")
    assert list(ds.SOPInstanceUID) == ["1.2.3.4", "1.2.3.5"]
    assert validate(ds, Model.PATIENT_ROOT) == []
    assert friendly_identifier(accession="ACC1").AccessionNumber == "ACC1"
    assert len(friendly_identifier()) == 0
    assert [e.keyword for e in friendly_identifier(level="study")] == ["QueryRetrieveLevel"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"study_uid": "1.2.abc"}, "--study-uid: '1.2.abc' is not a valid UID"),
        ({"series_uid": "1.02"}, "--series-uid: '1.02' is not a valid UID"),
        ({"sop_uids": ["1.2", ""]}, "--sop-uid: '' is not a valid UID"),
        ({"patient_id": "x" * 65}, "--patient-id: .* is not a valid LO value"),
        ({"patient_id": "a\\b"}, "--patient-id: .* is not a valid LO value"),
        ({"accession": "x" * 17}, "--accession: .* is not a valid SH value"),
        ({"patient_id": "P", "level": "FRAME"}, "--level: 'FRAME' is not one of"),
    ],
)
def test_friendly_flags_are_checked(flags: dict[str, object], message: str) -> None:
    with pytest.raises(QueryError, match=message):
        friendly_identifier(**flags)  # type: ignore[arg-type]


# --- encoding --------------------------------------------------------------------------------


def test_golden_implicit_little_endian() -> None:
    # PS3.5 7.1.3: tag (group, element LE), 4-byte length, value padded to even length.
    ds = _query(QueryRetrieveLevel="STUDY")
    ds.StudyInstanceUID = "1.2.3"
    expected = (
        b"\x08\x00\x52\x00" + b"\x06\x00\x00\x00" + b"STUDY "
        + b"\x20\x00\x0d\x00" + b"\x06\x00\x00\x00" + b"1.2.3\x00"
    )  # fmt: skip
    assert encode_identifier(ds, ImplicitVRLittleEndian) == expected


def test_golden_explicit_big_endian() -> None:
    # PS3.5 7.1.2: tag (BE), VR, 2-byte length (BE).
    ds = _query(QueryRetrieveLevel="IMAGE")
    ds.Rows = 512
    expected = (
        b"\x00\x08\x00\x52CS\x00\x06IMAGE " + b"\x00\x28\x00\x10US\x00\x02" + struct.pack(">H", 512)
    )
    assert encode_identifier(ds, ExplicitVRBigEndian) == expected


def test_deflated_is_raw_deflate_of_explicit_little_endian() -> None:
    ds = _query(QueryRetrieveLevel="STUDY", StudyInstanceUID="1.2.3")
    data = encode_identifier(ds, DeflatedExplicitVRLittleEndian)
    assert zlib.decompress(data, -15) == encode_identifier(ds, ExplicitVRLittleEndian)
    # an encapsulated syntax encodes the data set in explicit VR little endian (PS3.5 A.4)
    assert encode_identifier(ds, JPEGBaseline8Bit) == encode_identifier(ds, ExplicitVRLittleEndian)


def test_unknown_transfer_syntax() -> None:
    with pytest.raises(QueryError, match="not a known transfer syntax"):
        encode_identifier(_query(PatientID="1"), "1.2.3.4")


SYNTAXES = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian]


@pytest.mark.parametrize("syntax", [*SYNTAXES, DeflatedExplicitVRLittleEndian])
def test_round_trip(syntax: str) -> None:
    ds = build_identifier(
        None,
        [
            "QueryRetrieveLevel=IMAGE",
            "SpecificCharacterSet=ISO_IR 100",
            "PatientID=Müller",
            "StudyInstanceUID=1.2.3",
            "SOPInstanceUID=1.2.3.4\\1.2.3.5",
            "Rows=7",
            "ReferencedSeriesSequence[0].SeriesInstanceUID=1.2.9",
        ],
    )
    assert decode_identifier(encode_identifier(ds, syntax), syntax) == ds


@given(
    patient_id=st.text(alphabet="ABCXYZ0123456789 ^-", min_size=1, max_size=64).filter(str.strip),
    uids=st.lists(
        st.from_regex(r"1\.2(\.[1-9][0-9]{0,5}){1,6}", fullmatch=True), min_size=1, max_size=4
    ),
    syntax=st.sampled_from(SYNTAXES),
)
def test_pydicom_decodes_what_we_encode(patient_id: str, uids: list[str], syntax: str) -> None:
    ds = friendly_identifier(patient_id=patient_id.strip(), sop_uids=uids, study_uid="1.2")
    data = encode_identifier(ds, syntax)
    implicit, little = syntax == ImplicitVRLittleEndian, syntax != ExplicitVRBigEndian
    back = read_dataset(BytesIO(data), is_implicit_VR=implicit, is_little_endian=little)
    assert back.PatientID == patient_id.strip()
    assert [
        str(u) for u in ([back.SOPInstanceUID] if len(uids) == 1 else back.SOPInstanceUID)
    ] == uids
    assert len(data) % 2 == 0


# --- -up / --uid-padding ---------------------------------------------------------------------


def test_uid_padding() -> None:
    assert strip_uid_padding("1.2.3\x00") == "1.2.3"  # the legal NUL pad, always
    assert strip_uid_padding("1.2.3 ", uid_padding=False) == "1.2.3 "
    assert strip_uid_padding("1.2.3 ") == "1.2.3"
    assert uids_match("1.2.3 ", "1.2.3", uid_padding=True)
    assert not uids_match("1.2.3 ", "1.2.3", uid_padding=False)
    assert uids_match("1.2.3\x00", "1.2.3")
