"""C-MOVE identifiers: built from query files and DCMTK `-k` keys, checked against PS3.4 C.4.2.

- `-k` keys follow movescu: "gggg,eeee=value", "Keyword=value", or without "=value" for a
  zero-length attribute; the value replaces the attribute in each query file's data set or is
  inserted (a copy: the file's data set is not changed). Beyond movescu, "(gggg,eeee)" is
  accepted and a key may reach into a sequence item, "SequenceKeyword[0].Keyword=value"
  (items are created as needed; no wildcards). Values are checked against their VR
  (PS3.5 §6.2): movescu would send "Rows=abc" as garbage, we refuse it.
- `validate()` reports, as warnings naming the key, what PS3.4 C.4.2.2.1 (hierarchical C-MOVE)
  does not allow: a missing or unknown Query/Retrieve Level, a level outside the information
  model, keys other than the unique keys of the level and the levels above, missing, empty or
  multi-valued unique keys. The CLI makes them fatal with `--strict`.
- `friendly_identifier()` builds the identifier of `--patient-id`/`--study-uid`/... whose level
  follows from the most specific key given.
"""

from __future__ import annotations

import copy
import enum
import re
import zlib
from collections.abc import Sequence
from io import BytesIO
from os import PathLike
from typing import Any, NamedTuple

import pydicom
from pydicom import Dataset
from pydicom import config as pydicom_config
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement, empty_value_for_VR
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID
from pydicom.valuerep import validate_value

from aiomove.errors import AiomoveError
from aiomove.proto import uids
from aiomove.proto.uids import is_valid_uid


class QueryError(AiomoveError):
    """A query key, query file or identifier cannot be used (exit code 1 in the CLI, as
    movescu's printError for a bad -k key)."""

    exit_code = 1


# --- levels and information models (PS3.4 C.6) -----------------------------------------------


class Level(enum.StrEnum):
    """Query/Retrieve Level (0008,0052) values, PS3.4 C.6.1.1 / C.6.2.1."""

    PATIENT = "PATIENT"
    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"

    @classmethod
    def parse(cls, value: str, what: str = "--level") -> Level:
        try:
            return cls(value.strip().upper())
        except ValueError:
            names = ", ".join(cls)
            raise QueryError(f"{what}: {value!r} is not one of {names}") from None


QUERY_RETRIEVE_LEVEL = Tag(0x0008, 0x0052)
SPECIFIC_CHARACTER_SET = Tag(0x0008, 0x0005)
QUERY_RETRIEVE_VIEW = Tag(0x0008, 0x0053)  # PS3.4 C.6.1.1.1, with enhanced MF conversion

#: The unique key of each level (PS3.4 Tables C.6-1..C.6-4, C.6-5..C.6-8).
UNIQUE_KEYS: dict[Level, BaseTag] = {
    Level.PATIENT: Tag(0x0010, 0x0020),  # Patient ID
    Level.STUDY: Tag(0x0020, 0x000D),  # Study Instance UID
    Level.SERIES: Tag(0x0020, 0x000E),  # Series Instance UID
    Level.IMAGE: Tag(0x0008, 0x0018),  # SOP Instance UID
}


class Model(enum.Enum):
    """Query/Retrieve information models; the values are movescu's -P/-S/-O settings."""

    PATIENT_ROOT = "patient"
    STUDY_ROOT = "study"
    PATIENT_STUDY_ONLY = "psonly"  # retired (PS3.4 2004), still offered by some archives

    @property
    def find_uid(self) -> str:
        return _MODEL_UIDS[self][0]

    @property
    def move_uid(self) -> str:
        return _MODEL_UIDS[self][1]

    @property
    def get_uid(self) -> str:
        return _MODEL_UIDS[self][2]

    @property
    def levels(self) -> tuple[Level, ...]:
        """The model's hierarchy, top first (PS3.4 C.6.1, C.6.2, C.6.3)."""
        return _MODEL_LEVELS[self]

    @property
    def label(self) -> str:
        return _MODEL_LABELS[self]


