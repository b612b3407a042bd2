"""Prometheus metrics of one daemon, in its own registry (never the process-global one).

aiomove_jobs{state}                       jobs in the store by state (all daemons' jobs)
aiomove_jobs_finished_total{state}        jobs this daemon finished (succeeded/failed/...)
aiomove_instances_received_total{peer}    instances received and recorded
aiomove_bytes_received_total{peer}        their bytes
aiomove_associations_open{peer}           C-FIND/C-MOVE associations open now
aiomove_retries_total{peer}               jobs rescheduled after a transient failure
aiomove_errors_total{peer,status,kind}    failures by status ("0xA801", "ConnectError", ...)
aiomove_slot_waits_total{peer}            times the shared per-PACS limit made us wait
aiomove_workers_busy                      this daemon's workers running a job
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.jobs = Gauge("aiomove_jobs", "Jobs in the store by state", ["state"], registry=r)
        self.finished = Counter(
            "aiomove_jobs_finished", "Jobs finished by this daemon", ["state"], registry=r
        )
        self.instances = Counter(
            "aiomove_instances_received", "Instances received", ["peer"], registry=r
        )
        self.bytes = Counter("aiomove_bytes_received", "Bytes received", ["peer"], registry=r)
        self.associations = Gauge(
            "aiomove_associations_open", "Outgoing associations open", ["peer"], registry=r
        )
        self.retries = Counter(
            "aiomove_retries", "Jobs rescheduled after a transient failure", ["peer"], registry=r
        )
        self.errors = Counter(
            "aiomove_errors", "Failures by status", ["peer", "status", "kind"], registry=r
        )
        self.slot_waits = Counter(
            "aiomove_slot_waits", "Waits for the shared per-PACS limit", ["peer"], registry=r
        )
        self.busy = Gauge("aiomove_workers_busy", "Workers running a job", registry=r)

    def set_job_counts(self, counts: Mapping[str, int], states: list[str]) -> None:
        for state in states:
            self.jobs.labels(state=state).set(counts.get(state, 0))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
