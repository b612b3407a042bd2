"""`make bench`: retrieve-to-self throughput of DCMTK movescu, aiomove move and pynetdicom.

    .venv/bin/python bench/run.py [--quick] [--reps N] [--orthanc] [--sets ct,small,large] ...

Generates the data sets (bench/data.py) in a temporary directory, loads them into DCMTK's
dcmqrscp (and Orthanc with --orthanc), then per scenario runs every tool `--reps` times,
alternating (the order rotates each repetition). Each run retrieves the whole set (or its 16
series at once) into an empty directory; a run is timed only if every instance arrived (files
counted and named by SOP Instance UID), otherwise it is reported as FAILED. Prints one
markdown table per scenario (medians) and writes every run to results.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests/ (sample data, move sources) and bench/

from tests.peers import free_port  # noqa: E402
from tests.sources import Source, dcmqrscp, orthanc  # noqa: E402

from bench import cases, measure  # noqa: E402
from bench.data import DataSet, generate, specs  # noqa: E402
from bench.report import RunResult, render, summarize  # noqa: E402

TMPFS = Path("/dev/shm")


@dataclass
class Case:
    """One tool in one scenario: a plan of processes, or an in-process measurement."""

    scenario: str
    tool: str
    reps: int
    expected: frozenset[str]
    plan: Callable[[Path], cases.Plan] | None = None
    inproc: Callable[[Path], RunResult] | None = None
    source_pid: int | None = None
    tmpfs: bool = False


# --------------------------------------------------------------------------- one run


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def received(out_dirs: Sequence[Path]) -> tuple[Counter[str], int, int]:
    """SOP Instance UIDs of the files received ("<prefix>.<uid>"), total bytes, leftovers."""
    uids: Counter[str] = Counter()
    total = leftovers = 0
    for directory in out_dirs:
        if not directory.is_dir():
            continue
        for entry in os.scandir(directory):
            if entry.name.startswith("."):  # a temporary file left behind
                leftovers += 1
                continue
            uids[entry.name.split(".", 1)[1] if "." in entry.name else entry.name] += 1
            total += entry.stat().st_size
    return uids, total, leftovers


def verdict(expected: frozenset[str], got: Counter[str], leftovers: int) -> str:
    """Why the run does not count ("" when every instance arrived exactly once)."""
    missing = len(expected - got.keys())
    problems = []
    if missing:
        problems.append(f"{missing} of {len(expected)} instances missing")
    if got.keys() - expected:
        problems.append(f"{len(got.keys() - expected)} unexpected files")
    if any(n > 1 for n in got.values()):
        problems.append("duplicates")
    if leftovers:
        problems.append(f"{leftovers} temporary files left")
    return "; ".join(problems)


def _start_servers(plan: cases.Plan) -> measure.Spawned | None:
    if not plan.servers:
        return None
    spawned = measure.spawn([cmd for cmd, _ in plan.servers])
    measure.wait_listening(spawned, [port for _, port in plan.servers])
    return spawned


def _stop_servers(spawned: measure.Spawned) -> list[measure.ProcessResult]:
    for pid in spawned.pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    results, _ = measure.wait(spawned, 10.0)
    return results


def execute(case: Case, rep: int, plan: cases.Plan, timeout: float) -> RunResult:
    for directory in plan.out_dirs:
        directory.mkdir(parents=True)
    servers = _start_servers(plan)
    src_before = 0.0
    if case.source_pid is not None:
        measure.wait_childless(case.source_pid)
        src_before = measure.process_cpu(case.source_pid)
    before = measure.MachineTimes.now()
    timed, timed_out = measure.run(plan.timed, timeout)
    busy, iowait = measure.MachineTimes.now().since(before)
    served = _stop_servers(servers) if servers is not None else []
    src_cpu = 0.0
    if case.source_pid is not None:
        measure.wait_childless(case.source_pid)
        src_cpu = measure.process_cpu(case.source_pid) - src_before
    receivers = served if plan.receiver == "servers" else timed
    if plan.receiver == "servers":
        src_cpu = sum(r.cpu for r in timed)
    got, nbytes, leftovers = received(plan.out_dirs)
    reason = "timeout" if timed_out else ""
    codes = sorted({r.exit_code for r in timed if r.exit_code != 0}, key=str)
    if codes and not reason:
        reason = f"exit status {codes}"
    reason = "; ".join(x for x in (reason, verdict(case.expected, got, leftovers)) if x)
    wall = max(r.wall for r in timed)
    recv_cpu = sum(r.cpu for r in receivers)
    return RunResult(
        scenario=case.scenario,
        tool=case.tool,
        rep=rep,
        ok=not reason,
        reason=reason,
        wall=wall,
        instances=sum(got.values()),
        bytes=nbytes,
        recv_cpu=recv_cpu,
        recv_rss_kib=sum(r.max_rss_kib for r in receivers),
        src_cpu=src_cpu,
        busy=busy,
        iowait=iowait,
        other_load=measure.other_load(busy, wall, recv_cpu + src_cpu),
        processes=len(timed),
        process_walls=tuple(round(r.wall, 3) for r in timed),
    )


def run_case(case: Case, rep: int, work: Path, opts: Options) -> RunResult:
    """One run in a fresh directory, removed afterwards (logs kept if it failed)."""
    base = opts.tmpfs_dir if case.tmpfs and opts.tmpfs_dir is not None else work / "runs"
    run_dir = Path(tempfile.mkdtemp(prefix=f"{_slug(case.scenario)}-{_slug(case.tool)}-", dir=base))
    try:
        if opts.quiet_wait:
            measure.wait_quiet(within=opts.quiet_wait)
        if case.inproc is not None:
            result = case.inproc(run_dir)
            result.scenario, result.tool, result.rep = case.scenario, case.tool, rep
            result.other_load = measure.other_load(result.busy, result.wall, result.recv_cpu)
        else:
            assert case.plan is not None
            result = execute(case, rep, case.plan(run_dir), opts.timeout)
        if not result.ok:
            keep = work / "failed" / run_dir.name
            keep.mkdir(parents=True, exist_ok=True)
            for log in run_dir.glob("*.log"):
                shutil.copy(log, keep)
            result.reason += f" (logs: {keep})"
        return result
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        os.sync()  # the next run must not pay for this run's write-back


# --------------------------------------------------------------------------- in-process ceilings


def tcp_loopback(nbytes: int) -> Callable[[Path], RunResult]:
    """Raw loopback TCP: one socket, 1 MiB send() / recv_into() in two threads."""

    def measure_once(_run_dir: Path) -> RunResult:
        chunk = bytes(1 << 20)
        with socket.create_server(("127.0.0.1", 0)) as server:
            port = server.getsockname()[1]
            got = [0]

            def sink() -> None:
                conn, _ = server.accept()
                buf = bytearray(1 << 20)
                with conn:
                    while got[0] < nbytes and (n := conn.recv_into(buf)):
                        got[0] += n

            thread = threading.Thread(target=sink)
            thread.start()
            usage = resource.getrusage(resource.RUSAGE_SELF)
            before = measure.MachineTimes.now()
            start = time.perf_counter()
            with socket.create_connection(("127.0.0.1", port)) as client:
                for _ in range(nbytes // len(chunk)):
                    client.sendall(chunk)
                thread.join()
            wall = time.perf_counter() - start
        busy, iowait = measure.MachineTimes.now().since(before)
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
        ok = got[0] == nbytes
        return RunResult(
            "tcp", "raw loopback TCP (1 MiB writes)", 0, ok, "" if ok else "short read",
            wall, 0, got[0], cpu, 0, 0.0, busy, iowait,
        )  # fmt: skip

    return measure_once


def python_write(ds: DataSet, scenario: str, *, fsync: bool) -> Callable[[Path], RunResult]:
    """The disk alone: write the set's files (read from the page cache) with Python."""

    def measure_once(run_dir: Path) -> RunResult:
        out = run_dir / "out"
        out.mkdir()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        before = measure.MachineTimes.now()
        start = time.perf_counter()
        for n, path in enumerate(ds.files):
            with (out / f"XX.{n}").open("wb") as fh:
                fh.write(path.read_bytes())
                if fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
        wall = time.perf_counter() - start
        busy, iowait = measure.MachineTimes.now().since(before)
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
        tool = "python write files" + (" + fsync each" if fsync else "")
        return RunResult(
            scenario, tool, 0, True, "", wall, len(ds.files), ds.total_bytes, cpu,
            0, 0.0, busy, iowait,
        )  # fmt: skip

    return measure_once


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Options:
    reps: int
    slow_reps: int
    timeout: float
    tools: frozenset[str]
    ceilings: bool
    tmpfs_dir: Path | None  # where the "-> tmpfs" runs receive; None: no such runs
    quiet_wait: float  # before each run, wait up to this long for an idle machine


