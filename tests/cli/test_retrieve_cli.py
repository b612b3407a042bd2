"""`aiomove retrieve` end to end: the real command in a subprocess against DCMTK dcmqrscp
(one archive for the module) and Orthanc, plus the layout rules it relies on.

Every run happens in tmp_path; the archive's move destination AIOMOVE is our +P port.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pydicom
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiomove.keys import read_keys
from aiomove.layout import (
    DEFAULT_LAYOUT,
    STAGING_PREFIX,
    Layout,
    LayoutError,
    remove_stale_staging,
    safe_component,
)
from aiomove.query import QueryError
from tests.cli.move_util import differences
from tests.peers import free_port
from tests.sampledata import StudyInfo, make_study
from tests.sources import HOST, Source, dcmqrscp, orthanc

pytestmark = pytest.mark.interop

RETRIEVE = [sys.executable, "-m", "aiomove", "retrieve"]
AE = "AIOMOVE"
LAYOUT = Layout.parse(DEFAULT_LAYOUT)


@dataclass(frozen=True)
class Archive:
    source: Source
    port: int  # our +P port, known to the archive as AIOMOVE
    trio: list[StudyInfo]  # three small studies of patient TRIO
    bulk: list[StudyInfo]  # enough instances to interrupt a retrieve half way
    hostile: StudyInfo  # Patient ID "../../etc"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    data = tmp_path_factory.mktemp("data")
    trio = [
        make_study(data / f"trio{n}", patient_id="TRIO", n_series=2, n_instances=3, seed=n)
        for n in range(3)
    ]
    bulk = [
        make_study(data / f"bulk{n}", patient_id="BULK", n_series=2, n_instances=30, seed=n)
        for n in range(8)
    ]
    hostile = make_study(data / "hostile", patient_id="../../etc", n_series=1, n_instances=2)
    files = [f for s in [*trio, *bulk, hostile] for f in s.files]
    port = free_port()
    with dcmqrscp(tmp_path_factory.mktemp("dcmqrscp"), files, peers={AE: (HOST, port)}) as src:
        yield Archive(src, port, trio, bulk, hostile)


def command(port: int, source: Source, out: Path, *extra: str | Path) -> list[str]:
    return [
        *RETRIEVE,
        *("-aec", source.ae_title, "+P", str(port), "-od", str(out), "--linger", "2"),
        *map(str, extra),
        source.host,
        str(source.port),
    ]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def expected_path(out: Path, source_file: Path) -> Path:
    ds = pydicom.dcmread(source_file, stop_before_pixels=True)
    return LAYOUT.path(out, {name: ds.get(name) for name in LAYOUT.fields})


def check_layout(out: Path, studies: list[StudyInfo]) -> None:
    """Every instance at its layout path, its data set equal to the source's; nothing else."""
    wanted = {expected_path(out, f): f for s in studies for f in s.files}
    assert set(out.rglob("*.dcm")) == set(wanted)
    for path, source in wanted.items():
        assert differences(pydicom.dcmread(path), pydicom.dcmread(source)) == [], path
    assert hidden(out) == []


def hidden(out: Path) -> list[Path]:
    """Staging directories, temporary files: anything hidden below `out`."""
    return list(out.rglob(".*"))


def snapshot(out: Path) -> dict[PurePosixPath, bytes]:
    return {PurePosixPath(p.relative_to(out)): p.read_bytes() for p in out.rglob("*.dcm")}


def received(report: dict[str, Any]) -> list[str]:
    return [u for s in report["studies"] for m in s["moves"] for u in m["sop_instance_uids"]]


# --- inputs ----------------------------------------------------------------------------------


