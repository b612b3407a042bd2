"""A pynetdicom C-MOVE SCU that retrieves to itself, for the benchmark.

pynetdicom's documented "move to self" pattern: one AE runs a non-blocking Storage SCP
(`start_server(..., block=False)` with an `evt.EVT_C_STORE` handler) and, in the same process,
sends C-MOVE-RQs naming its own AE title as the destination. The handler writes each data set
as received, without decoding it (`event.encoded_dataset()`, Part 10 file with meta
information), named like DCMTK's files "<prefix>.<SOP Instance UID>".

    python bench/pynetdicom_move.py --peer HOST PORT AE --ae-title BENCH --port P --out DIR \
        (--patient-id ID | --series STUDY_UID/SERIES_UID ...)

Several --series run concurrently, one association each in its own thread (pynetdicom is
thread-based), all delivering to the one Storage SCP. Prints a JSON summary on stdout; exit
status 0 when every C-MOVE ended with Success and every C-STORE was written.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydicom import Dataset
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # generated at import
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelMove,
)


class Store:
    """The EVT_C_STORE handler: one file per instance, counted under a lock."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.stored = 0
        self.failed = 0

    def __call__(self, event: Any) -> int:
        try:
            uid = event.request.AffectedSOPInstanceUID
            (self.out / f"PN.{uid}").write_bytes(event.encoded_dataset())
        except OSError:
            with self.lock:
                self.failed += 1
            return 0xA700  # PS3.4 B.2.3 Refused: Out of Resources
        with self.lock:
            self.stored += 1
        return 0x0000


def move(ae: AE, args: argparse.Namespace, query: Dataset, model: Any) -> dict[str, Any]:
    """One association, one C-MOVE; the final response's status and counters."""
    host, port, called = args.peer
    assoc = ae.associate(host, int(port), ae_title=called)
    if not assoc.is_established:
        return {"error": "association failed"}
    final: dict[str, Any] = {"error": "no final response"}
    try:
        for status, _identifier in assoc.send_c_move(query, args.ae_title, model):
            if status is None or "Status" not in status:
                final = {"error": "no response (timeout or abort)"}
                break
            if status.Status in (0xFF00, 0xFF01):  # pending
                continue
            final = {
                "status": int(status.Status),
                "completed": int(status.get("NumberOfCompletedSuboperations", 0)),
                "failed": int(status.get("NumberOfFailedSuboperations", 0)),
            }
    finally:
        assoc.release()
    return final


def queries(args: argparse.Namespace) -> list[tuple[Dataset, Any]]:
    if args.patient_id is not None:
        ds = Dataset()
        ds.QueryRetrieveLevel = "PATIENT"
        ds.PatientID = args.patient_id
        return [(ds, PatientRootQueryRetrieveInformationModelMove)]
    found = []
    for pair in args.series:
        study, series = pair.split("/")
        ds = Dataset()
        ds.QueryRetrieveLevel = "SERIES"
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        found.append((ds, StudyRootQueryRetrieveInformationModelMove))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", nargs=3, metavar=("HOST", "PORT", "AE"), required=True)
    parser.add_argument("--ae-title", default="BENCH")
    parser.add_argument("--port", type=int, required=True, help="the Storage SCP's port")
    parser.add_argument("--out", type=Path, required=True)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--patient-id")
    which.add_argument("--series", action="append", metavar="STUDY_UID/SERIES_UID")
    args = parser.parse_args()

    ae = AE(ae_title=args.ae_title)
    ae.supported_contexts = AllStoragePresentationContexts
    ae.add_requested_context(PatientRootQueryRetrieveInformationModelMove)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    # pynetdicom's defaults (30 s DIMSE) are too short for a 200 MiB instance at its speed
    ae.dimse_timeout = ae.network_timeout = ae.acse_timeout = 600
    ae.maximum_associations = 64
    store = Store(args.out)
    server = ae.start_server(
        ("127.0.0.1", args.port), block=False, evt_handlers=[(evt.EVT_C_STORE, store)]
    )
    assert server is not None  # block=False returns the running server
    try:
        todo = queries(args)
        with ThreadPoolExecutor(max_workers=len(todo)) as pool:
            finals = list(pool.map(lambda q: move(ae, args, *q), todo))
    finally:
        server.shutdown()
    ok = all(f.get("status") == 0 for f in finals) and store.failed == 0
    json.dump({"stored": store.stored, "failed": store.failed, "finals": finals}, sys.stdout)
    print()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
