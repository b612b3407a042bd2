"""Real DICOM peers for the tests: DCMTK programs and pynetdicom, started on loopback.

Every process started here is stopped by the fixture that started it. Ports come from the OS.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).parent


def free_port() -> int:
    """A TCP port the OS just handed out (for peers that cannot bind port 0 themselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    """Whether some socket on this machine is in LISTEN state on `port` (Linux /proc)."""
    hexport = f"{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as fh:
            for line in fh.readlines()[1:]:
                fields = line.split()
                if fields[1].endswith(":" + hexport) and fields[3] == "0A":
                    return True
    return False


def wait_listening(proc: subprocess.Popen[bytes], port: int, within: float = 15.0) -> None:
    """Wait until the peer process listens: it gives no other sign of readiness."""
    deadline = time.monotonic() + within
    while not _listening(port):
        if proc.poll() is not None:
            raise RuntimeError(f"peer exited with {proc.returncode} before listening")
        if time.monotonic() > deadline:
            raise RuntimeError(f"peer did not listen on {port} within {within} s")
        time.sleep(0.02)


def stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """Terminate (then kill) a peer process and close its pipes."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def dcmtk(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"DCMTK's {name} is not installed (make peers installs it)")
    return path


@contextlib.contextmanager
def storescp(*args: str, out_dir: Path | None = None) -> Iterator[int]:
    """DCMTK storescp on a free port; yields the port. Files go to `out_dir` (else a
    temporary directory, never the working directory)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as scratch:
        cmd = [dcmtk("storescp"), *args, "-od", str(out_dir or scratch), str(port)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_listening(proc, port)
            yield port
        finally:
            stop(proc)


@contextlib.contextmanager
def _python_peer(script: str, *args: str) -> Iterator[int]:
    """A pynetdicom peer script in its own process; yields the port it prints on stdout.

    The child binds port 0 and prints the port it got, so readiness needs no polling.
    """
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen(
        [sys.executable, str(HERE / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.isdigit():
            raise RuntimeError(f"{script} did not start: {line!r}")
        yield int(line)
    finally:
        stop(proc)


def pynetdicom_scp(*args: str) -> contextlib.AbstractContextManager[int]:
    """A pynetdicom Verification SCP (tests/pynetdicom_peer.py); yields its port."""
    return _python_peer("pynetdicom_peer.py", *args)


def pynetdicom_qr(
    files: list[Path], destinations: dict[str, int], *args: str
) -> contextlib.AbstractContextManager[int]:
    """A pynetdicom Q/R SCP serving `files` (tests/pynetdicom_qr.py); yields its port.

    `destinations` maps move destination AE titles to loopback ports.
    """
    dests = [f"--dest={ae}=127.0.0.1:{port}" for ae, port in destinations.items()]
    return _python_peer("pynetdicom_qr.py", *dests, *args, *map(str, files))
