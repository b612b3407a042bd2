"""Hypothesis strategies for the PDUs of `aiomove.proto.pdu`, shared by the proto tests.

Every value drawn is *canonical*: `encode_pdu` accepts it and `decode_pdu` gives it back equal.
That means AE titles and version names without trailing spaces, UIDs following PS3.5 §9.1,
odd context IDs, and top-level unknown items sorted by item type (the encoder writes items in
increasing type order, PS3.8 §9.3.1).
"""

from __future__ import annotations

from hypothesis import strategies as st

from aiomove.proto.pdu import (
    DICOM_APPLICATION_CONTEXT,
    PDU,
    PDV,
    AAbort,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    AbortSource,
    AReleaseRP,
    AReleaseRQ,
    AsynchronousOperationsWindow,
    ImplementationClassUID,
    ImplementationVersionName,
    ItemType,
    MaximumLength,
    PDataTF,
    PresentationContextAC,
    PresentationContextResult,
    PresentationContextRQ,
    RejectResult,
    RejectSource,
    RoleSelection,
    SOPClassCommonExtendedNegotiation,
    SOPClassExtendedNegotiation,
    UnknownItem,
    UserIdentityAC,
    UserIdentityRQ,
    UserItem,
)

__all__ = [
    "a_aborts",
    "a_associate_acs",
    "a_associate_rjs",
    "a_associate_rqs",
    "a_release_rps",
    "a_release_rqs",
    "ae_titles",
    "context_ids",
    "p_data_tfs",
    "pdus",
    "pdvs",
    "presentation_contexts_ac",
    "presentation_contexts_rq",
    "top_level_unknown_items",
    "uids",
    "user_items",
    "version_names",
]

_PRINTABLE_ASCII = "".join(chr(c) for c in range(0x20, 0x7F))
_KNOWN_ITEM_TYPES = frozenset(int(t) for t in ItemType)
_UNKNOWN_ITEM_TYPES = [t for t in range(256) if t not in _KNOWN_ITEM_TYPES]
_REAL_UIDS = [
    DICOM_APPLICATION_CONTEXT,
    "1.2.840.10008.1.1",  # Verification
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.5.1.4.1.2.2.2",  # Study Root Q/R MOVE
    "1.2.276.0.7230010.3.0.3.6.7",  # DCMTK 3.6.7 implementation class
    "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.2456",  # 64 characters
]

_u8 = st.integers(0, 0xFF)
_u16 = st.integers(0, 0xFFFF)
_small_bytes = st.binary(max_size=48)


def uids() -> st.SearchStrategy[str]:
    """PS3.5 §9.1 UIDs: numeric components without leading zeros, at most 64 characters."""
    component = st.one_of(st.just("0"), st.integers(1, 999_999).map(str))
    # 8 components of at most 6 digits plus 7 dots: never above 64 characters.
    generated = st.lists(component, min_size=1, max_size=8).map(".".join)
    return st.one_of(st.sampled_from(_REAL_UIDS), generated)


def ae_titles() -> st.SearchStrategy[str]:
    """0-16 printable ASCII characters, no trailing space (it would be taken for padding)."""
    return st.text(_PRINTABLE_ASCII, max_size=16).map(str.rstrip)


def version_names() -> st.SearchStrategy[str]:
    return st.text(_PRINTABLE_ASCII, min_size=1, max_size=16).filter(
        lambda name: not name.endswith(" ")
    )


def context_ids() -> st.SearchStrategy[int]:
    """PS3.8 §9.3.2.2: odd, 1-255."""
    return st.integers(0, 127).map(lambda n: 2 * n + 1)


def _unknown_items(types: st.SearchStrategy[int]) -> st.SearchStrategy[UnknownItem]:
    return st.builds(UnknownItem, item_type=types, value=_small_bytes, reserved=_u8)


def top_level_unknown_items() -> st.SearchStrategy[tuple[UnknownItem, ...]]:
    """Unknown A-ASSOCIATE items, in increasing type order (as the encoder writes them)."""
    items = st.lists(_unknown_items(st.sampled_from(_UNKNOWN_ITEM_TYPES)), max_size=3)
    return items.map(lambda found: tuple(sorted(found, key=lambda item: item.item_type)))


