"""Results of the runs and the summary tables (medians of the successful runs)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

MB = 1e6
MIB = 2**20
AIOMOVE = "aiomove"  # tool labels starting with this are aiomove's (the ratio's reference)


@dataclass
class RunResult:
    """One run of one tool in one scenario. `ok` False: FAILED, never in a median."""

    scenario: str
    tool: str
    rep: int
    ok: bool
    reason: str
    wall: float
    instances: int
    bytes: int
    recv_cpu: float  # user + sys of the receiving processes, s
    recv_rss_kib: int  # ru_maxrss, summed over the receiving processes
    src_cpu: float  # user + sys of the sending side (move source, or storescu), s
    busy: float  # share of all cores busy during the run (1.0 = every core)
    iowait: float
    other_load: float = 0.0  # share of the machine busy but not in our processes' rusage
    processes: int = 1
    process_walls: tuple[float, ...] = ()  # each timed process's exit time, s


@dataclass(frozen=True)
class Summary:
    scenario: str
    tool: str
    ok: int
    runs: int
    wall: float | None
    instances: int
    bytes: int
    recv_cpu: float | None
    recv_rss_mib: float | None
    src_cpu: float | None
    busy: float | None
    iowait: float | None
    other_load: float | None
    failures: tuple[str, ...]


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(results: Sequence[RunResult]) -> list[Summary]:
    """One row per (scenario, tool), in the order they first ran."""
    keys: dict[tuple[str, str], list[RunResult]] = {}
    for r in results:
        keys.setdefault((r.scenario, r.tool), []).append(r)
    rows = []
    for (scenario, tool), runs in keys.items():
        good = [r for r in runs if r.ok]
        rows.append(
            Summary(
                scenario=scenario,
                tool=tool,
                ok=len(good),
                runs=len(runs),
                wall=_median([r.wall for r in good]),
                instances=max((r.instances for r in good), default=0),
                bytes=max((r.bytes for r in good), default=0),
                recv_cpu=_median([r.recv_cpu for r in good]),
                recv_rss_mib=_median([r.recv_rss_kib * 1024 / MIB for r in good]),
                src_cpu=_median([r.src_cpu for r in good]),
                busy=_median([r.busy for r in good]),
                iowait=_median([r.iowait for r in good]),
                other_load=_median([r.other_load for r in good]),
                failures=tuple(f"rep {r.rep}: {r.reason}" for r in runs if not r.ok),
            )
        )
    return rows


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or reference is None or reference <= 0:
        return "-"
    return f"{value / reference:.2f}"


HEADER = (
    "| tool | ok | wall s | inst/s | MB/s | recv CPU s | recv RSS MiB | src CPU s "
    "| machine busy % | unattributed % | iowait % | wall / aiomove | CPU / aiomove |"
)


def table(rows: Sequence[Summary], scenario: str) -> list[str]:
    """A markdown table of one scenario; ratios are to aiomove's median in that scenario."""
    mine = [r for r in rows if r.scenario == scenario]
    reference = next((r for r in mine if r.tool.startswith(AIOMOVE)), None)
    lines = [HEADER, _rule()]
    for r in mine:
        rate = r.instances / r.wall if r.wall and r.instances else None
        mbs = r.bytes / MB / r.wall if r.wall and r.bytes else None
        ok = f"{r.ok}/{r.runs}" + (" FAILED" if r.ok < r.runs else "")
        lines.append(
            "| "
            + " | ".join(
                [
                    r.tool,
                    ok,
                    _fmt(r.wall, ".2f"),
                    _fmt(rate, ".0f"),
                    _fmt(mbs, ".0f"),
                    _fmt(r.recv_cpu, ".2f"),
                    _fmt(r.recv_rss_mib or None, ".0f"),
                    _fmt(r.src_cpu, ".2f"),
                    _fmt(None if r.busy is None else 100 * r.busy, ".0f"),
                    _fmt(None if r.other_load is None else 100 * r.other_load, ".0f"),
                    _fmt(None if r.iowait is None else 100 * r.iowait, ".0f"),
                    _ratio(r.wall, reference.wall if reference else None),
                    _ratio(r.recv_cpu, reference.recv_cpu if reference else None),
                ]
            )
            + " |"
        )
    return lines


def _rule() -> str:
    return "|" + "---|" * (HEADER.count("|") - 1)


def render(rows: Sequence[Summary], titles: dict[str, str]) -> str:
    """Every scenario's table under its title, then the failures."""
    out: list[str] = []
    for scenario, title in titles.items():
        if not any(r.scenario == scenario for r in rows):
            continue
        out += [f"### {title}", "", *table(rows, scenario), ""]
    failures = [f"- {r.scenario} / {r.tool}: {f}" for r in rows for f in r.failures]
    if failures:
        out += ["### FAILED runs (not timed)", "", *failures, ""]
    return "\n".join(out)
