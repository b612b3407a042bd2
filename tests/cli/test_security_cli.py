"""Access control and limits on the command line: `aiomove store-scp`, `move` and `retrieve`.

Real peers throughout: DCMTK echoscu/storescu knock, DCMTK dcmqrscp moves, the commands run
in subprocesses. A full disk is a real tmpfs (tests/security/test_safe_writes.py's helper).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pydicom
import pytest

from aiomove.options import format_help, parse
from aiomove.options_retrieve import RETRIEVE
from aiomove.options_specs import MOVESCU, STORESCP
from aiomove.retrieve import open_session
from aiomove.storage import FileSink
from tests.peers import dcmtk, free_port, stop, wait_listening
from tests.sampledata import StudyInfo, make_study
from tests.security.test_safe_writes import tmpfs
from tests.sources import HOST, Source, dcmqrscp

pytestmark = pytest.mark.interop

AIOMOVE = [sys.executable, "-m", "aiomove"]
TIMEOUT = 120  # hang detector only
ENV = dict(os.environ, TCP_NODELAY="1")


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(map(str, args)), capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd, env=ENV
    )


def start(
    tmp_path: Path, command: str, *args: str | Path, port: int | None = None
) -> tuple[subprocess.Popen[str], int]:
    """`aiomove <command> args... port` in the background, once it listens on `port`."""
    port = port or free_port()
    proc = subprocess.Popen(
        [*AIOMOVE, command, *map(str, args), *([] if command != "store-scp" else [str(port)])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    wait_listening(proc, port, within=60)  # type: ignore[arg-type]
    return proc, port


def finish(proc: subprocess.Popen[str], *, interrupt: bool = False) -> tuple[int, str]:
    """Wait for the command (Ctrl-C first when `interrupt`): exit code and stderr."""
    try:
        if interrupt:
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        stop(proc)
    return proc.returncode, err


def echo(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return run(dcmtk("echoscu"), *args, "-aec", "STORESCP", HOST, str(port))


def storescu(port: int, *files: Path, called: str = "STORESCP") -> subprocess.CompletedProcess[str]:
    return run(dcmtk("storescu"), "-v", "-aec", called, HOST, str(port), *files)


def entries(directory: Path) -> list[str]:
    """Everything below `directory`, hidden (temporary) files included."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def log_events(stderr: str, name: str) -> list[dict[str, object]]:
    """The JSON log lines (--log-json) of one event."""
    found = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == name:
                found.append(record)
    return found


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> StudyInfo:
    return make_study(tmp_path_factory.mktemp("small"), patient_id="SEC", n_series=1)


# --- options ---------------------------------------------------------------------------------


def test_help_lists_the_security_options_grouped() -> None:
    done = run(*AIOMOVE, "move", "-h")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    group = text.index("access control and limits (aiomove extensions):")
    for line in (
        "  host access control tables (with --access-control):",
        "          --hosts-deny           [f]ilename: string (default: /etc/hosts.deny)",
        "          --accept-aet           [a]etitle: string",
        "          --max-associations     [n]umber: integer (default: 64)",
        "          --idle-timeout         [s]econds: float (default: 300, 0 for none)",
        "          --max-instance-size    [n] MiB: integer (default: 8192)",
        "          --min-free-space       [n] MiB: integer (default: 256)",
        "          --only-moved           refuse (0x0124) C-STOREs that belong to no",
    ):
        assert text.index(line) > group, line
    assert "+ac   --access-control       enforce host access control rules" in text
    store = format_help(STORESCP)
    assert "--max-associations" in store
    assert "--accept-network" in store
    assert "--only-moved" not in store  # no C-MOVE of its own to check against
    retrieve = format_help(RETRIEVE)
    assert all(o in retrieve for o in ("+ac", "--accept-aet", "--only-moved", "-dhl"))


def test_access_control_is_no_longer_refused() -> None:
    parsed = parse(MOVESCU, ["+ac", "--only-moved", "-k", "PatientID=1", "pacs", "104"])
    assert (parsed.access_control, parsed.only_moved) == (True, True)
    assert parse(STORESCP, ["+ac", "104"]).access_control is True


