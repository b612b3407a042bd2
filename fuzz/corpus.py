"""Write the seed corpus: the golden PDUs and command sets of tests/proto, in each harness's
input layout (see tests/fuzz/targets.py).

    python fuzz/corpus.py [DIRECTORY]      # default: fuzz/corpus; one sub-directory per target

The corpus is generated, never committed (fuzz/.gitignore); libFuzzer adds what it finds.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from tests.fuzz import targets  # noqa: E402
from tests.proto import test_codec, test_dimse  # noqa: E402

from aiomove.proto import dimse  # noqa: E402
from aiomove.proto.codec import encode_pdu  # noqa: E402
from aiomove.proto.pdata import fragment  # noqa: E402
from aiomove.proto.pdu import (  # noqa: E402
    PDV,
    AAbort,
    AAssociateAC,
    AAssociateRQ,
    AReleaseRP,
    AReleaseRQ,
    AsynchronousOperationsWindow,
    PDataTF,
    PresentationContextAC,
    RoleSelection,
    UserIdentityRQ,
)

DEFAULT_DIRECTORY = Path(__file__).resolve().parent / "corpus"


def golden_pdus() -> list[bytes]:
    """Every golden PDU of tests/proto/test_codec.py, and a few richer associations."""
    pdus = [wire for _, wire, _ in test_codec.PDU_GOLDENS]
    user = b"".join(wire for _, wire, _ in test_codec.SUB_ITEM_GOLDENS)
    pdus.append(test_codec.rq_with_user_data(user))
    rich = AAssociateRQ(
        called_ae_title="ANY-SCP",
        calling_ae_title="AIOMOVE",
        presentation_contexts=targets.RQ.presentation_contexts,
        user_information=(
            AsynchronousOperationsWindow(1, 1),
            RoleSelection(targets.CT_IMAGE, scu_role=True, scp_role=True),
            UserIdentityRQ(2, True, b"user", b"secret"),
        ),
    )
    pdus.append(encode_pdu(rich))
    pdus.append(encode_pdu(targets.AC))
    return pdus


def golden_commands() -> list[bytes]:
    """The golden command sets of tests/proto/test_dimse.py and their responses."""
    commands = [wire for wire, _ in test_dimse.GOLDEN]
    for _, message in test_dimse.GOLDEN:
        if isinstance(message, dimse.DimseRequest):
            commands.append(dimse.encode_command(dimse.make_response(message, 0xFF00)))
    commands.append(dimse.encode_command(dimse.CCancelRQ(message_id_being_responded_to=1)))
    return commands


def _pdata(*pdvs: PDV) -> bytes:
    return encode_pdu(PDataTF(pdvs))


def _message(context_id: int, command: bytes, data: bytes | None = None) -> list[PDV]:
    """One DIMSE message as small PDVs (fragmented, so the seeds show fragmentation)."""
    pdvs = list(fragment(context_id, command, is_command=True, max_pdu_length=40))
    if data is not None:
        pdvs += fragment(context_id, data, is_command=False, max_pdu_length=16)
    return [PDV(p.context_id, p.is_command, p.is_last, bytes(p.data)) for p in pdvs]


def _messages() -> list[list[PDV]]:
    store, echo, move_rq, move_rsp = (
        test_dimse.STORE_RQ,
        test_dimse.ECHO_RQ,
        test_dimse.MOVE_RQ,
        test_dimse.MOVE_RSP,
    )
    pending = dimse.encode_command(
        dimse.CMoveRSP(message_id_being_responded_to=1, status=0xFF00, has_dataset=True)
    )
    identifier = struct.pack("<HHI", 0x0008, 0x0052, 6) + b"STUDY "
    return [
        _message(1, echo),
        _message(1, store, b"\x08\x00\x18\x00" + bytes(40)),
        _message(1, move_rq, identifier),
        _message(1, move_rsp),
        _message(3, pending, identifier),
        _message(1, echo) + _message(1, store, b"x" * 20),
    ]


def connection_streams() -> Iterator[tuple[str, bytes]]:
    """For each setup, what a peer might plausibly send next."""
    release_rq, release_rp = encode_pdu(AReleaseRQ()), encode_pdu(AReleaseRP())
    abort = encode_pdu(AAbort(0, 0))
    echo = _pdata(*_message(1, test_dimse.ECHO_RQ))
    store = b"".join(_pdata(p) for p in _message(1, test_dimse.STORE_RQ, bytes(30)))
    ac = encode_pdu(
        AAssociateAC(
            called_ae_title="STORE-SCP",
            calling_ae_title="AIOMOVE",
            presentation_contexts=(PresentationContextAC(1, 0, targets.IMPLICIT_LE),),
        )
    )
    data_phase = [echo, store, echo + release_rq, store + abort, release_rp]
    streams = {
        "acceptor-sta2": [encode_pdu(targets.RQ), test_codec.ECHOSCU_RQ + echo, abort],
        "acceptor-sta3": [echo, abort, release_rq],
        "acceptor-sta6": data_phase,
        "acceptor-sta7": [release_rp, echo + release_rp, release_rq, abort],
        "acceptor-sta8": [release_rq, echo, abort],
        "acceptor-sta10": [release_rp, echo, abort],
        "acceptor-sta12": [release_rp, echo, abort],
        "acceptor-sta13": [echo, abort, release_rp],
        "requestor-sta5": [ac, ac + echo + release_rq, test_codec.RJ_BYTES, abort],
        "requestor-sta6": data_phase,
        "requestor-sta7": [release_rp, echo + release_rp, release_rq, abort],
        "requestor-sta8": [release_rq, echo, abort],
        "requestor-sta9": [release_rp, echo, abort],
        "requestor-sta11": [release_rp, release_rp + echo, abort],
    }
    for setup, samples in streams.items():
        for sample in samples:
            yield setup, sample


def seeds() -> dict[str, list[bytes]]:
    """Seed inputs per target, in the layouts of tests/fuzz/targets.py."""
    pdus = golden_pdus()
    setups = targets.SETUP_NAMES
    pdvs = [targets.pack_pdvs(message) for message in _messages()]
    return {
        "pdu": pdus,
        # selector byte (bound and split pattern), then a stream of PDUs
        "framer": [bytes([i]) + b"".join(pdus[i % len(pdus) :]) for i in range(8)],
        "connection": [
            bytes([setups.index(setup) + len(setups) * (n % (256 // len(setups)))]) + stream
            for n, (setup, stream) in enumerate(connection_streams())
        ],
        "dimse": golden_commands(),
        "pdata": [bytes([i % 2]) + packed for i, packed in enumerate(pdvs)],
    }


def write(directory: Path) -> dict[str, Path]:
    """Write every seed as <directory>/<target>/<sha1>; returns the per-target directories."""
    out = {}
    for target, inputs in seeds().items():
        where = directory / target
        where.mkdir(parents=True, exist_ok=True)
        for data in inputs:
            (where / hashlib.sha1(data).hexdigest()).write_bytes(data)
        out[target] = where
    return out


def main() -> None:
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIRECTORY
    for target, where in write(directory).items():
        print(f"{target}: {len(list(where.iterdir()))} inputs in {where}")


if __name__ == "__main__":
    main()
