"""Transfer syntax preferences: what an incoming association accepts, what we propose.

This mirrors DCMTK 3.6.7 movescu/storescp exactly (their `+x?` "preferred network transfer
syntaxes" and `-x?` "proposed transmission transfer syntaxes" options). The acceptor picks,
for each proposed presentation context, the first syntax of its own list that the requestor
proposed (PS3.8 §9.3.3.2; DCMTK's ASC_acceptContextsWithPreferredTransferSyntaxes), so the
order of each tuple below is the acceptor's preference.

Checked against DCMTK's source (movescu.cc acceptSubAssoc, storescp.cc) and against the
installed storescp by negotiation (tests/interop/test_store_interop.py). Two facts that
are easy to get wrong:

- "local byte order" means the machine's: explicit little endian first on x86/ARM.
- DCMTK offers the *same* list to Verification as to the Storage SOP classes (a C-ECHO
  carries no data set, so a compressed syntax there is harmless); so does aiomove.
"""

from __future__ import annotations

import enum
import sys
from typing import Final

from aiomove.proto import uids

# PS3.5 Annex A / PS3.6 Table A-1 transfer syntax UIDs not already in aiomove.proto.uids.
JPEG_BASELINE: Final = "1.2.840.10008.1.2.4.50"  # process 1, default lossy 8 bit
JPEG_EXTENDED: Final = "1.2.840.10008.1.2.4.51"  # processes 2 & 4, default lossy 12 bit
JPEG_LOSSLESS_SV1: Final = "1.2.840.10008.1.2.4.70"  # process 14 SV1, default lossless
JPEG_LS_LOSSLESS: Final = "1.2.840.10008.1.2.4.80"
JPEG_LS_LOSSY: Final = "1.2.840.10008.1.2.4.81"
JPEG_2000_LOSSLESS: Final = "1.2.840.10008.1.2.4.90"
JPEG_2000: Final = "1.2.840.10008.1.2.4.91"
MPEG2_MAIN_MAIN: Final = "1.2.840.10008.1.2.4.100"
MPEG2_MAIN_HIGH: Final = "1.2.840.10008.1.2.4.101"
MPEG4_HP41: Final = "1.2.840.10008.1.2.4.102"
MPEG4_HP41_BD: Final = "1.2.840.10008.1.2.4.103"
MPEG4_HP42_2D: Final = "1.2.840.10008.1.2.4.104"
MPEG4_HP42_3D: Final = "1.2.840.10008.1.2.4.105"
MPEG4_HP42_STEREO: Final = "1.2.840.10008.1.2.4.106"
HEVC_MAIN: Final = "1.2.840.10008.1.2.4.107"
HEVC_MAIN10: Final = "1.2.840.10008.1.2.4.108"
RLE_LOSSLESS: Final = "1.2.840.10008.1.2.5"


def _explicit_local_first() -> tuple[str, str]:
    """Both explicit VR syntaxes, the machine's own byte order first (DCMTK gLocalByteOrder)."""
    if sys.byteorder == "little":
        return uids.EXPLICIT_VR_LE, uids.EXPLICIT_VR_BE
    return uids.EXPLICIT_VR_BE, uids.EXPLICIT_VR_LE  # pragma: no cover - big endian hosts


#: The three uncompressed syntaxes in DCMTK's default order.
UNCOMPRESSED: Final = (*_explicit_local_first(), uids.IMPLICIT_VR_LE)


class Prefer(enum.Enum):
    """Preferred transfer syntaxes for incoming associations; values are movescu's flags."""

    UNCOMPRESSED = "+x="
    LITTLE = "+xe"
    BIG = "+xb"
    LOSSLESS = "+xs"
    JPEG8 = "+xy"
    JPEG12 = "+xx"
    J2K_LOSSLESS = "+xv"
    J2K_LOSSY = "+xw"
    JLS_LOSSLESS = "+xt"
    JLS_LOSSY = "+xu"
    MPEG2 = "+xm"
    MPEG2_HIGH = "+xh"
    MPEG4 = "+xn"
    MPEG4_BD = "+xl"
    MPEG4_2_2D = "+x2"
    MPEG4_2_3D = "+x3"
    MPEG4_2_STEREO = "+xo"
    HEVC = "+x4"
    HEVC10 = "+x5"
    RLE = "+xr"
    DEFLATED = "+xd"
    IMPLICIT = "+xi"
    ACCEPT_ALL = "+xa"