_MODEL_UIDS = {
    Model.PATIENT_ROOT: (
        uids.PATIENT_ROOT_QR_FIND,
        uids.PATIENT_ROOT_QR_MOVE,
        uids.PATIENT_ROOT_QR_GET,
    ),
    Model.STUDY_ROOT: (uids.STUDY_ROOT_QR_FIND, uids.STUDY_ROOT_QR_MOVE, uids.STUDY_ROOT_QR_GET),
    Model.PATIENT_STUDY_ONLY: (
        uids.PATIENT_STUDY_ONLY_QR_FIND,
        uids.PATIENT_STUDY_ONLY_QR_MOVE,
        uids.PATIENT_STUDY_ONLY_QR_GET,
    ),
}
_MODEL_LEVELS = {
    Model.PATIENT_ROOT: (Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE),
    Model.STUDY_ROOT: (Level.STUDY, Level.SERIES, Level.IMAGE),
    Model.PATIENT_STUDY_ONLY: (Level.PATIENT, Level.STUDY),
}
_MODEL_LABELS = {
    Model.PATIENT_ROOT: "Patient Root",
    Model.STUDY_ROOT: "Study Root",
    Model.PATIENT_STUDY_ONLY: "Patient/Study Only",
}


# --- keys ------------------------------------------------------------------------------------


class KeyPath(NamedTuple):
    """A parsed key: the sequence items leading to it (tag, item index), its tag and value."""

    items: tuple[tuple[BaseTag, int], ...]
    tag: BaseTag
    value: str | None


_TAG_RE = re.compile(r"\(?\s*(?:0x)?([0-9A-Fa-f]{1,4})\s*,\s*(?:0x)?([0-9A-Fa-f]{1,4})\s*\)?")
_ITEM_RE = re.compile(r"(.+)\[([0-9]+)\]")


def _tag_text(tag: BaseTag) -> str:
    """DCMTK's spelling in messages: lower-case hex, "(0010,0020)"."""
    return f"({tag.group:04x},{tag.element:04x})"


def key_name(tag: BaseTag) -> str:
    """A tag for humans: "PatientID (0010,0020)" or just "(0011,1010)"."""
    keyword = keyword_for_tag(tag)
    return f"{keyword} {_tag_text(tag)}" if keyword else _tag_text(tag)


def vr_of(tag: BaseTag) -> str:
    """The dictionary VR (the first of "US or SS"); private creators are LO, group lengths UL."""
    try:
        vr = str(dictionary_VR(tag))
    except KeyError:
        if tag.element == 0:
            return "UL"  # group length (PS3.5 §7.2)
        if tag.is_private and 0x10 <= tag.element <= 0xFF:
            return "LO"  # private creator (PS3.5 §7.8.1)
        raise QueryError(f"unknown tag: {_tag_text(tag)}") from None
    return vr.split(" or ")[0]


def _resolve(name: str) -> BaseTag:
    """A tag from "gggg,eeee", "(gggg,eeee)" or a dictionary keyword."""
    match = _TAG_RE.fullmatch(name.strip())
    if match is not None:
        tag = Tag(int(match[1], 16), int(match[2], 16))
    else:
        # pydicom's dictionary has entries without a keyword: "" must not find one of them.
        keyword = name.strip()
        number = tag_for_keyword(keyword) if keyword.isidentifier() else None
        if number is None:
            raise QueryError(f"bad key format or dictionary name not found in dictionary: {name}")
        tag = Tag(number)
    vr_of(tag)  # unknown tags are refused here, as movescu does
    return tag


def parse_key_path(spec: str) -> KeyPath:
    """A `-k` key with an optional sequence path: "Seq[0].(0008,1150)=1.2.3"."""
    name, sep, raw = spec.partition("=")
    value = raw if sep else None
    *parents, last = name.split(".")
    items: list[tuple[BaseTag, int]] = []
    for part in parents:
        match = _ITEM_RE.fullmatch(part.strip())
        if match is None:
            raise QueryError(f"bad key format: {part!r} in {name!r} needs an item index")
        seq = _resolve(match[1])
        if vr_of(seq) != "SQ":
            raise QueryError(f"bad key format: {key_name(seq)} is not a sequence")
        items.append((seq, int(match[2])))
    return KeyPath(tuple(items), _resolve(last), value)


def parse_key(spec: str) -> tuple[BaseTag, str | None]:
    """A top-level `-k` key: its tag and value (None when there is no "=", i.e. zero length).

    A key inside a sequence raises QueryError; `build_identifier` accepts those.
    """
    path = parse_key_path(spec)
    if path.items:
        raise QueryError(f"{spec!r} is inside a sequence; use build_identifier()")
    return path.tag, path.value


# --- values ----------------------------------------------------------------------------------

