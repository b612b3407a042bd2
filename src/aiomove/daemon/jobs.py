"""Job store vocabulary: states, what to retrieve, progress, receipts (types only, no I/O)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

#: Query/Retrieve levels a job may name (PS3.4 C.6).
LEVELS = frozenset({"PATIENT", "STUDY", "SERIES", "IMAGE"})


class JobState(StrEnum):
    """Where a job is in its life; the first three are "active" (deduplicated, see JobSpec)."""

    QUEUED = "queued"  # waiting (maybe with not_before for a retry backoff)
    RUNNING = "running"  # claimed: lease_owner + lease_expires set
    PAUSED = "paused"  # not claimable until resumed
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # permanent failure or attempts exhausted
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        return self in ACTIVE_STATES

    @property
    def terminal(self) -> bool:
        return not self.active


ACTIVE_STATES = frozenset({JobState.QUEUED, JobState.RUNNING, JobState.PAUSED})


@dataclass(frozen=True)
class JobSpec:
    """What to retrieve: from which configured peer, at which level, with which unique keys."""

    peer: str  # configured PACS name (daemon config)
    level: str  # "PATIENT" | "STUDY" | "SERIES" | "IMAGE"
    keys: Mapping[str, str] = field(hash=False)  # e.g. {"StudyInstanceUID": "1.2..."}
    priority: int = 0  # higher first

    def __post_init__(self) -> None:
        if not self.peer:
            raise ValueError("JobSpec.peer must not be empty")
        if self.level not in LEVELS:
            raise ValueError(f"JobSpec.level must be one of {sorted(LEVELS)}, not {self.level!r}")
        # A private copy, so a caller's later edits cannot change a submitted job.
        object.__setattr__(self, "keys", {str(k): str(v) for k, v in self.keys.items()})

    def dedup_key(self) -> str:
        """Same peer, level and keys (in any order) = the same job; priority does not count."""
        return json.dumps([self.peer, self.level, sorted(self.keys.items())], separators=(",", ":"))


@dataclass(frozen=True)
class Progress:
    """Counters a worker reports with its heartbeats and when it finishes."""

    expected: int | None = None  # instances the source will send (C-MOVE counters / C-FIND)
    received: int = 0
    failed: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class Job:
    """A job as stored; all datetimes are timezone-aware UTC."""

    id: int
    spec: JobSpec
    state: JobState
    attempts: int  # claims so far
    max_attempts: int
    not_before: datetime | None  # retry backoff
    lease_owner: str | None
    lease_expires: datetime | None
    progress: Progress
    error: str | None  # last error (one line)
    error_kind: str | None  # "transient" | "permanent" | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Receipt:
    """One received instance, recorded in the job store (unique per job and SOP Instance UID)."""

    job_id: int
    sop_instance_uid: str
    sop_class_uid: str
    path: str
    size: int
