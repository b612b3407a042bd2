"""The seven upper-layer PDUs of PS3.8 §9.3 and their items, as frozen dataclasses.

This module is only the vocabulary; `aiomove.proto.codec` turns these into bytes and back.
Field names follow the PS3.8 tables. AE titles are kept as `str` without the trailing
space padding; UIDs are `str` without any trailing NUL padding (PS3.8 Annex F).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TypeVar

_T = TypeVar("_T")

#: PS3.8 §9.3.2: the only Application Context Name defined by DICOM (PS3.7 Annex A.2.1).
DICOM_APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"

#: PS3.8 §9.3.2 Protocol-version: bit 0 set means version 1.
PROTOCOL_VERSION = 0x0001


class PDUType(enum.IntEnum):
    """PS3.8 §9.3.1 PDU types."""

    A_ASSOCIATE_RQ = 0x01
    A_ASSOCIATE_AC = 0x02
    A_ASSOCIATE_RJ = 0x03
    P_DATA_TF = 0x04
    A_RELEASE_RQ = 0x05
    A_RELEASE_RP = 0x06
    A_ABORT = 0x07


class ItemType(enum.IntEnum):
    """PS3.8 §9.3.2-§9.3.3 variable item types and PS3.7 Annex D.3.3 user-information sub-items."""

    APPLICATION_CONTEXT = 0x10
    PRESENTATION_CONTEXT_RQ = 0x20
    PRESENTATION_CONTEXT_AC = 0x21
    ABSTRACT_SYNTAX = 0x30
    TRANSFER_SYNTAX = 0x40
    USER_INFORMATION = 0x50
    MAXIMUM_LENGTH = 0x51
    IMPLEMENTATION_CLASS_UID = 0x52
    ASYNCHRONOUS_OPERATIONS_WINDOW = 0x53
    SCP_SCU_ROLE_SELECTION = 0x54
    IMPLEMENTATION_VERSION_NAME = 0x55
    SOP_CLASS_EXTENDED_NEGOTIATION = 0x56
    SOP_CLASS_COMMON_EXTENDED_NEGOTIATION = 0x57
    USER_IDENTITY_RQ = 0x58
    USER_IDENTITY_AC = 0x59


class PresentationContextResult(enum.IntEnum):
    """PS3.8 Table 9-18 Result/Reason of a presentation context in A-ASSOCIATE-AC."""

    ACCEPTANCE = 0
    USER_REJECTION = 1
    NO_REASON = 2  # provider rejection
    ABSTRACT_SYNTAX_NOT_SUPPORTED = 3  # provider rejection
    TRANSFER_SYNTAXES_NOT_SUPPORTED = 4  # provider rejection


class RejectResult(enum.IntEnum):
    """PS3.8 Table 9-21 A-ASSOCIATE-RJ Result."""

    PERMANENT = 1
    TRANSIENT = 2


class RejectSource(enum.IntEnum):
    """PS3.8 Table 9-21 A-ASSOCIATE-RJ Source."""

    SERVICE_USER = 1
    SERVICE_PROVIDER_ACSE = 2
    SERVICE_PROVIDER_PRESENTATION = 3


class AbortSource(enum.IntEnum):
    """PS3.8 Table 9-26 A-ABORT Source (1 is reserved)."""

    SERVICE_USER = 0
    RESERVED = 1
    SERVICE_PROVIDER = 2


class AbortReason(enum.IntEnum):
    """PS3.8 Table 9-26 A-ABORT Reason/Diag, meaningful when the source is the provider."""

    NOT_SPECIFIED = 0
    UNRECOGNIZED_PDU = 1
    UNEXPECTED_PDU = 2
    RESERVED = 3
    UNRECOGNIZED_PDU_PARAMETER = 4
    UNEXPECTED_PDU_PARAMETER = 5
    INVALID_PDU_PARAMETER_VALUE = 6


# --- user-information sub-items (PS3.7 Annex D.3.3, PS3.8 Annex D) -------------------------


@dataclass(frozen=True, slots=True)
class MaximumLength:
    """Item 0x51: the largest P-DATA-TF variable field the sender can receive; 0 = no limit."""

    maximum_length: int


@dataclass(frozen=True, slots=True)
class ImplementationClassUID:
    """Item 0x52."""

    uid: str


@dataclass(frozen=True, slots=True)
class ImplementationVersionName:
    """Item 0x55: 1 to 16 characters."""

    name: str


@dataclass(frozen=True, slots=True)
class AsynchronousOperationsWindow:
    """Item 0x53: 0 means unlimited."""

    max_operations_invoked: int
    max_operations_performed: int


@dataclass(frozen=True, slots=True)
class RoleSelection:
    """Item 0x54: SCP/SCU role selection for one SOP class (PS3.7 D.3.3.4)."""

    sop_class_uid: str
    scu_role: bool
    scp_role: bool


@dataclass(frozen=True, slots=True)
class SOPClassExtendedNegotiation:
    """Item 0x56: service-class-application-information is opaque bytes here."""

    sop_class_uid: str
    service_class_application_information: bytes


@dataclass(frozen=True, slots=True)
class SOPClassCommonExtendedNegotiation:
    """Item 0x57 (sub-item version 0)."""

    sop_class_uid: str
    service_class_uid: str
    related_general_sop_class_uids: tuple[str, ...] = ()


class UserIdentityType(enum.IntEnum):
    """PS3.7 Table D.3-14."""

    USERNAME = 1
    USERNAME_AND_PASSCODE = 2
    KERBEROS = 3
    SAML = 4
    JWT = 5


@dataclass(frozen=True, slots=True)
class UserIdentityRQ:
    """Item 0x58."""

    identity_type: int
    positive_response_requested: bool
    primary_field: bytes
    secondary_field: bytes = b""


@dataclass(frozen=True, slots=True)
class UserIdentityAC:
    """Item 0x59."""

    server_response: bytes


@dataclass(frozen=True, slots=True)
class UnknownItem:
    """An item or sub-item whose type this implementation does not know.

    PS3.8 §9.3.2/§9.3.3 and PS3.7 D.3.3: unrecognised sub-items are ignored by the receiver;
    they are kept here (type and value bytes) so decoding then encoding is lossless.
    """

    item_type: int
    value: bytes
    reserved: int = 0  # the byte after the item type (sub-item version for 0x57-like items)


UserItem = (
    MaximumLength
    | ImplementationClassUID
    | ImplementationVersionName
    | AsynchronousOperationsWindow
    | RoleSelection
    | SOPClassExtendedNegotiation
    | SOPClassCommonExtendedNegotiation
    | UserIdentityRQ
    | UserIdentityAC
    | UnknownItem
)


# --- presentation contexts -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PresentationContextRQ:
    """Item 0x20: an odd context ID (1-255), one abstract syntax, one or more transfer syntaxes."""

    context_id: int
    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PresentationContextAC:
    """Item 0x21: the acceptor's answer for one context; one transfer syntax sub-item.

    PS3.8 §9.3.3.2: when the result is not acceptance the transfer syntax is not significant,
    but the sub-item is still present (it may be empty).
    """

    context_id: int
    result: int
    transfer_syntax: str


# --- the PDUs ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AAssociateRQ:
    """PS3.8 §9.3.2 A-ASSOCIATE-RQ."""

    called_ae_title: str
    calling_ae_title: str
    presentation_contexts: tuple[PresentationContextRQ, ...]
    user_information: tuple[UserItem, ...] = ()
    application_context: str = DICOM_APPLICATION_CONTEXT
    protocol_version: int = PROTOCOL_VERSION
    # Items other than 0x10/0x20/0x50 at the top level, kept for a lossless round trip.
    unknown_items: tuple[UnknownItem, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class AAssociateAC:
    """PS3.8 §9.3.3 A-ASSOCIATE-AC. AE titles echo those of the request (not tested)."""

    called_ae_title: str
    calling_ae_title: str
    presentation_contexts: tuple[PresentationContextAC, ...]
    user_information: tuple[UserItem, ...] = ()
    application_context: str = DICOM_APPLICATION_CONTEXT
    protocol_version: int = PROTOCOL_VERSION
    unknown_items: tuple[UnknownItem, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class AAssociateRJ:
    """PS3.8 §9.3.4 A-ASSOCIATE-RJ."""

    result: int
    source: int
    reason: int


@dataclass(frozen=True, slots=True)
class PDV:
    """PS3.8 §9.3.5.1 Presentation Data Value item, with its Message Control Header (Annex E.2).

    `data` may be a memoryview into the received PDU to avoid a copy.
    """

    context_id: int
    is_command: bool
    is_last: bool
    data: bytes | memoryview

    @property
    def control_header(self) -> int:
        return (0x01 if self.is_command else 0x00) | (0x02 if self.is_last else 0x00)


@dataclass(frozen=True, slots=True)
class PDataTF:
    """PS3.8 §9.3.5 P-DATA-TF: one or more PDV items."""

    pdvs: tuple[PDV, ...]


@dataclass(frozen=True, slots=True)
class AReleaseRQ:
    """PS3.8 §9.3.6."""


@dataclass(frozen=True, slots=True)
class AReleaseRP:
    """PS3.8 §9.3.7."""


@dataclass(frozen=True, slots=True)
class AAbort:
    """PS3.8 §9.3.8 A-ABORT."""

    source: int = AbortSource.SERVICE_USER
    reason: int = AbortReason.NOT_SPECIFIED


PDU = AAssociateRQ | AAssociateAC | AAssociateRJ | PDataTF | AReleaseRQ | AReleaseRP | AAbort


def user_item(items: tuple[UserItem, ...], kind: type[_T]) -> _T | None:
    """The first user-information sub-item of type `kind`, or None."""
    for item in items:
        if isinstance(item, kind):
            return item
    return None