_INT_RANGES = {
    "US": (0, 0xFFFF),
    "SS": (-0x8000, 0x7FFF),
    "UL": (0, 0xFFFFFFFF),
    "SL": (-0x80000000, 0x7FFFFFFF),
    "UV": (0, 2**64 - 1),
    "SV": (-(2**63), 2**63 - 1),
}
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_BACKSLASH_ALLOWED = frozenset({"LT", "ST", "UT", "UR"})  # PS3.5 §6.2: single-valued texts
_WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})


def _coerce_one(vr: str, text: str) -> Any:
    """One value for `vr` from its string form; raises ValueError."""
    if vr in _INT_RANGES:
        low, high = _INT_RANGES[vr]
        if re.fullmatch(r"\s*[+-]?[0-9]+\s*", text) is None:
            raise ValueError(f"not an integer for VR {vr}")
        number = int(text)
        if not low <= number <= high:
            raise ValueError(f"out of range for VR {vr}")
        return number
    if vr in ("FL", "FD"):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"not a number for VR {vr}") from None
    if vr == "AT":
        return _resolve(text)
    # PS3.4 C.2.2.2.4: '*' and '?' are wildcards, not characters, for these VRs (C-FIND).
    checked = re.sub(r"[*?]", "A", text) if vr in _WILDCARD_VRS else text
    validate_value(vr, checked, pydicom_config.RAISE)
    return text


def make_element(tag: BaseTag, value: str | None) -> DataElement:
    """The element a `-k` key describes; no value (or "") is a zero-length element."""
    vr = vr_of(tag)
    if not value:
        return DataElement(tag, vr, empty_value_for_VR(vr))
    if vr == "SQ" or vr in _BINARY_VRS:
        raise QueryError(f'cannot put tag value: {_tag_text(tag)}="{value}" (VR {vr})')
    parts = [value] if vr in _BACKSLASH_ALLOWED else value.split("\\")
    try:
        values = [_coerce_one(vr, part) for part in parts]
    except (ValueError, QueryError) as exc:
        reason = str(exc).split(". Please see")[0]
        raise QueryError(f'cannot put tag value: {_tag_text(tag)}="{value}" ({reason})') from None
    # Checked above (wildcards allowed), so pydicom must not warn about them again.
    value_out = values[0] if len(values) == 1 else values
    return DataElement(tag, vr, value_out, validation_mode=pydicom_config.IGNORE)


def _item_dataset(ds: Dataset, seq_tag: BaseTag, index: int) -> Dataset:
    """Item `index` of the sequence `seq_tag` in `ds`, creating the sequence and items."""
    if seq_tag not in ds or ds[seq_tag].VR != "SQ" or ds[seq_tag].value is None:
        ds[seq_tag] = DataElement(seq_tag, "SQ", DicomSequence())
    items = ds[seq_tag].value
    while len(items) <= index:
        items.append(Dataset())
    item = items[index]
    assert isinstance(item, Dataset)
    return item


def build_identifier(base: Dataset | None, keys: Sequence[str]) -> Dataset:
    """A copy of `base` (a query file's data set, without its file meta) with each `-k` key
    replacing or inserting its attribute, in order; `base` None: the keys alone."""
    ds = Dataset()
    if base is not None:
        for elem in base:
            ds.add(copy.deepcopy(elem))
    for spec in keys:
        path = parse_key_path(spec)
        target = ds
        for seq_tag, index in path.items:
            target = _item_dataset(target, seq_tag, index)
        target[path.tag] = make_element(path.tag, path.value)
    return ds


def load_query_file(path: str | PathLike[str]) -> Dataset:
    """A query file's data set, with or without preamble and file meta (dump2dcm writes both).

    Unreadable files and data that does not parse as DICOM raise QueryError.
    """
    try:
        ds = pydicom.dcmread(path, force=True)
        elements = list(ds)  # force parsing: errors surface here, not on first use
    except OSError as exc:
        raise QueryError(f"cannot read query file {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # pydicom raises many types on malformed input
        raise QueryError(f"invalid DICOM query file {path}: {exc}") from None
    if not elements:
        raise QueryError(f"invalid DICOM query file {path}: no data elements")
    return ds


# --- validation (PS3.4 C.4.2.2.1) ------------------------------------------------------------


def _values(elem: DataElement) -> list[str]:
    value = elem.value
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes):
        return [str(value)]
    return [str(v) for v in value]


