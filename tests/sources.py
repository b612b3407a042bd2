"""C-MOVE sources for the tests: DCMTK `dcmqrscp` and Orthanc, started on loopback, stopped after.

Both context managers take the files to serve and the move destinations the source may send to
(`peers`: AE title -> (host, port)), start the archive on free ports in a fresh directory under
`tmp_path`, and yield a `Source`. Nothing is downloaded and no system service is used.

Move destinations. A source only sends to AE titles it knows. Either start the destination
first (aiomove's Storage SCP binds port 0, so its port is known) and pass `peers=` up front, or
register it later with `Source.add_peers()`:
- Orthanc: `PUT /modalities/{ae}` through its REST API, live, nothing restarts;
- dcmqrscp reads its configuration once, so `add_peers()` rewrites it and restarts the process
  on the same port (the database survives; open associations are dropped).

dcmqrscp and compressed files (see /work/shared/ARCHITECTURE.md, field notes). For its move
sub-associations dcmqrscp proposes every storage SOP class with the uncompressed transfer
syntaxes only, sends each file on the first accepted context of its SOP class and cannot
transcode a compressed file, so such sub-operations fail ("unable to convert") — a useful
failure to test. With `allow_compressed=True` it gets an association profile (`-xf`, PS3.8
presentation contexts written in DCMTK's asconfig format) built from the files: one context per
SOP class, proposing the single compressed transfer syntax of that class's files, or the
uncompressed ones. A SOP class whose files mix transfer syntaxes cannot be served that way and
raises ValueError.

DCMTK's senders stall ~40 ms per C-STORE (Nagle + delayed ACK) unless the environment variable
TCP_NODELAY=1 is set; both sources get it by default (`tcp_nodelay=False` shows the stall).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pydicom

from aiomove.association import Peer
from tests.peers import dcmtk, free_port, stop, wait_listening

HOST = "127.0.0.1"
Peers = Mapping[str, tuple[str, int]]

# Transfer syntaxes dcmqrscp can convert between itself (PS3.5 §10; deflate is only a stream).
_NATIVE = {
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
}
_AE_TITLE = re.compile(r"[A-Za-z0-9_.-]{1,16}")  # what both configuration formats can carry


@dataclass
class Source:
    """A running move source. `port` speaks DICOM; Orthanc also has `http_port` (REST)."""

    host: str
    port: int
    ae_title: str
    kind: Literal["dcmqrscp", "orthanc"]
    workdir: Path
    log_path: Path
    http_port: int | None = None
    peers: dict[str, tuple[str, int]] = field(default_factory=dict)
    _register: Callable[[Peers], None] | None = field(default=None, repr=False)

    @property
    def peer(self) -> Peer:
        return Peer(self.host, self.port, self.ae_title)

    def add_peers(self, peers: Peers) -> None:
        """Teach the source more move destinations (or new ports for known ones)."""
        for ae in peers:
            _check_ae(ae)
        assert self._register is not None
        self._register(peers)
        self.peers.update(peers)

    def log(self) -> str:
        """What the source printed so far (for assertion messages)."""
        return self.log_path.read_text(errors="replace")

    def rest(self, method: str, path: str, body: Any = None) -> Any:
        """Orthanc only: one REST call on loopback; the decoded JSON answer (None if empty)."""
        if self.http_port is None:
            raise TypeError(f"{self.kind} has no REST API")
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"http://{self.host}:{self.http_port}{path}", data=data, method=method
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as rsp:
                raw = rsp.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"Orthanc {method} {path}: {exc.code} {exc.read()!r}") from exc
        return json.loads(raw) if raw.strip() else None


def _check_ae(ae: str) -> None:
    if not _AE_TITLE.fullmatch(ae):
        raise ValueError(f"not a usable AE title: {ae!r}")


def _child_env(tcp_nodelay: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TCP_NODELAY", None)
    if tcp_nodelay:
        env["TCP_NODELAY"] = "1"
    return env


def _place(files: Iterable[Path | str], into: Path) -> list[Path]:
    """Hard-link (or copy) the files into `into` under unique names; the new absolute paths."""
    into.mkdir(parents=True, exist_ok=True)
    placed = []
    for i, src in enumerate(files):
        src = Path(src)
        dst = into / f"{i:06d}-{src.name}"
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
        placed.append(dst.resolve())
    return placed


# --------------------------------------------------------------------------- dcmqrscp


def _dcmqrscp_config(port: int, ae_title: str, storage: Path, peers: Peers, max_pdu: int) -> str:
    """dcmqrscp.cfg (DCMTK dcmqrcnf.txt): one RW storage area open to ANY calling AE.

    The HostTable maps each move destination to (AE, host, port); quota at DCMTK's maxima
    (500 studies, 1 GiB per study) so that nothing is ever deleted.
    """
    hosts = "\n".join(
        f"peer{i} = ({ae}, {host}, {port_})" for i, (ae, (host, port_)) in enumerate(peers.items())
    )
    return (
        f"NetworkTCPPort = {port}\n"
        f"MaxPDUSize = {max_pdu}\n"
        "MaxAssociations = 16\n\n"
        f"HostTable BEGIN\n{hosts}\nHostTable END\n\n"
        "VendorTable BEGIN\nVendorTable END\n\n"
        "AETable BEGIN\n"
        f"{ae_title} {storage} RW (500, 1024mb) ANY\n"
        "AETable END\n"
    )


def storage_profile(files: Iterable[Path]) -> str:
    """A DCMTK association profile named "Sources" able to send exactly these files.

    One presentation context per SOP class (dcmqrscp uses the first accepted one): the compressed
    transfer syntax its files share, or the uncompressed ones.
    """
    by_class: dict[str, set[str]] = {}
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        by_class.setdefault(str(ds.SOPClassUID), set()).add(str(ds.file_meta.TransferSyntaxUID))
    if len(by_class) > 128:
        raise ValueError("more than 128 SOP classes: PS3.8 allows 128 presentation contexts")
    syntaxes = ["[[TransferSyntaxes]]", "[Native]"]
    syntaxes += [f"TransferSyntax{n} = {ts}" for n, ts in enumerate(sorted(_NATIVE), 1)]
    contexts = ["[[PresentationContexts]]", "[Storage]"]
    for n, (sop_class, tss) in enumerate(sorted(by_class.items()), 1):
        compressed = sorted(tss - _NATIVE)
        if not compressed:
            contexts.append(f"PresentationContext{n} = {sop_class}\\Native")
            continue
        if len(tss) > 1:
            raise ValueError(
                f"dcmqrscp cannot serve SOP class {sop_class} in several transfer syntaxes "
                f"{sorted(tss)}: it sends every file on the first accepted context"
            )
        syntaxes += [f"[TS{n}]", f"TransferSyntax1 = {compressed[0]}"]
        contexts.append(f"PresentationContext{n} = {sop_class}\\TS{n}")
    profile = ["[[Profiles]]", "[Sources]", "PresentationContexts = Storage"]
    return "\n".join([*syntaxes, "", *contexts, "", *profile, ""])


class _Dcmqrscp:
    """One dcmqrscp process group; restartable with a new configuration on the same port."""

    def __init__(self, cmd: list[str], port: int, env: dict[str, str], log: Path) -> None:
        self.cmd, self.port, self.env, self.log = cmd, port, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            # own session: the children it forks per association are stopped with it
            self.proc = subprocess.Popen(
                self.cmd, stdout=out, stderr=out, env=self.env, start_new_session=True
            )
        try:
            wait_listening(self.proc, self.port)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"dcmqrscp: {exc}\n{self.log.read_text(errors='replace')}") from exc

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        stop(self.proc)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # a child still busy with an association
        self.proc = None


@contextlib.contextmanager
def dcmqrscp(
    tmp_path: Path,
    files: Iterable[Path | str],
    *,
    ae_title: str = "DCMQRSCP",
    peers: Peers | None = None,
    allow_compressed: bool = False,
    tcp_nodelay: bool = True,
    single_process: bool = False,
    max_pdu: int = 16384,
    extra_args: Sequence[str] = (),
) -> Iterator[Source]:
    """DCMTK's Q/R archive serving `files` (Patient/Study Root and Patient/Study Only models).

    The files are linked into a storage area and registered with `dcmqridx` (which copies
    nothing). dcmqrscp forks one child per association unless `single_process` (`-s`:
    DCMTK 3.6.7 then serves one association and exits). `extra_args` go before the port,
    e.g. ("-v",) or ("-d",).
    """
    _check_ae(ae_title)
    peers = dict(peers or {})
    for ae in peers:
        _check_ae(ae)
    work = Path(tempfile.mkdtemp(prefix="dcmqrscp-", dir=tmp_path))
    storage = work / "db"
    placed = _place(files, storage)
    for start in range(0, len(placed), 500):  # bounded command lines
        subprocess.run(
            [dcmtk("dcmqridx"), str(storage), *map(str, placed[start : start + 500])],
            check=True,
            capture_output=True,
        )
    if not placed:
        subprocess.run([dcmtk("dcmqridx"), str(storage)], check=True, capture_output=True)
    port = free_port()
    cfg = work / "dcmqrscp.cfg"
    cfg.write_text(_dcmqrscp_config(port, ae_title, storage, peers, max_pdu))
    cmd = [dcmtk("dcmqrscp"), "-c", str(cfg), "-dhl"]
    if single_process:
        cmd.append("-s")
    if allow_compressed and placed:
        profile = work / "storage-profile.cfg"
        profile.write_text(storage_profile(placed))
        cmd += ["-xf", str(profile), "Sources", "Sources"]
    cmd += [*extra_args, str(port)]
    server = _Dcmqrscp(cmd, port, _child_env(tcp_nodelay), work / "dcmqrscp.log")

    def register(more: Peers) -> None:
        merged = {**source.peers, **more}
        server.stop()
        cfg.write_text(_dcmqrscp_config(port, ae_title, storage, merged, max_pdu))
        server.start()

    source = Source(HOST, port, ae_title, "dcmqrscp", work, server.log, None, peers, register)
    server.start()
    try:
        yield source
    finally:
        server.stop()


# --------------------------------------------------------------------------- Orthanc


def orthanc_binary() -> str:
    """The Orthanc executable (Debian installs it in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise RuntimeError("Orthanc is not installed: `make peers` installs it (apt orthanc)")
    return found


def _modality(ae: str, host: str, port: int) -> dict[str, Any]:
    return {"AET": ae, "Host": host, "Port": port}


def _orthanc_config(
    work: Path, http_port: int, dicom_port: int, ae_title: str, peers: Peers, max_pdu: int
) -> dict[str, Any]:
    """A private Orthanc: tmp storage, loopback REST without auth, no plugins, fast shutdown.

    Orthanc only answers C-FIND / C-MOVE from registered modalities by default; the
    DicomAlwaysAllow* options let any SCU (findscu, movescu, aiomove) query and retrieve, while
    move destinations must still be in DicomModalities.
    """
    return {
        "Name": f"aiomove-{ae_title}",
        "StorageDirectory": str(work / "storage"),
        "IndexDirectory": str(work / "index"),
        "Plugins": [],
        "LuaScripts": [],
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": ae_title,
        "DicomCheckCalledAet": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowFind": True,
        "DicomAlwaysAllowMove": True,
        "DicomAlwaysAllowGet": True,
        "DicomModalities": {ae: _modality(ae, h, p) for ae, (h, p) in peers.items()},
        "DicomModalitiesInDatabase": False,
        "StableAge": 1,
        "SaveJobs": False,
        "SyncStorageArea": False,
        "DicomAssociationCloseDelay": 0,
        "MaximumPduLength": max_pdu,
        "HttpThreadsCount": 8,
        "OrthancExplorerEnabled": False,
        "WebDavEnabled": False,
        "MetricsEnabled": False,
    }


def _wait_http(proc: subprocess.Popen[bytes], url: str, within: float = 30.0) -> None:
    """Orthanc answers REST calls once its database and both servers are up."""
    deadline = time.monotonic() + within
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as rsp:
                if rsp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"Orthanc did not answer {url} within {within} s")
        time.sleep(0.05)


