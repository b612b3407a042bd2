"""What each benchmarked tool runs: the command lines of one run, where its files land.

Every mover retrieves the whole data set to itself from the same source (`-aem` = its own AE
title, the source's HostTable maps that title to the mover's port):

- DCMTK movescu: `movescu -P -aet BENCH -aem BENCH +P port -od DIR -k QueryRetrieveLevel=PATIENT
  -k PatientID=...`, with TCP_NODELAY=1 in its environment (DCMTK then disables Nagle) and,
  labelled, without it;
- aiomove: `.venv/bin/aiomove move` with the very same arguments (no TCP_NODELAY: aiomove sets
  its socket options itself);
- pynetdicom: bench/pynetdicom_move.py (AE with a non-blocking Storage SCP in the same process).

"x16" scenarios retrieve the 16 series of a set at once (Study Root, SERIES level):
16 movescu processes with 16 AE titles and ports; ONE aiomove process (bench/aiomove_concurrent.py,
the library: one listener, 16 associations in one task group); one pynetdicom process with 16
threads and one Storage SCP.

Ceiling: DCMTK storescu -> storescp (both TCP_NODELAY=1) sending the same files, timed from
storescu's start to its exit; the receiver's CPU and RSS are storescp's.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.data import DataSet
from bench.measure import Command

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
MOVER_AE = "BENCH"


def dcmtk(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"bench: DCMTK's {name} is not installed (make peers)")
    return path


def base_env(tcp_nodelay: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TCP_NODELAY"}
    if tcp_nodelay:
        env["TCP_NODELAY"] = "1"
    return env


@dataclass(frozen=True)
class Target:
    """The move source of a run and the destination ports it knows."""

    host: str
    port: int
    ae_title: str
    pid: int  # for its CPU time
    mover_port: int  # MOVER_AE's port
    dcmtk_ports: Sequence[int]  # BENCH01..BENCH16 for 16 movescu processes


def dcmtk_aes(n: int) -> list[str]:
    return [f"{MOVER_AE}{i:02d}" for i in range(1, n + 1)]


@dataclass
class Plan:
    """The processes of one run.

    `timed`: started together; the run lasts from their start to the last exit. `servers`:
    (command, port) started and listening before, stopped after the timed ones. `receiver`
    says whose CPU and RSS are the receiver's ("timed" or "servers"); the other side's CPU is
    reported as the source's.
    """

    timed: list[Command]
    out_dirs: list[Path]
    servers: list[tuple[Command, int]] = field(default_factory=list)
    receiver: str = "timed"


def _move_args(
    target: Target, ae: str, port: int, out: Path, keys: Mapping[str, str], model: str
) -> list[str]:
    args = [model, "-aet", ae, "-aec", target.ae_title, "-aem", ae, "+P", str(port)]
    args += ["-od", str(out)]
    for key, value in keys.items():
        args += ["-k", f"{key}={value}"]
    return [*args, target.host, str(target.port)]


def _patient_keys(ds: DataSet) -> dict[str, str]:
    return {"QueryRetrieveLevel": "PATIENT", "PatientID": ds.patient_id}


def movescu(target: Target, ds: DataSet, run_dir: Path, *, nodelay: bool) -> Plan:
    out = run_dir / "out"
    args = _move_args(target, MOVER_AE, target.mover_port, out, _patient_keys(ds), "-P")
    cmd = Command([dcmtk("movescu"), *args], base_env(nodelay), run_dir / "movescu.log")
    return Plan([cmd], [out])


def aiomove_move(target: Target, ds: DataSet, run_dir: Path) -> Plan:
    out = run_dir / "out"
    args = _move_args(target, MOVER_AE, target.mover_port, out, _patient_keys(ds), "-P")
    exe = str(Path(sys.executable).parent / "aiomove")
    cmd = Command([exe, "move", *args], base_env(False), run_dir / "aiomove.log")
    return Plan([cmd], [out])


def _series_args(ds: DataSet) -> list[str]:
    return [f"{s.study_uid}/{s.series_uid}" for s in ds.series]


def pynetdicom_move(target: Target, ds: DataSet, run_dir: Path, *, concurrent: bool) -> Plan:
    out = run_dir / "out"
    argv = [sys.executable, str(BENCH / "pynetdicom_move.py")]
    argv += ["--peer", target.host, str(target.port), target.ae_title]
    argv += ["--ae-title", MOVER_AE, "--port", str(target.mover_port), "--out", str(out)]
    if concurrent:
        for pair in _series_args(ds):
            argv += ["--series", pair]
    else:
        argv += ["--patient-id", ds.patient_id]
    env = dict(base_env(False), PYTHONWARNINGS="ignore")
    return Plan([Command(argv, env, run_dir / "pynetdicom.log")], [out])


def movescu_x16(target: Target, ds: DataSet, run_dir: Path, *, aiomove: bool = False) -> Plan:
    """One movescu (or `aiomove move`) process per series, each with its own AE and port."""
    exe = [str(Path(sys.executable).parent / "aiomove"), "move"] if aiomove else [dcmtk("movescu")]
    cmds, outs = [], []
    for n, (series, ae, port) in enumerate(
        zip(ds.series, dcmtk_aes(len(ds.series)), target.dcmtk_ports, strict=False)
    ):
        out = run_dir / f"out{n:02d}"
        keys = {
            "QueryRetrieveLevel": "SERIES",
            "StudyInstanceUID": series.study_uid,
            "SeriesInstanceUID": series.series_uid,
        }
        args = _move_args(target, ae, port, out, keys, "-S")
        log = run_dir / f"mover{n:02d}.log"
        cmds.append(Command([*exe, *args], base_env(not aiomove), log))
        outs.append(out)
    return Plan(cmds, outs)


def aiomove_x16(target: Target, ds: DataSet, run_dir: Path) -> Plan:
    out = run_dir / "out"
    argv = [sys.executable, str(BENCH / "aiomove_concurrent.py")]
    argv += ["--peer", target.host, str(target.port), target.ae_title]
    argv += ["--ae-title", MOVER_AE, "--port", str(target.mover_port), "--out", str(out)]
    for pair in _series_args(ds):
        argv += ["--series", pair]
    return Plan([Command(argv, base_env(False), run_dir / "aiomove.log")], [out])


def storescu_storescp(ds: DataSet, run_dir: Path, port: int) -> Plan:
    """DCMTK to DCMTK, the same files, no C-MOVE: what the receiving side can take."""
    out = run_dir / "out"
    server = Command(
        [dcmtk("storescp"), "-aet", "STORESCP", "-od", str(out), str(port)],
        base_env(True),
        run_dir / "storescp.log",
    )
    client = Command(
        [dcmtk("storescu"), "-aec", "STORESCP", "+sd", "127.0.0.1", str(port), str(ds.directory)],
        base_env(True),
        run_dir / "storescu.log",
    )
    return Plan([client], [out], servers=[(server, port)], receiver="servers")


def startup(run_dir: Path) -> dict[str, Plan]:
    """What starting each tool costs, before any network traffic (no source involved)."""
    bin_dir = Path(sys.executable).parent
    argvs = {
        "movescu --version": [dcmtk("movescu"), "--version"],
        "aiomove move --version": [str(bin_dir / "aiomove"), "move", "--version"],
        "python -c 'import pynetdicom'": [sys.executable, "-c", "import pynetdicom"],
    }
    return {
        tool: Plan([Command(argv, base_env(False), run_dir / "startup.log")], [])
        for tool, argv in argvs.items()
    }