def _level_of(identifier: Dataset, model: Model, warnings: list[str]) -> Level | None:
    elem = identifier.get(QUERY_RETRIEVE_LEVEL)
    values = _values(elem) if elem is not None else []
    name = key_name(QUERY_RETRIEVE_LEVEL)
    if not values:
        warnings.append(f"{name} is missing or empty: the peer cannot tell what to retrieve")
        return None
    try:
        level = Level(values[0].strip())
    except ValueError:
        warnings.append(f"{name} {values[0]!r} is not PATIENT, STUDY, SERIES or IMAGE")
        return None
    if level not in model.levels:
        allowed = ", ".join(model.levels)
        warnings.append(f"{name} {level} is not a level of the {model.label} model ({allowed})")
        return None
    return level


def _check_unique_key(identifier: Dataset, key: Level, level: Level, model: Model) -> list[str]:
    tag = UNIQUE_KEYS[key]
    name = key_name(tag)
    elem = identifier.get(tag)
    if elem is None:
        return [f"{name} is missing: a {level} level C-MOVE in the {model.label} model needs it"]
    values = _values(elem)
    if not values or not all(v.strip() for v in values):
        return [f"{name} is empty: a unique key needs a value"]
    problems: list[str] = []
    # Lists of UIDs are allowed at the retrieve level only, and not for Patient ID.
    if len(values) > 1 and (key != level or key == Level.PATIENT):
        problems.append(f"{name} has {len(values)} values: only one is allowed here")
    if key != Level.PATIENT:
        problems += [
            f"{name} value {v!r} is not a valid UID" for v in values if not is_valid_uid(v)
        ]
    return problems


def validate(identifier: Dataset, model: Model) -> list[str]:
    """Warnings (empty if none) for a hierarchical C-MOVE identifier, each naming its key.

    PS3.4 C.4.2.2.1: the identifier holds the Query/Retrieve Level and the unique keys of that
    level and of the levels above it in the model (one value each; a list of UIDs at the
    retrieve level), plus Specific Character Set and Query/Retrieve View when needed.
    """
    warnings: list[str] = []
    level = _level_of(identifier, model, warnings)
    required = model.levels[: model.levels.index(level) + 1] if level is not None else ()
    allowed = {QUERY_RETRIEVE_LEVEL, SPECIFIC_CHARACTER_SET, QUERY_RETRIEVE_VIEW}
    allowed |= {UNIQUE_KEYS[key] for key in required}
    unique = {tag: key for key, tag in UNIQUE_KEYS.items()}
    for elem in identifier:
        if elem.tag in allowed:
            continue
        name = key_name(elem.tag)
        key = unique.get(elem.tag)
        if key is not None and key not in model.levels:
            warnings.append(f"{name} is not a key of the {model.label} model")
        elif key is not None and level is not None:
            warnings.append(f"{name} is below the {level} retrieve level")
        elif key is None:
            warnings.append(f"{name} is not a unique key: C-MOVE matches on unique keys only")
    for key in required:
        assert level is not None
        warnings += _check_unique_key(identifier, key, level, model)
    return warnings


# --- the friendly flags ----------------------------------------------------------------------


def _check_text(flag: str, value: str, vr: str) -> None:
    try:
        if "\\" in value:
            raise ValueError("a backslash separates values")
        validate_value(vr, value, pydicom_config.RAISE)
    except ValueError as exc:
        reason = str(exc).split(". Please see")[0]
        raise QueryError(f"{flag}: {value!r} is not a valid {vr} value ({reason})") from None