def whole_set_cases(
    target: cases.Target, ds: DataSet, scenario: str, opts: Options, with_ceilings: bool
) -> list[Case]:
    expected = ds.sop_instance_uids
    pid = target.pid

    def case(tool: str, plan: Callable[[Path], cases.Plan], reps: int = opts.reps) -> Case:
        return Case(scenario, tool, reps, expected, plan=plan, source_pid=pid)

    found = [
        case("movescu (TCP_NODELAY=1)", lambda d: cases.movescu(target, ds, d, nodelay=True)),
        case("aiomove move", lambda d: cases.aiomove_move(target, ds, d)),
        case("pynetdicom", lambda d: cases.pynetdicom_move(target, ds, d, concurrent=False)),
    ]
    if opts.slow_reps:
        found.append(
            case(
                "movescu (no TCP_NODELAY)",
                lambda d: cases.movescu(target, ds, d, nodelay=False),
                opts.slow_reps,
            )
        )
    if opts.tmpfs_dir is not None:  # the same runs, received files in memory: no disk
        for c in found[:2]:
            found.append(
                Case(scenario, f"{c.tool} -> tmpfs", opts.reps, expected, c.plan, None, pid, True)
            )
    if with_ceilings:
        for tmpfs in (False, True) if opts.tmpfs_dir is not None else (False,):
            c = Case(
                scenario,
                "ceiling: storescu -> storescp" + (" -> tmpfs" if tmpfs else ""),
                opts.reps,
                expected,
                plan=lambda d: cases.storescu_storescp(ds, d, free_port()),
                tmpfs=tmpfs,
            )
            found.append(c)
        for fsync in (False, True):
            found.append(
                Case(
                    scenario,
                    "ceiling: python write files" + (" + fsync each" if fsync else ""),
                    opts.reps,
                    expected,
                    inproc=python_write(ds, scenario, fsync=fsync),
                )
            )
    return [c for c in found if _wanted(c.tool, opts.tools)]


