"""The fuzzing tools of fuzz/: the seed corpus satisfies every target, and the fallback
runner (used when atheris is missing) reports a failing input the way libFuzzer does."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType

import pytest

from .targets import TARGETS

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_fuzz_{name}", FUZZ / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


corpus = load("corpus")
harness = load("harness")


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_seeds_satisfy_their_target(target: str) -> None:
    seeds = corpus.seeds()[target]
    assert len(seeds) >= 5
    for data in seeds:
        TARGETS[target](data)


def test_corpus_is_written_per_target(tmp_path: Path) -> None:
    dirs = corpus.write(tmp_path)
    assert sorted(dirs) == sorted(TARGETS)
    for target, where in dirs.items():
        assert len(list(where.iterdir())) == len(set(corpus.seeds()[target]))


def test_mutations_stay_bounded() -> None:
    rng = random.Random(5)
    seeds = corpus.seeds()["pdu"]
    for _ in range(500):
        assert len(harness.mutate(rng.choice(seeds), seeds, rng)) <= 65536


def _fails_on_aborts(data: bytes) -> None:
    assert not data.startswith(b"\x07"), "A-ABORT"


def test_fallback_reports_a_failing_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "ok").write_bytes(b"\x01\x00")
    (seeds / "bad").write_bytes(b"\x07\x00")
    argv = [sys.argv[0], str(seeds), "-runs=10", f"-artifact_prefix={tmp_path}/t-"]
    assert harness.fallback(_fails_on_aborts, argv) == 1
    [crash] = tmp_path.glob("t-crash-*")
    assert crash.read_bytes() == b"\x07\x00"
    assert "FALLBACK MODE" in capsys.readouterr().err


def test_fallback_runs_mutations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "ok").write_bytes(b"\x01\x00\x00\x00")
    argv = [sys.argv[0], str(seeds), "-runs=50", "-seed=1", f"-artifact_prefix={tmp_path}/"]
    assert harness.fallback(lambda data: None, argv) == 0
    assert "1 replayed, 50 mutated inputs, no failure" in capsys.readouterr().err
