"""The benchmark's data sets, generated with tests/sampledata.py (nothing is downloaded).

Each set is one patient, so "the whole set" is one PATIENT-level C-MOVE; the CT-like and small
sets are 16 series (each in a study of its own), so "16 concurrent series retrieves" cover
them exactly.

| set   | full                                 | --quick                          |
|-------|--------------------------------------|----------------------------------|
| ct    | 16 x 63 = 1008 CT 512x512x16 bit     | 16 x 6 = 96                      |
|       | (~513 KiB each, ~505 MiB)            |                                  |
| small | 16 x 625 = 10,000 CT 64x64x16 bit    | 16 x 63 = 1008                   |
|       | (~8.5 KiB each, ~83 MiB)             |                                  |
| large | 3 x 200 MiB multi-frame SC           | 1 x 50 MiB                       |
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tests.sampledata import make_large_instance, make_study

MIB = 2**20
LAYOUT = 2  # bump when generate() writes other files for the same Spec


@dataclass(frozen=True)
class Spec:
    name: str
    patient_id: str
    n_series: int = 0
    n_instances: int = 0
    rows: int = 0
    n_large: int = 0
    large_size: int = 0

    def describe(self) -> str:
        if self.n_large:
            return f"{self.n_large} x {self.large_size // MIB} MiB multi-frame"
        n = self.n_series * self.n_instances
        return f"{n} instances {self.rows}x{self.rows} ({self.n_series} series)"


def specs(quick: bool) -> dict[str, Spec]:
    if quick:
        return {
            "ct": Spec("ct", "BENCHCT", n_series=16, n_instances=6, rows=512),
            "small": Spec("small", "BENCHSMALL", n_series=16, n_instances=63, rows=64),
            "large": Spec("large", "BENCHLARGE", n_large=1, large_size=50 * MIB),
        }
    return {
        "ct": Spec("ct", "BENCHCT", n_series=16, n_instances=63, rows=512),
        "small": Spec("small", "BENCHSMALL", n_series=16, n_instances=625, rows=64),
        "large": Spec("large", "BENCHLARGE", n_large=3, large_size=200 * MIB),
    }


@dataclass(frozen=True)
class Series:
    study_uid: str
    series_uid: str
    sop_instance_uids: tuple[str, ...]


@dataclass(frozen=True)
class DataSet:
    spec: Spec
    directory: Path
    files: tuple[Path, ...]
    series: tuple[Series, ...]
    total_bytes: int

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def patient_id(self) -> str:
        return self.spec.patient_id

    @property
    def sop_instance_uids(self) -> frozenset[str]:
        return frozenset(uid for s in self.series for uid in s.sop_instance_uids)

    def to_json(self) -> dict[str, object]:
        return {
            "layout": LAYOUT,
            "spec": vars(self.spec),
            "files": [str(p) for p in self.files],
            "series": [[s.study_uid, s.series_uid, list(s.sop_instance_uids)] for s in self.series],
            "total_bytes": self.total_bytes,
        }


def _from_json(directory: Path, spec: Spec, raw: dict[str, object]) -> DataSet:
    series = tuple(Series(a, b, tuple(c)) for a, b, c in raw["series"])  # type: ignore[attr-defined]
    files = tuple(Path(p) for p in raw["files"])  # type: ignore[attr-defined]
    return DataSet(spec, directory, files, series, int(raw["total_bytes"]))  # type: ignore[call-overload]


def generate(spec: Spec, directory: Path) -> DataSet:
    """Write the set into `directory`, or reuse what an earlier run wrote for the same spec."""
    index = directory.with_name(directory.name + ".json")  # not among the files (storescu +sd)
    if index.exists():
        raw = json.loads(index.read_text())
        if raw.get("spec") == vars(spec) and raw.get("layout") == LAYOUT:
            return _from_json(directory, spec, raw)
    directory.mkdir(parents=True, exist_ok=True)
    series: list[Series] = []
    if spec.n_large:
        for n in range(spec.n_large):
            large = make_large_instance(
                directory, size=spec.large_size, patient_id=spec.patient_id, seed=n
            )
            series.append(Series(large.study_uid, large.series_uid, (large.sop_instance_uid,)))
        files = tuple(sorted(directory.glob("*.dcm")))
    else:
        # One make_study call per series (seed n: its own study). sampledata.uid() hashes
        # its parts joined without a separator, so in ONE study series 1 / instance 12 and
        # series 11 / instance 2 get the same SOP Instance UID; across seeds they cannot.
        paths: list[Path] = []
        for n in range(spec.n_series):
            info = make_study(
                directory,
                patient_id=spec.patient_id,
                n_series=1,
                n_instances=spec.n_instances,
                rows=spec.rows,
                cols=spec.rows,
                seed=n,
            )
            (uid,) = info.series_uids
            series.append(Series(info.study_uid, uid, info.sop_instance_uids[uid]))
            paths += info.paths.values()
        files = tuple(paths)
    count = sum(len(s.sop_instance_uids) for s in series)
    if len({u for s in series for u in s.sop_instance_uids}) != count or len(files) != count:
        raise RuntimeError(f"{spec.name}: SOP Instance UIDs are not unique")
    total = sum(p.stat().st_size for p in files)
    dataset = DataSet(spec, directory, files, tuple(series), total)
    index.write_text(json.dumps(dataset.to_json()))
    return dataset