def friendly_identifier(
    *,
    patient_id: str | None = None,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uids: Sequence[str] = (),
    accession: str | None = None,
    level: Level | str | None = None,
) -> Dataset:
    """The identifier of `--patient-id`, `--study-uid`, `--series-uid`, `--sop-uid`,
    `--accession` and `--level`; empty when none is given.

    The level is that of the most specific key (SOP -> IMAGE, series -> SERIES, study or
    accession -> STUDY, patient -> PATIENT) unless `level` says otherwise. Accession Number is
    not a unique key: many archives accept it, `validate()` warns about it.
    """
    for flag, uid in (
        ("--study-uid", study_uid),
        ("--series-uid", series_uid),
        *(("--sop-uid", u) for u in sop_uids),
    ):
        if uid is not None and not is_valid_uid(uid):
            raise QueryError(f"{flag}: {uid!r} is not a valid UID (PS3.5 §9.1)")
    if patient_id is not None:
        _check_text("--patient-id", patient_id, "LO")
    if accession is not None:
        _check_text("--accession", accession, "SH")
    if level is not None:
        chosen: Level | None = Level.parse(str(level))
    elif sop_uids:
        chosen = Level.IMAGE
    elif series_uid is not None:
        chosen = Level.SERIES
    elif study_uid is not None or accession is not None:
        chosen = Level.STUDY
    elif patient_id is not None:
        chosen = Level.PATIENT
    else:
        chosen = None
    ds = Dataset()
    if chosen is not None:
        ds.QueryRetrieveLevel = str(chosen)
    if patient_id is not None:
        ds.PatientID = patient_id
    if accession is not None:
        ds.AccessionNumber = accession
    if study_uid is not None:
        ds.StudyInstanceUID = study_uid
    if series_uid is not None:
        ds.SeriesInstanceUID = series_uid
    if sop_uids:
        ds.SOPInstanceUID = list(sop_uids) if len(sop_uids) > 1 else sop_uids[0]
    return ds


# --- encoding --------------------------------------------------------------------------------


def _encoding(transfer_syntax: str) -> tuple[bool, bool, bool]:
    """(implicit VR, little endian, deflated) for a data set in `transfer_syntax`.

    Encapsulated syntaxes encode the data set itself in explicit VR little endian (PS3.5 A.4).
    """
    syntax = UID(transfer_syntax)
    try:
        if syntax.is_encapsulated:
            return False, True, False
        return syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated
    except ValueError:
        raise QueryError(f"{transfer_syntax} is not a known transfer syntax") from None


def encode_identifier(ds: Dataset, transfer_syntax: str) -> bytes:
    """The identifier as the data set of a DIMSE message (no preamble, no file meta)."""
    implicit, little, deflated = _encoding(transfer_syntax)
    fp = DicomBytesIO()
    fp.is_implicit_VR = implicit
    fp.is_little_endian = little
    write_dataset(fp, ds)
    data = fp.getvalue()
    if deflated:  # PS3.5 A.5: raw deflate (RFC 1951), no zlib header
        packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        data = packer.compress(data) + packer.flush()
    return bytes(data)


#: Bound on an inflated identifier. A peer's deflated identifier (PS3.5 A.5) of a few KiB can
#: otherwise inflate to gigabytes (zeros compress about 1000:1).
MAX_INFLATED_IDENTIFIER = 16 << 20


def decode_identifier(data: bytes, transfer_syntax: str) -> Dataset:
    """The inverse of `encode_identifier` (e.g. for a C-MOVE-RSP identifier).

    A deflated identifier that inflates beyond `MAX_INFLATED_IDENTIFIER` is a `QueryError`.
    """
    implicit, little, deflated = _encoding(transfer_syntax)
    if deflated:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        data = inflater.decompress(data, MAX_INFLATED_IDENTIFIER + 1)
        if len(data) > MAX_INFLATED_IDENTIFIER:
            raise QueryError(f"deflated identifier inflates beyond {MAX_INFLATED_IDENTIFIER} bytes")
        if not inflater.eof:  # as zlib.decompress would say
            raise QueryError("deflated identifier is truncated")
    return read_dataset(BytesIO(data), is_implicit_VR=implicit, is_little_endian=little)


# --- -up / --uid-padding ---------------------------------------------------------------------


def strip_uid_padding(uid: str, *, uid_padding: bool = True) -> str:
    """`uid` without its padding: the trailing NUL PS3.5 §9.1 allows, and, with `-up`
    (`uid_padding`), trailing spaces, which some senders use wrongly (DCMTK's
    DU_findSOPClassAndInstanceInDataSet `tolerateSpacePaddedUIDs`).

    pydicom already strips both when it decodes a UI element, so this is for UIDs taken from
    raw bytes, such as a C-STORE-RQ's Affected SOP Instance UID.
    """
    uid = uid.rstrip("\0")
    return uid.rstrip(" ") if uid_padding else uid


def uids_match(received: str, expected: str, *, uid_padding: bool = False) -> bool:
    """Whether a data set's UID is the one of its C-STORE-RQ, tolerating padding per `-up`."""
    pad = strip_uid_padding
    return pad(received, uid_padding=uid_padding) == pad(expected, uid_padding=uid_padding)