# A "prefer X" option accepts X, then the uncompressed syntaxes: explicit little endian,
# explicit big endian, implicit (this order is fixed in DCMTK, not local byte order first).
_PREFERRED_FIRST: Final[dict[Prefer, str]] = {
    Prefer.LOSSLESS: JPEG_LOSSLESS_SV1,
    Prefer.JPEG8: JPEG_BASELINE,
    Prefer.JPEG12: JPEG_EXTENDED,
    Prefer.J2K_LOSSLESS: JPEG_2000_LOSSLESS,
    Prefer.J2K_LOSSY: JPEG_2000,
    Prefer.JLS_LOSSLESS: JPEG_LS_LOSSLESS,
    Prefer.JLS_LOSSY: JPEG_LS_LOSSY,
    Prefer.MPEG2: MPEG2_MAIN_MAIN,
    Prefer.MPEG2_HIGH: MPEG2_MAIN_HIGH,
    Prefer.MPEG4: MPEG4_HP41,
    Prefer.MPEG4_BD: MPEG4_HP41_BD,
    Prefer.MPEG4_2_2D: MPEG4_HP42_2D,
    Prefer.MPEG4_2_3D: MPEG4_HP42_3D,
    Prefer.MPEG4_2_STEREO: MPEG4_HP42_STEREO,
    Prefer.HEVC: HEVC_MAIN,
    Prefer.HEVC10: HEVC_MAIN10,
    Prefer.RLE: RLE_LOSSLESS,
    Prefer.DEFLATED: uids.DEFLATED_EXPLICIT_VR_LE,
}

_LE_BE_IMPLICIT: Final = (uids.EXPLICIT_VR_LE, uids.EXPLICIT_VR_BE, uids.IMPLICIT_VR_LE)

#: `+xa`: every syntax DCMTK 3.6.7 accepts, in its order ("AnyTransferSyntax" of storescp.cfg).
ACCEPT_ALL: Final = (
    JPEG_2000,
    JPEG_2000_LOSSLESS,
    JPEG_EXTENDED,
    JPEG_BASELINE,
    JPEG_LOSSLESS_SV1,
    JPEG_LS_LOSSY,
    JPEG_LS_LOSSLESS,
    RLE_LOSSLESS,
    MPEG2_MAIN_MAIN,
    MPEG2_MAIN_HIGH,
    MPEG4_HP41,
    MPEG4_HP41_BD,
    MPEG4_HP42_2D,
    MPEG4_HP42_3D,
    MPEG4_HP42_STEREO,
    HEVC_MAIN,
    HEVC_MAIN10,
    uids.DEFLATED_EXPLICIT_VR_LE,
    *UNCOMPRESSED,
)


def accepted_transfer_syntaxes(prefer: Prefer) -> tuple[str, ...]:
    """The syntaxes an incoming association accepts, most preferred first."""
    if prefer is Prefer.UNCOMPRESSED:
        return UNCOMPRESSED
    if prefer is Prefer.LITTLE:
        return _LE_BE_IMPLICIT
    if prefer is Prefer.BIG:
        return (uids.EXPLICIT_VR_BE, uids.EXPLICIT_VR_LE, uids.IMPLICIT_VR_LE)
    if prefer is Prefer.IMPLICIT:
        return (uids.IMPLICIT_VR_LE,)
    if prefer is Prefer.ACCEPT_ALL:
        return ACCEPT_ALL
    return (_PREFERRED_FIRST[prefer], *_LE_BE_IMPLICIT)


#: Retired Storage SOP classes DCMTK 3.6.7 still accepts (its dcmAllStorageSOPClassUIDs) but
#: pydicom does not name as "Storage" classes any more; old archives still hold such objects.
RETIRED_STORAGE_SOP_CLASSES: Final = (
    "1.2.840.10008.5.1.1.27",  # Stored Print Storage
    "1.2.840.10008.5.1.1.29",  # Hardcopy Grayscale Image Storage
    "1.2.840.10008.5.1.1.30",  # Hardcopy Color Image Storage
    "1.2.840.10008.5.1.4.1.1.3",  # Ultrasound Multi-frame Image Storage (retired)
    "1.2.840.10008.5.1.4.1.1.5",  # Nuclear Medicine Image Storage (retired)
    "1.2.840.10008.5.1.4.1.1.6",  # Ultrasound Image Storage (retired)
    "1.2.840.10008.5.1.4.1.1.8",  # Standalone Overlay Storage
    "1.2.840.10008.5.1.4.1.1.9",  # Standalone Curve Storage
    "1.2.840.10008.5.1.4.1.1.9.1",  # Waveform Storage - Trial
    "1.2.840.10008.5.1.4.1.1.10",  # Standalone Modality LUT Storage
    "1.2.840.10008.5.1.4.1.1.11",  # Standalone VOI LUT Storage
    "1.2.840.10008.5.1.4.1.1.12.3",  # X-Ray Angiographic Bi-Plane Image Storage
    "1.2.840.10008.5.1.4.1.1.77.1",  # VL Image Storage - Trial
    "1.2.840.10008.5.1.4.1.1.77.2",  # VL Multi-frame Image Storage - Trial
    "1.2.840.10008.5.1.4.1.1.88.1",  # Text SR Storage - Trial
    "1.2.840.10008.5.1.4.1.1.88.2",  # Audio SR Storage - Trial
    "1.2.840.10008.5.1.4.1.1.88.3",  # Detail SR Storage - Trial
    "1.2.840.10008.5.1.4.1.1.88.4",  # Comprehensive SR Storage - Trial
    "1.2.840.10008.5.1.4.1.1.129",  # Standalone PET Curve Storage
    "1.2.840.10008.5.1.4.34.1",  # RT Beams Delivery Instruction Storage - Trial
)