def test_a_bad_network_is_a_syntax_error(tmp_path: Path) -> None:
    done = run(*AIOMOVE, "store-scp", "--accept-network", "10.0.0.300/8", "104", cwd=tmp_path)
    assert done.returncode == 1
    assert "Invalid value for option --accept-network (10.0.0.300/8)" in done.stderr


# --- aiomove store-scp -----------------------------------------------------------------------


def test_store_scp_access_control_denies_by_hosts_deny(tmp_path: Path, small: StudyInfo) -> None:
    """+ac with hosts.deny naming the daemon "storescp": echoscu and storescu are cut off at
    TCP accept; the files are read at each connection, so emptying hosts.deny lets them in."""
    allow, deny, out = tmp_path / "allow", tmp_path / "deny", tmp_path / "out"
    allow.write_text("movescu: ALL\n")  # another daemon's rule: does not apply
    deny.write_text("# DCMTK's daemon name\nstorescp: 127.0.0.1\n")
    out.mkdir()
    args = ("+ac", "--hosts-allow", allow, "--hosts-deny", deny, "-od", out, "--log-json")
    proc, port = start(tmp_path, "store-scp", *args)
    try:
        refused = echo(port)
        sent = storescu(port, small.files[0])
        deny.write_text("")
        allowed = echo(port)
    finally:
        code, err = finish(proc, interrupt=True)
    assert refused.returncode != 0, refused.stdout + refused.stderr
    assert sent.returncode != 0, sent.stdout + sent.stderr
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert code == 0, err
    assert entries(out) == []
    denied = log_events(err, "connection.denied")
    assert len(denied) == 2, err
    assert {(e["reason"], e["daemon"]) for e in denied} == {("hosts_access", "storescp")}


def test_store_scp_calling_ae_allow_list(tmp_path: Path) -> None:
    """--accept-aet GOOD: `echoscu -aet OTHER` is rejected (PS3.8 reason 3), GOOD is not."""
    proc, port = start(tmp_path, "store-scp", "--accept-aet", "GOOD", "-v", "--log-json")
    try:
        other = echo(port, "-aet", "OTHER")
        good = echo(port, "-aet", "GOOD")
    finally:
        code, err = finish(proc, interrupt=True)
    assert other.returncode != 0
    assert "Association Rejected" in other.stdout + other.stderr
    assert "Calling AE Title Not Recognized" in other.stdout + other.stderr
    assert good.returncode == 0, good.stdout + good.stderr
    assert code == 0
    rejected = log_events(err, "association.rejected")
    assert [(e["calling_ae"], e["reason"]) for e in rejected] == [("OTHER", 3)], err


def test_store_scp_network_allow_list(tmp_path: Path) -> None:
    """--accept-network 192.0.2.0/24 (not loopback): a loopback echo never gets an answer."""
    proc, port = start(tmp_path, "store-scp", "--accept-network", "192.0.2.0/24", "--log-json")
    try:
        refused = echo(port)
    finally:
        _, err = finish(proc, interrupt=True)
    assert refused.returncode != 0
    assert [e["reason"] for e in log_events(err, "connection.denied")] == ["network"], err


# --- aiomove move --only-moved ---------------------------------------------------------------


@pytest.fixture
def blocked_source(tmp_path: Path, small: StudyInfo) -> Iterator[tuple[Source, int]]:
    """Single-process dcmqrscp (`-s`) knowing MOVESCU at a free port (yielded too)."""
    port = free_port()
    with dcmqrscp(
        tmp_path, small.files, peers={"MOVESCU": (HOST, port)}, single_process=True
    ) as src:
        yield src, port


