"""`aiomove jobs submit|list|show|cancel|pause|resume|retry` and `aiomove daemon`'s errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aiomove.cli_daemon import jobs_app
from aiomove.daemon.store_engine import sqlite_url
from tests.daemon.daemon_util import write_config

UID = "1.2.840.113619.2.55.3.604688119.7"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "aiomove.toml",
        {"store": sqlite_url(tmp_path / "jobs.db"), "output": str(tmp_path / "out")},
        {"MAIN": {"host": "127.0.0.1", "port": 104, "ae_title": "PACS"}},
    )


def jobs(config: Path, *args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(jobs_app, [args[0], "--config", str(config), *args[1:]])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout) if code == 0 else result.output


def test_submit_from_a_csv_of_accession_numbers_and_keys(config: Path, tmp_path: Path) -> None:
    listing = tmp_path / "list.csv"
    listing.write_text("PatientName,AccessionNumber\nA^B,ACC1\nC^D,ACC2\nE^F,ACC1\n")
    submitted = jobs(config, "submit", "--peer", "MAIN", "--input", str(listing))["jobs"]
    assert [j["created"] for j in submitted] == [True, True]  # ACC1 once (read_keys dedups)
    again = jobs(config, "submit", "-p", "MAIN", "-k", f"StudyInstanceUID={UID}", "--priority", "3")
    (job,) = again["jobs"]
    assert (job["created"], job["state"]) == (True, "queued")
    same = jobs(config, "submit", "-p", "MAIN", "-k", f"StudyInstanceUID={UID}")["jobs"][0]
    assert (same["id"], same["created"]) == (job["id"], False)
    listed = jobs(config, "list")["jobs"]
    assert len(listed) == 3
    assert {next(iter(j["keys"].items())) for j in listed} == {
        ("AccessionNumber", "ACC1"),
        ("AccessionNumber", "ACC2"),
        ("StudyInstanceUID", UID),
    }
    shown = jobs(config, "show", str(job["id"]), "--receipts")
    assert (shown["priority"], shown["receipts"]) == (3, [])
    assert jobs(config, "list", "--state", "cancelled")["jobs"] == []


def test_actions(config: Path) -> None:
    job_id = str(jobs(config, "submit", "-p", "MAIN", "-k", "PatientID=P1")["jobs"][0]["id"])
    assert jobs(config, "pause", job_id)["state"] == "paused"
    assert jobs(config, "resume", job_id)["state"] == "queued"
    assert "cannot retry" in jobs(config, "retry", job_id, code=2)
    assert jobs(config, "cancel", job_id)["state"] == "cancelled"
    assert jobs(config, "retry", job_id)["state"] == "queued"
    assert "no job 999" in jobs(config, "cancel", "999", code=2)
    assert "no job 999" in jobs(config, "show", "999", code=2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "OTHER", "-k", "PatientID=P1"], "unknown peer"),
        (["-p", "MAIN"], "either --input"),
        (["-p", "MAIN", "-k", "PatientID"], "KEY=VALUE"),
        (["-p", "MAIN", "-k", "StudyInstanceUID=1.2.x"], "not a valid UID"),
        (["-p", "MAIN", "-k", "PatientID=P1", "--level", "IMAGE"], "needs"),
    ],
)
def test_submit_errors(config: Path, args: list[str], message: str) -> None:
    assert message in jobs(config, "submit", *args, code=1)


def test_list_rejects_unknown_states(config: Path) -> None:
    assert "--state must be one of" in jobs(config, "list", "--state", "lost", code=1)


def test_daemon_reports_configuration_errors(tmp_path: Path) -> None:
    bad = write_config(tmp_path / "bad.toml", {"store": "sqlite+aiosqlite:///x.db"}, {})
    result = subprocess.run(
        [sys.executable, "-m", "aiomove.cli_daemon", "daemon", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert "output is required" in result.stderr
