"""UIDs the protocol core needs, and a UID syntax check (PS3.5 §9.1).

Transfer syntaxes and the Storage SOP classes come from pydicom, so the long lists are never
retyped here; the handful of Verification and Query/Retrieve UIDs pydicom does not export as
names are spelled out (PS3.6 Annex A, cross-checked against pydicom's UID dictionary in tests).
All constants are plain `str`, not `pydicom.uid.UID`, so that they compare and hash like the
UIDs decoded off the wire.
"""

from __future__ import annotations

import re
from typing import Final

import pydicom.uid as _pydicom_uid

# --- SOP classes -----------------------------------------------------------------------------

#: PS3.4 Annex A Verification SOP Class (C-ECHO).
VERIFICATION: Final = "1.2.840.10008.1.1"

# PS3.4 Annex C.6 Query/Retrieve information models.
PATIENT_ROOT_QR_FIND: Final = "1.2.840.10008.5.1.4.1.2.1.1"
PATIENT_ROOT_QR_MOVE: Final = "1.2.840.10008.5.1.4.1.2.1.2"
PATIENT_ROOT_QR_GET: Final = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_QR_FIND: Final = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_QR_MOVE: Final = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_QR_GET: Final = "1.2.840.10008.5.1.4.1.2.2.3"
# Patient/Study Only is retired (PS3.4 2004+) but still offered by some archives.
PATIENT_STUDY_ONLY_QR_FIND: Final = "1.2.840.10008.5.1.4.1.2.3.1"
PATIENT_STUDY_ONLY_QR_MOVE: Final = "1.2.840.10008.5.1.4.1.2.3.2"
PATIENT_STUDY_ONLY_QR_GET: Final = "1.2.840.10008.5.1.4.1.2.3.3"

QR_FIND_MODELS: Final = (PATIENT_ROOT_QR_FIND, STUDY_ROOT_QR_FIND, PATIENT_STUDY_ONLY_QR_FIND)
QR_MOVE_MODELS: Final = (PATIENT_ROOT_QR_MOVE, STUDY_ROOT_QR_MOVE, PATIENT_STUDY_ONLY_QR_MOVE)
QR_GET_MODELS: Final = (PATIENT_ROOT_QR_GET, STUDY_ROOT_QR_GET, PATIENT_STUDY_ONLY_QR_GET)


def _pydicom_storage_classes() -> tuple[str, ...]:
    """pydicom's generated Storage SOP class names (module level in `pydicom.uid`).

    Media Storage Directory Storage (the DICOMDIR, PS3.10) is left out: it is a file-set
    object, not something a Storage SCP receives over the network (PS3.4 Table B.5-1).
    """
    found: dict[str, None] = {}  # ordered set, keeps pydicom's order
    for name, value in vars(_pydicom_uid).items():
        if not isinstance(value, _pydicom_uid.UID) or value.type != "SOP Class":
            continue
        if "Storage" in name and value != "1.2.840.10008.1.3.10":
            found[str(value)] = None
    return tuple(found)


#: Every Storage SOP class pydicom knows (PS3.4 Annex B), in pydicom's order.
STORAGE_SOP_CLASSES: Final[tuple[str, ...]] = _pydicom_storage_classes()

# --- transfer syntaxes (PS3.5 §10, Annex A) ----------------------------------------------

IMPLICIT_VR_LE: Final = str(_pydicom_uid.ImplicitVRLittleEndian)
EXPLICIT_VR_LE: Final = str(_pydicom_uid.ExplicitVRLittleEndian)
EXPLICIT_VR_BE: Final = str(_pydicom_uid.ExplicitVRBigEndian)  # retired, still seen
DEFLATED_EXPLICIT_VR_LE: Final = str(_pydicom_uid.DeflatedExplicitVRLittleEndian)

# --- this implementation (PS3.7 D.3.3.2 Implementation Identification) -------------------

#: Implementation Class UID sent in every A-ASSOCIATE-RQ/AC (PS3.7 D.3.3.2).
#: PLACEHOLDER: "1.2.826.0.1.3680043.10" is a public root under which sub-roots are handed
#: out for free; ".1555" has not been registered for aiomove. Replace it with an owned root
#: before any release that talks to production systems.
IMPLEMENTATION_CLASS_UID: Final = "1.2.826.0.1.3680043.10.1555.1"

#: Implementation Version Name (PS3.7 D.3.3.2): 1-16 characters of the default repertoire.
IMPLEMENTATION_VERSION_NAME: Final = "AIOMOVE_010"

# --- syntax ------------------------------------------------------------------------------

# PS3.5 §9.1: components of digits separated by '.', no leading zero in a multi-digit
# component, no empty component.
_UID_RE: Final = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*")

#: PS3.5 §9.1: a UID is at most 64 characters.
MAX_UID_LENGTH: Final = 64


def is_valid_uid(s: str) -> bool:
    """Whether `s` is a syntactically valid UID (PS3.5 §9.1); no trailing NUL allowed."""
    return 0 < len(s) <= MAX_UID_LENGTH and _UID_RE.fullmatch(s) is not None
