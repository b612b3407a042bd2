"""`aiomove move` and DCMTK movescu against the same misbehaving Q/R peer: movescu is the oracle.

No real peer can be made to produce these faults, so each test starts a test double from
tests/cli/fault_peers.py on a loopback port in its own task group, then runs the real
`python -m aiomove move` and DCMTK `movescu` one after the other, with the same arguments
(aiomove-only options, such as `--report`, are named where they are added), each in its own
directory under tmp_path. The expected exit code is written out in every test, and where
aiomove deliberately differs from movescu the docstring says why. `HANG` bounds are hang
detectors only: a correct run takes well under a second, except where a peer makes it wait.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc
import pytest
from pydicom.uid import generate_uid

from tests.cli.fault_peers import LOOPBACK, Fault, FaultPeer, serve_fault_peer
from tests.cli.move_util import names, report
from tests.peers import dcmtk, free_port

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

#: Hang detector for one run of either command.
HANG = 20.0
#: movescu.cc's exit codes (its manual's table), as aiomove must reproduce them.
EXIT_OK = 0
EXIT_CANNOT_NEGOTIATE_ASSOCIATION = 61
EXIT_CANNOT_CLOSE_ASSOCIATION = 67
EXIT_CMOVE_ERROR = 69
ERROR_PREFIX = "aiomove move: error: "


@pytest.fixture
def anyio_backend() -> str:
    """The peer's event loop is not under test (the commands run in subprocesses)."""
    return "asyncio"


@dataclass(frozen=True)
class Run:
    """How one command ended: exit code (None: killed by the hang detector), output."""

    code: int | None
    stdout: str
    stderr: str
    seconds: float
    cwd: Path


async def _run(command: list[str], cwd: Path) -> Run:
    await anyio.Path(cwd / "out").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TCP_NODELAY="1")  # DCMTK: no Nagle stall (see tests/sources.py)
    started = time.monotonic()
    try:
        with anyio.fail_after(HANG):
            done = await anyio.run_process(command, check=False, cwd=cwd, env=env)
    except TimeoutError:  # run_process kills the process on cancellation
        return Run(None, "", "", time.monotonic() - started, cwd)
    return Run(
        done.returncode,
        done.stdout.decode(errors="replace"),
        done.stderr.decode(errors="replace"),
        time.monotonic() - started,
        cwd,
    )


async def run_aiomove(tmp_path: Path, args: list[str], *only_ours: str) -> Run:
    """`python -m aiomove move [only_ours] args`, in tmp_path/aiomove."""
    command = [sys.executable, "-m", "aiomove", "move", *only_ours, *args]
    return await _run(command, tmp_path / "aiomove")


async def run_movescu(tmp_path: Path, args: list[str]) -> Run:
    """DCMTK `movescu args`, in tmp_path/movescu."""
    return await _run([dcmtk("movescu"), *args], tmp_path / "movescu")


def move_args(port: int, *extra: str) -> list[str]:
    """Study root, one study (the doubles ignore the query), to the peer on `port`."""
    keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={generate_uid()}"]
    return ["-S", "-aec", "FAULTY", *keys, *extra, LOOPBACK, str(port)]


def assert_ended(run: Run, code: int, who: str) -> None:
    assert run.code is not None, f"{who} still running after {HANG} s (hang)"
    assert run.code == code, f"{who} exited {run.code}, expected {code}:\n{run.stdout}{run.stderr}"


def assert_reason(run: Run) -> str:
    """One line `aiomove move: error: ...`, the last thing written to stderr; its text."""
    lines = run.stderr.splitlines()
    reasons = [line for line in lines if line.startswith(ERROR_PREFIX)]
    assert len(reasons) == 1, f"expected one reason line on stderr:\n{run.stderr}"
    assert lines[-1] == reasons[0], f"the reason is not the last line:\n{run.stderr}"
    assert len(reasons[0]) > len(ERROR_PREFIX) + 10, reasons[0]
    return reasons[0]


def assert_no_reason(run: Run) -> None:
    assert ERROR_PREFIX not in run.stderr, run.stderr


