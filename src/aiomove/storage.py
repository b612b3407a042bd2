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
  disk, decoded with pydicom and encoded again by `_Encoder`, which follows DCMTK's rules;
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
checked before each instance and before each write [storage.disk_floor]; a data set that
arrives slower than `min_rate` bytes/s (after an allowance of the association's DIMSE/idle
timeout) ends the association [c_store.too_slow]: a trickling peer cannot hold a slot forever.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import math
import os
import secrets
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import anyio
import anyio.to_thread
import pydicom
from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr, write_data_element
from pydicom.uid import UID

from aiomove.association import Association
from aiomove.errors import AiomoveError, DimseTimeout
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
from aiomove.server import AcceptorConfig, Handler, handle_echo
from aiomove.transfer import Prefer, storage_contexts

log = get_logger("aiomove.storage")

#: Received bytes gathered before one write to disk.
WRITE_BUFFER: Final = 1 << 20

#: Temporary names: ".<name>.part-<tag>-<n>". The tag is random per process (two processes
#: may share a directory), the number counts; cheaper than a random token per file.
_TEMP_TAG: Final = secrets.token_hex(4)
_temp_numbers = itertools.count(1)

SUCCESS: Final = 0x0000
OUT_OF_RESOURCES: Final = 0xA700  # PS3.4 B.2.3 Refused: Out of Resources
CANNOT_UNDERSTAND: Final = 0xC000  # PS3.4 B.2.3 Error: Cannot understand
NOT_AUTHORIZED: Final = 0x0124  # PS3.7 Annex C Refused: Not Authorized

#: Largest data set accepted by default: well above any single image or multi-frame object
#: seen in practice (a 2 GiB instance is tested), far below a lying 4 GiB+ stream.
DEFAULT_MAX_INSTANCE_SIZE: Final = 8 << 30
#: Free space left on the output file system by default: room for logs and databases.
DEFAULT_MIN_FREE_BYTES: Final = 256 << 20
#: Slowest acceptable data set (bytes/s), after an allowance of the DIMSE/idle timeout.
DEFAULT_MIN_RATE: Final = 1024


class InstanceTooLarge(AiomoveError):
    """A data set grew beyond the sink's `max_instance_size`: the association is aborted."""


class DiskFloorReached(OSError):
    """Writing would leave less free space than the sink's `min_free_bytes` (an ENOSPC)."""

    def __init__(self, free: int, floor: int) -> None:
        super().__init__(errno.ENOSPC, f"free disk space {free} bytes is below the floor {floor}")
        self.free = free
        self.floor = floor


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged writer may still use on `directory`'s file system."""
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


def check_floor(directory: Path, needed: int, floor: int) -> None:
    """Raise DiskFloorReached if writing `needed` bytes would go below `floor` free bytes."""
    if floor <= 0:
        return
    free = free_bytes(directory)
    if free - needed < floor:
        raise DiskFloorReached(free, floor)


GroupLength = Literal["recalc", "create", "remove"]

#: Output transfer syntaxes movescu can write (+te, +tb, +ti, +td).
WRITABLE_SYNTAXES: Final = frozenset(
    {uids.EXPLICIT_VR_LE, uids.EXPLICIT_VR_BE, uids.IMPLICIT_VR_LE, uids.DEFLATED_EXPLICIT_VR_LE}
)