def x16_cases(target: cases.Target, ds: DataSet, scenario: str, opts: Options) -> list[Case]:
    expected = ds.sop_instance_uids
    pid = target.pid
    found = [
        Case(
            scenario,
            f"movescu x{len(ds.series)} processes (TCP_NODELAY=1)",
            opts.reps,
            expected,
            plan=lambda d: cases.movescu_x16(target, ds, d),
            source_pid=pid,
        ),
        Case(
            scenario,
            "aiomove library, 1 process, 1 port",
            opts.reps,
            expected,
            plan=lambda d: cases.aiomove_x16(target, ds, d),
            source_pid=pid,
        ),
        Case(
            scenario,
            f"aiomove move x{len(ds.series)} processes",
            opts.reps,
            expected,
            plan=lambda d: cases.movescu_x16(target, ds, d, aiomove=True),
            source_pid=pid,
        ),
        Case(
            scenario,
            "pynetdicom, 1 process, threads",
            opts.reps,
            expected,
            plan=lambda d: cases.pynetdicom_move(target, ds, d, concurrent=True),
            source_pid=pid,
        ),
    ]
    return [c for c in found if _wanted(c.tool, opts.tools)]


def _pick(tool: str) -> Callable[[Path], cases.Plan]:
    return lambda run_dir: cases.startup(run_dir)[tool]