async def test_wrong_message_id_being_responded_to_stops_the_move(tmp_path: Path) -> None:
    """The C-MOVE-RSP answers message ID 2 while 1 is outstanding (PS3.7 §9.3.4.2).

    Both stop at once and abort the association. movescu says "Move SCU Failed: DIMSE:
    Unexpected Response MsgId" and yet exits 0: its exit code comes only from a final
    response's status, and there was none. aiomove exits 69 (C-MOVE error) on purpose: a
    move that did not happen must not look like a success to a script. Deliberate difference.
    """
    peer = FaultPeer(Fault.WRONG_MESSAGE_ID)
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_fault_peer, peer)
        args = move_args(port)
        ours = await run_aiomove(tmp_path, args)
        theirs = await run_movescu(tmp_path, args)
        tg.cancel_scope.cancel()

    assert_ended(theirs, EXIT_OK, "movescu")
    assert "Unexpected Response MsgId" in theirs.stdout + theirs.stderr
    assert_ended(ours, EXIT_CMOVE_ERROR, "aiomove")
    assert "while waiting for C-MOVE-RSP to message 1" in assert_reason(ours)
    assert peer.moves == 2


async def test_pending_data_set_flag_without_data_set_is_ignored_by_default(
    tmp_path: Path,
) -> None:
    """Two pending C-MOVE-RSPs say "data set present" and send none, then Success.

    With movescu's default `-pi` both assume no data set (movescu warns "Assuming NO response
    identifiers are present") and end with the final Success: exit 0 for both.
    """
    peer = FaultPeer(Fault.PENDING_FLAG_WITHOUT_DATA_SET)
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_fault_peer, peer)
        args = move_args(port)
        ours = await run_aiomove(tmp_path, args)
        theirs = await run_movescu(tmp_path, args)
        tg.cancel_scope.cancel()

    assert_ended(theirs, EXIT_OK, "movescu")
    assert "Assuming NO response identifiers are present" in theirs.stdout + theirs.stderr
    assert_ended(ours, EXIT_OK, "aiomove")
    assert_no_reason(ours)
    assert peer.moves == 2


async def test_pending_data_set_flag_without_data_set_with_pending_read(tmp_path: Path) -> None:
    """The same peer with `-pr` (read the announced data set): the next PDV is a command.

    movescu expects the data set, meets the next command PDV, stops with "Move SCU Failed:
    DIMSE Unexpected PDV type", aborts, and exits 0 (no final response, so no status to map:
    the same quirk as above). aiomove stops at the same point ("command PDV ... while the data
    set ... is incomplete"), aborts, and exits 69. Deliberate difference in the code only.
    """
    peer = FaultPeer(Fault.PENDING_FLAG_WITHOUT_DATA_SET)
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_fault_peer, peer)
        args = move_args(port, "-pr")
        ours = await run_aiomove(tmp_path, args)
        theirs = await run_movescu(tmp_path, args)
        tg.cancel_scope.cancel()

    assert_ended(theirs, EXIT_OK, "movescu")
    assert "Unexpected PDV type" in theirs.stdout + theirs.stderr
    assert_ended(ours, EXIT_CMOVE_ERROR, "aiomove")
    assert "data set" in assert_reason(ours)


async def test_abort_in_reply_to_release_exits_67(tmp_path: Path) -> None:
    """The move succeeds; our A-RELEASE-RQ is answered with A-ABORT (PS3.8 §7.2 wants
    A-RELEASE-RP). movescu: "Association Release Failed", exit 67; aiomove the same."""
    peer = FaultPeer(Fault.ABORT_ON_RELEASE)
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_fault_peer, peer)
        args = move_args(port)
        ours = await run_aiomove(tmp_path, args)
        theirs = await run_movescu(tmp_path, args)
        tg.cancel_scope.cancel()

    assert_ended(theirs, EXIT_CANNOT_CLOSE_ASSOCIATION, "movescu")
    assert_ended(ours, EXIT_CANNOT_CLOSE_ASSOCIATION, "aiomove")
    assert ours.code == theirs.code
    assert "A-RELEASE" in assert_reason(ours)
    assert peer.releases_aborted == 2  # the fault really happened, to both