@dataclass(frozen=True)
class OutputOptions:
    """How received objects are written; the defaults are movescu's.

    bit_preserving `+B`; write_file `+F`/`-F`; transfer_syntax None is `+t=` (same as
    received), else one of WRITABLE_SYNTAXES; new_vr `+u`/`-u`; group_length `+g=`/`+g`/`-g`;
    explicit_length `+e`/`-e`; padding `+p f i` (None: `-p`); compression_level `+cl`.
    """

    bit_preserving: bool = False
    write_file: bool = True
    transfer_syntax: str | None = None
    new_vr: bool = True
    group_length: GroupLength = "recalc"
    explicit_length: bool = True
    padding: tuple[int, int] | None = None
    compression_level: int = 6

    def __post_init__(self) -> None:
        if self.transfer_syntax is not None and self.transfer_syntax not in WRITABLE_SYNTAXES:
            raise ValueError(f"cannot write transfer syntax {self.transfer_syntax!r}")
        if self.group_length not in ("recalc", "create", "remove"):
            raise ValueError(f"group_length must be recalc, create or remove: {self.group_length}")
        if not 0 <= self.compression_level <= 9:
            raise ValueError(f"compression level must be 0-9: {self.compression_level}")
        if self.padding is not None:
            if any(n < 0 or n % 2 for n in self.padding):
                raise ValueError(f"padding lengths must be even and not negative: {self.padding}")
            if not self.write_file:
                raise ValueError("padding (+p) is not possible with --write-dataset (-F)")
        if self.bit_preserving and self.asks_reencoding:
            raise ValueError("--bit-preserving (+B) excludes +t?, -u, +g/-g, -e, +p and +cl")

    @property
    def _changes_encoding(self) -> bool:
        return (
            self.transfer_syntax is not None
            or not self.new_vr
            or self.group_length != "recalc"
            or not self.explicit_length
            or self.padding is not None
        )

    @property
    def asks_reencoding(self) -> bool:
        """Whether any option other than the defaults changes the encoding."""
        return self._changes_encoding or self.compression_level != 6

    def reencodes(self, received_syntax: str) -> bool:
        """Whether a data set received in `received_syntax` is decoded and written again:
        when any encoding option is given (`+cl` only counts for deflated output)."""
        if self.bit_preserving:
            return False
        deflated = (self.transfer_syntax or received_syntax) == uids.DEFLATED_EXPLICIT_VR_LE
        return self._changes_encoding or (self.compression_level != 6 and deflated)


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


# --- Part 10 file meta information (PS3.10 §7.1, Table 7.1-1) ----------------------------

#: PS3.10 §7.1: 128-byte preamble (zeros here) and the "DICM" prefix.
PREAMBLE: Final = bytes(128) + b"DICM"


def _meta_element(element: int, vr: bytes, value: bytes) -> bytes:
    """One group 0002 element in explicit VR little endian (PS3.5 §7.1.2)."""
    if vr == b"OB":
        return struct.pack("<HH2sxxI", 0x0002, element, vr, len(value)) + value
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def _pad(text: str, pad: bytes) -> bytes:
    raw = text.encode("ascii", "replace")
    return raw + pad if len(raw) % 2 else raw


def encode_file_meta(
    sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str, source_ae_title: str = ""
) -> bytes:
    """Preamble, "DICM" and the file meta group as DCMTK storescp writes it.

    Elements: group length, version 00\\01, media storage SOP class and instance, transfer
    syntax, aiomove's implementation class UID and version name, and the source AE title
    (the calling AE) when there is one. UIDs are NUL padded, text space padded (PS3.5 §6.2).
    """
    body = b"".join(
        (
            _meta_element(0x0001, b"OB", b"\x00\x01"),
            _meta_element(0x0002, b"UI", _pad(sop_class_uid, b"\x00")),
            _meta_element(0x0003, b"UI", _pad(sop_instance_uid, b"\x00")),
            _meta_element(0x0010, b"UI", _pad(transfer_syntax, b"\x00")),
            _meta_element(0x0012, b"UI", _pad(uids.IMPLEMENTATION_CLASS_UID, b"\x00")),
            _meta_element(0x0013, b"SH", _pad(uids.IMPLEMENTATION_VERSION_NAME, b" ")),
            _meta_element(0x0016, b"AE", _pad(source_ae_title, b" ")) if source_ae_title else b"",
        )
    )
    return PREAMBLE + _meta_element(0x0000, b"UL", struct.pack("<I", len(body))) + body


