"""Queries without query files, and query validation, end to end against a pynetdicom source.

The source logs each C-MOVE identifier it receives (pynetdicom_qr.py --log-identifiers), so the
tests check what went on the wire, not just what aiomove meant to send.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import Dataset, dcmread

from tests.cli.move_util import Study, identifier_log, new_study, run_move
from tests.peers import free_port, pynetdicom_qr

pytestmark = pytest.mark.interop

LOOPBACK = "127.0.0.1"


@pytest.fixture
def study(tmp_path: Path) -> Study:
    return new_study(tmp_path, "src", 3)


def sent_identifier(log: Path) -> Dataset:
    [record] = identifier_log(log)
    return Dataset.from_json(record["identifier"])


def test_study_uid_flag_needs_no_query_file(tmp_path: Path, study: Study) -> None:
    port = free_port()
    out = tmp_path / "out"
    out.mkdir()
    log = tmp_path / "ids.jsonl"
    with pynetdicom_qr(study.files, {"MOVESCU": port}, f"--log-identifiers={log}") as qr:
        result = run_move(
            tmp_path,
            "-S",
            "-aec",
            "PYQRSCP",
            "+P",
            str(port),
            "-od",
            out,
            "--study-uid",
            study.uid,
            LOOPBACK,
            str(qr),
        )
    assert result.returncode == 0, result.stderr
    assert len(list(out.iterdir())) == 3
    ds = sent_identifier(log)
    assert ds.QueryRetrieveLevel == "STUDY"
    assert ds.StudyInstanceUID == study.uid
    assert "query.invalid" not in result.stderr  # a well-formed query draws no warning


def test_sop_uid_flags_make_an_image_level_query(tmp_path: Path, study: Study) -> None:
    port = free_port()
    out = tmp_path / "out"
    out.mkdir()
    log = tmp_path / "ids.jsonl"
    wanted = study.sops[:2]
    series = str(dcmread(study.files[0]).SeriesInstanceUID)
    args = ["--study-uid", study.uid, "--series-uid", series]
    for uid in wanted:
        args += ["--sop-uid", uid]
    with pynetdicom_qr(study.files, {"MOVESCU": port}, f"--log-identifiers={log}") as qr:
        result = run_move(
            tmp_path,
            "-S",
            "-aec",
            "PYQRSCP",
            "+P",
            str(port),
            "-od",
            out,
            "--report",
            "r.json",
            *args,
            LOOPBACK,
            str(qr),
        )
    assert result.returncode == 0, result.stderr
    ds = sent_identifier(log)
    assert ds.QueryRetrieveLevel == "IMAGE"
    assert list(ds.SOPInstanceUID) == wanted
    assert {p.name for p in out.iterdir()} == {f"CT.{uid}" for uid in wanted}


def test_non_unique_key_is_named_in_a_warning(tmp_path: Path, study: Study) -> None:
    port = free_port()
    out = tmp_path / "out"
    out.mkdir()
    with pynetdicom_qr(study.files, {"MOVESCU": port}) as qr:
        result = run_move(
            tmp_path,
            "-S",
            "-aec",
            "PYQRSCP",
            "+P",
            str(port),
            "-od",
            out,
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={study.uid}",
            "-k",
            "PatientName=Doe^John",
            LOOPBACK,
            str(qr),
        )
    assert result.returncode == 0, result.stderr  # a warning, the move still runs
    assert "query.invalid" in result.stderr
    assert "PatientName" in result.stderr


def test_strict_refuses_the_same_query_before_connecting(tmp_path: Path, study: Study) -> None:
    log = tmp_path / "ids.jsonl"
    with pynetdicom_qr(study.files, {}, f"--log-identifiers={log}") as qr:
        result = run_move(
            tmp_path,
            "-S",
            "-aec",
            "PYQRSCP",
            "--strict",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={study.uid}",
            "-k",
            "PatientName=Doe^John",
            LOOPBACK,
            str(qr),
        )
    assert result.returncode == 1
    assert "PatientName" in result.stderr.strip().splitlines()[-1]
    assert identifier_log(log) == []  # nothing was sent


def test_missing_query_retrieve_level_is_named(tmp_path: Path, study: Study) -> None:
    result = run_move(
        tmp_path, "-S", "--strict", "-k", f"StudyInstanceUID={study.uid}", LOOPBACK, "1"
    )
    assert result.returncode == 1
    assert "QueryRetrieveLevel" in result.stderr


def test_invalid_uid_in_a_flag_is_refused(tmp_path: Path) -> None:
    result = run_move(tmp_path, "-S", "--study-uid", "1.2.abc", LOOPBACK, "1")
    assert result.returncode == 1
    assert "--study-uid" in result.stderr or "study" in result.stderr.lower()
