"""The move sources of tests/sources.py, proven with DCMTK's own clients (findscu, movescu).

These tests also document how DCMTK `movescu` is invoked for the comparison with
`aiomove move`: study root (`-S`), calling AE `-aet`, called AE `-aec`, destination `-aem`, its
own Storage SCP on `+P port`, files into `-od`, keys with `-k`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import UID

from tests.peers import dcmtk, free_port
from tests.sampledata import (
    StudyInfo,
    corpus_files,
    corpus_study,
    make_large_instance,
    make_study,
)
from tests.sources import HOST, Peers, Source, dcmqrscp, orthanc, storage_profile

pytestmark = pytest.mark.interop

SourceFactory = Callable[..., AbstractContextManager[Source]]
SOURCES: dict[str, SourceFactory] = {"dcmqrscp": dcmqrscp, "orthanc": orthanc}


@pytest.fixture(scope="module", params=sorted(SOURCES))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> StudyInfo:
    return make_study(tmp_path_factory.mktemp("study"), n_series=2, n_instances=3)


@pytest.fixture(scope="module")
def source(
    kind: str, tmp_path_factory: pytest.TempPathFactory, study: StudyInfo
) -> Iterator[Source]:
    """One source per kind for the module (Orthanc takes seconds to stop); every test registers
    its own destination AE title, so they do not depend on each other."""
    with SOURCES[kind](tmp_path_factory.mktemp(kind), study.files) as src:
        yield src


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    """A DCMTK client; TCP_NODELAY=1 because its C-STORE responses would stall (Nagle) too."""
    env = dict(os.environ, TCP_NODELAY="1")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, env=env)


def findscu_studies(src: Source, out: Path, *keys: str) -> list[pydicom.Dataset]:
    """STUDY-level C-FIND (study root); each response extracted to a file by `-X`."""
    out.mkdir()
    args = ["-S", "-X", "-od", str(out), "-aet", "FINDSCU", "-aec", src.ae_title]
    args += ["-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID", "-k", "PatientID"]
    for key in keys:
        args += ["-k", key]
    result = run(dcmtk("findscu"), *args, src.host, str(src.port))
    assert result.returncode == 0, result.stderr + src.log()
    return [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


def movescu(
    src: Source, out: Path, port: int, *keys: str, dest: str = "MOVESCU", accept_all: bool = False
) -> subprocess.CompletedProcess[str]:
    """DCMTK movescu, receiving on `+P port` as `dest` (calling AE too)."""
    out.mkdir(exist_ok=True)
    args = ["-S", "-aet", dest, "-aec", src.ae_title, "-aem", dest, "+P", str(port)]
    args += ["-od", str(out)]
    if accept_all:
        args.append("+xa")  # accept every transfer syntax, compressed ones included
    for key in keys:
        args += ["-k", key]
    return run(dcmtk("movescu"), *args, src.host, str(src.port))


def received(out: Path) -> dict[str, pydicom.Dataset]:
    """The files movescu wrote, by SOP Instance UID."""
    datasets = [pydicom.dcmread(p) for p in out.iterdir()]
    return {str(ds.SOPInstanceUID): ds for ds in datasets}


def study_keys(study_uid: str) -> tuple[str, str]:
    return ("QueryRetrieveLevel=STUDY", f"StudyInstanceUID={study_uid}")


def test_findscu_finds_the_generated_study(source: Source, study: StudyInfo, tmp_path: Path):
    answers = findscu_studies(source, tmp_path / "all")
    assert [(ds.StudyInstanceUID, ds.PatientID) for ds in answers] == [
        (study.study_uid, study.patient_id)
    ]
    assert findscu_studies(source, tmp_path / "none", "PatientID=NOBODY") == []
    hit = findscu_studies(source, tmp_path / "hit", f"PatientID={study.patient_id}")
    assert [ds.StudyInstanceUID for ds in hit] == [study.study_uid]


def test_movescu_retrieves_the_study(kind: str, tmp_path: Path, study: StudyInfo):
    port = free_port()
    with SOURCES[kind](tmp_path, study.files, peers={"MOVESCU": (HOST, port)}) as src:
        result = movescu(src, tmp_path / "out", port, *study_keys(study.study_uid))
        log = src.log()
    assert result.returncode == 0, result.stderr + log
    got = received(tmp_path / "out")
    assert set(got) == set(study.instance_uids)
    for sop_uid, ds in got.items():
        original = pydicom.dcmread(study.paths[sop_uid])
        assert ds.PixelData == original.PixelData
        assert ds.SeriesInstanceUID in study.series_uids


def test_destination_registered_after_start(source: Source, study: StudyInfo, tmp_path: Path):
    port = free_port()
    keys = study_keys(study.study_uid)
    refused = movescu(source, tmp_path / "before", port, *keys, dest="LATE")
    assert refused.returncode != 0
    assert not list((tmp_path / "before").iterdir())

    source.add_peers({"LATE": (HOST, port)})
    result = movescu(source, tmp_path / "after", port, *keys, dest="LATE")
    assert result.returncode == 0, result.stderr + source.log()
    assert set(received(tmp_path / "after")) == set(study.instance_uids)
    assert source.peers["LATE"] == (HOST, port)


def test_movescu_series_level(source: Source, study: StudyInfo, tmp_path: Path):
    port = free_port()
    source.add_peers({"SERIESDEST": (HOST, port)})
    series = study.series_uids[1]
    keys = ["QueryRetrieveLevel=SERIES", f"StudyInstanceUID={study.study_uid}"]
    keys += [f"SeriesInstanceUID={series}"]
    result = movescu(source, tmp_path / "out", port, *keys, dest="SERIESDEST")
    assert result.returncode == 0, result.stderr
    assert set(received(tmp_path / "out")) == set(study.sop_instance_uids[series])


COMPRESSED_MIX = (
    "CT_small.dcm",  # native
    "MR_small_RLE.dcm",  # RLE
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline
    "examples_ybr_color.dcm",  # US multi-frame, JPEG baseline
    "ExplVR_BigEnd.dcm",  # native big endian
)


@pytest.fixture
def corpus(tmp_path: Path) -> StudyInfo:
    return corpus_study(tmp_path / "corpus", corpus_files(COMPRESSED_MIX))


@pytest.mark.parametrize("allow", [True, False])
def test_dcmqrscp_compressed_files_need_a_profile(tmp_path: Path, corpus: StudyInfo, allow: bool):
    port = free_port()
    peers: Peers = {"MOVESCU": (HOST, port)}
    with dcmqrscp(tmp_path, corpus.files, peers=peers, allow_compressed=allow) as src:
        result = movescu(
            src, tmp_path / "out", port, *study_keys(corpus.study_uid), accept_all=True
        )
        log = src.log()
    got = received(tmp_path / "out")
    compressed = {u for u, ts in corpus.transfer_syntaxes.items() if UID(ts).is_encapsulated}
    assert len(compressed) == 3
    if allow:
        assert result.returncode == 0, result.stderr + log
        assert set(got) == set(corpus.instance_uids)
        for sop_uid in compressed:
            assert got[sop_uid].file_meta.TransferSyntaxUID == corpus.transfer_syntaxes[sop_uid]
    else:  # the field note: no transcoding, the compressed sub-operations fail
        assert result.returncode == 68, result.stderr  # EXITCODE_CMOVE_WARNING
        assert set(got) == set(corpus.instance_uids) - compressed
        assert "unable to convert" in log


def test_storage_profile_refuses_mixed_syntaxes(tmp_path: Path):
    mixed = corpus_study(tmp_path, corpus_files(["MR_small.dcm", "MR_small_RLE.dcm"]))
    with pytest.raises(ValueError, match="several transfer syntaxes"):
        storage_profile(mixed.files)
    single = corpus_study(tmp_path / "one", corpus_files(["MR_small_RLE.dcm"]))
    assert "1.2.840.10008.5.1.4.1.1.4\\TS1" in storage_profile(single.files)


def test_orthanc_serves_compressed_corpus(tmp_path: Path, corpus: StudyInfo):
    port = free_port()
    with orthanc(tmp_path, corpus.files, peers={"MOVESCU": (HOST, port)}) as src:
        stats = src.rest("GET", "/statistics")
        result = movescu(
            src, tmp_path / "out", port, *study_keys(corpus.study_uid), accept_all=True
        )
    assert stats["CountInstances"] == len(corpus.files)
    assert result.returncode == 0, result.stderr
    assert set(received(tmp_path / "out")) == set(corpus.instance_uids)


def test_large_instance_is_retrieved_whole(kind: str, tmp_path: Path):
    big = make_large_instance(tmp_path / "big", size=8 * 2**20)
    port = free_port()
    with SOURCES[kind](tmp_path, [big.path], peers={"MOVESCU": (HOST, port)}) as src:
        result = movescu(src, tmp_path / "out", port, *study_keys(big.study_uid))
    assert result.returncode == 0, result.stderr
    (got,) = received(tmp_path / "out").values()
    assert got.SOPInstanceUID == big.sop_instance_uid
    assert got.PixelData == pydicom.dcmread(big.path).PixelData
    assert len(got.PixelData) == big.pixel_bytes == big.frames * 512 * 512 * 2 >= 8 * 2**20


def test_sampledata_is_deterministic(tmp_path: Path):
    first = make_study(tmp_path / "a", n_series=1, n_instances=2, seed=7)
    again = make_study(tmp_path / "b", n_series=1, n_instances=2, seed=7)
    other = make_study(tmp_path / "c", n_series=1, n_instances=2, seed=8)
    assert first.instance_uids == again.instance_uids
    assert [p.read_bytes() for p in first.files] == [p.read_bytes() for p in again.files]
    assert not set(first.instance_uids) & set(other.instance_uids)
    assert first.study_uid != other.study_uid


def test_generated_files_pass_dcmtk(tmp_path: Path, study: StudyInfo):
    """dcmdump parses every file completely (-E: errors are fatal)."""
    big = make_large_instance(tmp_path / "big", size=2**20, rows=64, cols=64)
    for path in [*study.files, big.path]:
        result = run(dcmtk("dcmdump"), "-E", "+P", "7fe0,0010", str(path))
        assert result.returncode == 0, result.stderr
        assert "OW" in result.stdout


@pytest.mark.parametrize("mover", [[], ["--with-movescu"]], ids=["aiomove", "movescu"])
def test_demo_script(tmp_path: Path, mover: list[str]):
    """scripts/demo.sh (`make demo`) with `aiomove move`, and on its DCMTK movescu path."""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, VENV=str(Path(sys.executable).parent.parent), TMPDIR=str(tmp_path))
    out = tmp_path / "out"
    result = subprocess.run(
        ["bash", str(root / "scripts" / "demo.sh"), *mover, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 of 6 instances arrived" in result.stdout
    assert len(list(out.iterdir())) == 6
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # its work directory is gone


def test_missing_orthanc_fails_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("tests.sources.shutil.which", lambda *args, **kwargs: None)
    with pytest.raises(RuntimeError, match="make peers"), orthanc(tmp_path, []):
        pass  # pragma: no cover


def test_dcmqrscp_single_process_and_rest_errors(tmp_path: Path, study: StudyInfo):
    port = free_port()
    peers: Peers = {"MOVESCU": (HOST, port)}
    with dcmqrscp(tmp_path, study.files, peers=peers, single_process=True) as src:
        result = movescu(src, tmp_path / "out", port, *study_keys(study.study_uid))
        with pytest.raises(TypeError):
            src.rest("GET", "/system")
    assert result.returncode == 0, result.stderr
    assert len(received(tmp_path / "out")) == len(study.files)
