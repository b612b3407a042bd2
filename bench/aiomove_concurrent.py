"""Concurrent C-MOVEs with the aiomove library: one process, one Storage SCP port.

    python bench/aiomove_concurrent.py --peer HOST PORT AE --ae-title BENCH --port P \
        --out DIR --series STUDY_UID/SERIES_UID [--series ...]

One `aiomove.server.serve(storage_config(...))` listener and, in the same anyio task group,
one task per --series: `connect()` an association of its own and `assoc.move()` that series
(Study Root, SERIES level) to our own AE title. The sources' C-STOREs all arrive on the one
port and are written by one `FileSink` (the same writer as `aiomove move`). Once every C-MOVE
has its final response, the storage associations are given a bounded time to close.

Prints a JSON summary on stdout; exit status 0 when every C-MOVE ended with Success.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import anyio
from pydicom import Dataset

from aiomove.association import UNCOMPRESSED, Peer, connect
from aiomove.log import configure
from aiomove.proto import uids
from aiomove.server import ActiveAssociations, serve
from aiomove.storage import FileSink, StoreRequest, StoreResult, storage_config

LINGER = 10.0  # seconds for the storage associations to close after the last final response
T0 = [0.0]  # when the moves started (anyio clock)


def series_query(pair: str) -> Dataset:
    study, series = pair.split("/")
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    return ds


async def move_one(peer: Peer, ae_title: str, query: Dataset, finals: list[Any]) -> None:
    """One association, one C-MOVE; records the final response and when it came."""
    contexts = [(uids.STUDY_ROOT_QR_MOVE, UNCOMPRESSED)]
    started = anyio.current_time()
    async with (
        connect(peer, ae_title=ae_title, contexts=contexts) as assoc,
        assoc.move(query, ae_title, model=uids.STUDY_ROOT_QR_MOVE) as operation,
    ):
        async for rsp in operation:
            if rsp.is_final:
                finals.append(
                    {
                        "status": rsp.status.code,
                        "completed": rsp.completed,
                        "failed": rsp.failed,
                        "started": round(started - T0[0], 3),
                        "final_after": round(anyio.current_time() - T0[0], 3),
                    }
                )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    host, port, called = args.peer
    peer = Peer(host, int(port), called)
    registry = ActiveAssociations()
    stored: list[StoreResult] = []

    def on_stored(_request: StoreRequest, result: StoreResult) -> None:
        stored.append(result)

    config = storage_config(
        args.ae_title, FileSink(args.out), on_stored=on_stored, registry=registry
    )
    finals: list[Any] = []
    async with anyio.create_task_group() as tg:
        await tg.start(serve, config, "127.0.0.1", args.port)
        T0[0] = anyio.current_time()
        async with anyio.create_task_group() as moves:
            for pair in args.series:
                moves.start_soon(move_one, peer, args.ae_title, series_query(pair), finals)
        with anyio.move_on_after(LINGER):
            await registry.wait_for(lambda: len(registry) == 0)
        tg.cancel_scope.cancel()
    failed = sum(1 for r in stored if r.status != 0)
    return {"stored": len(stored) - failed, "failed": failed, "finals": finals}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", nargs=3, metavar=("HOST", "PORT", "AE"), required=True)
    parser.add_argument("--ae-title", default="BENCH")
    parser.add_argument("--port", type=int, required=True, help="the Storage SCP's port")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--series", action="append", required=True)
    args = parser.parse_args()
    configure("warn")  # as `aiomove move` without -v: no per-instance log lines
    summary = anyio.run(run, args)
    json.dump(summary, sys.stdout)
    print()
    finals = summary["finals"]
    ok = len(finals) == len(args.series) and all(f["status"] == 0 for f in finals)
    return 0 if ok and summary["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
