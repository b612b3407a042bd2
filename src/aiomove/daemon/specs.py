"""Job specifications from user input (CLI, HTTP), checked before they reach the store.

A job names a configured peer, a Query/Retrieve level and keys (PS3.4 C.6.2.1):
- STUDY: `StudyInstanceUID`, or `AccessionNumber` / `PatientID` (resolved to studies with a
  STUDY-level C-FIND when the job runs, as `aiomove retrieve` does);
- PATIENT: `PatientID`; SERIES: `StudyInstanceUID` + `SeriesInstanceUID`;
  IMAGE: those + `SOPInstanceUID`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydicom import Dataset
from pydicom.datadict import tag_for_keyword

from aiomove.daemon.jobs import ACTIVE_STATES, LEVELS, Job, JobSpec, JobState
from aiomove.proto import uids

#: The keys each level requires (all of them), or accepts as alternatives (STUDY).
REQUIRED = {
    "PATIENT": ("PatientID",),
    "SERIES": ("StudyInstanceUID", "SeriesInstanceUID"),
    "IMAGE": ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"),
}
STUDY_KEYS = ("StudyInstanceUID", "AccessionNumber", "PatientID")
_UID_KEYS = {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"}
#: The states each user action applies to (the store leaves a job in another state as it is).
ACTION_FROM = {
    "cancel": ACTIVE_STATES,
    "pause": frozenset({JobState.QUEUED, JobState.RUNNING}),
    "resume": frozenset({JobState.PAUSED}),
    "retry": frozenset({JobState.FAILED, JobState.CANCELLED}),
}


class SpecError(ValueError):
    """Input that does not make a job; the message says why."""


def make_spec(
    peer: str,
    level: str,
    keys: Mapping[str, Any],
    *,
    priority: int = 0,
    peers: Iterable[str] | None = None,
) -> JobSpec:
    """A checked `JobSpec`; `peers`: the configured peer names (None: not checked)."""
    level = str(level).strip().upper()
    if level not in LEVELS:
        raise SpecError(f"level must be one of {sorted(LEVELS)}, not {level!r}")
    known = None if peers is None else list(peers)
    if known is not None and peer not in known:
        raise SpecError(f"unknown peer {peer!r} (configured: {', '.join(known) or 'none'})")
    if not isinstance(keys, Mapping) or not keys:
        raise SpecError("keys must be a non-empty object of DICOM keyword -> value")
    clean: dict[str, str] = {}
    for keyword, value in keys.items():
        if not isinstance(keyword, str) or tag_for_keyword(keyword) is None:
            raise SpecError(f"{keyword!r} is not a DICOM keyword")
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise SpecError(f"{keyword}: the value must be a string")
        text = str(value).strip()
        if not text or "*" in text or "?" in text or "\\" in text:
            raise SpecError(f"{keyword}: one exact value is needed, not {text!r}")
        if keyword in _UID_KEYS and not uids.is_valid_uid(text):
            raise SpecError(f"{keyword}: {text!r} is not a valid UID")
        clean[keyword] = text
    if level == "STUDY":
        if not any(k in clean for k in STUDY_KEYS):
            raise SpecError(f"a STUDY job needs one of {', '.join(STUDY_KEYS)}")
    else:
        missing = [k for k in REQUIRED[level] if k not in clean]
        if missing:
            raise SpecError(f"a {level} job needs {', '.join(missing)}")
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise SpecError("priority must be an integer")
    try:
        return JobSpec(peer=peer, level=level, keys=clean, priority=priority)
    except ValueError as exc:
        raise SpecError(str(exc)) from None


def identifier(level: str, keys: Mapping[str, str]) -> Dataset:
    """The C-MOVE identifier: the level and the job's keys (PS3.4 C.4.2.2.1)."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def job_json(job: Job) -> dict[str, Any]:
    """A job as the HTTP API and `aiomove jobs` show it."""
    p = job.progress
    percent = None
    if p.expected:
        percent = round(100.0 * min(p.received, p.expected) / p.expected, 1)
    return {
        "id": job.id,
        "peer": job.spec.peer,
        "level": job.spec.level,
        "keys": dict(job.spec.keys),
        "priority": job.spec.priority,
        "state": str(job.state),
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "not_before": _time(job.not_before),
        "lease_owner": job.lease_owner,
        "lease_expires": _time(job.lease_expires),
        "progress": {
            "expected": p.expected,
            "received": p.received,
            "failed": p.failed,
            "bytes": p.bytes,
            "percent": percent,
        },
        "error": job.error,
        "error_kind": job.error_kind,
        "created_at": _time(job.created_at),
        "updated_at": _time(job.updated_at),
    }


def _time(value: Any) -> str | None:
    return None if value is None else value.isoformat()
