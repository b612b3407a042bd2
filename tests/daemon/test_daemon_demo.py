"""scripts/daemon_demo.sh (`make daemon-demo`): the daemon on SQLite against DCMTK dcmqrscp.

Run the way a user runs it, so that the README's first daemon command cannot rot: once with
the default HTTP client (curl when installed) and a clean exit, once with the Python fallback
of a machine without curl and KEEP=1, whose output directory is then read back. The TOML of
the README's quick start is loaded too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from aiomove.daemon.config import load_config
from aiomove.daemon.store_engine import sqlite_url

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
STUDIES, INSTANCES = 3, 3
JOB = re.compile(r"^  job (\d+) (\S+) +attempts (\d+) +(\d+)/(\d+) instances .* (\S+)$", re.M)
FILE = re.compile(r"^  (DEMO\d)/([\d.]+)/([\d.]+)/([\d.]+)\.dcm$", re.M)


def run_demo(tmp_path: Path, **env: str) -> str:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "daemon_demo.sh")],
        capture_output=True,
        text=True,
        timeout=240,
        env=dict(
            os.environ,
            VENV=str(Path(sys.executable).parent.parent),
            TMPDIR=str(tmp_path),
            DEMO_TIMEOUT="180",
            **env,
        ),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def check_output(out: str) -> set[str]:
    """Every job succeeded at the first attempt and every instance is listed; the study UIDs."""
    jobs = JOB.findall(out)
    assert sorted(int(j[0]) for j in jobs) == list(range(1, STUDIES + 1)), out
    for _, state, attempts, received, expected, _ in jobs:
        assert (state, attempts, received, expected) == ("succeeded", "1", "3", "3"), out
    studies = {j[5] for j in jobs}
    files = FILE.findall(out)
    assert len(files) == STUDIES * INSTANCES, out
    assert {f[1] for f in files} == studies
    assert {f[0] for f in files} == {f"DEMO{i}" for i in range(1, STUDIES + 1)}
    assert 'aiomove_instances_received_total{peer="PACS"} 9.0' in out
    assert "daemon stopped by SIGTERM (exit status 0)" in out
    assert f"{STUDIES} of {STUDIES} jobs succeeded, 9 of 9 instances arrived" in out
    return studies


def test_daemon_demo_cleans_up(tmp_path: Path) -> None:
    out = run_demo(tmp_path)
    client = "curl" if shutil.which("curl") else "python"
    assert f"(client: {client})" in out
    check_output(out)
    assert list(tmp_path.iterdir()) == []  # its work directory is gone


def test_daemon_demo_without_curl_keeps_its_files(tmp_path: Path) -> None:
    out = run_demo(tmp_path, DEMO_HTTP="python", KEEP="1")
    assert "(client: python)" in out
    studies = check_output(out)
    (work,) = tmp_path.iterdir()
    assert f"kept {work}" in out
    delivered = [  # staging directories have dot names
        path
        for path in (work / "out").rglob("*")
        if path.is_file()
        and not any(p.startswith(".") for p in path.relative_to(work / "out").parts)
    ]
    received = [pydicom.dcmread(path, stop_before_pixels=True) for path in delivered]
    assert len(received) == STUDIES * INSTANCES
    assert {str(ds.StudyInstanceUID) for ds in received} == studies
    assert {str(ds.PatientID) for ds in received} == {"DEMO1", "DEMO2", "DEMO3"}


def test_readme_quick_start_configuration_loads(tmp_path: Path) -> None:
    """The TOML the README's daemon quick start writes by hand is a valid configuration."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Quick start") :]
    toml = re.search(r"^cat >aiomove.toml <<EOF\n(.*?)^EOF$", section, re.M | re.S)
    assert toml is not None
    path = tmp_path / "aiomove.toml"
    path.write_text(toml.group(1).replace("$PWD", str(tmp_path)))
    config = load_config(path, environ={})
    assert config.store == sqlite_url(tmp_path / "jobs.db")
    assert config.output == tmp_path / "received"
    assert (config.ae_title, config.port, config.http_port) == ("AIOMOVE", 11112, 8080)
    assert config.peer("PACS").ae_title == "PACS"