def test_move_only_moved_refuses_a_store_no_c_move_caused(
    tmp_path: Path, small: StudyInfo, blocked_source: tuple[Source, int]
) -> None:
    """`aiomove move --only-moved +P`: storescu's C-STORE, sent while no C-MOVE of ours is
    outstanding, is refused 0x0124 and not written; the moved study still arrives whole.

    The window with no C-MOVE outstanding is made with the real source: a silent connection
    keeps single-process dcmqrscp busy, so our association waits in its queue while the
    Storage SCP already listens; closing the silent connection lets the move run.
    """
    source, port = blocked_source
    out = tmp_path / "out"
    out.mkdir()
    intruder = make_study(tmp_path / "intruder", patient_id="INTRUDER", n_series=1, n_instances=1)
    keys = ["-S", "-aec", source.ae_title, "-k", "QueryRetrieveLevel=STUDY"]
    keys += ["-k", f"StudyInstanceUID={small.study_uid}"]
    args: list[str | Path] = ["--only-moved", "+P", str(port), "-od", out, "--log-json"]
    with socket.create_connection((source.host, source.port), timeout=TIMEOUT) as silent:
        proc, _ = start(tmp_path, "move", *args, *keys, source.host, str(source.port), port=port)
        try:
            sent = storescu(port, intruder.files[0], called="MOVESCU")
        finally:
            silent.close()
            code, err = finish(proc)
    # 0x0124 Refused: Not Authorized (PS3.7 Annex C); storescu 3.6.7 has no name for it
    assert "Received Store Response (Unknown Status: 0x124)" in sent.stderr, sent.stderr
    assert code == 0, err
    stored = {pydicom.dcmread(p).SOPInstanceUID for p in out.iterdir()}
    assert stored == set(small.paths), entries(out)
    unsolicited = log_events(err, "c_store.unsolicited")
    assert [e["uid"] for e in unsolicited] == [intruder.files[0].stem], err


# --- exit 40: the output disk is full --------------------------------------------------------


def test_move_to_a_full_disk_exits_40(tmp_path: Path) -> None:
    """A 1 MiB tmpfs as -od and a ~2.5 MiB study from dcmqrscp: C-STOREs that do not fit are
    answered 0xA700 (no partial file stays), dcmqrscp reports failed sub-operations, and
    `aiomove move` exits 40 (movescu: cannot write output file) with a one-line reason."""
    big = make_study(
        tmp_path / "big", patient_id="BIG", n_series=1, n_instances=5, rows=512, cols=512
    )
    port = free_port()
    keys = ["-S", "-aec", "DCMQRSCP", "-k", "QueryRetrieveLevel=STUDY"]
    keys += ["-k", f"StudyInstanceUID={big.study_uid}"]
    with (
        tmpfs(tmp_path / "disk", "1m") as disk,
        dcmqrscp(tmp_path, big.files, peers={"MOVESCU": (HOST, port)}) as source,
    ):
        done = run(
            *AIOMOVE,
            "move",
            *("+P", str(port), "-od", disk, "--min-free-space", "0", "--report", "r.json"),
            *keys,
            source.host,
            str(source.port),
            cwd=tmp_path,
        )
        left = entries(disk)
    assert done.returncode == 40, done.stderr
    reason = [line for line in done.stderr.splitlines() if line.startswith("aiomove move:")]
    assert len(reason) == 1, done.stderr
    assert "cannot write output file" in reason[0]
    assert all(not name.startswith(".") for name in left), left  # no partial file
    report = json.loads((tmp_path / "r.json").read_text())
    (request,) = report["requests"]
    statuses = [r["status"] for r in request["received"]]
    assert 0xA700 in statuses, statuses
    assert len(left) == statuses.count(0) < 5
    assert request["failed"] == statuses.count(0xA700)  # the source counted our refusals


def test_retrieve_to_a_full_disk_exits_40(tmp_path: Path) -> None:
    """`aiomove retrieve` as `move`: instances refused 0xA700 for lack of space make the run
    exit 40 with one reason line; every file left in the layout is complete."""
    big = make_study(
        tmp_path / "big", patient_id="BIG", n_series=1, n_instances=5, rows=512, cols=512
    )
    port = free_port()
    with (
        tmpfs(tmp_path / "disk", "1m") as disk,
        dcmqrscp(tmp_path, big.files, peers={"MOVESCU": (HOST, port)}) as source,
    ):
        done = run(
            *AIOMOVE,
            "retrieve",
            *("-aet", "MOVESCU", "-aec", source.ae_title, "+P", str(port), "-od", disk),
            *("--min-free-space", "0", "--linger", "1", "--report", "r.json"),
            *("-k", f"StudyInstanceUID={big.study_uid}", source.host, str(source.port)),
            cwd=tmp_path,
        )
        placed = [f for f in Path(disk).rglob("*") if f.is_file()]
        for f in placed:
            assert pydicom.dcmread(f).StudyInstanceUID == big.study_uid  # complete files only
    assert done.returncode == 40, done.stderr
    reason = [line for line in done.stderr.splitlines() if line.startswith("aiomove retrieve:")]
    assert len(reason) == 1, done.stderr
    assert "cannot write output file" in reason[0]
    assert all(not f.name.startswith(".") for f in placed), placed  # no partial file
    assert len(placed) < 5