# --- writing to disk off the event loop ---------------------------------------------------


def _write_all(fh: Any, data: bytes | bytearray) -> None:
    """The one place received bytes reach the disk (tests replace it to simulate ENOSPC)."""
    fh.write(data)


def _append(fh: Any, path: Path, data: bytes | bytearray, floor: int = 0) -> Any:
    """Create the temporary file on first use (exclusively: never someone else's), append.

    The free-disk floor is checked before every write (one statvfs per buffer)."""
    try:
        check_floor(path.parent, len(data), floor)
        if fh is None:
            fh = open(path, "xb")  # noqa: SIM115 - closed by _complete or _discard
        _write_all(fh, data)
    except BaseException:
        _discard(fh, path)
        raise
    return fh


def _complete(
    fh: Any,
    path: Path,
    data: bytes | bytearray,
    fsync: bool,
    floor: int = 0,
    final: Path | None = None,
) -> bool:
    """The last bytes, then flush (and fsync when asked) and close; then, with `final`,
    the rename into place, in the same worker-thread call (one hop per small instance).
    Whether `final` already existed."""
    fh = _append(fh, path, data, floor)
    try:
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())
    finally:
        fh.close()
    return False if final is None else _replace(path, final)


def _discard(fh: Any, path: Path) -> None:
    if fh is not None:
        with contextlib.suppress(OSError):
            fh.close()
    with contextlib.suppress(OSError):  # already gone, or its directory is
        path.unlink()


def _replace(temporary: Path, final: Path) -> bool:
    """Rename into place (atomic, overwriting); whether a file was there. Cleans up on error."""
    existed = final.exists()
    try:
        os.replace(temporary, final)
    except OSError:
        _discard(None, temporary)
        raise
    return existed


class _Spool:
    """A temporary file filled from the event loop, written by worker threads.

    Opened lazily: an instance smaller than WRITE_BUFFER costs one thread hop in all (open,
    write, fsync, close in `close()`), a large one one more per buffer. Memory stays bounded
    by WRITE_BUFFER whatever the instance size.
    """

    def __init__(self, path: Path, fsync: bool = False, floor: int = 0) -> None:
        self.path = path
        self.fsync = fsync
        self.floor = floor
        self._fh: Any = None
        self._buffer = bytearray()

    async def open(self, header: bytes) -> None:
        self._buffer += header

    async def write(self, chunk: bytes | memoryview) -> None:
        self._buffer += chunk  # copies: the chunk may be a view of a reused PDU buffer
        if len(self._buffer) >= WRITE_BUFFER:
            data, self._buffer = self._buffer, bytearray()
            self._fh = await anyio.to_thread.run_sync(
                _append, self._fh, self.path, data, self.floor
            )

    async def close(self, final: Path | None = None) -> bool:
        """Write what is left (durably with fsync); with `final`, rename it there too.

        Whether `final` already existed. On error the caller discards the spool."""
        data, self._buffer = self._buffer, bytearray()
        fh, self._fh = self._fh, None
        return await anyio.to_thread.run_sync(
            _complete, fh, self.path, data, self.fsync, self.floor, final
        )

    async def discard(self) -> None:
        """Remove the file; shielded so that a cancelled store still cleans up."""
        with anyio.CancelScope(shield=True):
            self._buffer = bytearray()
            fh, self._fh = self._fh, None
            await anyio.to_thread.run_sync(_discard, fh, self.path)


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


async def drain(chunks: AsyncIterator[bytes | memoryview]) -> int:
    """Read a data set to its end without keeping it; the number of bytes read."""
    size = 0
    async for chunk in chunks:
        size += len(chunk)
    return size


@contextlib.asynccontextmanager
async def closing(chunks: AsyncIterator[Any]) -> AsyncIterator[None]:
    """Close an async generator we stop reading early (a raise, a cancel): it must not be
    left to the garbage collector, which trio reports."""
    try:
        yield
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            with anyio.CancelScope(shield=True):
                await aclose()


