"""`-lc FILE`: DCMTK's log4cplus configuration files, as aiomove reads them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aiomove.logconfig import LogConfigError, load

DCMTK_FILELOG = """\
# like /etc/dcmtk/filelog.cfg
log4cplus.rootLogger = DEBUG, console, logfile
log4cplus.appender.console = log4cplus::ConsoleAppender
log4cplus.appender.console.Threshold = ERROR
log4cplus.appender.console.logToStderr = true
log4cplus.appender.logfile = log4cplus::RollingFileAppender
log4cplus.appender.logfile.File = {path}
log4cplus.appender.logfile.Append = true
log4cplus.appender.logfile.layout = aiomove::JSONLayout
log4cplus.appender.logfile.layout.ConversionPattern = %D{{%Y-%m-%d}} %5p: %m%n
"""


def test_dcmtk_style_file_gives_two_sinks(tmp_path: Path) -> None:
    cfg = tmp_path / "log.cfg"
    cfg.write_text(DCMTK_FILELOG.format(path=tmp_path / "aiomove.log"))
    level, sinks = load(cfg)
    assert level == "debug"
    assert [s.level for s in sinks] == ["error", "trace"]
    assert [s.json for s in sinks] == [False, True]
    assert sinks[0].stream is sys.stderr
    assert Path(sinks[1].stream.name) == tmp_path / "aiomove.log"
    sinks[1].stream.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("log4cplus.rootLogger = LOUD, console\n", "unknown log level"),
        (
            "log4cplus.rootLogger = INFO, x\nlog4cplus.appender.x = log4cplus::SysLogAppender\n",
            "not supported",
        ),
        ("this line has no equals sign\n", "key = value"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "log.cfg"
    cfg.write_text(text)
    with pytest.raises(LogConfigError, match=message):
        load(cfg)


def test_move_with_log_config_writes_json_lines_to_the_file(tmp_path: Path) -> None:
    log_file = tmp_path / "aiomove.log"
    cfg = tmp_path / "log.cfg"
    cfg.write_text(DCMTK_FILELOG.format(path=log_file))
    # Nobody listens on port 1: the run fails (61), after logging what it tried.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "aiomove",
            "move",
            "-lc",
            str(cfg),
            "-k",
            "QueryRetrieveLevel=PATIENT",
            "-k",
            "PatientID=X",
            "127.0.0.1",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 61
    assert result.stderr.strip().splitlines()[-1].startswith("aiomove move: error:")
    events = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert events, "the file appender got nothing"
    assert all("event" in e and "level" in e for e in events)


def test_missing_log_config_file_exits_1(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "aiomove",
            "move",
            "-lc",
            str(tmp_path / "nope.cfg"),
            "-k",
            "PatientID=X",
            "127.0.0.1",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "cannot read log config" in result.stderr