# --- aiomove retrieve ------------------------------------------------------------------------


@pytest.fixture
def forking_source(tmp_path: Path, small: StudyInfo) -> Iterator[tuple[Source, int]]:
    """dcmqrscp (one child per association) knowing MOVESCU at a free port (yielded too)."""
    port = free_port()
    with dcmqrscp(tmp_path, small.files, peers={"MOVESCU": (HOST, port)}) as src:
        yield src, port


def retrieve_args(source: Source, port: int, out: Path, study: StudyInfo) -> list[str | Path]:
    return [
        *("-aet", "MOVESCU", "-aec", source.ae_title, "+P", str(port), "-od", out),
        *("-v", "--log-json", "--linger", "2", "-k", f"StudyInstanceUID={study.study_uid}"),
    ]


def test_retrieve_takes_the_security_options(
    tmp_path: Path, small: StudyInfo, forking_source: tuple[Source, int]
) -> None:
    """`aiomove retrieve`: with --only-moved and allow-lists that admit the source the study
    arrives complete; with an allow-list that does not, the source's storage associations
    are rejected (PS3.8 reason 3) and the run is not complete."""
    source, port = forking_source
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    peer = [source.host, str(source.port)]
    admitted = run(
        *AIOMOVE,
        "retrieve",
        *retrieve_args(source, port, good, small),
        *("--only-moved", "--accept-network", "127.0.0.0/8", "--accept-aet", source.ae_title),
        *("--max-associations", "4", "--max-instance-size", "1", "--min-free-space", "1"),
        *peer,
        cwd=tmp_path,
    )
    assert admitted.returncode == 0, admitted.stderr
    assert {pydicom.dcmread(p).SOPInstanceUID for p in good.rglob("*.dcm")} == set(small.paths)
    refused = run(
        *AIOMOVE,
        "retrieve",
        *retrieve_args(source, port, bad, small),
        *("--accept-aet", "SOMEONE", *peer),
        cwd=tmp_path,
    )
    assert refused.returncode != 0, refused.stderr
    assert list(bad.rglob("*.dcm")) == []
    rejected = log_events(refused.stderr, "association.rejected")
    assert rejected, refused.stderr
    assert {(e["calling_ae"], e["reason"]) for e in rejected} == {(source.ae_title, 3)}


@pytest.mark.anyio
async def test_retrieve_session_only_moved(
    tmp_path: Path, small: StudyInfo, forking_source: tuple[Source, int]
) -> None:
    """`open_session(only_moved=True)`: storescu's C-STORE while no retrieve is outstanding
    is refused 0x0124 and not kept; a retrieve from dcmqrscp then arrives complete."""
    source, port = forking_source
    out = tmp_path / "out"
    out.mkdir()
    intruder = make_study(tmp_path / "intruder", patient_id="INTRUDER", n_series=1, n_instances=1)
    sink = FileSink(out)
    with anyio.fail_after(TIMEOUT):
        async with open_session(
            sink, port=port, host=HOST, ae_title="MOVESCU", only_moved=True, linger=5
        ) as session:
            sent = await anyio.run_process(
                [dcmtk("storescu"), "-v", "-aec", "MOVESCU", HOST, str(port), intruder.files[0]],
                check=False,
            )
            result = await session.retrieve(source.peer, _study_query(small.study_uid))
    assert b"Received Store Response (Unknown Status: 0x124)" in sent.stderr, sent.stderr
    assert result.complete, result.to_json()
    assert {pydicom.dcmread(p).SOPInstanceUID for p in out.iterdir()} == set(small.paths)
    assert [r.status for r in session.unattributed] == [0x0124]


def _study_query(uid: str) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = uid
    return ds