@pytest.mark.parametrize("fault", [Fault.CLOSE_ON_REQUEST, Fault.ABORT_ON_REQUEST])
async def test_association_request_not_answered_exits_61(tmp_path: Path, fault: Fault) -> None:
    """The peer reads our A-ASSOCIATE-RQ and then closes the connection, or answers with
    A-ABORT: no association. movescu: "Association Request Failed", exit 61; aiomove too."""
    peer = FaultPeer(fault)
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_fault_peer, peer)
        args = move_args(port)
        ours = await run_aiomove(tmp_path, args)
        theirs = await run_movescu(tmp_path, args)
        tg.cancel_scope.cancel()

    assert_ended(theirs, EXIT_CANNOT_NEGOTIATE_ASSOCIATION, "movescu")
    assert_ended(ours, EXIT_CANNOT_NEGOTIATE_ASSOCIATION, "aiomove")
    assert ours.code == theirs.code
    assert "association request" in assert_reason(ours)
    assert peer.requests_dropped == 2


async def test_store_from_a_foreign_move_is_kept_but_not_attributed(tmp_path: Path) -> None:
    """During our move the peer stores one CT instance on our `+P` port naming another Move
    Originator AE title and a message ID we never sent (PS3.7 §9.1.1.1), then answers
    Success with 0 completed. Both store the file and exit 0; aiomove's `--report` (its own
    option) does not count that instance as received for our request."""
    peer = FaultPeer(Fault.FOREIGN_ORIGINATOR)
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_fault_peer, peer)
        peer.destination_port = free_port()
        ours = await run_aiomove(
            tmp_path,
            move_args(port, "+P", str(peer.destination_port), "-od", "out"),
            "--report",
            "r.json",
        )
        peer.destination_port = free_port()
        theirs = await run_movescu(
            tmp_path, move_args(port, "+P", str(peer.destination_port), "-od", "out")
        )
        tg.cancel_scope.cancel()

    assert_ended(theirs, EXIT_OK, "movescu")
    assert_ended(ours, EXIT_OK, "aiomove")
    assert_no_reason(ours)
    [(ours_uid, ours_status), (theirs_uid, theirs_status)] = peer.stored
    assert (ours_status, theirs_status) == (0x0000, 0x0000)
    assert names(ours.cwd / "out") == {f"CT.{ours_uid}"}
    assert names(theirs.cwd / "out") == {f"CT.{theirs_uid}"}
    [request] = report(ours.cwd / "r.json")["requests"]
    assert request["status"] == "0x0000"
    assert request["received"] == []
    assert request["storage_associations_aborted"] == 0


async def test_cancel_ignored_by_the_peer_ends_within_the_acse_timeout(tmp_path: Path) -> None:
    """`--cancel 1 -ta 1`: C-CANCEL after the first pending response; the peer ignores it and
    goes on with pending responses for PENDING_FOR seconds before its final Success.

    movescu (the oracle for what a peer does) sends C-CANCEL and then waits for the final
    response however long it takes: it exits 0 here only because this peer ends on its own;
    with a peer that never stops, movescu never ends (observed with a 15 s bound; `-ta` does
    not apply, `-td` does not fire while responses keep coming).

    aiomove's contract differs on purpose: waiting for the final response after C-CANCEL is
    bounded by `-ta` (as when a request is abandoned, aiomove.move.MoveOperation.__aexit__),
    then the association is aborted and the request has no final response: exit 69 and a
    one-line reason. So aiomove must leave before the peer's final response.
    """
    pending_for = 6.0  # far beyond -ta 1 and aiomove's start-up, on a loaded machine too
    peer = FaultPeer(Fault.IGNORE_CANCEL, pending_for=pending_for)
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_fault_peer, peer)
        args = move_args(port, "--cancel", "1", "-ta", "1")
        ours = await run_aiomove(tmp_path, args)
        with anyio.fail_after(HANG):  # the peer notices a departure at its next read
            await peer.wait_for(lambda: peer.left_before_final + peer.finals_after_pending == 1)
        ours_seen = (peer.cancels, peer.left_before_final, peer.finals_after_pending)
        theirs = await run_movescu(tmp_path, args)
        tg.cancel_scope.cancel()

    assert_ended(theirs, EXIT_OK, "movescu")
    assert (peer.cancels, peer.finals_after_pending) == (ours_seen[0] + 1, ours_seen[2] + 1)
    assert ours.code is not None, f"aiomove still running after {HANG} s (hang)"
    assert ours_seen == (1, 1, 0), (
        "aiomove waited for the final response after the ignored C-CANCEL "
        f"(cancels, left early, waited) = {ours_seen}, took {ours.seconds:.1f} s"
    )
    assert_ended(ours, EXIT_CMOVE_ERROR, "aiomove")
    assert_reason(ours)