def test_csv_list_of_three_studies_with_concurrency_two(archive: Archive, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # Excel's byte order mark and ';' separator; the header names the column to use
    lines = [f"n{n};{s.study_uid}" for n, s in enumerate(archive.trio)]
    (tmp_path / "studies.csv").write_text("\ufeffNote;StudyInstanceUID\n" + "\n".join(lines))
    args = ["--input", "studies.csv", "--concurrency", "2", "--report", "r.json"]
    done = run(command(archive.port, archive.source, out, *args), tmp_path)
    assert done.returncode == 0, done.stderr
    check_layout(out, archive.trio)
    report = load(tmp_path / "r.json")
    assert [s["state"] for s in report["studies"]] == ["complete"] * 3
    assert [s["study_instance_uid"] for s in report["studies"]] == [
        s.study_uid for s in archive.trio
    ]
    assert all(m["level"] == "STUDY" for s in report["studies"] for m in s["moves"])
    assert 1 <= report["peak_associations"] <= 2
    # the reported paths are the files
    paths = {Path(p) for s in report["studies"] for m in s["moves"] for p in m["paths"]}
    assert paths == set(out.rglob("*.dcm"))


def test_accession_numbers_resolved_with_c_find_on_orthanc(
    archive: Archive, tmp_path: Path
) -> None:
    studies = archive.trio[:2]
    accessions = [str(pydicom.dcmread(s.files[0]).AccessionNumber) for s in studies]
    (tmp_path / "acc.txt").write_text("\n".join([*accessions, "NO-SUCH-ACC"]) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    port = free_port()
    files = [f for s in studies for f in s.files]
    with orthanc(tmp_path, files, peers={AE: (HOST, port)}) as src:
        args = ["--input", "acc.txt", "--key-type", "accession", "--report", "r.json"]
        done = run(command(port, src, out, *args), tmp_path)
        # an accession number without a study makes the run incomplete (68), not a failure
        assert done.returncode == 68, done.stderr
        check_layout(out, studies)
        report = load(tmp_path / "r.json")
        assert report["unresolved"] == [
            {"key": "AccessionNumber=NO-SUCH-ACC", "error": None, "code": 0}
        ]
        assert [(s["origin"], s["state"]) for s in report["studies"]] == [
            (f"AccessionNumber={a}", "complete") for a in accessions
        ]
        # again: everything is on disk, nothing is moved
        again = run(command(port, src, out, *args), tmp_path)
        assert again.returncode == 68, again.stderr
        report = load(tmp_path / "r.json")
        assert [s["state"] for s in report["studies"]] == ["skipped"] * 2
        assert received(report) == []


def test_read_keys_formats(tmp_path: Path) -> None:
    csv_file = tmp_path / "a.csv"
    csv_file.write_text("PatientID,AccessionNumber\nP1,A1\nP2,A2\nP1,A1\n\n")
    assert read_keys(csv_file, None) == ("AccessionNumber", ["A1", "A2"])  # first in KEY_TYPES
    assert read_keys(csv_file, "patient") == ("PatientID", ["P1", "P2"])
    with pytest.raises(QueryError, match="no StudyInstanceUID column"):
        read_keys(csv_file, "study")
    plain = tmp_path / "uids.txt"
    plain.write_text("# studies\n1.2.3\n\n1.2.4\n")
    assert read_keys(plain, None) == ("StudyInstanceUID", ["1.2.3", "1.2.4"])
    plain.write_text("1.2.3\n../etc\n")
    with pytest.raises(QueryError, match="key 2"):
        read_keys(plain, None)
    plain.write_text("PAT*\n")
    with pytest.raises(QueryError, match="wildcard"):
        read_keys(plain, "patient")


def test_unknown_study_and_refused_move(archive: Archive, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "unknown.txt").write_text("1.2.3.4.5.6.7.8.9\n")
    args = ["--input", "unknown.txt", "--report", "r.json"]
    done = run(command(archive.port, archive.source, out, *args), tmp_path)
    assert done.returncode == 68, done.stderr  # nothing to find is incomplete, not a failure
    assert [s["state"] for s in load(tmp_path / "r.json")["studies"]] == ["not-found"]
    # dcmqrscp does not know the move destination STRANGER: it refuses the C-MOVE (0xA801)
    (tmp_path / "known.txt").write_text(archive.trio[0].study_uid + "\n")
    args = ["-aet", "STRANGER", "--input", "known.txt", "--report", "r.json"]
    refused = run(command(archive.port, archive.source, out, *args), tmp_path)
    assert refused.returncode == 69, refused.stderr
    [study] = load(tmp_path / "r.json")["studies"]
    assert study["state"] == "failed"
    assert study["moves"][0]["status"] == "0xA801"
    assert list(out.iterdir()) == []


# --- resume ----------------------------------------------------------------------------------


def test_resume_moves_only_what_is_missing(archive: Archive, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    args = command(archive.port, archive.source, out, "-k", "PatientID=TRIO", "--report", "r.json")
    first = run(args, tmp_path)
    assert first.returncode == 0, first.stderr
    check_layout(out, archive.trio)
    full = snapshot(out)

    a, b, c = archive.trio
    # two instances of study A, from different series; the whole of study B
    gone = [a.sop_instance_uids[a.series_uids[0]][0], a.sop_instance_uids[a.series_uids[1]][2]]
    for uid in gone:
        expected_path(out, a.paths[uid]).unlink()
    shutil.rmtree(expected_path(out, b.files[0]).parent.parent)

    second = run(args, tmp_path)
    assert second.returncode == 0, second.stderr
    report = load(tmp_path / "r.json")
    by_uid = {s["study_instance_uid"]: s for s in report["studies"]}
    # study A: IMAGE-level C-MOVEs of exactly the two missing instances, one per series
    moves_a = by_uid[a.study_uid]["moves"]
    assert [m["level"] for m in moves_a] == ["IMAGE", "IMAGE"]
    assert sorted(u for m in moves_a for u in m["requested_sop_instance_uids"]) == sorted(gone)
    assert sorted(u for m in moves_a for u in m["sop_instance_uids"]) == sorted(gone)
    assert by_uid[a.study_uid]["already_present"] == 4
    # study B: nothing on disk, one STUDY-level C-MOVE; study C: complete, no C-MOVE at all
    assert [m["level"] for m in by_uid[b.study_uid]["moves"]] == ["STUDY"]
    skipped = by_uid[c.study_uid]
    assert (skipped["state"], skipped["moves"], skipped["already_present"]) == ("skipped", [], 6)
    assert sorted(received(report)) == sorted([*gone, *b.instance_uids])
    assert snapshot(out) == full
    assert hidden(out) == []


def test_interrupted_retrieve_keeps_complete_files_and_resumes(
    archive: Archive, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    args = command(
        archive.port,
        archive.source,
        out,
        *("-k", "PatientID=BULK", "--concurrency", "1", "-ta", "5", "--report", "r.json"),
    )
    proc = subprocess.Popen(args, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any(out.rglob("*.dcm")):  # a bounded poll of another process's output
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no file arrived within 60 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "c_move.cancelling" in stderr  # C-CANCEL, as the move's context manager exits
    assert load(tmp_path / "r.json")["interrupted"] is True
    assert hidden(out) == []  # no staging area, no temporary file
    kept = set(out.rglob("*.dcm"))
    total = sum(len(s.files) for s in archive.bulk)
    assert 0 < len(kept) < total
    sources = {expected_path(out, f): f for s in archive.bulk for f in s.files}
    for path in kept:  # every file left is complete
        assert differences(pydicom.dcmread(path), pydicom.dcmread(sources[path])) == []

    again = run(args, tmp_path)
    assert again.returncode == 0, again.stderr
    check_layout(out, archive.bulk)
    report = load(tmp_path / "r.json")
    assert sum(s["already_present"] for s in report["studies"]) == len(kept)
    assert len(received(report)) == total - len(kept)


# --- layout safety ---------------------------------------------------------------------------


def test_hostile_patient_id_stays_inside_the_output_directory(
    archive: Archive, tmp_path: Path
) -> None:
    out = tmp_path / "a" / "b" / "out"
    out.mkdir(parents=True)
    study = archive.hostile
    (tmp_path / "one.txt").write_text(study.study_uid + "\n")
    done = run(command(archive.port, archive.source, out, "--input", "one.txt"), tmp_path)
    assert done.returncode == 0, done.stderr
    files = list(out.rglob("*.dcm"))
    assert len(files) == 2
    for path in files:
        assert path.resolve().is_relative_to(out.resolve())
        assert path.relative_to(out).parts[0] == "____etc"
    assert not (tmp_path / "etc").exists()
    assert not (tmp_path / "a" / "etc").exists()
    # everything under tmp_path/a is the output directory
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b"]


@pytest.mark.parametrize(
    "template",
    [
        "../{SOPInstanceUID}.dcm",
        "/tmp/{SOPInstanceUID}.dcm",
        "{PatientID}/..{SOPInstanceUID}",
        "{PatientID}//{SOPInstanceUID}",
        ".hidden/{SOPInstanceUID}",
        "{PatientID}\\{SOPInstanceUID}",
        "{PatientID}.dcm",  # no SOP Instance UID: instances would share a path
        "{NoSuchKeyword}/{SOPInstanceUID}",
        "{PatientID!r}/{SOPInstanceUID}",
        "{PatientID:>9}/{SOPInstanceUID}",
        "{PatientID.real}/{SOPInstanceUID}",
        "{SOPInstanceUID",
    ],
)
def test_unusable_templates_are_refused(template: str) -> None:
    with pytest.raises(LayoutError):
        Layout.parse(template)


@pytest.mark.parametrize(
    ("value", "component"),
    [
        ("../../etc", "____etc"),
        ("..", "_"),
        (".hidden", "_hidden"),
        ("", "UNKNOWN"),
        (None, "UNKNOWN"),
        ("a/b\\c\x00d", "a_b_c_d"),
        (["A", "B"], "A_B"),
        ("  PAT 1  ", "PAT 1"),
    ],
)
def test_values_are_sanitised(value: Any, component: str) -> None:
    path = LAYOUT.render({"PatientID": value, "SOPInstanceUID": "1.2.3"})
    assert path.parts[0] == component


def test_invalid_uids_are_marked() -> None:
    path = LAYOUT.render({"StudyInstanceUID": "../1.2", "SOPInstanceUID": "1.2.3"})
    assert path.parts[1] == "INVALID___1.2"
    assert path.parts[3] == "1.2.3.dcm"


@given(values=st.lists(st.one_of(st.none(), st.text(max_size=300)), min_size=4, max_size=4))
def test_any_values_give_a_path_below_the_root(values: list[str | None]) -> None:
    root = Path("/srv/out")
    fields = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
    path = LAYOUT.path(root, dict(zip(fields, values, strict=True)))
    relative = path.relative_to(root)
    assert len(relative.parts) == 4
    assert all(safe_component(part) for part in relative.parts)
    assert os.path.normpath(path) == str(path)


def test_staging_areas_of_dead_runs_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / f"{STAGING_PREFIX}999999999-0a1b"  # above any pid_max: no such process
    (dead / "sub").mkdir(parents=True)
    (dead / "CT.1.2.3.1").write_bytes(b"complete but never placed")
    ours = tmp_path / f"{STAGING_PREFIX}{os.getpid()}-0a1b"
    ours.mkdir()
    assert remove_stale_staging(tmp_path) == [dead]
    assert [p.name for p in tmp_path.iterdir()] == [ours.name]


# --- exit codes and the terminal display -----------------------------------------------------


def test_bad_options_and_output_directory(tmp_path: Path) -> None:
    query = ["-k", "PatientID=X", HOST, "104"]
    no_port = run([*RETRIEVE, *query], tmp_path)
    assert no_port.returncode == 1
    assert "--port is required" in no_port.stderr
    bad_layout = run([*RETRIEVE, "+P", "4", "--layout", "../{SOPInstanceUID}", *query], tmp_path)
    assert bad_layout.returncode == 1
    assert "component '..' starts with '.'" in bad_layout.stderr
    missing = run([*RETRIEVE, "+P", "4", "-od", "nowhere", *query], tmp_path)
    assert missing.returncode == 45
    assert list(tmp_path.iterdir()) == []


def test_port_in_use_and_unreachable_peer(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        in_use = run([*RETRIEVE, "+P", str(port), "-k", "PatientID=X", HOST, "104"], tmp_path)
    assert in_use.returncode == 60, in_use.stderr
    assert "cannot listen" in in_use.stderr
    closed = free_port()
    args = ["+P", str(free_port()), "-k", "PatientID=X", "--report", "r.json", HOST, str(closed)]
    refused = run([*RETRIEVE, *args], tmp_path)
    assert refused.returncode == 61, refused.stderr
    assert "Connection refused" in load(tmp_path / "r.json")["unresolved"][0]["error"]
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no staging area left


def test_live_display_on_a_terminal(archive: Archive, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "one.txt").write_text(archive.trio[0].study_uid + "\n")
    master, slave = os.openpty()
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the terminal's other side is closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        args = command(archive.port, archive.source, out, "--input", "one.txt")
        env = {**os.environ, "TERM": "xterm", "COLUMNS": "120"}
        proc = subprocess.run(
            args, cwd=tmp_path, stderr=slave, stdout=subprocess.PIPE, timeout=60, env=env
        )
    finally:
        os.close(slave)
        reader.join(10)
        os.close(master)
    shown = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, shown
    assert "studies" in shown
    assert "instances" in shown
    assert "MB/s" in shown
    assert "retrieve.study" not in shown  # the display replaces the per-study lines
    check_layout(out, archive.trio[:1])
