"""`aiomove move` retrieving to itself from real move sources: DCMTK dcmqrscp and Orthanc.

Every level (PATIENT, STUDY, SERIES, IMAGE) with every information model each source offers;
every expected SOP Instance UID arrives and the data sets equal the source's. DCMTK movescu
run with the same arguments yields the same set of files. pydicom's bundled files (compressed,
big endian, ...) come through `+xa +B` byte for byte.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest

from tests.peers import dcmtk, free_port
from tests.sampledata import StudyInfo, corpus_files, corpus_study, make_study
from tests.sources import HOST, Source, dcmqrscp, orthanc

pytestmark = pytest.mark.interop

AE = "AIOMOVE"
SOURCES = {"dcmqrscp": dcmqrscp, "orthanc": orthanc}
# (model flag, level) pairs each source supports (Orthanc has no Patient/Study Only model).
LEVELS = {
    "-P": ("PATIENT", "STUDY", "SERIES", "IMAGE"),
    "-S": ("STUDY", "SERIES", "IMAGE"),
    "-O": ("PATIENT", "STUDY"),
}
CASES = [(model, level) for model, levels in LEVELS.items() for level in levels]


class Archive:
    """A started source with the study loaded and our destination registered on `port`."""

    def __init__(self, source: Source, study: StudyInfo, port: int) -> None:
        self.source = source
        self.study = study
        self.port = port


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> StudyInfo:
    return make_study(tmp_path_factory.mktemp("study"), n_series=2, n_instances=3)


@pytest.fixture(scope="module", params=sorted(SOURCES))
def archive(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, study: StudyInfo
) -> Iterator[Archive]:
    """One source per kind for the whole module; tests run one after the other on `port`."""
    port = free_port()
    kind = str(request.param)
    factory: Any = SOURCES[kind]
    with factory(tmp_path_factory.mktemp(kind), study.files, peers={AE: (HOST, port)}) as src:
        yield Archive(src, study, port)


def keys_for(study: StudyInfo, model: str, level: str) -> tuple[list[str], set[str]]:
    """The -k keys for a retrieve at `level`, and the SOP Instance UIDs it must bring."""
    series = study.series_uids[1]
    keys = [f"QueryRetrieveLevel={level}"]
    if model != "-S":
        keys.append(f"PatientID={study.patient_id}")
    if level == "PATIENT":
        return keys, set(study.instance_uids)
    keys.append(f"StudyInstanceUID={study.study_uid}")
    if level == "STUDY":
        return keys, set(study.instance_uids)
    keys.append(f"SeriesInstanceUID={series}")
    if level == "SERIES":
        return keys, set(study.sop_instance_uids[series])
    wanted = study.sop_instance_uids[series][:2]
    keys.append("SOPInstanceUID=" + "\\".join(wanted))
    return keys, set(wanted)


def aiomove_move(archive: Archive, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    out.mkdir(exist_ok=True)
    src = archive.source
    cmd = [sys.executable, "-m", "aiomove", "move", "-aet", AE, "-aec", src.ae_title]
    cmd += ["+P", str(archive.port), "-od", str(out), *args, src.host, str(src.port)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=out.parent)


def dcmtk_movescu(archive: Archive, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """DCMTK movescu with the same arguments (TCP_NODELAY=1: see tests/sources.py).

    Run inside `out`: movescu 3.6.7 with `+B` ignores `-od` and writes to its working
    directory (aiomove honours -od in every mode).
    """
    out.mkdir(exist_ok=True)
    src = archive.source
    cmd = [dcmtk("movescu"), "-aet", AE, "-aec", src.ae_title, "+P", str(archive.port)]
    cmd += ["-od", str(out), *args, src.host, str(src.port)]
    env = dict(os.environ, TCP_NODELAY="1")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=out)


def by_uid(out: Path) -> dict[str, Path]:
    return {str(pydicom.dcmread(p).SOPInstanceUID): p for p in out.iterdir()}


def dataset_bytes(path: Path) -> bytes:
    """The bytes after the Part 10 header (preamble, DICM, group 0002)."""
    data = path.read_bytes()
    assert data[128:132] == b"DICM"
    # (0002,0000) UL group length, explicit VR little endian: tag 4, VR 2, length 2, value 4
    (group_length,) = struct.unpack("<I", data[140:144])
    return data[144 + group_length :]


@pytest.mark.parametrize(("model", "level"), CASES)
def test_retrieve_to_self(archive: Archive, model: str, level: str, tmp_path: Path) -> None:
    keys, expected = keys_for(archive.study, model, level)
    report = tmp_path / "report.json"
    args = [model, "--report", str(report)]
    for key in keys:
        args += ["-k", key]
    result = aiomove_move(archive, tmp_path / "out", *args)
    if archive.source.kind == "orthanc" and model == "-O":
        # Orthanc has no Patient/Study Only model: it accepts no context for it (exit 66).
        assert result.returncode == 66, result.stderr
        assert "presentation context" in result.stderr.lower() or "context" in result.stderr
        return
    assert result.returncode == 0, result.stderr + archive.source.log()
    got = by_uid(tmp_path / "out")
    assert set(got) == expected
    for sop_uid, path in got.items():
        assert path.name.startswith("CT.")
        original = pydicom.dcmread(archive.study.paths[sop_uid])
        assert pydicom.dcmread(path) == original
    summary = json.loads(report.read_text())["requests"][0]
    assert summary["status"] == "0x0000"
    assert {r["sop_instance_uid"] for r in summary["received"]} == expected
    assert summary["expected_not_received"] == []


def test_same_files_as_dcmtk_movescu(archive: Archive, tmp_path: Path) -> None:
    keys, expected = keys_for(archive.study, "-S", "STUDY")
    args = ["-S"]
    for key in keys:
        args += ["-k", key]
    ours = aiomove_move(archive, tmp_path / "ours", *args)
    assert ours.returncode == 0, ours.stderr
    theirs = dcmtk_movescu(archive, tmp_path / "dcmtk", *args)
    assert theirs.returncode == 0, theirs.stderr
    ours_names = sorted(p.name for p in (tmp_path / "ours").iterdir())
    dcmtk_names = sorted(p.name for p in (tmp_path / "dcmtk").iterdir())
    assert ours_names == dcmtk_names
    assert len(ours_names) == len(expected)
    for name in ours_names:
        assert pydicom.dcmread(tmp_path / "ours" / name) == pydicom.dcmread(
            tmp_path / "dcmtk" / name
        )


DCMQRSCP_CORPUS = (
    "CT_small.dcm",  # native explicit little endian
    "MR_small_RLE.dcm",  # RLE lossless
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline
    "examples_ybr_color.dcm",  # US multi-frame, JPEG baseline
    "ExplVR_BigEnd.dcm",  # native big endian
)


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_corpus_bit_preserving_with_accept_all(kind: str, tmp_path: Path) -> None:
    """`+xa +B`: every file of pydicom's corpus arrives, compressed ones in their own syntax, and
    what we store is byte for byte what DCMTK movescu `+xa +B` stores from the same source.

    (Against the original files the bytes can differ: a source re-encodes what it sends, e.g.
    dcmqrscp drops trailing padding; storing the received bytes unchanged is what +B promises,
    and tests/interop/test_store_interop.py checks it against the originals with storescu.)
    """
    # dcmqrscp sends each SOP class on one context, so one transfer syntax per class there;
    # Orthanc takes the whole corpus.
    names = DCMQRSCP_CORPUS if kind == "dcmqrscp" else None
    corpus = corpus_study(tmp_path / "corpus", corpus_files(names) if names else corpus_files())
    port = free_port()
    (tmp_path / kind).mkdir()
    extra = {"allow_compressed": True} if kind == "dcmqrscp" else {}
    args = ["-S", "+xa", "+B", "-k", "QueryRetrieveLevel=STUDY"]
    args += ["-k", f"StudyInstanceUID={corpus.study_uid}"]
    factory: Any = SOURCES[kind]
    with factory(tmp_path / kind, corpus.files, peers={AE: (HOST, port)}, **extra) as src:
        archive = Archive(src, corpus, port)
        ours = aiomove_move(archive, tmp_path / "ours", *args)
        theirs = dcmtk_movescu(archive, tmp_path / "dcmtk", *args)
        log = src.log()
    assert ours.returncode == 0, ours.stderr + log
    assert theirs.returncode == 0, theirs.stderr + log
    got = by_uid(tmp_path / "ours")
    assert set(got) == set(corpus.instance_uids)
    reference = by_uid(tmp_path / "dcmtk")
    assert set(reference) == set(got)
    compressed = 0
    for sop_uid, path in got.items():
        assert dataset_bytes(path) == dataset_bytes(reference[sop_uid]), path.name
        original_syntax = pydicom.uid.UID(corpus.transfer_syntaxes[sop_uid])
        if original_syntax.is_encapsulated:
            compressed += 1
            meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
            assert meta.TransferSyntaxUID == original_syntax  # stored unchanged, not transcoded
    assert compressed >= 2
