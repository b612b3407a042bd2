"""Presentation context and role negotiation (PS3.8 §9.3.2.2/§9.3.3.2, PS3.7 D.3.3.4), UIDs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom._uid_dict import UID_dictionary
from pydicom.uid import UID

from aiomove.errors import LocalProtocolError, NoAcceptedContext, RemoteProtocolError
from aiomove.proto import uids
from aiomove.proto.negotiation import (
    AcceptedContext,
    accepted_contexts,
    build_contexts,
    find_context,
    negotiate,
)
from aiomove.proto.pdu import PresentationContextAC, PresentationContextRQ, RoleSelection
from aiomove.proto.uids import (
    EXPLICIT_VR_BE,
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    STUDY_ROOT_QR_MOVE,
    VERIFICATION,
    is_valid_uid,
)

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
JPEG = "1.2.840.10008.1.2.4.50"
RQ = PresentationContextRQ
AC = PresentationContextAC


# --- uids ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uid",
    ["0", "1.2", "1.2.840.10008.1.1", "0.0.0", "1.20.300", "1." + "2" * 62, "2.25.0"],
)
def test_valid_uids(uid: str) -> None:
    assert is_valid_uid(uid)


@pytest.mark.parametrize(
    "uid",
    [
        "",
        "1." + "2" * 63,  # 65 characters
        "1.02",  # leading zero in a multi-digit component
        "01.2",
        "1..2",
        ".1.2",
        "1.2.",
        "1.2\x00",  # padding is not part of the UID
        "1.2 ",
        "1.a",
        "1.2.\u0663",  # a non-ASCII digit
    ],
)
def test_invalid_uids(uid: str) -> None:
    assert not is_valid_uid(uid)


def test_uid_constants_match_pydicom_dictionary() -> None:
    keywords = {
        uids.VERIFICATION: "Verification",
        uids.PATIENT_ROOT_QR_FIND: "PatientRootQueryRetrieveInformationModelFind",
        uids.PATIENT_ROOT_QR_MOVE: "PatientRootQueryRetrieveInformationModelMove",
        uids.PATIENT_ROOT_QR_GET: "PatientRootQueryRetrieveInformationModelGet",
        uids.STUDY_ROOT_QR_FIND: "StudyRootQueryRetrieveInformationModelFind",
        uids.STUDY_ROOT_QR_MOVE: "StudyRootQueryRetrieveInformationModelMove",
        uids.STUDY_ROOT_QR_GET: "StudyRootQueryRetrieveInformationModelGet",
        uids.PATIENT_STUDY_ONLY_QR_FIND: "PatientStudyOnlyQueryRetrieveInformationModelFind",
        uids.PATIENT_STUDY_ONLY_QR_MOVE: "PatientStudyOnlyQueryRetrieveInformationModelMove",
        uids.PATIENT_STUDY_ONLY_QR_GET: "PatientStudyOnlyQueryRetrieveInformationModelGet",
        uids.IMPLICIT_VR_LE: "ImplicitVRLittleEndian",
        uids.EXPLICIT_VR_LE: "ExplicitVRLittleEndian",
        uids.EXPLICIT_VR_BE: "ExplicitVRBigEndian",
        uids.DEFLATED_EXPLICIT_VR_LE: "DeflatedExplicitVRLittleEndian",
    }
    assert len(keywords) == 14  # no two constants share a UID
    for uid, keyword in keywords.items():
        assert UID_dictionary[uid][4] == keyword
    assert uids.QR_MOVE_MODELS == (
        uids.PATIENT_ROOT_QR_MOVE,
        uids.STUDY_ROOT_QR_MOVE,
        uids.PATIENT_STUDY_ONLY_QR_MOVE,
    )
    assert all(type(u) is str for u in keywords)


def test_storage_sop_classes() -> None:
    classes = uids.STORAGE_SOP_CLASSES
    assert len(classes) > 150
    assert len(set(classes)) == len(classes)
    assert all(type(u) is str and is_valid_uid(u) for u in classes)
    assert CT in classes
    assert MR in classes
    assert "1.2.840.10008.5.1.4.1.1.1.1" in classes  # Digital X-Ray For Presentation
    assert "1.2.840.10008.1.3.10" not in classes  # Media Storage Directory (DICOMDIR)
    assert VERIFICATION not in classes
    assert all("Storage" in UID_dictionary[u][0] for u in classes)


def test_implementation_identity() -> None:
    assert is_valid_uid(uids.IMPLEMENTATION_CLASS_UID)
    assert uids.IMPLEMENTATION_CLASS_UID == "1.2.826.0.1.3680043.10.1555.1"
    assert 1 <= len(uids.IMPLEMENTATION_VERSION_NAME) <= 16
    assert uids.IMPLEMENTATION_VERSION_NAME == "AIOMOVE_010"


# --- build_contexts ------------------------------------------------------------------------


def test_build_contexts_numbers_odd_ids() -> None:
    contexts = build_contexts([(VERIFICATION, [IMPLICIT_VR_LE]), (CT, (EXPLICIT_VR_LE, JPEG))])
    assert contexts == (
        RQ(1, VERIFICATION, (IMPLICIT_VR_LE,)),
        RQ(3, CT, (EXPLICIT_VR_LE, JPEG)),
    )


def test_build_contexts_limit() -> None:
    many = [(VERIFICATION, [IMPLICIT_VR_LE])] * 128
    assert build_contexts(many)[-1].context_id == 255
    with pytest.raises(LocalProtocolError):
        build_contexts([*many, (CT, [IMPLICIT_VR_LE])])


@pytest.mark.parametrize(
    "proposal",
    [(CT, []), ("1.02.3", [IMPLICIT_VR_LE]), (CT, [IMPLICIT_VR_LE, "1.2.840.10008.1.2\x00"])],
)
def test_build_contexts_rejects(proposal: tuple[str, list[str]]) -> None:
    with pytest.raises(LocalProtocolError):
        build_contexts([(VERIFICATION, [IMPLICIT_VR_LE]), proposal])


# --- negotiate (acceptor) ------------------------------------------------------------------

SUPPORTED = {
    VERIFICATION: [IMPLICIT_VR_LE],
    CT: [EXPLICIT_VR_LE, IMPLICIT_VR_LE],  # acceptor prefers explicit
    MR: [JPEG],
}


def test_acceptor_preference_wins() -> None:
    result = negotiate([RQ(1, CT, (IMPLICIT_VR_LE, EXPLICIT_VR_LE))], [], SUPPORTED)
    assert result.contexts == (AC(1, 0, EXPLICIT_VR_LE),)
    assert result.accepted == (AcceptedContext(1, CT, EXPLICIT_VR_LE, True, False),)
    assert result.roles == ()


def test_results_per_table_9_18() -> None:
    rq = [
        RQ(1, STUDY_ROOT_QR_MOVE, (IMPLICIT_VR_LE,)),  # abstract syntax not supported
        RQ(3, MR, (EXPLICIT_VR_BE, IMPLICIT_VR_LE)),  # no common transfer syntax
        RQ(5, VERIFICATION, (EXPLICIT_VR_LE, IMPLICIT_VR_LE)),
    ]
    result = negotiate(rq, [], SUPPORTED)
    assert result.contexts == (
        AC(1, 3, IMPLICIT_VR_LE),  # rejected: the first proposed syntax is echoed
        AC(3, 4, EXPLICIT_VR_BE),
        AC(5, 0, IMPLICIT_VR_LE),
    )
    assert [a.context_id for a in result.accepted] == [5]


def test_invalid_and_duplicate_ids_are_rejected_without_reason() -> None:
    rq = [
        RQ(1, CT, (IMPLICIT_VR_LE,)),
        RQ(2, CT, (IMPLICIT_VR_LE,)),  # even
        RQ(3, VERIFICATION, (IMPLICIT_VR_LE,)),
        RQ(3, CT, (IMPLICIT_VR_LE,)),  # 3 twice: both rejected
        RQ(257, CT, (IMPLICIT_VR_LE,)),  # out of range
    ]
    result = negotiate(rq, [], SUPPORTED)
    assert [(c.context_id, c.result) for c in result.contexts] == [
        (1, 0),
        (2, 2),
        (3, 2),
        (3, 2),
        (257, 2),
    ]
    assert [a.context_id for a in result.accepted] == [1]


def test_nothing_supported() -> None:
    result = negotiate([RQ(1, CT, (IMPLICIT_VR_LE,))], [], {})
    assert result.contexts == (AC(1, 3, IMPLICIT_VR_LE),)
    assert result.accepted == ()


def test_empty_transfer_syntax_list() -> None:
    result = negotiate([RQ(1, CT, ())], [], SUPPORTED)
    assert result.contexts == (AC(1, 4, ""),)


def test_role_reversal_granted_for_scp_roles() -> None:
    # C-GET style: the requestor wants to be the Storage SCP (PS3.7 D.3.3.4).
    rq = [RQ(1, CT, (IMPLICIT_VR_LE,)), RQ(3, MR, (JPEG,))]
    roles = [RoleSelection(CT, False, True), RoleSelection(MR, True, True)]
    result = negotiate(rq, roles, SUPPORTED, scp_roles={CT, MR})
    assert result.roles == (RoleSelection(CT, False, True), RoleSelection(MR, True, True))
    assert result.accepted == (
        AcceptedContext(1, CT, IMPLICIT_VR_LE, False, True),
        AcceptedContext(3, MR, JPEG, True, True),
    )


def test_role_reversal_refused() -> None:
    rq = [RQ(1, CT, (IMPLICIT_VR_LE,)), RQ(3, MR, (JPEG,))]
    roles = [RoleSelection(CT, False, True), RoleSelection(MR, True, True)]
    result = negotiate(rq, roles, SUPPORTED)  # no scp_roles
    # CT: the only proposed role is refused, so the context is useless: user rejection.
    assert result.contexts == (AC(1, 1, IMPLICIT_VR_LE), AC(3, 0, JPEG))
    assert result.roles == (RoleSelection(MR, True, False),)
    assert result.accepted == (AcceptedContext(3, MR, JPEG, True, False),)


def test_role_items_without_accepted_context_get_no_reply() -> None:
    roles = [RoleSelection(STUDY_ROOT_QR_MOVE, True, False), RoleSelection(MR, True, True)]
    result = negotiate([RQ(1, CT, (IMPLICIT_VR_LE,))], roles, SUPPORTED, scp_roles={MR})
    assert result.roles == ()
    assert result.accepted == (AcceptedContext(1, CT, IMPLICIT_VR_LE, True, False),)


def test_repeated_role_item_first_wins() -> None:
    roles = [RoleSelection(CT, True, False), RoleSelection(CT, False, True)]
    result = negotiate([RQ(1, CT, (IMPLICIT_VR_LE,))], roles, SUPPORTED, scp_roles={CT})
    assert result.roles == (RoleSelection(CT, True, False),)


# --- accepted_contexts (requestor) ---------------------------------------------------------

PROPOSED = (RQ(1, CT, (EXPLICIT_VR_LE, IMPLICIT_VR_LE)), RQ(3, VERIFICATION, (IMPLICIT_VR_LE,)))


def test_requestor_reads_the_answer() -> None:
    ac = (AC(3, 0, IMPLICIT_VR_LE), AC(1, 4, EXPLICIT_VR_LE))
    assert accepted_contexts(PROPOSED, ac) == (
        AcceptedContext(3, VERIFICATION, IMPLICIT_VR_LE, True, False),
    )


@pytest.mark.parametrize(
    "ac",
    [
        (AC(1, 0, JPEG),),  # accepted with a syntax that was not proposed
        (AC(5, 0, IMPLICIT_VR_LE),),  # unknown context
        (AC(1, 0, IMPLICIT_VR_LE), AC(1, 0, IMPLICIT_VR_LE)),  # answered twice
        (AC(3, 3, ""), AC(3, 3, "")),
    ],
)
def test_requestor_rejects_bad_answers(ac: tuple[PresentationContextAC, ...]) -> None:
    with pytest.raises(RemoteProtocolError):
        accepted_contexts(PROPOSED, ac)


def test_unmentioned_context_is_not_accepted() -> None:
    assert accepted_contexts(PROPOSED, (AC(1, 0, IMPLICIT_VR_LE),)) == (
        AcceptedContext(1, CT, IMPLICIT_VR_LE),
    )


def test_requestor_roles() -> None:
    ac = (AC(1, 0, EXPLICIT_VR_LE),)
    asked = [RoleSelection(CT, True, False)]
    # The acceptor claims both roles although only SCU was proposed: SCP is ignored.
    both = [RoleSelection(CT, True, True)]
    assert accepted_contexts(PROPOSED, ac, both, rq_roles=asked)[0].scp_role is False
    # Without knowing what was proposed, the answer is taken as it is.
    assert accepted_contexts(PROPOSED, ac, both)[0].scp_role is True
    # An answer for a SOP class we asked nothing about: default roles.
    assert accepted_contexts(PROPOSED, ac, both, rq_roles=[])[0] == AcceptedContext(
        1, CT, EXPLICIT_VR_LE, True, False
    )
    # Both roles turned down: the context cannot be used.
    none = [RoleSelection(CT, False, False)]
    assert accepted_contexts(PROPOSED, ac, none, rq_roles=both) == ()


# --- find_context --------------------------------------------------------------------------


def test_find_context() -> None:
    accepted = (
        AcceptedContext(1, CT, IMPLICIT_VR_LE),
        AcceptedContext(3, CT, JPEG),
        AcceptedContext(5, VERIFICATION, IMPLICIT_VR_LE),
    )
    assert find_context(accepted, CT).context_id == 1
    assert find_context(accepted, CT, JPEG).context_id == 3
    with pytest.raises(NoAcceptedContext):
        find_context(accepted, MR)
    with pytest.raises(NoAcceptedContext):
        find_context(accepted, VERIFICATION, EXPLICIT_VR_LE)


# --- properties: both sides agree; pynetdicom agrees -----------------------------------------

ABSTRACT = [VERIFICATION, CT, MR, STUDY_ROOT_QR_MOVE, "1.2.3.4"]
TRANSFER = [IMPLICIT_VR_LE, EXPLICIT_VR_LE, EXPLICIT_VR_BE, JPEG, uids.DEFLATED_EXPLICIT_VR_LE]
ts_lists = st.lists(st.sampled_from(TRANSFER), min_size=1, max_size=4, unique=True)


Scenario = tuple[
    tuple[PresentationContextRQ, ...], list[RoleSelection], dict[str, list[str]], set[str]
]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    proposals = draw(st.lists(st.tuples(st.sampled_from(ABSTRACT), ts_lists), max_size=8))
    rq = build_contexts(proposals)
    role_uids = draw(st.lists(st.sampled_from(ABSTRACT), unique=True, max_size=3))
    roles = [RoleSelection(u, draw(st.booleans()), draw(st.booleans())) for u in role_uids]
    supported = draw(st.dictionaries(st.sampled_from(ABSTRACT), ts_lists, max_size=5))
    scp_roles = set(draw(st.lists(st.sampled_from(ABSTRACT), max_size=3)))
    return rq, roles, supported, scp_roles


@settings(deadline=None)  # CPU-bound; shared CI machines vary in speed
@given(scenarios())
def test_both_sides_agree(scenario: Scenario) -> None:
    rq, roles, supported, scp_roles = scenario
    result = negotiate(rq, roles, supported, scp_roles=scp_roles)
    assert [c.context_id for c in result.contexts] == [c.context_id for c in rq]
    for reply in result.roles:  # PS3.7 D.3.3.4: never accept a role that was not proposed
        (proposal,) = [r for r in roles if r.sop_class_uid == reply.sop_class_uid]
        assert proposal.scu_role or not reply.scu_role
        assert proposal.scp_role or not reply.scp_role
    seen = accepted_contexts(rq, result.contexts, result.roles, rq_roles=roles)
    assert seen == result.accepted
    assert accepted_contexts(rq, result.contexts, result.roles) == result.accepted


@settings(deadline=None)  # CPU-bound; shared CI machines vary in speed
@given(scenarios())
def test_agrees_with_pynetdicom(scenario: Scenario) -> None:
    from pynetdicom.presentation import PresentationContext, negotiate_as_acceptor

    rq, roles, supported, scp_roles = scenario
    theirs_rq = []
    for context in rq:
        cx = PresentationContext()
        cx.context_id = context.context_id
        cx.abstract_syntax = context.abstract_syntax
        cx.transfer_syntax = list(context.transfer_syntaxes)
        theirs_rq.append(cx)
    theirs_ac = []
    for uid, syntaxes in supported.items():
        cx = PresentationContext()
        cx.abstract_syntax = uid
        cx.transfer_syntax = list(syntaxes)
        # pynetdicom's acceptor roles mean "accept the requestor's SCU / SCP proposal".
        cx.scu_role, cx.scp_role = True, uid in scp_roles
        theirs_ac.append(cx)
    role_map: dict[UID, tuple[bool | None, bool | None]] = {
        UID(r.sop_class_uid): (r.scu_role, r.scp_role) for r in roles
    }
    contexts, their_roles = negotiate_as_acceptor(theirs_rq, theirs_ac, role_map or None)

    ours = negotiate(rq, roles, supported, scp_roles=scp_roles)
    assert {c.context_id: (c.result, c.transfer_syntax) for c in ours.contexts} == {
        c.context_id: (c.result, c.transfer_syntax[0]) for c in contexts
    }
    assert {(r.sop_class_uid, r.scu_role, r.scp_role) for r in ours.roles} == {
        (r.sop_class_uid, r.scu_role, r.scp_role) for r in their_roles
    }
