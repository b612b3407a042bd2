"""How received objects are encoded on disk: Part 10 file meta information (PS3.10 §7.1),
movescu's output options, and re-encoding a data set as DCMTK's DcmItem::write does.

`reencode` decodes a spooled Part 10 file with pydicom and encodes it again with `_Encoder`,
which follows DCMTK's rules; tests/interop compares the result with `dcmconv` byte for byte.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import pydicom
from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr, write_data_element
from pydicom.uid import UID

from aiomove.log import get_logger
from aiomove.proto import uids
from aiomove.spool import write_parts

log = get_logger("aiomove.reencode")

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


def reencode_file(
    spool: Path,
    out: Path,
    options: OutputOptions,
    source_ae_title: str,
    fsync: bool,
    floor: int = 0,
) -> str | None:
    """Decode the spooled Part 10 file and write it again to `out` (worker thread).

    None on success; why, if the data set cannot be decoded. A failed write raises OSError."""
    try:
        parts = reencode(spool, options, source_ae_title)
    except Exception as exc:  # pydicom raises many kinds of errors on bad input
        return f"cannot decode data set: {type(exc).__name__}"
    write_parts(out, parts, fsync, floor)
    return None
