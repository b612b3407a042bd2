"""`aiomove find` end to end: the real command in a subprocess against DCMTK dcmqrscp, Orthanc
and DCMTK wlmscpfs (worklist), with DCMTK findscu as the oracle for `-X` files and exit codes.

--json and --csv output is parsed and checked against the generated study.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from anyio.from_thread import start_blocking_portal
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from aiomove.cli_find import find_identifiers, parse_fields
from aiomove.options import parse
from aiomove.options_find import FINDSCU
from tests.interop.test_find import fake_scp, wait_for_cancel
from tests.peers import dcmtk, free_port, stop, wait_listening
from tests.sampledata import StudyInfo, make_study, uid
from tests.sources import HOST, Source, dcmqrscp, orthanc

pytestmark = pytest.mark.interop

FIND = [sys.executable, "-m", "aiomove", "find"]
SOURCES = {"dcmqrscp": dcmqrscp, "orthanc": orthanc}
#: Orthanc computes Number of Study/Series Related Instances; dcmqrscp leaves them out.
COUNTS_SUPPORTED = {"dcmqrscp": False, "orthanc": True}
#: PS3.4 K.6.1.1.2 Modality Worklist Information Model - FIND.
WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TCP_NODELAY="1")
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60, env=env)


def aiomove_find(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run([*FIND, *args], cwd)


def dcmtk_findscu(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run([dcmtk("findscu"), *args], cwd)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> StudyInfo:
    return make_study(tmp_path_factory.mktemp("study"), patient_id="CLIFIND", n_series=2)


@pytest.fixture(scope="module", params=sorted(SOURCES))
def source(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, study: StudyInfo
) -> Iterator[Source]:
    factory: Any = SOURCES[str(request.param)]
    with factory(tmp_path_factory.mktemp(str(request.param)), study.files) as src:
        yield src


@pytest.fixture(scope="module")
def qrscp(tmp_path_factory: pytest.TempPathFactory, study: StudyInfo) -> Iterator[Source]:
    """dcmqrscp alone, for the exit-code tests."""
    with dcmqrscp(tmp_path_factory.mktemp("qrscp"), study.files) as src:
        yield src


def peer_args(src: Source) -> list[str]:
    return ["-aec", src.ae_title, src.host, str(src.port)]


def json_lines(text: str) -> list[Dataset]:
    return [Dataset.from_json(line) for line in text.splitlines() if line.strip()]


def canonical(path: Path) -> str:
    """A response file's data set as sorted DICOM JSON (file meta left out)."""
    return json.dumps(pydicom.dcmread(path).to_json_dict(), sort_keys=True)


def extracted(folder: Path) -> tuple[list[str], list[str]]:
    """The rspNNNN.dcm names in `folder`, and their data sets in a canonical order."""
    files = sorted(folder.iterdir())
    return [p.name for p in files], sorted(canonical(p) for p in files)


# --- --json and --csv ------------------------------------------------------------------------


