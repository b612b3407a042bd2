"""Helpers for the `aiomove move` end-to-end tests: source studies, running the command,
reading what it wrote (files, report) and what the source saw (its identifier log)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import ImplicitVRLittleEndian, generate_uid

from tests.interop.test_move_library import make_series

MOVE = [sys.executable, "-m", "aiomove", "move"]
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
SC_IMAGE = "1.2.840.10008.5.1.4.1.1.7"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
#: A JPEG baseline (1.2.840.10008.1.2.4.50) Secondary Capture shipped with pydicom.
JPEG_SAMPLE = "SC_rgb_jpeg_dcmtk.dcm"


@dataclass(frozen=True)
class Study:
    """Source files of one study, and their UIDs."""

    uid: str
    sops: list[str]
    files: list[Path]
    patient_id: str


def new_study(parent: Path, name: str, count: int) -> Study:
    """`count` CT instances of a fresh study in `parent / name` (make_series' CT_small copies)."""
    folder = parent / name
    folder.mkdir()
    study, sops, files = make_series(folder, count)
    return Study(study, sops, files, str(dcmread(files[0]).PatientID))


def add_jpeg(study: Study, folder: Path) -> tuple[Path, str]:
    """A JPEG-compressed Secondary Capture of `study` written to `folder`: (path, SOP UID)."""
    sample = get_testdata_file(JPEG_SAMPLE)
    assert sample is not None, f"pydicom's test data lacks {JPEG_SAMPLE}"
    ds = dcmread(sample)
    ds.StudyInstanceUID = study.uid
    ds.PatientID = study.patient_id
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path = folder / "jpeg.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path, str(ds.SOPInstanceUID)


def implicit_copies(study: Study, folder: Path) -> Study:
    """The same instances re-saved in implicit VR little endian (into `folder`)."""
    folder.mkdir()
    files = []
    for n, path in enumerate(study.files):
        ds = dcmread(path)
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        out = folder / f"implicit{n}.dcm"
        ds.save_as(out, implicit_vr=True, little_endian=True, enforce_file_format=True)
        files.append(out)
    return Study(study.uid, study.sops, files, study.patient_id)


def study_keys(uid: str) -> list[str]:
    """Study-root override keys retrieving one study."""
    return ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={uid}"]


def run_move(cwd: Path, *args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`aiomove move args...` in a subprocess, in `cwd` (never the repository)."""
    return subprocess.run(
        [*MOVE, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def report(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def identifier_log(path: Path) -> list[dict[str, Any]]:
    """The records tests/pynetdicom_qr.py --log-identifiers appended, in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def names(directory: Path) -> set[str]:
    """Every entry of `directory`, hidden (temporary) ones included."""
    return {p.name for p in directory.iterdir()}


def data_set_part(path: Path) -> bytes:
    """The bytes after a Part 10 file's meta group, found from its group length (PS3.10 §7.1)."""
    raw = path.read_bytes()
    assert raw[128:132] == b"DICM", f"{path} is not a Part 10 file"
    (group_length,) = struct.unpack_from("<I", raw, 132 + 8)
    return raw[132 + 12 + group_length :]


#: (FFFC,FFFC) Data Set Trailing Padding: re-encoding drops it, as DCMTK does (PS3.10 §7.2).
TRAILING_PADDING = 0xFFFCFFFC


def differences(got: Dataset, expected: Dataset, *, ignore: tuple[int, ...] = ()) -> list[str]:
    """Data set elements (not the file meta) that differ in presence, VR or value."""
    problems = []
    for tag in sorted((set(got.keys()) | set(expected.keys())) - set(ignore)):
        if tag not in got or tag not in expected:
            problems.append(f"{tag}: only in {'expected' if tag not in got else 'received'}")
            continue
        a, b = got[tag], expected[tag]
        if a.VR != b.VR or a.value != b.value:
            problems.append(f"{tag} {a.keyword}: {a.VR} {a.value!r:.60} != {b.VR} {b.value!r:.60}")
    return problems