def user_items() -> st.SearchStrategy[UserItem]:
    """Any user information sub-item, including unknown ones (PS3.7 Annex D.3.3)."""
    unknown_57 = st.builds(  # a future version of item 0x57 is kept as unknown
        UnknownItem,
        item_type=st.just(int(ItemType.SOP_CLASS_COMMON_EXTENDED_NEGOTIATION)),
        value=_small_bytes,
        reserved=st.integers(1, 0xFF),
    )
    return st.one_of(
        st.builds(MaximumLength, st.integers(0, 0xFFFF_FFFF)),
        st.builds(ImplementationClassUID, uids()),
        st.builds(ImplementationVersionName, version_names()),
        st.builds(AsynchronousOperationsWindow, _u16, _u16),
        st.builds(RoleSelection, uids(), st.booleans(), st.booleans()),
        st.builds(SOPClassExtendedNegotiation, uids(), _small_bytes),
        st.builds(
            SOPClassCommonExtendedNegotiation,
            uids(),
            uids(),
            st.lists(uids(), max_size=3).map(tuple),
        ),
        st.builds(UserIdentityRQ, _u8, st.booleans(), _small_bytes, _small_bytes),
        st.builds(UserIdentityAC, _small_bytes),
        _unknown_items(st.sampled_from(_UNKNOWN_ITEM_TYPES)),
        unknown_57,
    )


def presentation_contexts_rq() -> st.SearchStrategy[PresentationContextRQ]:
    return st.builds(
        PresentationContextRQ,
        context_ids(),
        uids(),
        st.lists(uids(), min_size=1, max_size=4).map(tuple),
    )


@st.composite
def presentation_contexts_ac(draw: st.DrawFn) -> PresentationContextAC:
    result = draw(st.sampled_from(PresentationContextResult))
    # A rejected context's transfer syntax is not significant and may be empty (PS3.8 9.3.3.2).
    ts = uids() if result == PresentationContextResult.ACCEPTANCE else uids() | st.just("")
    return PresentationContextAC(draw(context_ids()), result, draw(ts))


def a_associate_rqs() -> st.SearchStrategy[AAssociateRQ]:
    return st.builds(
        AAssociateRQ,
        called_ae_title=ae_titles(),
        calling_ae_title=ae_titles(),
        presentation_contexts=st.lists(presentation_contexts_rq(), min_size=1, max_size=4).map(
            tuple
        ),
        user_information=st.lists(user_items(), max_size=5).map(tuple),
        application_context=st.just(DICOM_APPLICATION_CONTEXT) | uids(),
        protocol_version=st.just(1) | _u16,
        unknown_items=top_level_unknown_items(),
    )


def a_associate_acs() -> st.SearchStrategy[AAssociateAC]:
    return st.builds(
        AAssociateAC,
        called_ae_title=ae_titles(),
        calling_ae_title=ae_titles(),
        presentation_contexts=st.lists(presentation_contexts_ac(), min_size=1, max_size=4).map(
            tuple
        ),
        user_information=st.lists(user_items(), max_size=5).map(tuple),
        application_context=st.just(DICOM_APPLICATION_CONTEXT) | uids(),
        protocol_version=st.just(1) | _u16,
        unknown_items=top_level_unknown_items(),
    )


def a_associate_rjs() -> st.SearchStrategy[AAssociateRJ]:
    return st.builds(
        AAssociateRJ, st.sampled_from(RejectResult), st.sampled_from(RejectSource), _u8
    )


def pdvs(max_data: int = 64) -> st.SearchStrategy[PDV]:
    return st.builds(PDV, context_ids(), st.booleans(), st.booleans(), st.binary(max_size=max_data))


def p_data_tfs(max_pdvs: int = 4, max_data: int = 64) -> st.SearchStrategy[PDataTF]:
    return st.builds(PDataTF, st.lists(pdvs(max_data), min_size=1, max_size=max_pdvs).map(tuple))


def a_release_rqs() -> st.SearchStrategy[AReleaseRQ]:
    return st.just(AReleaseRQ())


def a_release_rps() -> st.SearchStrategy[AReleaseRP]:
    return st.just(AReleaseRP())


def a_aborts() -> st.SearchStrategy[AAbort]:
    sources = st.sampled_from([AbortSource.SERVICE_USER, AbortSource.SERVICE_PROVIDER])
    return st.builds(AAbort, sources, _u8)


def pdus() -> st.SearchStrategy[PDU]:
    """Any of the seven PDUs."""
    return st.one_of(
        a_associate_rqs(),
        a_associate_acs(),
        a_associate_rjs(),
        p_data_tfs(),
        a_release_rqs(),
        a_release_rps(),
        a_aborts(),
    )