def _wanted(tool: str, tools: frozenset[str]) -> bool:
    return not tools or any(t in tool for t in tools)


def run_scenario(group: Sequence[Case], work: Path, opts: Options) -> list[RunResult]:
    """Every case `reps` times, alternating; the order rotates each repetition."""
    results = []
    for rep in range(max((c.reps for c in group), default=0)):
        shift = rep % len(group)
        for case in [*group[shift:], *group[:shift]]:
            if rep >= case.reps:
                continue
            result = run_case(case, rep, work, opts)
            results.append(result)
            status = f"{result.wall:7.2f} s" if result.ok else f"FAILED: {result.reason}"
            print(f"  [{rep + 1}] {case.scenario:>12} | {case.tool:<40} {status}", flush=True)
    return results


# --------------------------------------------------------------------------- sources


@contextlib.contextmanager
def start_source(kind: str, work: Path, data: Sequence[DataSet]) -> Iterator[cases.Target]:
    """dcmqrscp or Orthanc loaded with every set; destinations BENCH and BENCH01..16."""
    mover_port = free_port()
    n = max((len(ds.series) for ds in data), default=0)
    dcmtk_ports = [free_port() for _ in range(n)]
    peers = {cases.MOVER_AE: ("127.0.0.1", mover_port)}
    peers.update(
        (ae, ("127.0.0.1", port)) for ae, port in zip(cases.dcmtk_aes(n), dcmtk_ports, strict=True)
    )
    files = [f for ds in data for f in ds.files]
    started = time.perf_counter()
    factory = dcmqrscp if kind == "dcmqrscp" else orthanc
    work.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=work))
    try:
        with factory(home, files, peers=peers) as source:
            pid = measure.find_process(str(source.workdir))
            print(f"{kind}: {len(files)} files loaded in {time.perf_counter() - started:.1f} s")
            yield _target(source, pid, mover_port, dcmtk_ports)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _target(source: Source, pid: int, mover_port: int, dcmtk_ports: list[int]) -> cases.Target:
    return cases.Target(source.host, source.port, source.ae_title, pid, mover_port, dcmtk_ports)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="data sets 10x smaller (a few minutes)")
    p.add_argument("--reps", type=int, default=3, help="repetitions per tool (default 3)")
    p.add_argument(
        "--slow-reps",
        type=int,
        default=1,
        help="repetitions of movescu without TCP_NODELAY (~40 ms per instance; 0 skips it)",
    )
    p.add_argument("--sets", default="ct,small,large", help="data sets (default all)")
    p.add_argument("--no-x16", action="store_true", help="skip the 16-concurrent-series runs")
    p.add_argument("--no-diagnostics", action="store_true", help="skip the -> tmpfs runs")
    p.add_argument("--no-ceilings", action="store_true", help="skip storescu/disk/TCP ceilings")
    p.add_argument("--tools", default="", help="only tools whose label contains one of these")
    p.add_argument("--orthanc", action="store_true", help="also retrieve from Orthanc")
    p.add_argument("--timeout", type=float, default=1200.0, help="per run, seconds")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=15.0,
        help="before each run wait up to this many seconds for an idle machine (0: never)",
    )
    p.add_argument("--workdir", type=Path, help="keep data and results here (reused)")
    p.add_argument("--json", type=Path, help="also write every run here")
    p.add_argument("--render", type=Path, help="only print the tables of a results JSON file")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render is not None:
        saved = json.loads(args.render.read_text())
        rows = summarize([RunResult(**r) for r in saved["runs"]])
        print(f"{saved.get('header', '')}\n\n{render(rows, saved.get('titles', {}))}")
        return 0
    # SIGTERM unwinds like Ctrl-C: the sources and running tools are stopped on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    opts = Options(
        reps=args.reps,
        slow_reps=args.slow_reps,
        timeout=args.timeout,
        tools=frozenset(t for t in args.tools.split(",") if t),
        ceilings=not args.no_ceilings,
        tmpfs_dir=None,
        quiet_wait=args.quiet_wait,
    )
    if not args.no_diagnostics and TMPFS.is_dir():
        opts = replace(opts, tmpfs_dir=Path(tempfile.mkdtemp(prefix="aiomove-bench-", dir=TMPFS)))
    cleanup = args.workdir is None
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="aiomove-bench-"))).resolve()
    try:
        return _bench(args, opts, work)
    finally:
        if opts.tmpfs_dir is not None:
            shutil.rmtree(opts.tmpfs_dir, ignore_errors=True)
        if cleanup:
            shutil.rmtree(work, ignore_errors=True)


