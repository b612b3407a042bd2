"""Run every fuzz harness for a bounded time; exit 1 if any of them finds a failing input.

    python fuzz/run.py [TARGET ...]

Environment:
    FUZZ_SECONDS   time per target (default 60)
    FUZZ_CORPUS    corpus directory (default fuzz/corpus; seeded with the golden PDUs first)
    FUZZ_CRASHES   where failing inputs go (default fuzz/crashes)

Without atheris each harness runs in its labelled FALLBACK mode (see fuzz/harness.py).
Reproduce a failure with `python fuzz/fuzz_<target>.py <crash file>`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402
from tests.fuzz.targets import TARGETS  # noqa: E402

# libFuzzer options: a memory cap (bounded memory is part of the contract), a per-input time
# cap, and inputs large enough for a few PDUs.
LIBFUZZER_OPTIONS = ["-rss_limit_mb=1024", "-timeout=20", "-max_len=16384", "-print_final_stats=1"]


def run_target(target: str, corpus_dir: Path, crashes: Path, seconds: int) -> bool:
    command = [
        sys.executable,
        str(HERE / f"fuzz_{target}.py"),
        str(corpus_dir),
        f"-max_total_time={seconds}",
        f"-artifact_prefix={crashes}/{target}-",
        *LIBFUZZER_OPTIONS,
    ]
    print(f"== {target}: {seconds} s", flush=True)
    completed = subprocess.run(command, cwd=HERE.parent, check=False)
    ok = completed.returncode == 0
    print(f"== {target}: {'ok' if ok else f'FAILED (exit {completed.returncode})'}", flush=True)
    return ok


def main() -> int:
    seconds = int(os.environ.get("FUZZ_SECONDS", "60"))
    corpus_root = Path(os.environ.get("FUZZ_CORPUS", HERE / "corpus"))
    crashes = Path(os.environ.get("FUZZ_CRASHES", HERE / "crashes"))
    wanted = sys.argv[1:] or list(TARGETS)
    unknown = sorted(set(wanted) - set(TARGETS))
    if unknown:
        print(f"unknown targets {unknown}; choose from {sorted(TARGETS)}", file=sys.stderr)
        return 2
    crashes.mkdir(parents=True, exist_ok=True)
    dirs = corpus.write(corpus_root)
    failed = [t for t in wanted if not run_target(t, dirs[t], crashes, seconds)]
    if failed:
        print(f"fuzzing found failures in {failed}; inputs are in {crashes}", file=sys.stderr)
        return 1
    print(f"fuzzing: {len(wanted)} targets, {seconds} s each, no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
