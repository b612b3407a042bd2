"""A pynetdicom Query/Retrieve SCP (C-FIND + C-MOVE) used as a test-only move source.

It serves the DICOM files given on the command line and prints its bound port on stdout.
Options:
  --dest AE=HOST:PORT     a known move destination (repeatable); others get 0xA801
  --cycle                 send the matches over and over until the move is cancelled
                          (for C-CANCEL tests; dcmqrscp finishes too fast to cancel reliably)
  --require-called-ae     reject associations whose called AE title is not --ae
                          (pynetdicom's AE.require_called_aet)
  --log-identifiers FILE  append one JSON line per C-MOVE-RQ received: the requestor's
                          address, Affected SOP Class UID (the model), Message ID, move
                          destination and the identifier (pydicom's DICOM JSON model)

Usage: pynetdicom_qr.py [options] file...
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Iterator
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, evt

PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
VERIFICATION = "1.2.840.10008.1.1"
LEVEL_KEYS = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}


def _matches(ds: Dataset, identifier: Dataset) -> bool:
    level = str(identifier.get("QueryRetrieveLevel", "STUDY")).upper()
    for lvl, key in LEVEL_KEYS.items():
        wanted = identifier.get(key)
        if wanted not in (None, ""):
            values = [str(v) for v in wanted] if not isinstance(wanted, str) else [wanted]
            values = [v for part in values for v in part.split("\\")]
            if str(ds.get(key, "")) not in values:
                return False
        if lvl == level:
            break
    return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="*")
    parser.add_argument("--ae", default="PYQRSCP")
    parser.add_argument("--dest", action="append", default=[])
    parser.add_argument("--cycle", action="store_true")
    parser.add_argument("--require-called-ae", action="store_true")
    parser.add_argument("--log-identifiers", metavar="FILE")
    args = parser.parse_args()
    log_lock = threading.Lock()

    def log_identifier(event: Any) -> None:
        """One JSON line per C-MOVE-RQ; handlers run in pynetdicom's threads, hence the lock."""
        if args.log_identifiers is None:
            return
        requestor = event.assoc.requestor
        record = {
            "requestor": f"{requestor.address}:{requestor.port}",
            "sop_class_uid": str(event.request.AffectedSOPClassUID),
            "message_id": int(event.request.MessageID),
            "move_destination": str(event.move_destination).strip(),
            "identifier": event.identifier.to_json_dict(),
        }
        with log_lock, open(args.log_identifiers, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    destinations: dict[str, tuple[str, int]] = {}
    for spec in args.dest:
        name, _, address = spec.partition("=")
        host, _, port = address.rpartition(":")
        destinations[name] = (host, int(port))
    datasets = [dcmread(path) for path in args.files]

    def handle_move(event: Any) -> Iterator[Any]:
        identifier = event.identifier
        log_identifier(event)
        destination = destinations.get(event.move_destination.strip())
        if destination is None:
            yield None, None  # pynetdicom answers 0xA801 Move destination unknown
            return
        matches = [ds for ds in datasets if _matches(ds, identifier)]
        yield destination[0], destination[1]
        yield 0xFFFF if args.cycle else len(matches)
        number = 0
        while matches:
            for ds in matches:
                if event.is_cancelled:
                    yield 0xFE00, None
                    return
                number += 1
                yield 0xFF00, ds
            if not args.cycle or number >= 0xFFFF:
                return

    handlers: list[Any] = [(evt.EVT_C_MOVE, handle_move), (evt.EVT_C_ECHO, lambda event: 0x0000)]
    ae = AE(ae_title=args.ae)
    ae.require_called_aet = bool(args.require_called_ae)
    ae.add_supported_context(VERIFICATION)
    ae.add_supported_context(PATIENT_ROOT_MOVE)
    ae.add_supported_context(STUDY_ROOT_MOVE)
    ae.add_supported_context(STUDY_ROOT_FIND)
    # Sub-associations propose each served file's SOP class with its own transfer syntax.
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
