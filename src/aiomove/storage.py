"""The embedded Storage SCP: C-STORE data sets streamed to Part 10 files.

`FileSink.store` writes what a C-STORE-RQ carries into `directory` as DCMTK movescu and
storescp name it, "<modality prefix>.<SOP Instance UID>", without ever holding the data set
in memory: chunks are gathered up to `WRITE_BUFFER` bytes and written by a worker thread, so
neither memory nor the event loop depend on the instance size. The file appears under its
final name only once complete (temporary name in the same directory, optional fsync, os.replace);
any failure or cancellation removes the temporary file.

Output formats (movescu's "output options"):

- Default, and `+B`: a Part 10 file (PS3.10 §7.1) whose data set is the received bytes,
  unchanged. DCMTK's default (-B) instead decodes and re-encodes the data set with its
  defaults (explicit lengths for sequences and items, group lengths recalculated if present,
  dataset trailing padding removed); aiomove writes what arrived, as DCMTK's +B does.
- `-F`: the data set bytes only, no preamble or meta information.
- Re-encoding (any of `+te/+tb/+ti/+td`, `+g`, `-g`, `-e`, `-u`, `+p`, `+cl` with deflate,
  even `+te` for data that arrived as explicit little endian): the data set is spooled to
  disk, decoded with pydicom and encoded again by aiomove.reencode, which follows DCMTK's rules;
  tests/interop compares the result with `dcmconv` byte for byte. Differences from DCMTK:
  the data set is held in memory while re-encoding; a data set that arrived compressed
  keeps its syntax when another is asked for (DCMTK fails with 0xA700: neither decompresses);
  the file padding of `+p` differs by the length of aiomove's own meta elements.

C-STORE statuses used (PS3.4 Table B.2-1): 0x0000 success; 0xA700 "Refused: Out of
Resources" when the file cannot be written (disk full, I/O error) or writing it would leave
less than `min_free_bytes` free; 0xC000 "Error: Cannot understand" for a request whose SOP
Class or Instance UID is not a valid UID (PS3.5 §9.1; such a value never becomes a path),
that has no data set, or whose data set cannot be decoded when re-encoding is asked; 0x0124
"Refused: Not Authorized" (PS3.7 Annex C) for a C-STORE the `accept` hook refuses, e.g. one
that belongs to no outstanding C-MOVE.

Limits (log events in brackets): a data set larger than `max_instance_size` ends the
association with A-ABORT and leaves no file [c_store.too_large] - draining a lying 100 GiB
data set only to answer 0xA700 would hand the peer our bandwidth; the free-disk floor is
checked before each write to disk (every `WRITE_BUFFER` bytes and the last bytes of each
instance) [storage.disk_floor]; a data set that arrives slower than `min_rate` bytes/s
(after an allowance of the association's DIMSE/idle timeout) ends the association
[c_store.too_slow]: a trickling peer cannot hold a slot forever. Both limits are enforced by
`Association.iter_dataset`, for every data set an acceptor reads (see aiomove.server).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.to_thread

from aiomove.association import Association
from aiomove.errors import DataRateTooLow, DataSetRefused, DataSetTooLarge
from aiomove.log import get_logger
from aiomove.modality import modality_prefix
from aiomove.proto import uids
from aiomove.proto.dimse import (
    AFFECTED_SOP_CLASS_UID,
    AFFECTED_SOP_INSTANCE_UID,
    CEchoRQ,
    CStoreRQ,
    DimseMessage,
    make_response,
)
from aiomove.reencode import PREAMBLE as PREAMBLE
from aiomove.reencode import WRITABLE_SYNTAXES as WRITABLE_SYNTAXES
from aiomove.reencode import GroupLength as GroupLength
from aiomove.reencode import OutputOptions as OutputOptions
from aiomove.reencode import encode_file_meta as encode_file_meta
from aiomove.reencode import reencode as reencode
from aiomove.reencode import reencode_file
from aiomove.server import (
    DEFAULT_MAX_DATA_SET_SIZE,
    AcceptorConfig,
    Handler,
    handle_echo,
)
from aiomove.server import DEFAULT_MIN_RATE as DEFAULT_MIN_RATE  # the CLI's default
from aiomove.spool import WRITE_BUFFER as WRITE_BUFFER
from aiomove.spool import DiskFloorReached as DiskFloorReached
from aiomove.spool import Spool, replace_file, too_large
from aiomove.spool import check_floor as check_floor
from aiomove.spool import closing as closing
from aiomove.spool import drain as drain
from aiomove.spool import free_bytes as free_bytes
from aiomove.transfer import Prefer, storage_contexts

log = get_logger("aiomove.storage")

#: Temporary names: ".<name>.part-<tag>-<n>". The tag is random per process (two processes
#: may share a directory), the number counts; cheaper than a random token per file.
_TEMP_TAG: Final = secrets.token_hex(4)
_temp_numbers = itertools.count(1)

SUCCESS: Final = 0x0000
OUT_OF_RESOURCES: Final = 0xA700  # PS3.4 B.2.3 Refused: Out of Resources
CANNOT_UNDERSTAND: Final = 0xC000  # PS3.4 B.2.3 Error: Cannot understand
NOT_AUTHORIZED: Final = 0x0124  # PS3.7 Annex C Refused: Not Authorized

#: Largest instance accepted by default (the acceptor's data set limit).
DEFAULT_MAX_INSTANCE_SIZE: Final = DEFAULT_MAX_DATA_SET_SIZE
#: Free space left on the output file system by default: room for logs and databases.
DEFAULT_MIN_FREE_BYTES: Final = 256 << 20

#: A data set grew beyond the sink's `max_instance_size`: the association is aborted.
InstanceTooLarge = DataSetTooLarge


@dataclass(frozen=True)
class StoreRequest:
    """One C-STORE-RQ as the sink sees it (PS3.7 §9.1.1.1, with the association's context)."""

    message_id: int
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str
    calling_ae_title: str
    called_ae_title: str
    move_originator_ae_title: str | None
    move_originator_message_id: int | None
    assoc_id: int
    peer: str
    priority: int


@dataclass(frozen=True)
class StoreResult:
    """The C-STORE status to answer, where the object went, and the data set bytes received."""

    status: int
    path: Path | None
    size: int
    error: str | None = None


def _safe_name(name: str) -> bool:
    """A single, ordinary path component: never a way out of the output directory."""
    return (
        bool(name)
        and name not in (".", "..")
        and not name.startswith(".")
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
        and len(name.encode("utf-8", "replace")) <= 255
    )


def default_filename(request: StoreRequest) -> str:
    """movescu's name for a received object: "<modality prefix>.<SOP Instance UID>"."""
    return f"{modality_prefix(request.sop_class_uid)}.{request.sop_instance_uid}"


_DEFAULT_OPTIONS: Final = OutputOptions()  # immutable: shared by every sink


class FileSink:
    """Writes received objects into one directory (movescu's `-od`).

    Every file is complete or absent: written under a temporary name, then renamed. `fsync`
    also makes it durable before the C-STORE-RSP (a power cut cannot lose an instance the
    source was told is stored); it costs a disk flush per instance, about half of the receive
    time on ordinary disks, so it is off by default, as in DCMTK and pynetdicom.

    `max_instance_size` (None: no limit) bounds one data set, even one that is only drained;
    `min_free_bytes` (0: none) is the free space every write must leave on the file system.
    """

    def __init__(
        self,
        directory: Path,
        *,
        options: OutputOptions = _DEFAULT_OPTIONS,
        ignore: bool = False,
        filename: Callable[[StoreRequest], str] | None = None,
        fsync: bool = False,
        max_instance_size: int | None = DEFAULT_MAX_INSTANCE_SIZE,
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
    ) -> None:
        self.directory = Path(directory)
        self.fsync = fsync
        self.max_instance_size = max_instance_size
        self.min_free_bytes = min_free_bytes
        self.options = options
        self.ignore = ignore
        self.filename = filename or default_filename

    def _refusal(self, request: StoreRequest) -> str | None:
        if not uids.is_valid_uid(request.sop_class_uid):
            return "invalid Affected SOP Class UID"
        if not uids.is_valid_uid(request.sop_instance_uid):
            return "invalid Affected SOP Instance UID"
        return None

    async def store(
        self, request: StoreRequest, chunks: AsyncIterator[bytes | memoryview]
    ) -> StoreResult:
        """Receive one data set; always reads `chunks` to the end unless it raises
        (InstanceTooLarge beyond `max_instance_size`, counted here as the bytes go by:
        no extra generator layer per chunk)."""
        async with closing(chunks):
            return await self._store(request, chunks)

    async def _store(
        self, request: StoreRequest, chunks: AsyncIterator[bytes | memoryview]
    ) -> StoreResult:
        refusal = self._refusal(request)
        limit = self.max_instance_size
        if refusal is not None:
            return StoreResult(CANNOT_UNDERSTAND, None, await drain(chunks, limit), refusal)
        if self.ignore:
            return StoreResult(SUCCESS, None, await drain(chunks, limit))
        name = self.filename(request)
        if not _safe_name(name):
            size = await drain(chunks, limit)
            return StoreResult(CANNOT_UNDERSTAND, None, size, "unusable file name")
        final = self.directory / name
        reencode = self.options.reencodes(request.transfer_syntax)
        spool = Spool(
            self.directory / f".{name}.part-{_TEMP_TAG}-{next(_temp_numbers)}",
            self.fsync,
            self.min_free_bytes,
        )
        try:
            size, error, existed = await self._receive(
                request, chunks, spool, None if reencode else final
            )
            if error is not None:
                return StoreResult(OUT_OF_RESOURCES, None, size, error)
            if reencode:
                return await self._reencode(request, spool, final, size)
            if existed:  # DCMTK: "DICOM file already exists, overwriting"
                log.warning("c_store.overwritten", path=str(final))
            return StoreResult(SUCCESS, final, size)
        except BaseException:
            await spool.discard()
            raise

    async def _receive(
        self,
        request: StoreRequest,
        chunks: AsyncIterator[bytes | memoryview],
        spool: Spool,
        final: Path | None,
    ) -> tuple[int, str | None, bool]:
        """Spool the data set, and rename it to `final` if given (None: it is re-encoded).

        On a disk error keep draining so the association stays usable. Returns the size,
        the error and whether `final` was overwritten."""
        header = b""
        existed = False
        if self.options.write_file or final is None:
            header = encode_file_meta(
                request.sop_class_uid,
                request.sop_instance_uid,
                request.transfer_syntax,
                request.calling_ae_title,
            )
        size = 0
        limit = self.max_instance_size
        error: str | None = None
        await spool.open(header)  # only buffers: the file is created on the first write
        async for chunk in chunks:
            size += len(chunk)
            if limit is not None and size > limit:
                raise too_large(limit)
            if error is None:
                try:
                    await spool.write(chunk)
                except OSError as exc:  # free the space now; drain the rest
                    error = _write_failed(exc, request)
                    await spool.discard()
        if error is None:
            try:
                existed = await spool.close(final)
            except OSError as exc:
                error = _write_failed(exc, request)
                await spool.discard()
        return size, error, existed

    async def _publish(self, temporary: Path, final: Path, size: int) -> StoreResult:
        try:
            existed = await anyio.to_thread.run_sync(replace_file, temporary, final)
        except OSError as exc:
            return StoreResult(OUT_OF_RESOURCES, None, size, _describe(exc))
        if existed:  # DCMTK: "DICOM file already exists, overwriting"
            log.warning("c_store.overwritten", path=str(final))
        return StoreResult(SUCCESS, final, size)

    async def _reencode(
        self, request: StoreRequest, spool: Spool, final: Path, size: int
    ) -> StoreResult:
        out = Spool(spool.path.with_name(spool.path.name + "-out"), self.fsync)
        status = CANNOT_UNDERSTAND
        try:
            error = await anyio.to_thread.run_sync(
                reencode_file,
                spool.path,
                out.path,
                self.options,
                request.calling_ae_title,
                self.fsync,
                self.min_free_bytes,
            )
        except OSError as exc:
            status, error = OUT_OF_RESOURCES, _write_failed(exc, request)
        except BaseException:
            await out.discard()
            raise
        finally:
            await spool.discard()
        if error is not None:
            await out.discard()
            return StoreResult(status, None, size, error)
        return await self._publish(out.path, final, size)


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _write_failed(exc: OSError, request: StoreRequest) -> str:
    """Why a write failed (the C-STORE is answered 0xA700), logged as what it was."""
    if isinstance(exc, DiskFloorReached):
        log.warning(
            "storage.disk_floor",
            uid=request.sop_instance_uid,
            free=exc.free,
            floor=exc.floor,
            peer=request.peer,
        )
    else:
        log.warning(
            "storage.write_failed",
            uid=request.sop_instance_uid,
            error=_describe(exc),
            errno=exc.errno,
            peer=request.peer,
        )
    return _describe(exc)


# --- the C-STORE SCP handler --------------------------------------------------------------

OnStored = Callable[[StoreRequest, StoreResult], Awaitable[None] | None]


def _comment(text: str) -> str:
    """An Error Comment (LO, PS3.5 Table 6.2-1): printable ASCII, no backslash, 64 chars."""
    clean = "".join(c if c.isascii() and c.isprintable() and c != "\\" else "?" for c in text)
    return clean[:64].strip() or "error"


#: Whether to take a C-STORE at all (e.g. only those of an outstanding C-MOVE).
Accept = Callable[[StoreRequest], bool]


def store_handler(
    sink: FileSink,
    on_stored: OnStored | None = None,
    *,
    accept: Accept | None = None,
    min_rate: float = DEFAULT_MIN_RATE,
) -> Handler:
    """A server handler for C-STORE-RQ (PS3.7 §9.3.1, PS3.4 Annex B).

    `on_stored` runs after the object is on disk and before the C-STORE-RSP is sent, so that
    a C-MOVE SCU has seen every sub-operation before the final C-MOVE-RSP can arrive; it also
    sees refused C-STOREs (their status says so).

    `accept`, when given, decides from the command alone: a refused C-STORE is drained and
    answered 0x0124 Refused: Not Authorized [c_store.unsolicited]. `min_rate` (bytes/s, 0 for
    none) paces the data set after an allowance of the association's DIMSE timeout (see
    `Association.iter_dataset`); a slower peer is aborted [c_store.too_slow].
    """

    async def handle_store(assoc: Association, context_id: int, message: DimseMessage) -> None:
        assert isinstance(message, CStoreRQ)
        # PDVs on a context that was not accepted never get here (PS3.8 §9.3.5, connection.py)
        syntax = next(c.transfer_syntax for c in assoc.contexts if c.context_id == context_id)
        request = StoreRequest(
            message_id=message.message_id,
            sop_class_uid=message.affected_sop_class_uid,
            sop_instance_uid=message.affected_sop_instance_uid,
            transfer_syntax=syntax,
            calling_ae_title=assoc.request.calling_ae_title,
            called_ae_title=assoc.request.called_ae_title,
            move_originator_ae_title=message.move_originator_ae_title,
            move_originator_message_id=message.move_originator_message_id,
            assoc_id=assoc.id,
            peer=assoc.peer,
            priority=message.priority,
        )
        if not message.has_dataset:
            result = StoreResult(CANNOT_UNDERSTAND, None, 0, "C-STORE-RQ without a data set")
        else:
            result = await _receive_limited(assoc, sink, request, accept, min_rate)
        assoc.log.info(
            "c_store.received",
            uid=request.sop_instance_uid,
            size=result.size,
            path=str(result.path) if result.path is not None else None,
            status=f"0x{result.status:04X}",
            **({"error": result.error} if result.error else {}),
        )
        if on_stored is not None:
            pending = on_stored(request, result)
            if pending is not None:
                await pending
        await assoc.send(_response(message, request, result), context_id)

    return handle_store


async def _receive_limited(
    assoc: Association,
    sink: FileSink,
    request: StoreRequest,
    accept: Accept | None,
    min_rate: float,
) -> StoreResult:
    """The data set into the sink (or drained, if `accept` refuses it), bounded and paced
    by `iter_dataset`; a broken limit is logged here, under C-STORE's names, once."""
    chunks = assoc.iter_dataset(limit=sink.max_instance_size, min_rate=min_rate)
    try:
        async with closing(chunks):
            return await _receive_or_refuse(assoc, sink, request, accept, chunks)
    except DataSetRefused as exc:
        uid = request.sop_instance_uid
        if isinstance(exc, DataRateTooLow):
            assoc.log.warning("c_store.too_slow", uid=uid, min_rate=exc.limit)
        else:
            assoc.log.warning("c_store.too_large", uid=uid, limit=exc.limit, peer=request.peer)
        exc.logged = True
        raise


async def _receive_or_refuse(
    assoc: Association,
    sink: FileSink,
    request: StoreRequest,
    accept: Accept | None,
    chunks: AsyncIterator[bytes | memoryview],
) -> StoreResult:
    """Into the sink, or drained and refused when `accept` says no."""
    if accept is not None and not accept(request):
        assoc.log.warning(
            "c_store.unsolicited",
            uid=request.sop_instance_uid,
            move_originator=request.move_originator_ae_title,
            move_originator_message_id=request.move_originator_message_id,
        )
        size = await drain(chunks, sink.max_instance_size)
        return StoreResult(NOT_AUTHORIZED, None, size, "not part of an outstanding C-MOVE")
    return await sink.store(request, chunks)


def _response(message: CStoreRQ, request: StoreRequest, result: StoreResult) -> DimseMessage:
    fields: dict[str, Any] = {}
    if result.status != SUCCESS:
        fields["error_comment"] = _comment(result.error or "")
        if not uids.is_valid_uid(request.sop_class_uid):
            fields["offending_element"] = (AFFECTED_SOP_CLASS_UID,)
        elif not uids.is_valid_uid(request.sop_instance_uid):
            fields["offending_element"] = (AFFECTED_SOP_INSTANCE_UID,)
    # An invalid UID is not echoed back (the fields are optional, PS3.7 Table 9.3-2).
    for name, value in (
        ("affected_sop_class_uid", request.sop_class_uid),
        ("affected_sop_instance_uid", request.sop_instance_uid),
    ):
        if not uids.is_valid_uid(value):
            fields[name] = None
    return make_response(message, result.status, **fields)


def storage_config(
    ae_title: str,
    sink: FileSink,
    prefer: Prefer = Prefer.UNCOMPRESSED,
    *,
    on_stored: OnStored | None = None,
    accept: Accept | None = None,
    min_rate: float = DEFAULT_MIN_RATE,
    **kw: Any,
) -> AcceptorConfig:
    """An `AcceptorConfig` for a Storage SCP: Verification and every Storage SOP class,
    C-ECHO and C-STORE handlers (see `store_handler` for `on_stored`, `accept` and
    `min_rate`). Other `AcceptorConfig` fields go in `kw`."""
    kw.setdefault("max_data_set_size", sink.max_instance_size)
    kw.setdefault("min_rate", min_rate)
    handlers: Mapping[type, Handler] = {
        CEchoRQ: handle_echo,
        CStoreRQ: store_handler(sink, on_stored, accept=accept, min_rate=min_rate),
    }
    return AcceptorConfig(
        ae_title=ae_title, contexts=storage_contexts(prefer), handlers=handlers, **kw
    )
