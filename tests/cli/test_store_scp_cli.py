"""`aiomove store-scp`: the Storage SCP on its own, fed by DCMTK storescu and echoscu."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from tests.peers import dcmtk, free_port, stop, wait_listening

pytestmark = pytest.mark.interop


def start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiomove", "store-scp", *args, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    wait_listening(proc, port)
    return proc, port


def test_storescu_files_arrive_named_like_storescp(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    files = [str(get_testdata_file(name)) for name in ("CT_small.dcm", "MR_small.dcm")]
    proc, port = start(tmp_path, "-aet", "STORE", "-od", str(out))
    try:
        echo = subprocess.run(
            [dcmtk("echoscu"), "-aec", "STORE", "127.0.0.1", str(port)],
            capture_output=True,
            timeout=60,
        )
        sent = subprocess.run(
            [dcmtk("storescu"), "-aec", "STORE", "127.0.0.1", str(port), *files],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, TCP_NODELAY="1"),
        )
        proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean exit
        code = proc.wait(30)
    finally:
        stop(proc)
    assert echo.returncode == 0
    assert sent.returncode == 0, sent.stderr
    assert code == 0
    expected = set()
    for path in files:
        ds = pydicom.dcmread(path)
        prefix = "CT" if "CT" in Path(path).name else "MR"
        expected.add(f"{prefix}.{ds.SOPInstanceUID}")
        stored = pydicom.dcmread(out / f"{prefix}.{ds.SOPInstanceUID}")
        # storescu drops the files' Data Set Trailing Padding when it sends; all else arrives
        del ds[0xFFFCFFFC]
        assert stored == ds
    assert {p.name for p in out.iterdir()} == expected


def test_missing_output_directory_exits_45(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aiomove", "store-scp", "-od", str(tmp_path / "nope"), "11112"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 45
    assert "invalid output directory" in result.stderr


def test_port_in_use_exits_60(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "aiomove", "store-scp", "-od", str(tmp_path), str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 60, result.stderr
    assert "cannot listen" in result.stderr
