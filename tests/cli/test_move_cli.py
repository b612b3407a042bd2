"""`aiomove move` end to end: the real command in a subprocess against real peers.

Sources are tests/pynetdicom_qr.py (a pynetdicom Q/R SCP); third-party destinations are DCMTK
storescp. Exit codes are movescu's (cli_move.py); every run happens in tmp_path.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from tests.cli.move_util import (
    CT_IMAGE,
    EXPLICIT_VR_LE,
    SC_IMAGE,
    TRAILING_PADDING,
    Study,
    add_jpeg,
    data_set_part,
    differences,
    identifier_log,
    implicit_copies,
    names,
    new_study,
    report,
    run_move,
    study_keys,
)
from tests.peers import free_port, pynetdicom_qr, pynetdicom_scp, storescp

pytestmark = pytest.mark.interop

LOOPBACK = "127.0.0.1"
#: --linger for the third-party test: long enough that lingering in vain shows.
LINGER = 10


@pytest.fixture
def study(tmp_path: Path) -> Study:
    return new_study(tmp_path, "source", 3)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture
def port() -> int:
    """Our Storage SCP port (+P), known to the source as destination MOVESCU."""
    return free_port()


@pytest.fixture
def source(study: Study, port: int) -> Iterator[int]:
    """A pynetdicom Q/R SCP serving `study`, moving to MOVESCU = our +P port."""
    with pynetdicom_qr(study.files, {"MOVESCU": port}) as qr_port:
        yield qr_port


def retrieve(port: int, out: Path, source_port: int, *extra: str) -> list[str | Path]:
    """Study root, to self, report in r.json: the arguments up to the peer's port."""
    opts: list[str | Path] = ["-S", "-aec", "PYQRSCP", "+P", str(port), "-od", out]
    opts += ["--report", "r.json"]
    return [*opts, *extra, LOOPBACK, str(source_port)]


def received_uids(directory: Path) -> set[str]:
    return {str(dcmread(p, force=True).SOPInstanceUID) for p in directory.iterdir()}


# --- retrieve to self ----------------------------------------------------------------------


def test_retrieve_to_self(tmp_path: Path, study: Study, out: Path, port: int, source: int) -> None:
    result = run_move(tmp_path, *retrieve(port, out, source, *study_keys(study.uid)))
    assert result.returncode == 0, result.stderr
    # movescu's names: "<modality>.<SOP Instance UID>", nothing else left in -od
    assert names(out) == {f"CT.{uid}" for uid in study.sops}
    for uid, original in zip(study.sops, study.files, strict=True):
        got = dcmread(out / f"CT.{uid}")
        assert got.file_meta.MediaStorageSOPInstanceUID == uid
        assert got.file_meta.TransferSyntaxUID == EXPLICIT_VR_LE
        assert differences(got, dcmread(original)) == []
    data = report(tmp_path / "r.json")
    assert data["released"] is True
    [request] = data["requests"]
    assert request["status"] == "0x0000"
    assert (request["completed"], request["failed"], request["warning"]) == (3, 0, 0)
    assert request["failed_sop_instance_uids"] == []
    assert request["query"]["StudyInstanceUID"] == study.uid
    assert {r["sop_instance_uid"] for r in request["received"]} == set(study.sops)
    assert {r["path"] for r in request["received"]} == {str(out / f"CT.{u}") for u in study.sops}
    assert {r["sop_class_uid"] for r in request["received"]} == {CT_IMAGE}
    assert all(r["status"] == 0 for r in request["received"])
    assert request["expected_not_received"] == []
    assert request["storage_associations_aborted"] == 0


# --- exit codes ----------------------------------------------------------------------------


def test_bad_option_exits_1_with_one_line(tmp_path: Path) -> None:
    result = run_move(tmp_path, "--no-such-option", "-k", "PatientID=1", LOOPBACK, "104")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "--no-such-option" in lines[0]


def test_missing_query_exits_1(tmp_path: Path) -> None:
    result = run_move(tmp_path, LOOPBACK, "104")
    assert result.returncode == 1
    assert "query file or override keys" in result.stderr


