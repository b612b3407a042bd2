"""A pynetdicom Query/Retrieve SCP that counts: the daemon tests' observable move source.

Serves the DICOM files given (Study Root C-FIND at STUDY/SERIES/IMAGE level, Study and
Patient Root C-MOVE) and prints its bound port on stdout. It records, in `--stats FILE` (JSON,
rewritten on every change):
  peak / open    associations accepted from SCUs, at most at once / now (established until
                 released or aborted: the daemon frees its slot only after the release)
  sent           SOP Instance UID -> how many times it was sent by a C-MOVE sub-operation
  moves          C-MOVE requests received; cancelled: how many of them were cancelled
Options:
  --dest AE=HOST:PORT       a move destination (repeatable); others get 0xA801
  --max-associations N      pynetdicom's limit: beyond it, A-ASSOCIATE-RJ rejected-transient
                            (result 2, source 3, reason 2: local limit exceeded)
  --cycle                   send the matches again and again until cancelled (for drain tests)

Usage: qr_peer.py [options] file...
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from collections.abc import Iterator
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, evt

STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
VERIFICATION = "1.2.840.10008.1.1"
LEVELS = ["PATIENT", "STUDY", "SERIES", "IMAGE"]
UNIQUE = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}


def _wanted(value: Any) -> list[str]:
    values = [value] if isinstance(value, str) else [str(v) for v in value]
    return [v for part in values for v in part.split("\\") if v]


def matches(ds: Dataset, identifier: Dataset) -> bool:
    """Single-value / UID-list matching on every non-empty key of the identifier."""
    for element in identifier:
        keyword = element.keyword
        if keyword in ("QueryRetrieveLevel", "SpecificCharacterSet") or not keyword:
            continue
        if element.value in (None, "", []):
            continue
        if str(ds.get(keyword, "")) not in _wanted(element.value):
            return False
    return True


class Stats:
    def __init__(self, path: str | None) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.open = self.peak = self.moves = self.cancelled = 0
        self.sent: dict[str, int] = {}

    def change(self, **kw: Any) -> None:
        with self.lock:
            if "opened" in kw:
                self.open += kw["opened"]
                self.peak = max(self.peak, self.open)
            if "sent" in kw:
                self.sent[kw["sent"]] = self.sent.get(kw["sent"], 0) + 1
            self.moves += kw.get("moves", 0)
            self.cancelled += kw.get("cancelled", 0)
            if self.path is None:
                return
            data = {
                "open": self.open,
                "peak": self.peak,
                "moves": self.moves,
                "cancelled": self.cancelled,
                "sent": self.sent,
            }
            tmp = self.path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
            os.replace(tmp, self.path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="*")
    parser.add_argument("--ae", default="QRPEER")
    parser.add_argument("--dest", action="append", default=[])
    parser.add_argument("--max-associations", type=int, default=32)
    parser.add_argument("--stats")
    parser.add_argument("--cycle", action="store_true")
    args = parser.parse_args()
    stats = Stats(args.stats)
    stats.change()
    destinations: dict[str, tuple[str, int]] = {}
    for spec in args.dest:
        name, _, address = spec.partition("=")
        host, _, port = address.rpartition(":")
        destinations[name] = (host, int(port))
    datasets = [dcmread(path) for path in args.files]

    def handle_find(event: Any) -> Iterator[Any]:
        identifier = event.identifier
        level = str(identifier.get("QueryRetrieveLevel", "STUDY")).upper()
        if level not in LEVELS[1:]:
            yield 0xA900, None
            return
        seen = set()
        for ds in datasets:
            if not matches(ds, identifier):
                continue
            key = str(ds.get(UNIQUE[level]))
            if key in seen:
                continue
            seen.add(key)
            answer = Dataset()
            answer.QueryRetrieveLevel = level
            for element in identifier:
                if element.keyword and element.keyword != "QueryRetrieveLevel":
                    setattr(answer, element.keyword, ds.get(element.keyword, ""))
            yield 0xFF00, answer

    def handle_move(event: Any) -> Iterator[Any]:
        stats.change(moves=1)
        destination = destinations.get(event.move_destination.strip())
        if destination is None:
            yield None, None  # pynetdicom answers 0xA801 Move destination unknown
            return
        found = [ds for ds in datasets if matches(ds, event.identifier)]
        yield destination[0], destination[1]
        yield 0xFFFF if args.cycle else len(found)
        number = 0
        while found:
            for ds in found:
                if event.is_cancelled:
                    stats.change(cancelled=1)
                    yield 0xFE00, None
                    return
                number += 1
                stats.change(sent=str(ds.SOPInstanceUID))
                yield 0xFF00, ds
            if not args.cycle or number >= 0xFFFF:
                return

    counted: set[int] = set()  # associations now open (released, aborted or closed: gone)

    def opened(event: Any) -> None:
        if event.assoc.is_acceptor:
            with stats.lock:
                counted.add(id(event.assoc))
            stats.change(opened=1)

    def closed(event: Any) -> None:
        with stats.lock:
            if id(event.assoc) not in counted:
                return
            counted.discard(id(event.assoc))
        stats.change(opened=-1)

    handlers: list[Any] = [
        (evt.EVT_C_FIND, handle_find),
        (evt.EVT_C_MOVE, handle_move),
        (evt.EVT_C_ECHO, lambda event: 0x0000),
        (evt.EVT_ESTABLISHED, opened),
        (evt.EVT_RELEASED, closed),
        (evt.EVT_ABORTED, closed),
        (evt.EVT_CONN_CLOSE, closed),
    ]
    ae = AE(ae_title=args.ae)
    ae.maximum_associations = args.max_associations
    for context in (VERIFICATION, STUDY_ROOT_FIND, STUDY_ROOT_MOVE, PATIENT_ROOT_MOVE):
        ae.add_supported_context(context)
    for sop_class, syntax in sorted(
        {(str(d.SOPClassUID), str(d.file_meta.TransferSyntaxUID)) for d in datasets}
    ):
        ae.add_requested_context(sop_class, [syntax])
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
    assert server is not None
    print(server.server_address[1], flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
