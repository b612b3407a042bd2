"""Measuring one benchmark run with the standard library only (Linux /proc, os.wait4).

- the tool's processes: wall time from the first spawn to the last exit, CPU (user + sys) and
  peak RSS (ru_maxrss) of each process from `os.wait4`, summed over the processes of a run;
- the move source (dcmqrscp, Orthanc): CPU from /proc/<pid>/stat, its own time plus the time of
  the children it has reaped (dcmqrscp forks one child per association), read once it has no
  child left so that the whole run is counted;
- the machine: busy and iowait shares of all cores from /proc/stat over the run.

Peak RSS needs care: Linux carries the high-water RSS of the memory a process had *before*
execve into its ru_maxrss (exec_mmap -> setmax_mm_hiwater_rss), so a tool forked straight
from this Python process (pydicom loaded, data read) would report at least our own RSS.
Each tool is therefore started by a small `/bin/sh` that puts it in the background, prints
its pid and exits; this process is a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so the
orphaned tool becomes our child and `os.wait4` returns its own usage, its RSS counted from
the shell's ~1 MB.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h

#: $1 = log file; the rest is the command, started in the background; its pid on stdout.
LAUNCHER = 'log=$1; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!'


def become_subreaper() -> None:
    """Adopt orphaned descendants (the tools started by LAUNCHER), so we can wait4 them."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


@dataclass(frozen=True)
class Command:
    """One process of a run: its argv, its environment, where its output goes."""

    argv: Sequence[str]
    env: Mapping[str, str]
    log: Path


@dataclass
class ProcessResult:
    argv: Sequence[str]
    exit_code: int | None  # negative: killed by that signal; None: never reaped
    wall: float
    cpu: float
    max_rss_kib: int


@dataclass
class Spawned:
    """Processes started together; `wait()` collects them (killing all at the timeout)."""

    started: float
    argvs: list[list[str]]
    pids: list[int]  # the tools themselves; each leads no group, the launcher's pid does
    groups: list[int]
    results: list[ProcessResult | None] = field(default_factory=list)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        for group in self.groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, sig)


def spawn(commands: Sequence[Command]) -> Spawned:
    """Start every command now, each in a new session (so that a timeout can kill it all)."""
    started = time.perf_counter()
    shells = [
        subprocess.Popen(
            ["/bin/sh", "-c", LAUNCHER, "sh", str(cmd.log), *cmd.argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            env=dict(cmd.env),
            start_new_session=True,
        )
        for cmd in commands
    ]
    pids = []
    for shell in shells:
        out, _ = shell.communicate()
        if shell.returncode != 0 or not out.strip().isdigit():
            raise RuntimeError(f"launcher failed: {shell.args!r} -> {out!r}")
        pids.append(int(out))
    argvs = [list(c.argv) for c in commands]
    return Spawned(started, argvs, pids, [s.pid for s in shells], [None] * len(pids))


def wait(spawned: Spawned, timeout: float) -> tuple[list[ProcessResult], bool]:
    """Reap every process with os.wait4 (one thread each, so exit times are exact).

    Returns the results and whether the timeout was hit (then every process is killed).
    """

    def reap(index: int, pid: int) -> None:
        _, status, usage = os.wait4(pid, 0)
        spawned.results[index] = ProcessResult(
            spawned.argvs[index],
            os.waitstatus_to_exitcode(status),
            time.perf_counter() - spawned.started,
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss,
        )

    threads = [
        threading.Thread(target=reap, args=(i, pid), daemon=True)
        for i, pid in enumerate(spawned.pids)
    ]
    for thread in threads:
        thread.start()
    deadline = spawned.started + timeout
    timed_out = False
    try:
        for thread in threads:
            thread.join(max(0.0, deadline - time.perf_counter()))
            if thread.is_alive():
                timed_out = True
                break
    except BaseException:  # Ctrl-C: leave nothing running
        spawned.kill()
        raise
    if timed_out:
        spawned.kill()
        for thread in threads:
            thread.join(10)
    results = []
    for got, argv in zip(spawned.results, spawned.argvs, strict=True):
        results.append(got if got is not None else ProcessResult(argv, None, timeout, 0.0, 0))
    return results, timed_out


def run(commands: Sequence[Command], timeout: float) -> tuple[list[ProcessResult], bool]:
    return wait(spawn(commands), timeout)


def listening(port: int) -> bool:
    """Whether a socket on this machine is in LISTEN state on `port` (/proc/net/tcp*)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as fh:
            for line in fh.readlines()[1:]:
                fields = line.split()
                if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":
                    return True
    return False


def wait_listening(spawned: Spawned, ports: Sequence[int], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    for pid, port in zip(spawned.pids, ports, strict=True):
        while not listening(port):
            if not Path(f"/proc/{pid}").exists() or time.monotonic() > deadline:
                spawned.kill()
                raise RuntimeError(f"server {pid} is not listening on {port}")
            time.sleep(0.01)


# --------------------------------------------------------------------------- /proc


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat split after the command name (which may hold spaces)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()


def process_cpu(pid: int) -> float:
    """utime + stime + cutime + cstime of `pid`, seconds (proc(5): fields 14-17)."""
    fields = _stat_fields(pid)
    return sum(int(v) for v in fields[11:15]) / TICK


def children(pid: int) -> list[int]:
    """Processes whose parent is `pid`, zombies included (not yet reaped)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(_stat_fields(int(entry))[1]) == pid:
                found.append(int(entry))
    return found


def wait_childless(pid: int, within: float = 15.0) -> bool:
    """Wait until `pid` has reaped all its children (their CPU is then in cutime/cstime)."""
    deadline = time.monotonic() + within
    while children(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def find_process(marker: str) -> int:
    """The child of this process whose command line contains `marker`."""
    me = os.getpid()
    for pid in children(me):
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            if marker.encode() in cmdline:
                return pid
    raise RuntimeError(f"no child process with {marker!r} in its command line")


@dataclass(frozen=True)
class MachineTimes:
    busy: int
    iowait: int
    total: int

    @classmethod
    def now(cls) -> MachineTimes:
        """The aggregate "cpu" line of /proc/stat (jiffies, all cores)."""
        with open("/proc/stat") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
        user, nice, system, idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
        total = user + nice + system + idle + iowait + irq + softirq + steal
        return cls(total - idle - iowait, iowait, total)

    def since(self, before: MachineTimes) -> tuple[float, float]:
        """(busy, iowait) shares of the machine between `before` and now: 1.0 = all cores."""
        span = max(1, self.total - before.total)
        return (self.busy - before.busy) / span, (self.iowait - before.iowait) / span


def wait_quiet(threshold: float = 0.15, window: float = 0.5, within: float = 60.0) -> float:
    """Wait (bounded) until the machine is nearly idle: other work on this machine (other test
    suites) would be timed with ours. Returns the busy share of the last window."""
    deadline = time.monotonic() + within
    while True:
        before = MachineTimes.now()
        time.sleep(window)
        busy, _ = MachineTimes.now().since(before)
        if busy < threshold or time.monotonic() > deadline:
            return busy


def other_load(busy: float, wall: float, own_cpu: float) -> float:
    """The share of the machine busy but not in the run's processes (0..1): other processes
    (other test suites on a shared machine) and kernel threads working for us (journal
    commits and writeback after fsync)."""
    cores = os.cpu_count() or 1
    return max(0.0, busy * cores * wall - own_cpu) / (cores * wall) if wall > 0 else 0.0