def upload(source: Source, files: Iterable[Path | str]) -> list[str]:
    """POST each file to Orthanc's /instances; their Orthanc IDs."""
    ids = []
    for path in files:
        answer = source.rest("POST", "/instances", Path(path).read_bytes())
        if answer.get("Status") not in ("Success", "AlreadyStored"):
            raise RuntimeError(f"Orthanc refused {path}: {answer}")
        ids.append(answer["ID"])
    return ids


@contextlib.contextmanager
def orthanc(
    tmp_path: Path,
    files: Iterable[Path | str],
    *,
    ae_title: str = "ORTHANC",
    peers: Peers | None = None,
    tcp_nodelay: bool = True,
    max_pdu: int = 16384,
    extra_config: Mapping[str, Any] | None = None,
) -> Iterator[Source]:
    """Orthanc in the foreground with a private JSON configuration, loaded through REST.

    Fails (never skips) when Orthanc is missing. Orthanc transcodes when the destination does
    not accept a file's transfer syntax. `extra_config` overrides configuration keys.
    """
    binary = orthanc_binary()
    _check_ae(ae_title)
    peers = dict(peers or {})
    for ae in peers:
        _check_ae(ae)
    work = Path(tempfile.mkdtemp(prefix="orthanc-", dir=tmp_path))
    http_port, dicom_port = free_port(), free_port()
    while dicom_port == http_port:
        dicom_port = free_port()
    config = _orthanc_config(work, http_port, dicom_port, ae_title, peers, max_pdu)
    config.update(extra_config or {})
    cfg = work / "orthanc.json"
    cfg.write_text(json.dumps(config, indent=2))
    log = work / "orthanc.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [binary, str(cfg)], stdout=out, stderr=out, env=_child_env(tcp_nodelay), cwd=work
        )

    def register(more: Peers) -> None:
        for ae, (host, port) in more.items():
            source.rest("PUT", f"/modalities/{ae}", _modality(ae, host, port))

    source = Source(HOST, dicom_port, ae_title, "orthanc", work, log, http_port, peers, register)
    try:
        try:
            _wait_http(proc, f"http://{HOST}:{http_port}/system")
            wait_listening(proc, dicom_port)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{source.log()}") from exc
        upload(source, files)
        yield source
    finally:
        stop(proc)
