"""Generated DICOM test data: studies, one large multi-frame instance, and pydicom's own corpus.

Nothing is downloaded. Every UID is derived from the arguments (pydicom's `generate_uid` with
entropy sources under pydicom's root), so the same call always writes the same identifiers and
two calls that differ in `seed` or `patient_id` never share one. Pixel data is a deterministic
pseudo-random pattern (no numpy needed).

- `make_study()`: a study of uncompressed CT / MR / Secondary Capture Part 10 files (PS3.10 §7).
- `make_large_instance()`: one multi-frame instance of a given size, written in chunks so that
  memory stays bounded (for streaming tests).
- `corpus_files()`: the files bundled with pydicom that make sense as Storage payloads (several
  SOP classes and compressed transfer syntaxes); `corpus_study()` re-stamps them into one study
  with fresh UIDs, because several of them share the same SOP Instance UID.
"""

from __future__ import annotations

import random
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    SecondaryCaptureImageStorage,
    generate_uid,
)

UNCOMPRESSED = (
    ImplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
)
SOP_CLASS_FOR_MODALITY = {"CT": CTImageStorage, "MR": MRImageStorage}


@dataclass(frozen=True)
class StudyInfo:
    """What was written: identifiers per level and the file of every instance."""

    patient_id: str
    patient_name: str
    study_uid: str
    series_uids: tuple[str, ...]
    sop_instance_uids: Mapping[str, tuple[str, ...]]  # series UID -> its instances, in order
    paths: Mapping[str, Path]  # SOP Instance UID -> file
    sop_class_uids: Mapping[str, str] = field(default_factory=dict)  # SOP Instance UID -> class
    transfer_syntaxes: Mapping[str, str] = field(default_factory=dict)  # SOP Instance UID -> TS

    @property
    def files(self) -> tuple[Path, ...]:
        return tuple(self.paths.values())

    @property
    def instance_uids(self) -> tuple[str, ...]:
        """Every SOP Instance UID of the study, series after series."""
        return tuple(uid for series in self.series_uids for uid in self.sop_instance_uids[series])


@dataclass(frozen=True)
class CorpusFile:
    """One of pydicom's bundled test files, as found on disk (identifiers not unique!)."""

    name: str
    path: Path
    sop_class_uid: str
    transfer_syntax: str
    sop_instance_uid: str
    study_uid: str
    patient_id: str
    size: int


def uid(*parts: object) -> UID:
    """A valid UID (< 64 characters, pydicom's root) that is a pure function of `parts`."""
    # One joined source: pydicom concatenates its entropy sources without a separator, so
    # ("1", "12") and ("11", "2") would collide.
    return generate_uid(entropy_srcs=["aiomove-tests/" + "/".join(str(p) for p in parts)])


def _pixel_bytes(n_pixels: int, seed: Sequence[object], *, big_endian: bool) -> bytes:
    """`n_pixels` 16-bit values, deterministic; encoded in the transfer syntax's byte order."""
    rng = random.Random("/".join(str(s) for s in seed))
    raw = rng.randbytes(2 * n_pixels)
    if not big_endian:
        return raw
    values = struct.unpack(f"<{n_pixels}H", raw)
    return struct.pack(f">{n_pixels}H", *values)


def _patient_study(ds: Dataset, patient_id: str, patient_name: str, study_uid: str) -> None:
    """PS3.3 C.7.1.1 Patient and C.7.2.1 General Study modules (types 1 and 2)."""
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = "20240102"
    ds.StudyTime = "030405"
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.AccessionNumber = "A" + study_uid.replace(".", "")[-15:]  # SH: 16 characters at most
    ds.StudyDescription = "aiomove test study"