def test_json_one_object_per_match(source: Source, study: StudyInfo, tmp_path: Path) -> None:
    fields = "PatientID,StudyInstanceUID,PatientName,NumberOfStudyRelatedInstances"
    result = aiomove_find(
        tmp_path, "-S", "--json", "--level", "STUDY", "--patient-id", study.patient_id,
        "--fields", fields, *peer_args(source),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + source.log()
    [match] = json_lines(result.stdout)
    assert match.PatientID == study.patient_id
    assert match.StudyInstanceUID == study.study_uid
    assert str(match.PatientName) == study.patient_name
    requested = {pydicom.datadict.tag_for_keyword(k) for k in fields.split(",")}
    assert set(match.keys()) <= requested  # --fields chooses the members
    if COUNTS_SUPPORTED[source.kind]:
        assert match.NumberOfStudyRelatedInstances == 6
    else:
        assert "NumberOfStudyRelatedInstances" not in match
    assert "Find Response" not in result.stderr  # the matches went to stdout only


def test_json_without_fields_is_the_whole_match(
    source: Source, study: StudyInfo, tmp_path: Path
) -> None:
    result = aiomove_find(
        tmp_path, "-S", "--json", "-k", "QueryRetrieveLevel=SERIES",
        "-k", f"StudyInstanceUID={study.study_uid}", "-k", "SeriesInstanceUID", "-k", "Modality",
        *peer_args(source),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    matches = json_lines(result.stdout)
    assert {m.SeriesInstanceUID for m in matches} == set(study.series_uids)
    for m in matches:
        assert m.QueryRetrieveLevel == "SERIES"
        assert m.StudyInstanceUID == study.study_uid
        assert m.Modality == "CT"


def test_csv_with_fields(source: Source, study: StudyInfo, tmp_path: Path) -> None:
    result = aiomove_find(
        tmp_path, "-S", "--csv", "--study-uid", study.study_uid, "--level", "SERIES",
        "--fields", "SeriesInstanceUID,Modality,SeriesNumber", *peer_args(source),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["SeriesInstanceUID", "Modality", "SeriesNumber"]
    body = sorted(rows[1:], key=lambda row: row[2])
    assert body == [[series, "CT", str(n)] for n, series in enumerate(study.series_uids, 1)]


def test_csv_columns_default_to_the_query_keys(
    source: Source, study: StudyInfo, tmp_path: Path
) -> None:
    result = aiomove_find(
        tmp_path, "-S", "--csv", "-k", "QueryRetrieveLevel=STUDY",
        "-k", f"PatientID={study.patient_id}", "-k", "StudyInstanceUID", "-k", "PatientName",
        *peer_args(source),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows == [
        ["QueryRetrieveLevel", "PatientName", "PatientID", "StudyInstanceUID"],  # tag order
        ["STUDY", study.patient_name, study.patient_id, study.study_uid],
    ]


def test_no_match_prints_only_the_csv_header(source: Source, tmp_path: Path) -> None:
    result = aiomove_find(
        tmp_path, "-S", "--csv", "--study-uid", uid("nothing here"), *peer_args(source)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["QueryRetrieveLevel,StudyInstanceUID"]


def test_responses_are_dumped_on_stderr_by_default(
    qrscp: Source, study: StudyInfo, tmp_path: Path
) -> None:
    keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"PatientID={study.patient_id}"]
    shown = aiomove_find(tmp_path, "-S", *keys, *peer_args(qrscp))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == ""
    assert "Find Response: 1 (Pending)" in shown.stderr
    assert f"(0010,0020) LO [{study.patient_id}]" in shown.stderr
    for hide in ("-sr", "-q"):
        hidden = aiomove_find(tmp_path, "-S", hide, *keys, *peer_args(qrscp))
        assert hidden.returncode == 0, hidden.stderr
        assert "Find Response" not in hidden.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["-S", "-k", "StudyInstanceUID=1.2.3", "--level", "SERIES"],
            {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": "1.2.3", "SeriesInstanceUID": ""},
        ),
        (
            ["-S", "--patient-id", "P1"],  # no PATIENT level in Study Root: its studies
            {"QueryRetrieveLevel": "STUDY", "PatientID": "P1", "StudyInstanceUID": ""},
        ),
        (
            ["-P", "--series-uid", "1.2.4", "--fields", "Modality", "--csv"],
            {
                "QueryRetrieveLevel": "SERIES",
                "PatientID": "",
                "StudyInstanceUID": "",
                "SeriesInstanceUID": "1.2.4",
                "Modality": "",
            },
        ),
        (
            ["-W", "--accession", "A1", "-k", "PatientName"],
            {"PatientName": "", "AccessionNumber": "A1"},
        ),
    ],
)
def test_friendly_flags_build_the_query(args: list[str], expected: dict[str, str]) -> None:
    """Their level's unique keys (and those above) come back as return keys; -k values win."""
    parsed = parse(FINDSCU, [*args, HOST, "104"])
    [ds] = find_identifiers(parsed, parse_fields(parsed.fields))
    assert {elem.keyword: str(elem.value) for elem in ds} == expected


# --- -X: the same files as findscu -X --------------------------------------------------------


def test_extract_writes_what_findscu_writes(
    source: Source, study: StudyInfo, tmp_path: Path
) -> None:
    """A query file plus -k keys, sent twice (--repeat 2): findscu numbers the responses over
    the association, final responses included, so the second request starts at rsp0004."""
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.SeriesInstanceUID = ""
    query.Modality = ""
    query.file_meta = FileMetaDataset()
    query.file_meta.MediaStorageSOPClassUID = UID(STUDY_ROOT_FIND)
    query.file_meta.MediaStorageSOPInstanceUID = uid("query file")
    query.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    query.save_as(tmp_path / "query.dcm", enforce_file_format=True)
    args = ["-S", "-X", "--repeat", "2", "-k", f"StudyInstanceUID={study.study_uid}"]
    args += ["-k", "SeriesNumber"]
    for name in ("ours", "dcmtk"):
        (tmp_path / name).mkdir()
    ours = aiomove_find(tmp_path, *args, "-od", "ours", *peer_args(source), "query.dcm")
    theirs = dcmtk_findscu(tmp_path, *args, "-od", "dcmtk", *peer_args(source), "query.dcm")
    assert ours.returncode == theirs.returncode == 0, ours.stderr + theirs.stderr
    names, datasets = extracted(tmp_path / "ours")
    assert names == ["rsp0001.dcm", "rsp0002.dcm", "rsp0004.dcm", "rsp0005.dcm"]
    assert (names, datasets) == extracted(tmp_path / "dcmtk")
    got = pydicom.dcmread(tmp_path / "ours" / "rsp0001.dcm")
    assert got.SeriesInstanceUID in study.series_uids
    assert got.file_meta.MediaStorageSOPClassUID == STUDY_ROOT_FIND
    assert "Find Response" not in ours.stderr  # -X hides the dump, as in findscu


def test_extract_limit_output(qrscp: Source, study: StudyInfo, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    keys = ["-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={study.study_uid}"]
    keys += ["-k", "SeriesInstanceUID"]
    result = aiomove_find(tmp_path, "-S", "-X", "-Xlo", "1", "-od", "out", *keys, *peer_args(qrscp))
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["rsp0001.dcm"]


@pytest.mark.parametrize("after", [1, 3])
def test_cancel_after_n_responses_like_findscu(after: int, tmp_path: Path) -> None:
    """`--cancel n`: C-CANCEL once the n-th response arrived; what came until the final
    Cancel is extracted, as by findscu."""
    keys = ["-S", "-X", "--cancel", str(after), "-k", "QueryRetrieveLevel=STUDY"]
    for name in ("ours", "dcmtk"):
        (tmp_path / name).mkdir()
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(fake_scp(wait_for_cancel)) as (scp, peer),
    ):
        where = ["-aec", peer.ae_title, peer.host, str(peer.port)]
        ours = aiomove_find(tmp_path, *keys, "-od", "ours", "--json", *where)
        theirs = dcmtk_findscu(tmp_path, *keys, "-od", "dcmtk", *where)
    assert ours.returncode == theirs.returncode == 0, ours.stderr + theirs.stderr
    assert scp.cancels == [1, 1]  # one C-CANCEL each, naming message 1
    names, datasets = extracted(tmp_path / "ours")
    assert names == [f"rsp{n:04d}.dcm" for n in range(1, after + 1)]
    assert (names, datasets) == extracted(tmp_path / "dcmtk")
    assert len(json_lines(ours.stdout)) == after


def test_unwritable_output_exits_40(qrscp: Source, study: StudyInfo, tmp_path: Path) -> None:
    """/proc takes no new files: refused up front (exit 40, DCMTK's "cannot write output
    file"), or, as root, when rsp0001.dcm cannot be created (findscu logs that, exits 0)."""
    keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"PatientID={study.patient_id}"]
    result = aiomove_find(tmp_path, "-S", "-X", "-od", "/proc", *keys, *peer_args(qrscp))
    assert result.returncode == 40, result.stderr
    assert "/proc" in result.stderr


def worklist_item(n: int) -> Dataset:
    """A scheduled procedure step complete enough for wlmscpfs (its required attributes)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.AccessionNumber = f"ACC{n:03d}"
    ds.PatientName = f"WORK^LIST{n}"
    ds.PatientID = f"WL{n}"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = uid("worklist study", n)
    ds.RequestingPhysician = "SMITH"
    ds.RequestedProcedureDescription = "EXAM"
    ds.RequestedProcedureID = f"RP{n}"
    ds.RequestedProcedurePriority = "LOW"
    step = Dataset()
    step.Modality = "CT" if n % 2 else "MR"
    step.ScheduledStationAETitle = "SCANNER1"
    step.ScheduledProcedureStepStartDate = "20240102"
    step.ScheduledProcedureStepStartTime = "080000"
    step.ScheduledPerformingPhysicianName = "JONES"
    step.ScheduledProcedureStepDescription = "STEP"
    step.ScheduledProcedureStepID = f"SPS{n}"
    step.ScheduledStationName = "STN1"
    step.ScheduledProcedureStepLocation = "ROOM1"
    ds.ScheduledProcedureStepSequence = [step]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(WORKLIST_FIND)
    ds.file_meta.MediaStorageSOPInstanceUID = uid("worklist item", n)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


@pytest.fixture(scope="module")
def worklist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """DCMTK wlmscpfs serving three worklist items under the AE title WLM; yields its port."""
    root = tmp_path_factory.mktemp("worklist")
    (root / "WLM").mkdir()
    (root / "WLM" / "lockfile").touch()
    for n in (1, 2, 3):
        worklist_item(n).save_as(root / "WLM" / f"item{n}.wl", enforce_file_format=True)
    port = free_port()
    log = (root / "wlmscpfs.log").open("wb")
    proc = subprocess.Popen(
        [dcmtk("wlmscpfs"), "-dfp", str(root), str(port)], stdout=log, stderr=log, cwd=root
    )
    try:
        wait_listening(proc, port)
        yield port
    finally:
        stop(proc)
        log.close()


def test_worklist_extract_and_json_like_findscu(worklist: int, tmp_path: Path) -> None:
    keys = ["-k", "PatientID", "-k", "PatientName", "-k", "AccessionNumber"]
    keys += ["-k", "ScheduledProcedureStepSequence[0].Modality=CT"]
    keys += ["-k", "ScheduledProcedureStepSequence[0].ScheduledStationAETitle"]
    where = ["-aec", "WLM", HOST, str(worklist)]
    for name in ("ours", "dcmtk"):
        (tmp_path / name).mkdir()
    ours = aiomove_find(tmp_path, "-W", "-X", "-od", "ours", *keys, *where)
    theirs = dcmtk_findscu(tmp_path, "-X", "-od", "dcmtk", *keys, *where)  # -W is the default
    assert ours.returncode == theirs.returncode == 0, ours.stderr + theirs.stderr
    names, datasets = extracted(tmp_path / "ours")
    assert names == ["rsp0001.dcm", "rsp0002.dcm"]  # items 1 and 3 are CT
    assert (names, datasets) == extracted(tmp_path / "dcmtk")
    assert pydicom.dcmread(tmp_path / "ours" / names[0]).file_meta.MediaStorageSOPClassUID == (
        WORKLIST_FIND
    )
    listed = aiomove_find(tmp_path, "--json", "--patient-id", "WL2", "-k", "PatientName", *where)
    assert listed.returncode == 0, listed.stderr
    [match] = json_lines(listed.stdout)
    assert (match.PatientID, str(match.PatientName)) == ("WL2", "WORK^LIST2")
    assert "QueryRetrieveLevel" not in match  # no Q/R level in a worklist query


# --- exit codes ------------------------------------------------------------------------------


def test_bad_option_exits_1_with_one_line(tmp_path: Path) -> None:
    result = aiomove_find(tmp_path, "--no-such-option", "-k", "PatientID=1", HOST, "104")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "--no-such-option" in lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([HOST, "104"], "either query file or override keys"),
        (["-S", "+cl", "3", "-k", "QueryRetrieveLevel=STUDY", HOST, "104"], "--compression-level"),
        (["-S", "-Xlo", "2", "-k", "QueryRetrieveLevel=STUDY", HOST, "104"], "--limit-output"),
        (["-S", "-X", "-od", "missing", "-k", "QueryRetrieveLevel=STUDY", HOST, "104"], "output"),
        (["--level", "STUDY", "--patient-id", "X", HOST, "104"], "--worklist"),
        (["-S", "-k", "NoSuchKeyword=1", HOST, "104"], "NoSuchKeyword"),
        (["-S", "-Xx", "-k", "QueryRetrieveLevel=STUDY", HOST, "104"], "XML"),
        (["-S", "--json", "--fields", "Nope", "-k", "PatientID", HOST, "104"], "Nope"),
    ],
)
def test_command_line_errors_exit_1(tmp_path: Path, args: list[str], message: str) -> None:
    result = aiomove_find(tmp_path, *args)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr


def refused_cases(qrscp: Source) -> dict[str, list[str]]:
    keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID"]
    return {
        "connection refused": ["-S", *keys, HOST, str(free_port())],
        "association rejected": ["-S", *keys, "-aec", "NOT-ITS-AE", HOST, str(qrscp.port)],
        "no presentation context": ["-W", *keys, *peer_args(qrscp)],  # dcmqrscp has no worklist
    }


@pytest.mark.parametrize(
    "case", ["connection refused", "association rejected", "no presentation context"]
)
def test_refused_peer_exits_like_findscu(qrscp: Source, case: str, tmp_path: Path) -> None:
    args = refused_cases(qrscp)[case]
    theirs = dcmtk_findscu(tmp_path, *args)
    ours = aiomove_find(tmp_path, *args)
    assert theirs.returncode == 2, theirs.stderr  # findscu.cc: performQuery() failed
    assert ours.returncode == theirs.returncode, ours.stderr
    assert len(ours.stderr.strip().splitlines()) == 1, ours.stderr


def test_failure_status_exits_2_where_findscu_exits_0(qrscp: Source, tmp_path: Path) -> None:
    """A deliberate difference: findscu ignores a failed final status (exit 0)."""
    args = ["-S", "-k", "QueryRetrieveLevel=NOSUCHLEVEL", *peer_args(qrscp)]
    theirs = dcmtk_findscu(tmp_path, *args)
    ours = aiomove_find(tmp_path, *args)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 2
    assert "C-FIND failed" in ours.stderr
    assert "0xC000" in ours.stderr  # dcmqrscp: unable to process
