"""The rarer movescu exit codes, with DCMTK movescu as the oracle where it can run.

2 (insufficient privileges: +P below 1024 as a normal user), 40 (output directory not
writable), 65 (association parameters cannot be built, e.g. an AE title too long to encode),
and the `-x` proposal family mapped onto the presentation contexts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiomove import cli_move
from aiomove.errors import ListenError
from aiomove.options import parse
from aiomove.options_specs import MOVESCU
from aiomove.proto import uids
from tests.peers import dcmtk

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
KEYS = ["-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=1"]


def as_nobody_works() -> bool:
    """Whether an unprivileged user can run this interpreter with aiomove importable (the
    checkout may live under a directory only root can enter)."""
    if os.geteuid() != 0:
        return False
    probe = subprocess.run(
        [*NOBODY, sys.executable, "-c", "import aiomove"], capture_output=True, timeout=60
    )
    return probe.returncode == 0


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A scratch directory an unprivileged user can reach (pytest's tmp_path is root-only)."""
    with tempfile.TemporaryDirectory(prefix="aiomove-exit-") as name:
        path = Path(name)
        path.chmod(0o755)
        yield path


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=cwd)


def test_port_below_1024_as_a_normal_user_exits_2(public_tmp: Path) -> None:
    tmp_path = public_tmp
    if not as_nobody_works():
        # Same mapping, exercised directly: EACCES from bind is "insufficient privileges".
        error = ListenError("cannot listen", PermissionError(13, "Permission denied"))
        assert cli_move.exit_code_for_move(error) == 2
        return
    out = tmp_path / "out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    args = ["+P", "104", "-od", str(out), *KEYS, "127.0.0.1", "1"]
    ours = run([*NOBODY, sys.executable, "-m", "aiomove", "move", *args], tmp_path)
    theirs = run([*NOBODY, dcmtk("movescu"), *args], tmp_path)
    assert theirs.returncode == 2, theirs.stderr
    assert ours.returncode == 2, ours.stderr
    assert ours.stderr.strip().splitlines()[-1].startswith("aiomove move: error: cannot listen")


def test_unwritable_output_directory_exits_40(
    public_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp_path = public_tmp
    out = tmp_path / "readonly"
    out.mkdir()
    out.chmod(0o755)  # owned by root: not writable for anyone else
    if not as_nobody_works():
        monkeypatch.setattr(
            cli_move.os if hasattr(cli_move, "os") else os, "access", lambda *a: False
        )
        assert cli_move.move_main(["+P", "11112", "-od", str(out), *KEYS, "127.0.0.1", "1"]) == 40
        return
    args = ["+P", "11112", "-od", str(out), *KEYS, "127.0.0.1", "1"]
    ours = run([*NOBODY, sys.executable, "-m", "aiomove", "move", *args], tmp_path)
    theirs = run([*NOBODY, dcmtk("movescu"), *args], tmp_path)
    assert theirs.returncode == 40, theirs.stderr
    assert ours.returncode == 40, ours.stderr
    assert "cannot write to output directory" in ours.stderr


def test_missing_output_directory_exits_45_like_movescu(tmp_path: Path) -> None:
    args = ["+P", "11112", "-od", str(tmp_path / "nope"), *KEYS, "127.0.0.1", "1"]
    ours = run([sys.executable, "-m", "aiomove", "move", *args], tmp_path)
    theirs = run([dcmtk("movescu"), *args], tmp_path)
    assert (ours.returncode, theirs.returncode) == (45, 45), ours.stderr + theirs.stderr


def test_ae_title_too_long_to_encode_exits_65(tmp_path: Path) -> None:
    # movescu truncates a 17-character title silently; aiomove refuses to send a title it
    # would have to change, with DCMTK's "cannot create association parameters" code.
    result = run(
        [
            sys.executable,
            "-m",
            "aiomove",
            "move",
            "-aet",
            "ABCDEFGHIJKLMNOPQ",
            *KEYS,
            "127.0.0.1",
            "1",
        ],
        tmp_path,
    )
    assert result.returncode == 65, result.stderr
    assert result.stderr.count("\n") == 1
    assert "AE title" in result.stderr


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("-x=", (uids.EXPLICIT_VR_LE, uids.EXPLICIT_VR_BE, uids.IMPLICIT_VR_LE)),
        ("-xe", (uids.EXPLICIT_VR_LE, uids.EXPLICIT_VR_BE, uids.IMPLICIT_VR_LE)),
        ("-xb", (uids.EXPLICIT_VR_BE, uids.EXPLICIT_VR_LE, uids.IMPLICIT_VR_LE)),
        (
            "-xd",
            (
                uids.DEFLATED_EXPLICIT_VR_LE,
                uids.EXPLICIT_VR_LE,
                uids.EXPLICIT_VR_BE,
                uids.IMPLICIT_VR_LE,
            ),
        ),
        ("-xi", (uids.IMPLICIT_VR_LE,)),
    ],
)
def test_propose_family_sets_the_contexts(flag: str, expected: tuple[str, ...]) -> None:
    """movescu proposes the MOVE model and its FIND twin with these syntaxes, in this order."""
    args = parse(MOVESCU, ["-S", flag, *KEYS, "127.0.0.1", "104"])
    settings = cli_move._settings(args)
    assert settings.proposed_transfer_syntaxes == expected
    assert settings.model == uids.STUDY_ROOT_QR_MOVE
    assert settings.find_model == uids.STUDY_ROOT_QR_FIND