def storage_sop_classes() -> tuple[str, ...]:
    """Every SOP class a Storage SCP here accepts: pydicom's current Storage classes, then
    the retired ones DCMTK accepts. A superset of DCMTK 3.6.7's dcmAllStorageSOPClassUIDs
    (it also has the classes added to PS3.4 since, e.g. Photoacoustic, Inventory)."""
    extra = tuple(uid for uid in RETIRED_STORAGE_SOP_CLASSES if uid not in uids.STORAGE_SOP_CLASSES)
    return (*uids.STORAGE_SOP_CLASSES, *extra)


def storage_contexts(prefer: Prefer = Prefer.UNCOMPRESSED) -> dict[str, tuple[str, ...]]:
    """Abstract syntax -> accepted transfer syntaxes for a Storage SCP (with Verification)."""
    syntaxes = accepted_transfer_syntaxes(prefer)
    contexts = {uids.VERIFICATION: syntaxes}
    contexts.update(dict.fromkeys(storage_sop_classes(), syntaxes))
    return contexts


class Propose(enum.Enum):
    """Transfer syntaxes proposed on outgoing associations (C-FIND/C-MOVE); movescu's flags."""

    UNCOMPRESSED = "-x="
    LITTLE = "-xe"
    BIG = "-xb"
    DEFLATED = "-xd"
    IMPLICIT = "-xi"


def proposed_transfer_syntaxes(p: Propose) -> tuple[str, ...]:
    """What movescu proposes for its C-FIND/C-MOVE contexts (movescu.cc addPresentationContext)."""
    if p is Propose.UNCOMPRESSED:
        return UNCOMPRESSED
    if p is Propose.LITTLE:
        return _LE_BE_IMPLICIT
    if p is Propose.BIG:
        return (uids.EXPLICIT_VR_BE, uids.EXPLICIT_VR_LE, uids.IMPLICIT_VR_LE)
    if p is Propose.DEFLATED:
        return (uids.DEFLATED_EXPLICIT_VR_LE, *_LE_BE_IMPLICIT)
    return (uids.IMPLICIT_VR_LE,)


#: The option tables' names of the preferences (the long option's suffix: `--prefer-jpeg8`
#: is "jpeg8"; options_specs) -> `Prefer`. Also the daemon configuration's names.
PREFER: Final = {
    "uncompressed": Prefer.UNCOMPRESSED,
    "little": Prefer.LITTLE,
    "big": Prefer.BIG,
    "lossless": Prefer.LOSSLESS,
    "jpeg8": Prefer.JPEG8,
    "jpeg12": Prefer.JPEG12,
    "j2k-lossless": Prefer.J2K_LOSSLESS,
    "j2k-lossy": Prefer.J2K_LOSSY,
    "jls-lossless": Prefer.JLS_LOSSLESS,
    "jls-lossy": Prefer.JLS_LOSSY,
    "mpeg2": Prefer.MPEG2,
    "mpeg2-high": Prefer.MPEG2_HIGH,
    "mpeg4": Prefer.MPEG4,
    "mpeg4-bd": Prefer.MPEG4_BD,
    "mpeg4-2-2d": Prefer.MPEG4_2_2D,
    "mpeg4-2-3d": Prefer.MPEG4_2_3D,
    "mpeg4-2-st": Prefer.MPEG4_2_STEREO,
    "hevc": Prefer.HEVC,
    "hevc10": Prefer.HEVC10,
    "rle": Prefer.RLE,
    "deflated": Prefer.DEFLATED,
    "implicit": Prefer.IMPLICIT,
    "accept-all": Prefer.ACCEPT_ALL,
}
#: The same for the proposals (`--propose-little` is "little") -> `Propose`.
PROPOSE: Final = {
    "uncompressed": Propose.UNCOMPRESSED,
    "little": Propose.LITTLE,
    "big": Propose.BIG,
    "deflated": Propose.DEFLATED,
    "implicit": Propose.IMPLICIT,
}