async def bounded(
    chunks: AsyncIterator[bytes | memoryview], limit: int | None, request: StoreRequest
) -> AsyncIterator[bytes | memoryview]:
    """`chunks`, raising InstanceTooLarge once more than `limit` bytes went through."""
    size = 0
    async with closing(chunks):
        async for chunk in chunks:
            size += len(chunk)
            if limit is not None and size > limit:
                log.warning(
                    "c_store.too_large",
                    uid=request.sop_instance_uid,
                    limit=limit,
                    peer=request.peer,
                )
                raise InstanceTooLarge(f"data set larger than {limit} bytes")
            yield chunk


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
        options: OutputOptions = OutputOptions(),
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
        (InstanceTooLarge beyond `max_instance_size`)."""
        chunks = bounded(chunks, self.max_instance_size, request)
        async with closing(chunks):
            return await self._store(request, chunks)

    async def _store(
        self, request: StoreRequest, chunks: AsyncIterator[bytes | memoryview]
    ) -> StoreResult:
        refusal = self._refusal(request)
        if refusal is not None:
            return StoreResult(CANNOT_UNDERSTAND, None, await drain(chunks), refusal)
        if self.ignore:
            return StoreResult(SUCCESS, None, await drain(chunks))
        name = self.filename(request)
        if not _safe_name(name):
            return StoreResult(CANNOT_UNDERSTAND, None, await drain(chunks), "unusable file name")
        final = self.directory / name
        reencode = self.options.reencodes(request.transfer_syntax)
        spool = _Spool(
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
        spool: _Spool,
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
        error: str | None = None
        try:
            await spool.open(header)
        except OSError as exc:
            error = _write_failed(exc, request)
        async for chunk in chunks:
            size += len(chunk)
            if error is None:
                try:
                    await spool.write(chunk)
                except OSError as exc:
                    error = _write_failed(exc, request)
                    await spool.discard()
        if error is None:
            try:
                existed = await spool.close(final)
            except OSError as exc:
                error = _write_failed(exc, request)
        if error is not None:
            await spool.discard()
        return size, error, existed

    async def _publish(self, temporary: Path, final: Path, size: int) -> StoreResult:
        try:
            existed = await anyio.to_thread.run_sync(_replace, temporary, final)
        except OSError as exc:
            return StoreResult(OUT_OF_RESOURCES, None, size, _describe(exc))
        if existed:  # DCMTK: "DICOM file already exists, overwriting"
            log.warning("c_store.overwritten", path=str(final))
        return StoreResult(SUCCESS, final, size)

    async def _reencode(
        self, request: StoreRequest, spool: _Spool, final: Path, size: int
    ) -> StoreResult:
        out = _Spool(spool.path.with_name(spool.path.name + "-out"), self.fsync)
        try:
            outcome = await anyio.to_thread.run_sync(
                _reencode_file,
                spool.path,
                out.path,
                self.options,
                request,
                self.fsync,
                self.min_free_bytes,
            )
        except BaseException:
            await out.discard()
            raise
        finally:
            await spool.discard()
        if outcome is not None:
            status, error = outcome
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


def _reencode_file(
    spool: Path,
    out: Path,
    options: OutputOptions,
    request: StoreRequest,
    fsync: bool,
    floor: int = 0,
) -> tuple[int, str] | None:
    """Decode the spooled Part 10 file and write it again (worker thread); None on success."""
    try:
        parts = reencode(spool, options, request.calling_ae_title)
    except Exception as exc:  # pydicom raises many kinds of errors on bad input
        return CANNOT_UNDERSTAND, f"cannot decode data set: {type(exc).__name__}"
    try:
        check_floor(out.parent, sum(map(len, parts)), floor)
        with open(out, "xb") as fh:
            for part in parts:
                _write_all(fh, part)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
    except OSError as exc:
        return OUT_OF_RESOURCES, _write_failed(exc, request)
    return None


# --- re-encoding (DCMTK's DcmItem::write with movescu's output options) -------------------

#: Post-1993 VRs that `-u` writes as OB (DCMTK dcmDisableGenerationOfNewVRs); all of them
#: have a 4-byte length in explicit VR, as OB has (PS3.5 Table 7.1-1).
_NEW_VRS: Final = frozenset({b"UN", b"UT", b"UC", b"UR", b"OF", b"OD", b"OL", b"OV", b"SV", b"UV"})
#: Word size of the byte-string VRs pydicom leaves in the received byte order.
_WORD_SIZE: Final = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
_ITEM: Final = 0xFFFEE000
_ITEM_END: Final = 0xFFFEE00D
_SEQUENCE_END: Final = 0xFFFEE0DD
_PADDING: Final = 0xFFFCFFFC  # (FFFC,FFFC) Data Set Trailing Padding


def _maybe_sequence(elem: Any) -> bool:
    """Whether a raw element is (or, read in implicit VR, may be) a sequence to walk into."""
    if elem.VR is not None:
        return bool(elem.VR == "SQ")
    return elem.length == 0xFFFFFFFF or (
        dictionary_has_tag(elem.tag) and dictionary_VR(elem.tag) == "SQ"
    )


def _swapped(value: bytes, width: int) -> bytes:
    """`value` with each `width`-byte word reversed (a change of byte order)."""
    view = memoryview(value)
    usable = len(view) - len(view) % width
    out = bytearray(value)
    for i in range(width):
        out[i:usable:width] = view[width - 1 - i : usable : width]
    return bytes(out)


class _Encoder:
    """Encodes a pydicom data set as DCMTK writes one with movescu's options.

    - Sequences and items get explicit lengths (`+e`) or undefined lengths with delimiters
      (`-e`); encapsulated pixel data keeps its undefined length.
    - Group lengths (gggg,0000) are recalculated where present (`+g=`), added to every group
      (`+g`) or dropped (`-g`), in items too; pydicom's own writer would drop them all.
    - Existing (FFFC,FFFC) padding is removed; `+p f i` pads the file to a multiple of f bytes
      and each item to a multiple of i (DcmItem::computeGroupLengthAndPadding).
    - `-u` relabels UN, UT, UC, UR, OF, OD, OL, OV, SV and UV as OB in explicit VR.
    - On a change of byte order OW/OF/OL/OD/OV words are swapped (pydicom does not).
    """

    def __init__(
        self, *, implicit: bool, little: bool, convert: bool, swap: bool, options: OutputOptions
    ) -> None:
        self.implicit = implicit
        self.little = little
        self.convert = convert  # the encoding changes: raw elements must be decoded first
        self.swap = swap
        self.options = options
        self.order = "<" if little else ">"

    def _tag(self, tag: int) -> bytes:
        return struct.pack(self.order + "HH", tag >> 16, tag & 0xFFFF)

    def _long_header(self, tag: int, vr: bytes, length: int) -> bytes:
        """Header of an element whose explicit VR form has a 4-byte length (SQ, OB...)."""
        if self.implicit:
            return self._tag(tag) + struct.pack(self.order + "I", length)
        return self._tag(tag) + vr + b"\x00\x00" + struct.pack(self.order + "I", length)

    def _group_length(self, group: int, value: int) -> bytes:
        length = (
            struct.pack(self.order + "I", 4)
            if self.implicit
            else b"UL" + struct.pack(self.order + "H", 4)
        )
        return self._tag(group << 16) + length + struct.pack(self.order + "I", value)

    def _padding(self, used: int, multiple: int) -> bytes:
        if not multiple or used % multiple == 0:
            return b""
        pad = multiple - used % multiple
        header = 8 if self.implicit else 12
        while pad < header:
            pad += multiple
        return self._long_header(_PADDING, b"OB", pad - header) + bytes(pad - header)

    def content(self, ds: Any, charset: Any, pad: int, offset: int = 0) -> bytes:
        """The encoded elements of a data set or item, padded to a multiple of `pad`."""
        value = ds.get("SpecificCharacterSet")
        if value:
            charset = list(value) if isinstance(value, list | tuple) else str(value)
        groups: dict[int, list[bytes]] = {}
        had_length: set[int] = set()
        for tag in sorted(ds.keys()):
            if tag.element == 0:
                had_length.add(tag.group)
            elif tag != _PADDING:
                groups.setdefault(tag.group, []).append(self.element(ds, tag, charset))
        parts: list[bytes] = []
        mode = self.options.group_length
        for group in sorted(groups):
            encoded = groups[group]
            total = sum(map(len, encoded))
            if (mode == "create" or (mode == "recalc" and group in had_length)) and (
                total <= 0xFFFFFFFF
            ):
                parts.append(self._group_length(group, total))
            parts.extend(encoded)
        body = b"".join(parts)
        return body + self._padding(offset + len(body), pad)

    def element(self, ds: Any, tag: Any, charset: Any) -> bytes:
        elem = ds.get_item(tag)
        if elem.is_raw and (
            self.convert or _maybe_sequence(elem) or (elem.VR is None and not self.implicit)
        ):
            elem = ds[tag]
        if not elem.is_raw and elem.VR == "SQ":
            return self.sequence(elem, charset)
        width = _WORD_SIZE.get(elem.VR or "")
        if self.swap and width and not elem.is_raw and isinstance(elem.value, bytes):
            elem = DataElement(elem.tag, elem.VR, _swapped(elem.value, width))
        buffer = DicomBytesIO()
        buffer.is_implicit_VR = self.implicit
        buffer.is_little_endian = self.little
        write_data_element(buffer, elem, charset)
        data = buffer.getvalue()
        if not self.options.new_vr and not self.implicit and data[4:6] in _NEW_VRS:
            data = data[:4] + b"OB" + data[6:]
        return bytes(data)

    def sequence(self, elem: Any, charset: Any) -> bytes:
        items = b"".join(self.item(item, charset) for item in elem.value)
        if self.options.explicit_length:
            return self._long_header(elem.tag, b"SQ", len(items)) + items
        end = self._tag(_SEQUENCE_END) + bytes(4)
        return self._long_header(elem.tag, b"SQ", 0xFFFFFFFF) + items + end

    def item(self, ds: Any, charset: Any) -> bytes:
        pad = self.options.padding[1] if self.options.padding else 0
        body = self.content(ds, charset, pad)
        if self.options.explicit_length:
            return self._tag(_ITEM) + struct.pack(self.order + "I", len(body)) + body
        end = self._tag(_ITEM_END) + bytes(4)
        return self._tag(_ITEM) + b"\xff\xff\xff\xff" + body + end


def reencode(spool: Path, options: OutputOptions, source_ae_title: str = "") -> list[bytes]:
    """The output file of a spooled Part 10 file, re-encoded as `options` ask, in parts."""
    ds = pydicom.dcmread(spool)
    received = UID(ds.file_meta.TransferSyntaxUID)
    out = options.transfer_syntax or str(received)
    if received.is_encapsulated and out != received:
        log.warning("c_store.cannot_convert", received=str(received), asked=out)
        out = str(received)  # no decompression here; keep what arrived
    implicit, little = out == uids.IMPLICIT_VR_LE, out != uids.EXPLICIT_VR_BE
    was_implicit, was_little = ds.original_encoding
    convert = little != was_little or (bool(was_implicit) and not implicit)
    if convert:
        correct_ambiguous_vr(ds, little)
    encoder = _Encoder(
        implicit=implicit,
        little=little,
        convert=convert,
        swap=little != was_little,
        options=options,
    )
    meta = b""
    if options.write_file:
        meta = encode_file_meta(
            str(ds.file_meta.MediaStorageSOPClassUID),
            str(ds.file_meta.MediaStorageSOPInstanceUID),
            out,
            source_ae_title,
        )
    file_pad = options.padding[0] if options.padding else 0
    body = encoder.content(ds, default_encoding, file_pad, offset=len(meta))
    if out == uids.DEFLATED_EXPLICIT_VR_LE:  # PS3.5 A.5: raw deflate, no zlib header
        deflate = zlib.compressobj(options.compression_level, zlib.DEFLATED, -zlib.MAX_WBITS)
        return [meta, deflate.compress(body), deflate.flush()]
    return [meta, body]


# --- the C-STORE SCP handler --------------------------------------------------------------

OnStored = Callable[[StoreRequest, StoreResult], Awaitable[None] | None]


def _comment(text: str) -> str:
    """An Error Comment (LO, PS3.5 Table 6.2-1): printable ASCII, no backslash, 64 chars."""
    clean = "".join(c if c.isascii() and c.isprintable() and c != "\\" else "?" for c in text)
    return clean[:64].strip() or "error"


#: Whether to take a C-STORE at all (e.g. only those of an outstanding C-MOVE).
Accept = Callable[[StoreRequest], bool]


async def paced(
    chunks: AsyncIterator[bytes | memoryview],
    scope: anyio.CancelScope,
    allowance: float | None,
    min_rate: float,
) -> AsyncIterator[bytes | memoryview]:
    """`chunks`, with `scope`'s deadline at start + allowance + received / min_rate.

    Each byte earns the peer 1/min_rate seconds, so a fast sender may pause (a PACS reading
    from its archive) while a trickling one runs out of credit. The deadline is lifted once
    the data set is complete: what follows (renaming, re-encoding) is our own work.
    """
    async with closing(chunks):
        if allowance is None or min_rate <= 0:
            async for chunk in chunks:
                yield chunk
            return
        start = anyio.current_time()
        received = 0
        scope.deadline = start + allowance
        # Moving a deadline reschedules a timer: do it only once the earned credit is half an
        # allowance ahead, not per chunk (a 512 KiB instance is ~32 chunks). The peer then
        # always has at least received / min_rate + allowance / 2 seconds.
        lag = allowance / 2
        async for chunk in chunks:
            received += len(chunk)
            earned = start + allowance + received / min_rate
            if earned - scope.deadline > lag:
                scope.deadline = earned
            yield chunk
        scope.deadline = math.inf


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
    `paced`); a slower peer is aborted [c_store.too_slow].
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
            result = await _receive_paced(assoc, sink, request, accept, min_rate)
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


async def _receive_paced(
    assoc: Association,
    sink: FileSink,
    request: StoreRequest,
    accept: Accept | None,
    min_rate: float,
) -> StoreResult:
    """The data set into the sink (or drained, if `accept` refuses it), paced."""
    with anyio.CancelScope() as scope:
        chunks = paced(assoc.iter_dataset(), scope, assoc.timeouts.dimse, min_rate)
        async with closing(chunks):
            return await _receive_or_refuse(assoc, sink, request, accept, chunks)
    assoc.log.warning("c_store.too_slow", uid=request.sop_instance_uid, min_rate=min_rate)
    raise DimseTimeout(f"data set arrived slower than {min_rate} bytes/s")


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
        size = await drain(bounded(chunks, sink.max_instance_size, request))
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
    handlers: Mapping[type, Handler] = {
        CEchoRQ: handle_echo,
        CStoreRQ: store_handler(sink, on_stored, accept=accept, min_rate=min_rate),
    }
    return AcceptorConfig(
        ae_title=ae_title, contexts=storage_contexts(prefer), handlers=handlers, **kw
    )