def _image_pixel(ds: Dataset, rows: int, cols: int, frames: int = 1) -> None:
    """PS3.3 C.7.6.3 Image Pixel module: 16-bit unsigned monochrome."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames


def _modality_attributes(ds: Dataset, modality: str, position: int) -> None:
    """The type 1/2 attributes of the CT (C.8.2.1) and MR (C.8.3.1) Image modules."""
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.FrameOfReferenceUID = uid("for", ds.StudyInstanceUID)
    ds.PositionReferenceIndicator = ""
    ds.ImagePositionPatient = [0, 0, position]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1, 1]
    ds.SliceThickness = 1
    if modality == "CT":
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.KVP = 120
        ds.AcquisitionNumber = 1
    elif modality == "MR":
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime = 500
        ds.EchoTime = 20
        ds.EchoTrainLength = 1
        ds.MagneticFieldStrength = 1.5
    else:  # PS3.3 C.8.6.1 SC Equipment module
        ds.ConversionType = "WSD"


def _file_meta(ds: Dataset, transfer_syntax: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "AIOMOVE_TESTS"
    ds.file_meta = meta


def make_study(
    out_dir: Path,
    *,
    patient_id: str = "PAT1",
    patient_name: str = "Test^Patient",
    n_series: int = 2,
    n_instances: int = 3,
    modality: str = "CT",
    rows: int = 64,
    cols: int = 64,
    transfer_syntax: str = ExplicitVRLittleEndian,
    seed: int | str = 0,
) -> StudyInfo:
    """Write `n_series` x `n_instances` Part 10 files of one study into `out_dir`.

    `modality` "CT" and "MR" give CT / MR Image Storage; anything else Secondary Capture (with
    Modality "OT" for "SC"). Only uncompressed transfer syntaxes (and deflate) are produced: for
    compressed payloads use `corpus_files()`. Files are named `<SOP Instance UID>.dcm`. UIDs are
    a function of (`seed`, `patient_id`, `modality`, `transfer_syntax`, `rows`, `cols`) and the
    instance's position: the same call writes the same study again; a second study of the same
    kind for the same patient needs another seed.
    """
    if transfer_syntax not in UNCOMPRESSED:
        raise ValueError(f"make_study writes uncompressed data only, not {transfer_syntax}")
    out_dir.mkdir(parents=True, exist_ok=True)
    sop_class = SOP_CLASS_FOR_MODALITY.get(modality, SecondaryCaptureImageStorage)
    modality_value = "OT" if modality == "SC" else modality
    key = (seed, patient_id, modality, transfer_syntax, rows, cols)
    study_uid = uid("study", *key)
    series_uids: list[str] = []
    per_series: dict[str, tuple[str, ...]] = {}
    paths: dict[str, Path] = {}
    for s in range(n_series):
        series_uid = uid("series", *key, s)
        series_uids.append(series_uid)
        instances: list[str] = []
        for i in range(n_instances):
            ds = Dataset()
            _patient_study(ds, patient_id, patient_name, study_uid)
            ds.SOPClassUID = sop_class
            ds.SOPInstanceUID = uid("instance", *key, s, i)
            ds.Modality = modality_value
            ds.SeriesInstanceUID = series_uid
            ds.SeriesNumber = s + 1
            ds.SeriesDescription = f"series {s + 1}"
            ds.InstanceNumber = i + 1
            ds.Manufacturer = "aiomove"
            _modality_attributes(ds, modality, i)
            _image_pixel(ds, rows, cols)
            big = transfer_syntax == ExplicitVRBigEndian
            pixels = _pixel_bytes(rows * cols, (seed, patient_id, s, i), big_endian=big)
            ds["PixelData"] = DataElement(0x7FE00010, "OW", pixels)
            _file_meta(ds, transfer_syntax)
            path = out_dir / f"{ds.SOPInstanceUID}.dcm"
            ds.save_as(path, enforce_file_format=True)
            instances.append(ds.SOPInstanceUID)
            paths[ds.SOPInstanceUID] = path
        per_series[series_uid] = tuple(instances)
    return StudyInfo(
        patient_id=patient_id,
        patient_name=patient_name,
        study_uid=study_uid,
        series_uids=tuple(series_uids),
        sop_instance_uids=per_series,
        paths=paths,
        sop_class_uids=dict.fromkeys(paths, str(sop_class)),
        transfer_syntaxes=dict.fromkeys(paths, str(transfer_syntax)),
    )


@dataclass(frozen=True)
class LargeInstance:
    path: Path
    patient_id: str
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    frames: int
    pixel_bytes: int  # length of the Pixel Data value (>= the size asked for)


def make_large_instance(
    out_dir: Path,
    *,
    size: int = 50 * 2**20,
    rows: int = 512,
    cols: int = 512,
    patient_id: str = "LARGE1",
    patient_name: str = "Large^Instance",
    transfer_syntax: str = ExplicitVRLittleEndian,
    seed: int | str = 0,
) -> LargeInstance:
    """One Multi-frame Grayscale Word SC instance whose Pixel Data holds at least `size` bytes.

    Everything but the Pixel Data is written by pydicom; the Pixel Data element (the last one,
    PS3.5 §7.1) is appended by hand frame by frame, so generating 2 GiB needs one frame of
    memory. Explicit or implicit VR little endian only.
    """
    if transfer_syntax not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        raise ValueError("make_large_instance writes (explicit or implicit) little endian only")
    frame_len = rows * cols * 2
    frames = max(1, -(-size // frame_len))
    if frames * frame_len >= 2**32 - 1:
        raise ValueError("Pixel Data must stay below 4 GiB (32-bit length, PS3.5 §7.1.2)")
    out_dir.mkdir(parents=True, exist_ok=True)
    study_uid = uid("large-study", seed, patient_id)
    ds = Dataset()
    _patient_study(ds, patient_id, patient_name, study_uid)
    ds.SOPClassUID = MultiFrameGrayscaleWordSecondaryCaptureImageStorage
    ds.SOPInstanceUID = uid("large-instance", seed, patient_id, size, rows, cols)
    ds.Modality = "OT"
    ds.SeriesInstanceUID = uid("large-series", seed, patient_id)
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ConversionType = "WSD"
    ds.FrameIncrementPointer = 0x00181063  # Frame Time (PS3.3 C.8.6.3)
    ds.FrameTime = 40
    _image_pixel(ds, rows, cols, frames)
    _file_meta(ds, transfer_syntax)
    path = out_dir / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    length = frames * frame_len
    if transfer_syntax == ExplicitVRLittleEndian:  # PS3.5 Table 7.1-1: OW has a 4-byte length
        header = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, length)
    else:  # PS3.5 Table 7.1-3
        header = struct.pack("<HHI", 0x7FE0, 0x0010, length)
    base = bytearray(random.Random(f"large/{seed}/{patient_id}").randbytes(frame_len))
    with path.open("ab") as fh:
        fh.write(header)
        for n in range(frames):
            base[0:4] = struct.pack("<I", n)  # every frame differs
            fh.write(base)
    return LargeInstance(
        path=path,
        patient_id=patient_id,
        study_uid=study_uid,
        series_uid=ds.SeriesInstanceUID,
        sop_instance_uid=ds.SOPInstanceUID,
        sop_class_uid=ds.SOPClassUID,
        frames=frames,
        pixel_bytes=length,
    )


# pydicom's bundled files that are complete Part 10 Storage instances (meta, patient, study,
# series, instance), one per interesting transfer syntax or SOP class.
CORPUS_NAMES = (
    "CT_small.dcm",  # CT, explicit VR little endian
    "MR_small.dcm",  # MR, explicit VR little endian
    "MR_small_implicit.dcm",  # implicit VR little endian
    "MR_small_bigendian.dcm",  # explicit VR big endian (retired)
    "MR_small_RLE.dcm",  # RLE lossless
    "MR_small_jp2klossless.dcm",  # JPEG 2000 lossless
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS lossless
    "JPEG2000.dcm",  # SC, JPEG 2000
    "JPGExtended.dcm",  # SC, JPEG extended (process 2 & 4)
    "SC_rgb_jpeg_dcmtk.dcm",  # SC, JPEG baseline (process 1)
    "SC_rgb_jpeg_gdcm.dcm",  # SC, JPEG lossless SV1 (process 14)
    "SC_rgb_rle.dcm",  # SC RGB, RLE lossless
    "image_dfl.dcm",  # SC, deflated explicit VR little endian
    "ExplVR_BigEnd.dcm",  # US, explicit VR big endian
    "examples_ybr_color.dcm",  # US multi-frame, JPEG baseline (30 frames)
    "rtdose.dcm",  # RT Dose, multi-frame, implicit VR
    "waveform_ecg.dcm",  # 12-lead ECG waveform (no pixel data)
    "test-SR.dcm",  # Comprehensive SR (no pixel data)
)


def corpus_files(names: Iterable[str] = CORPUS_NAMES) -> tuple[CorpusFile, ...]:
    """pydicom's bundled test files usable as Storage payloads, with SOP class and TS.

    Looked up locally only (`download=False`): a missing file is an error, never a download.
    Beware: several of them share SOP Instance / Study UIDs (the MR_small variants are one
    instance in six encodings) — use `corpus_study()` to load them together into one archive.
    """
    found: list[CorpusFile] = []
    for name in names:
        where = get_testdata_file(name, download=False)
        if not isinstance(where, str):
            raise RuntimeError(f"pydicom's bundled test file {name} is missing")
        path = Path(where)
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        found.append(
            CorpusFile(
                name=name,
                path=path,
                sop_class_uid=str(ds.SOPClassUID),
                transfer_syntax=str(ds.file_meta.TransferSyntaxUID),
                sop_instance_uid=str(ds.SOPInstanceUID),
                study_uid=str(ds.StudyInstanceUID),
                patient_id=str(ds.get("PatientID", "")),
                size=path.stat().st_size,
            )
        )
    return tuple(found)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def restamp(
    source: Path,
    out_path: Path,
    *,
    patient_id: str,
    patient_name: str,
    study_uid: str,
    series_uid: str,
    sop_instance_uid: str,
) -> None:
    """Copy a Part 10 file with new identifiers; transfer syntax and pixel data unchanged."""
    ds = pydicom.dcmread(source)
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = sop_instance_uid
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out_path, enforce_file_format=True)


def corpus_study(
    out_dir: Path,
    files: Iterable[CorpusFile] | None = None,
    *,
    patient_id: str = "CORPUS1",
    patient_name: str = "Corpus^Test",
    seed: int | str = 0,
) -> StudyInfo:
    """The corpus files re-stamped into one study: one series per file, fresh unique UIDs."""
    chosen = tuple(corpus_files() if files is None else files)
    study_uid = uid("corpus-study", seed, patient_id)
    series_uids: list[str] = []
    per_series: dict[str, tuple[str, ...]] = {}
    paths: dict[str, Path] = {}
    classes: dict[str, str] = {}
    syntaxes: dict[str, str] = {}
    for cf in chosen:
        series_uid = uid("corpus-series", seed, patient_id, cf.name)
        sop_uid = uid("corpus-instance", seed, patient_id, cf.name)
        path = out_dir / f"{_safe_name(cf.name.removesuffix('.dcm'))}.{sop_uid}.dcm"
        restamp(
            cf.path,
            path,
            patient_id=patient_id,
            patient_name=patient_name,
            study_uid=study_uid,
            series_uid=series_uid,
            sop_instance_uid=sop_uid,
        )
        series_uids.append(series_uid)
        per_series[series_uid] = (sop_uid,)
        paths[sop_uid] = path
        classes[sop_uid] = cf.sop_class_uid
        syntaxes[sop_uid] = cf.transfer_syntax
    return StudyInfo(
        patient_id=patient_id,
        patient_name=patient_name,
        study_uid=study_uid,
        series_uids=tuple(series_uids),
        sop_instance_uids=per_series,
        paths=paths,
        sop_class_uids=classes,
        transfer_syntaxes=syntaxes,
    )