def test_output_directory_not_a_directory_exits_45(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    result = run_move(tmp_path, *retrieve(free_port(), not_a_dir, 104, "-k", "PatientID=1"))
    assert result.returncode == 45, result.stderr
    assert "output directory" in result.stderr


def test_storage_port_in_use_exits_60(tmp_path: Path, out: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = run_move(tmp_path, *retrieve(busy, out, free_port(), "-k", "PatientID=1"))
    assert result.returncode == 60, result.stderr
    assert "cannot listen" in result.stderr


def test_refused_peer_exits_61(tmp_path: Path) -> None:
    result = run_move(tmp_path, "-k", "PatientID=1", LOOPBACK, str(free_port()))
    assert result.returncode == 61, result.stderr
    assert "cannot connect" in result.stderr


def test_rejected_association_exits_61(tmp_path: Path, study: Study) -> None:
    keys = study_keys(study.uid)
    with pynetdicom_qr(study.files, {}, "--require-called-ae") as qr:
        wrong = run_move(tmp_path, "-S", "-aec", "NOTPYQRSCP", *keys, LOOPBACK, str(qr))
        right = run_move(tmp_path, "-S", "-aec", "PYQRSCP", *keys, LOOPBACK, str(qr))
    assert wrong.returncode == 61, wrong.stderr
    assert "rejected" in wrong.stderr
    # the same command with the right called AE gets past association (to the unknown
    # destination MOVESCU: 0xA801, exit 69)
    assert right.returncode == 69, right.stderr


def test_no_accepted_presentation_context_exits_66(tmp_path: Path) -> None:
    with pynetdicom_scp() as verification_only:
        result = run_move(tmp_path, "-S", "-k", "PatientID=1", LOOPBACK, str(verification_only))
    assert result.returncode == 66, result.stderr


def test_unknown_destination_exits_69(tmp_path: Path, study: Study) -> None:
    with pynetdicom_qr(study.files, {}) as qr:
        args = ["-S", "-aem", "NOWHERE", "--report", "r.json", *study_keys(study.uid)]
        result = run_move(tmp_path, *args, LOOPBACK, str(qr))
    assert result.returncode == 69, result.stderr
    assert "0xA801" in result.stderr
    assert report(tmp_path / "r.json")["requests"][0]["status"] == "0xA801"


def _with_jpeg(tmp_path: Path, study: Study) -> tuple[list[Path], Path, str]:
    jpeg, jpeg_uid = add_jpeg(study, tmp_path / "source")
    return [*study.files, jpeg], jpeg, jpeg_uid


def test_failed_sub_operation_exits_68_and_names_the_instance(
    tmp_path: Path, study: Study, out: Path, port: int
) -> None:
    """Our SCP's default preference refuses JPEG: pynetdicom fails that sub-operation and
    ends with 0xB000 and the Failed SOP Instance UID List."""
    files, _, jpeg_uid = _with_jpeg(tmp_path, study)
    with pynetdicom_qr(files, {"MOVESCU": port}) as qr:
        result = run_move(tmp_path, *retrieve(port, out, qr, *study_keys(study.uid)))
    assert result.returncode == 68, result.stderr
    assert "0xB000" in result.stderr
    assert jpeg_uid in result.stderr
    [request] = report(tmp_path / "r.json")["requests"]
    assert request["status"] == "0xB000"
    assert request["failed_sop_instance_uids"] == [jpeg_uid]
    assert (request["completed"], request["failed"]) == (3, 1)
    assert names(out) == {f"CT.{uid}" for uid in study.sops}


def test_accept_all_takes_the_jpeg_bit_preserved(
    tmp_path: Path, study: Study, out: Path, port: int
) -> None:
    files, jpeg, jpeg_uid = _with_jpeg(tmp_path, study)
    with pynetdicom_qr(files, {"MOVESCU": port}) as qr:
        result = run_move(tmp_path, *retrieve(port, out, qr, "+xa", "+B", *study_keys(study.uid)))
    assert result.returncode == 0, result.stderr
    assert names(out) == {f"CT.{uid}" for uid in study.sops} | {f"SC.{jpeg_uid}"}
    stored = out / f"SC.{jpeg_uid}"
    assert dcmread(stored).file_meta.TransferSyntaxUID == dcmread(jpeg).file_meta.TransferSyntaxUID
    assert data_set_part(stored) == data_set_part(jpeg)
    [request] = report(tmp_path / "r.json")["requests"]
    assert request["failed_sop_instance_uids"] == []
    assert SC_IMAGE in {r["sop_class_uid"] for r in request["received"]}


# --- third-party move -----------------------------------------------------------------------


def test_third_party_move_opens_no_port(tmp_path: Path, study: Study, out: Path) -> None:
    args = ["-v", "-S", "-aec", "PYQRSCP", "-aem", "STORE", "--no-port", "--report", "r.json"]
    with (
        storescp("-aet", "STORE", out_dir=out) as store_port,
        pynetdicom_qr(study.files, {"STORE": store_port}) as qr,
    ):
        result = run_move(
            tmp_path, *args, "--linger", str(LINGER), *study_keys(study.uid), LOOPBACK, str(qr)
        )
    assert result.returncode == 0, result.stderr
    assert received_uids(out) == set(study.sops)
    [request] = report(tmp_path / "r.json")["requests"]
    assert request["completed"] == 3
    assert request["received"] == []  # nothing came to us: we had no Storage SCP
    # -v logs "storage.listening" when the Storage SCP starts; here it must not
    assert "c_move.final" in result.stderr
    assert "storage.listening" not in result.stderr
    # Without a Storage SCP no instance can reach us: nothing to linger for (-v logs
    # "storage.linger" whenever it waits for completed instances or open associations).
    assert "storage.linger" not in result.stderr


# --- options --------------------------------------------------------------------------------


def test_cancel_after_two_responses(tmp_path: Path, study: Study, out: Path, port: int) -> None:
    keys = study_keys(study.uid)
    with pynetdicom_qr(study.files, {"MOVESCU": port}, "--cycle") as qr:
        result = run_move(tmp_path, *retrieve(port, out, qr, "--cancel", "2", *keys))
    assert result.returncode == 0, result.stderr  # movescu.cc: Cancel is handled like Success
    [request] = report(tmp_path / "r.json")["requests"]
    assert request["cancelled"] is True
    assert request["status"] == "0xFE00"
    assert request["responses"] >= 3  # two pending, (maybe more in flight), then the final one


def test_repeat_sends_the_request_twice(
    tmp_path: Path, study: Study, out: Path, port: int, source: int
) -> None:
    keys = study_keys(study.uid)
    result = run_move(tmp_path, *retrieve(port, out, source, "--repeat", "2", *keys))
    assert result.returncode == 0, result.stderr
    requests = report(tmp_path / "r.json")["requests"]
    assert [r["index"] for r in requests] == [1, 2]
    assert [r["message_id"] for r in requests] == [1, 2]
    for request in requests:
        assert request["status"] == "0x0000"
        assert {r["sop_instance_uid"] for r in request["received"]} == set(study.sops)


def test_abort_instead_of_release(
    tmp_path: Path, study: Study, out: Path, port: int, source: int
) -> None:
    result = run_move(tmp_path, *retrieve(port, out, source, "--abort", *study_keys(study.uid)))
    assert result.returncode == 0, result.stderr
    assert report(tmp_path / "r.json")["released"] is False
    assert names(out) == {f"CT.{uid}" for uid in study.sops}


def test_ignore_receives_but_writes_nothing(
    tmp_path: Path, study: Study, out: Path, port: int, source: int
) -> None:
    result = run_move(tmp_path, *retrieve(port, out, source, "--ignore", *study_keys(study.uid)))
    assert result.returncode == 0, result.stderr
    assert names(out) == set()
    [request] = report(tmp_path / "r.json")["requests"]
    assert {r["sop_instance_uid"] for r in request["received"]} == set(study.sops)
    assert [r["path"] for r in request["received"]] == [None] * 3
    assert all(r["status"] == 0 and r["size"] > 0 for r in request["received"])


@pytest.mark.parametrize(
    ("level", "study_key"),
    [
        ("0008,0052=STUDY", "0020,000d"),
        ("QueryRetrieveLevel=STUDY", "StudyInstanceUID"),
    ],
)
def test_key_by_tag_or_keyword(
    tmp_path: Path, study: Study, out: Path, port: int, level: str, study_key: str
) -> None:
    log = tmp_path / "identifiers.jsonl"
    with pynetdicom_qr(study.files, {"MOVESCU": port}, "--log-identifiers", str(log)) as qr:
        keys = ["-k", level, "-k", f"{study_key}={study.uid}"]
        result = run_move(tmp_path, *retrieve(port, out, qr, *keys))
    assert result.returncode == 0, result.stderr
    assert received_uids(out) == set(study.sops)
    [record] = identifier_log(log)
    assert record["move_destination"] == "MOVESCU"  # -aem defaults to our own AE title
    assert record["identifier"]["0020000D"]["Value"] == [study.uid]
    assert record["identifier"]["00080052"]["Value"] == ["STUDY"]


def test_zero_length_key_is_sent_empty(tmp_path: Path, study: Study, out: Path, port: int) -> None:
    log = tmp_path / "identifiers.jsonl"
    with pynetdicom_qr(study.files, {"MOVESCU": port}, "--log-identifiers", str(log)) as qr:
        keys = [*study_keys(study.uid), "-k", "PatientName"]
        result = run_move(tmp_path, *retrieve(port, out, qr, *keys))
    assert result.returncode == 0, result.stderr
    [record] = identifier_log(log)
    name = record["identifier"]["00100010"]  # present, PN, no value (zero length)
    assert name["vr"] == "PN"
    assert "Value" not in name


def _query_file(path: Path, study_uid: str) -> Path:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study_uid
    ds.save_as(path, implicit_vr=True, little_endian=True)
    return path


def test_several_query_files_on_one_association(tmp_path: Path, out: Path, port: int) -> None:
    first, second = new_study(tmp_path, "a", 2), new_study(tmp_path, "b", 1)
    queries = [
        _query_file(tmp_path / "q1.dcm", first.uid),
        _query_file(tmp_path / "q2.dcm", second.uid),
    ]
    log = tmp_path / "identifiers.jsonl"
    files = first.files + second.files
    with pynetdicom_qr(files, {"MOVESCU": port}, "--log-identifiers", str(log)) as qr:
        result = run_move(tmp_path, *retrieve(port, out, qr), *queries)
    assert result.returncode == 0, result.stderr
    requests = report(tmp_path / "r.json")["requests"]
    assert [r["query"]["StudyInstanceUID"] for r in requests] == [first.uid, second.uid]
    assert {r["sop_instance_uid"] for r in requests[0]["received"]} == set(first.sops)
    assert {r["sop_instance_uid"] for r in requests[1]["received"]} == set(second.sops)
    records = identifier_log(log)
    assert [r["identifier"]["0020000D"]["Value"] for r in records] == [[first.uid], [second.uid]]
    assert [r["message_id"] for r in records] == [1, 2]
    assert records[0]["requestor"] == records[1]["requestor"]  # same TCP connection


def test_command_file(tmp_path: Path, study: Study, out: Path, port: int, source: int) -> None:
    command_file = tmp_path / "move.args"
    command_file.write_text(
        f'-S -aec PYQRSCP\n+P {port} -od "{out}"\n'
        f"-k QueryRetrieveLevel=STUDY -k 'StudyInstanceUID={study.uid}'\n"
    )
    result = run_move(tmp_path, f"@{command_file}", LOOPBACK, str(source))
    assert result.returncode == 0, result.stderr
    assert names(out) == {f"CT.{uid}" for uid in study.sops}


MOVE_MODELS = {"-P": "1.2.840.10008.5.1.4.1.2.1.2", "-S": "1.2.840.10008.5.1.4.1.2.2.2"}


@pytest.mark.parametrize(("model", "expected"), [("-S", 0), ("-P", 0), ("-O", 66)])
def test_information_models(
    tmp_path: Path, study: Study, out: Path, port: int, model: str, expected: int
) -> None:
    """pynetdicom_qr offers patient and study root MOVE, not patient/study only."""
    keys = ["-k", "QueryRetrieveLevel=PATIENT", "-k", f"PatientID={study.patient_id}"]
    if model == "-S":
        keys = study_keys(study.uid)
    log = tmp_path / "identifiers.jsonl"
    with pynetdicom_qr(study.files, {"MOVESCU": port}, "--log-identifiers", str(log)) as qr:
        # the rightmost model option wins over retrieve()'s -S (DCMTK's rule)
        result = run_move(tmp_path, *retrieve(port, out, qr, model, *keys))
    assert result.returncode == expected, result.stderr
    assert names(out) == ({f"CT.{uid}" for uid in study.sops} if expected == 0 else set())
    sent_with = [r["sop_class_uid"] for r in identifier_log(log)]
    assert sent_with == ([MOVE_MODELS[model]] if expected == 0 else [])


# --- output options -------------------------------------------------------------------------


def test_write_dataset_without_meta(
    tmp_path: Path, study: Study, out: Path, port: int, source: int
) -> None:
    result = run_move(tmp_path, *retrieve(port, out, source, "-F", *study_keys(study.uid)))
    assert result.returncode == 0, result.stderr
    assert names(out) == {f"CT.{uid}" for uid in study.sops}
    for uid, original in zip(study.sops, study.files, strict=True):
        stored = out / f"CT.{uid}"
        assert stored.read_bytes()[128:132] != b"DICM"
        ds = dcmread(stored, force=True)
        assert "TransferSyntaxUID" not in ds.file_meta
        assert differences(ds, dcmread(original)) == []


def test_write_xfer_little_reencodes(tmp_path: Path, study: Study, out: Path, port: int) -> None:
    implicit = implicit_copies(study, tmp_path / "implicit")
    with pynetdicom_qr(implicit.files, {"MOVESCU": port}) as qr:
        result = run_move(tmp_path, *retrieve(port, out, qr, "+te", *study_keys(study.uid)))
    assert result.returncode == 0, result.stderr
    assert names(out) == {f"CT.{uid}" for uid in study.sops}
    for uid, original in zip(study.sops, implicit.files, strict=True):
        stored = dcmread(out / f"CT.{uid}")
        assert dcmread(original).file_meta.TransferSyntaxUID != EXPLICIT_VR_LE
        assert stored.file_meta.TransferSyntaxUID == EXPLICIT_VR_LE
        assert stored.original_encoding == (False, True)  # explicit VR, little endian
        # CT_small ends with (FFFC,FFFC) padding, which re-encoding drops (as DCMTK does)
        assert TRAILING_PADDING in dcmread(original)
        assert TRAILING_PADDING not in stored
        assert differences(stored, dcmread(original), ignore=(TRAILING_PADDING,)) == []