def _bench(args: argparse.Namespace, opts: Options, work: Path) -> int:
    measure.become_subreaper()
    (work / "runs").mkdir(parents=True, exist_ok=True)
    mode = "quick" if args.quick else "full"
    chosen = [s for s in args.sets.split(",") if s]
    started = time.perf_counter()
    data = []
    for name in chosen:
        spec = specs(args.quick)[name]
        t = time.perf_counter()
        data.append(generate(spec, work / "data" / mode / name))
        print(f"data {name}: {spec.describe()}, {data[-1].total_bytes / 2**20:.0f} MiB "
              f"({time.perf_counter() - t:.1f} s)", flush=True)  # fmt: skip
    results: list[RunResult] = []
    titles: dict[str, str] = {}
    sources = ["dcmqrscp", *(["orthanc"] if args.orthanc else [])]
    for kind in sources:
        with start_source(kind, work / "sources", data) as target:
            at = "" if kind == "dcmqrscp" else " @orthanc"
            for ds in data:
                scenario = ds.name + at
                titles[scenario] = f"{ds.name}: {ds.spec.describe()}, from {kind}"
                ceilings = opts.ceilings and kind == "dcmqrscp"
                group = whole_set_cases(target, ds, scenario, opts, ceilings)
                results += run_scenario(group, work, opts)
            for ds in data:
                if args.no_x16 or len(ds.series) < 2:
                    continue
                scenario = f"{ds.name} x{len(ds.series)}{at}"
                titles[scenario] = (
                    f"{ds.name}: {len(ds.series)} concurrent series retrieves, from {kind}"
                )
                results += run_scenario(x16_cases(target, ds, scenario, opts), work, opts)
    if opts.ceilings:
        titles["startup"] = "process start-up alone (no network)"
        group = [
            Case("startup", tool, opts.reps, frozenset(), plan=_pick(tool))
            for tool in cases.startup(work)
        ]
        results += run_scenario(group, work, opts)
        nbytes = (1 if args.quick else 4) * 2**30
        titles["tcp"] = f"loopback TCP, {nbytes // 2**30} GiB"
        tcp = Case("tcp", "raw loopback TCP", opts.reps, frozenset(), inproc=tcp_loopback(nbytes))
        results += run_scenario([tcp], work, opts)
    rows = summarize(results)
    text = render(rows, titles)
    elapsed = time.perf_counter() - started
    header = f"## aiomove bench ({mode}, {opts.reps} reps, {os.cpu_count()} CPUs, {elapsed:.0f} s)"
    print(f"\n{header}\n\n{text}")
    dump = {
        "mode": mode,
        "reps": opts.reps,
        "elapsed": elapsed,
        "header": header,
        "titles": titles,
        "runs": [asdict(r) for r in results],
    }
    for path in (work / f"results-{mode}.json", args.json):
        if path is not None:
            path.write_text(json.dumps(dump, indent=1))
    (work / f"results-{mode}.md").write_text(f"{header}\n\n{text}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
