"""Helpers for the daemon tests: configurations, daemon subprocesses, the counting Q/R peer.

Daemons run as real processes (`python -m aiomove.cli_daemon daemon --config X`) so that
SIGTERM and SIGKILL are real; their JSON logs go to a file shown when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pydicom

from tests.peers import HERE, free_port, stop

HOST = "127.0.0.1"


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string is a JSON string


def write_config(
    path: Path, daemon: Mapping[str, Any], peers: Mapping[str, Mapping[str, Any]], **retry: Any
) -> Path:
    lines = ["[daemon]", *(f"{k} = {toml_value(v)}" for k, v in daemon.items()), ""]
    if retry:
        lines += ["[retry]", *(f"{k} = {toml_value(v)}" for k, v in retry.items()), ""]
    for name, table in peers.items():
        lines += [f"[peers.{name}]", *(f"{k} = {toml_value(v)}" for k, v in table.items()), ""]
    path.write_text("\n".join(lines))
    return path


def wait_for(predicate: Callable[[], Any], what: str, within: float = 60.0) -> Any:
    """Poll `predicate` until it returns something truthy (processes give no other signal)."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        time.sleep(0.1)


@dataclass
class DaemonProcess:
    config: Path
    http_port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    def start(self) -> None:
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "aiomove.cli_daemon",
                    "daemon",
                    "--config",
                    str(self.config),
                ],
                stdout=out,
                stderr=out,
                env=env,
            )
        wait_for(self._healthy, f"daemon health ({self.log})", within=60)

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.logs()}")
        try:
            return httpx.get(self.url + "/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, timeout=30, **kw)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, within: float = 60) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(within)

    def close(self) -> None:
        if self.proc is not None:
            stop(self.proc)


@contextlib.contextmanager
def daemon_process(config: Path, http_port: int, log: Path) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(config, http_port, log)
    try:
        proc.start()
        yield proc
    finally:
        proc.close()


@dataclass
class QrPeer:
    port: int
    stats_path: Path
    ae_title: str = "QRPEER"

    def stats(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.stats_path.read_text())
        except (OSError, ValueError):  # being replaced: read again
            time.sleep(0.05)
            data = json.loads(self.stats_path.read_text())
        return data


@contextlib.contextmanager
def qr_peer(
    files: list[Path], destinations: Mapping[str, int], stats: Path, *args: str
) -> Iterator[QrPeer]:
    """tests/daemon/qr_peer.py serving `files`; move destinations AE -> loopback port."""
    dests = [f"--dest={ae}={HOST}:{port}" for ae, port in destinations.items()]
    cmd = [sys.executable, str(HERE / "daemon" / "qr_peer.py"), "--stats", str(stats)]
    proc = subprocess.Popen(
        [*cmd, *dests, *args, *map(str, files)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.isdigit():
            raise RuntimeError(f"qr_peer.py did not start: {line!r}")
        yield QrPeer(int(line), stats)
    finally:
        stop(proc)


def output_files(root: Path) -> dict[str, list[Path]]:
    """SOP Instance UID -> the files holding it below `root` (staging excluded)."""
    found: dict[str, list[Path]] = {}
    for path in root.rglob("*.dcm"):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        found.setdefault(uid, []).append(path)
    return found


def ports(n: int) -> list[int]:
    chosen: list[int] = []
    while len(chosen) < n:
        port = free_port()
        if port not in chosen:
            chosen.append(port)
    return chosen
