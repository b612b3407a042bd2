"""Presentation context and SCP/SCU role negotiation.

PS3.8 §9.3.2.2 / §9.3.3.2 (context items), §7.1.1.13-14 and Table 9-18 (results), PS3.7
D.3.3.4 (role selection) and Annex B (the requestor proposes, the acceptor picks).

Roles, read from PS3.7 D.3.3.4: both the RQ and the AC role sub-items talk about the
*association requestor*. In the RQ, scu_role/scp_role say which roles the requestor proposes
to play; in the AC, 1 means "the acceptor accepts that proposed role" and may only be sent
for a role that was proposed. Without an item (either direction), the requestor is SCU and
the acceptor SCP. `AcceptedContext.scu_role` / `scp_role` therefore always give the
*requestor's* roles, on both sides of the association, exactly as on the wire: the acceptor
may act as SCP when `scu_role` is true and as SCU (e.g. C-STORE during C-GET) when
`scp_role` is true.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from aiomove.errors import LocalProtocolError, NoAcceptedContext, RemoteProtocolError
from aiomove.proto.pdu import (
    PresentationContextAC,
    PresentationContextResult,
    PresentationContextRQ,
    RoleSelection,
)
from aiomove.proto.uids import is_valid_uid

#: PS3.8 §9.3.2.2: context IDs are odd integers 1-255, so at most 128 contexts.
MAX_CONTEXTS: Final = 128


@dataclass(frozen=True, slots=True)
class AcceptedContext:
    """A usable presentation context. `scu_role`/`scp_role` are the association *requestor's*
    roles for this abstract syntax (see the module docstring; default True/False)."""

    context_id: int
    abstract_syntax: str
    transfer_syntax: str
    scu_role: bool = True
    scp_role: bool = False


@dataclass(frozen=True, slots=True)
class NegotiationResult:
    """The acceptor's answer: what goes into the A-ASSOCIATE-AC, and what it can use."""

    contexts: tuple[PresentationContextAC, ...]  # one per RQ context, same order
    roles: tuple[RoleSelection, ...]  # role sub-items for the AC's user information
    accepted: tuple[AcceptedContext, ...]


# --- requestor ------------------------------------------------------------------------------


def build_contexts(
    proposals: Sequence[tuple[str, Sequence[str]]],
) -> tuple[PresentationContextRQ, ...]:
    """Number (abstract syntax, transfer syntaxes) proposals with context IDs 1, 3, 5...

    Raises LocalProtocolError for more than 128 proposals, an empty transfer syntax list or
    a syntactically invalid UID (PS3.8 §9.3.2.2, PS3.5 §9.1).
    """
    if len(proposals) > MAX_CONTEXTS:
        raise LocalProtocolError(f"{len(proposals)} presentation contexts, at most 128 allowed")
    contexts = []
    for index, (abstract_syntax, transfer_syntaxes) in enumerate(proposals):
        if not transfer_syntaxes:
            raise LocalProtocolError(f"no transfer syntax proposed for {abstract_syntax}")
        for uid in (abstract_syntax, *transfer_syntaxes):
            if not is_valid_uid(uid):
                raise LocalProtocolError(f"invalid UID in presentation context: {uid!r}")
        contexts.append(
            PresentationContextRQ(2 * index + 1, abstract_syntax, tuple(transfer_syntaxes))
        )
    return tuple(contexts)


def _role_map(roles: Sequence[RoleSelection]) -> dict[str, RoleSelection]:
    """SOP class -> its role item; the first wins if a peer repeats one (PS3.7 D.3.3.4)."""
    found: dict[str, RoleSelection] = {}
    for role in roles:
        found.setdefault(role.sop_class_uid, role)
    return found


def accepted_contexts(
    rq: Sequence[PresentationContextRQ],
    ac: Sequence[PresentationContextAC],
    ac_roles: Sequence[RoleSelection] = (),
    *,
    rq_roles: Sequence[RoleSelection] | None = None,
) -> tuple[AcceptedContext, ...]:
    """The requestor's view of the acceptor's answer: the contexts it may use, in AC order.

    RemoteProtocolError if the AC names a context ID that was not proposed (or twice), or
    accepts a transfer syntax that was not proposed for that context (PS3.8 §9.3.3.2).
    Roles: with `rq_roles` (what we proposed), an AC role we did not propose is ignored
    (PS3.7 D.3.3.4: "the requestor shall ignore the response if it has not proposed the
    role"); without it the AC's role items are taken as they are. A context left with neither
    role is not usable and is left out. RQ contexts the AC does not mention are not accepted.
    """
    proposed = {context.context_id: context for context in rq}
    answered = _role_map(ac_roles)
    ours = _role_map(rq_roles) if rq_roles is not None else None
    seen: set[int] = set()
    usable = []
    for item in ac:
        context = proposed.get(item.context_id)
        if context is None or item.context_id in seen:
            raise RemoteProtocolError(
                f"A-ASSOCIATE-AC answers unknown or repeated context {item.context_id}"
            )
        seen.add(item.context_id)
        if item.result != PresentationContextResult.ACCEPTANCE:
            continue
        if item.transfer_syntax not in context.transfer_syntaxes:
            raise RemoteProtocolError(
                f"context {item.context_id} accepted with transfer syntax"
                f" {item.transfer_syntax!r}, which was not proposed"
            )
        scu, scp = _requestor_roles(context.abstract_syntax, answered, ours)
        if scu or scp:
            usable.append(
                AcceptedContext(
                    item.context_id, context.abstract_syntax, item.transfer_syntax, scu, scp
                )
            )
    return tuple(usable)


def _requestor_roles(
    sop_class: str,
    answered: Mapping[str, RoleSelection],
    proposed: Mapping[str, RoleSelection] | None,
) -> tuple[bool, bool]:
    reply = answered.get(sop_class)
    if reply is None:
        return True, False  # PS3.7 D.3.3.4: no AC item -> default roles
    if proposed is None:
        return reply.scu_role, reply.scp_role
    ours = proposed.get(sop_class)
    if ours is None:
        return True, False  # an answer to a question we did not ask: ignore it
    return reply.scu_role and ours.scu_role, reply.scp_role and ours.scp_role


# --- acceptor -------------------------------------------------------------------------------


def _bad_ids(rq_contexts: Sequence[PresentationContextRQ]) -> set[int]:
    """IDs that are even, out of 1-255, or used by more than one context (PS3.8 §9.3.2.2)."""
    counts = Counter(context.context_id for context in rq_contexts)
    return {cid for cid, n in counts.items() if n > 1 or cid % 2 == 0 or not 1 <= cid <= 255}


def negotiate(
    rq_contexts: Sequence[PresentationContextRQ],
    rq_roles: Sequence[RoleSelection],
    supported: Mapping[str, Sequence[str]],
    *,
    scp_roles: Collection[str] = (),
) -> NegotiationResult:
    """Answer an A-ASSOCIATE-RQ's presentation contexts (PS3.8 §9.3.3.2, Table 9-18).

    `supported` maps each abstract syntax the acceptor serves (as SCP) to its transfer
    syntaxes in order of preference; the first of them the requestor proposed is chosen.
    Results: 3 abstract syntax not supported, 4 no common transfer syntax, 2 (no reason) for
    an invalid context ID (even, or out of range) and for every context of an ID used more
    than once (the AC could not say which one it answers), 1 (user rejection) when role
    selection leaves the requestor neither role.

    Roles (PS3.7 D.3.3.4): for each role item proposed for an accepted abstract syntax, the
    requestor's SCU role is accepted as proposed, and its SCP role only if the SOP class is in
    `scp_roles`; one reply item per such SOP class goes into `roles`. Role items for abstract
    syntaxes with no accepted context get no reply.
    """
    proposed_roles = _role_map(rq_roles)
    bad_ids = _bad_ids(rq_contexts)
    answers: list[PresentationContextAC] = []
    accepted: list[AcceptedContext] = []
    replies: dict[str, RoleSelection] = {}
    for context in rq_contexts:
        fallback_ts = context.transfer_syntaxes[0] if context.transfer_syntaxes else ""
        result, chosen = _choose(context, supported, bad_ids)
        if result == PresentationContextResult.ACCEPTANCE:
            reply = _role_reply(proposed_roles.get(context.abstract_syntax), scp_roles)
            scu, scp = (True, False) if reply is None else (reply.scu_role, reply.scp_role)
            if not (scu or scp):
                result = PresentationContextResult.USER_REJECTION
            else:
                accepted.append(
                    AcceptedContext(context.context_id, context.abstract_syntax, chosen, scu, scp)
                )
            if reply is not None:
                replies.setdefault(context.abstract_syntax, reply)
        # PS3.8 §9.3.3.2: the transfer syntax sub-item is present even when not significant;
        # echoing one the requestor proposed is what peers expect to see.
        answers.append(PresentationContextAC(context.context_id, result, chosen or fallback_ts))
    roles = tuple(
        reply for uid, reply in replies.items() if any(a.abstract_syntax == uid for a in accepted)
    )
    return NegotiationResult(tuple(answers), roles, tuple(accepted))


def _choose(
    context: PresentationContextRQ, supported: Mapping[str, Sequence[str]], bad_ids: set[int]
) -> tuple[PresentationContextResult, str]:
    """Table 9-18 result for one context, and the chosen transfer syntax ("" if rejected)."""
    if context.context_id in bad_ids:
        return PresentationContextResult.NO_REASON, ""
    ours = supported.get(context.abstract_syntax)
    if ours is None:
        return PresentationContextResult.ABSTRACT_SYNTAX_NOT_SUPPORTED, ""
    for transfer_syntax in ours:
        if transfer_syntax in context.transfer_syntaxes:
            return PresentationContextResult.ACCEPTANCE, transfer_syntax
    return PresentationContextResult.TRANSFER_SYNTAXES_NOT_SUPPORTED, ""


def _role_reply(proposal: RoleSelection | None, scp_roles: Collection[str]) -> RoleSelection | None:
    """The AC role item answering `proposal`: never 1 for a role not proposed (D.3.3.4)."""
    if proposal is None:
        return None
    uid = proposal.sop_class_uid
    return RoleSelection(uid, proposal.scu_role, proposal.scp_role and uid in scp_roles)


# --- lookup ---------------------------------------------------------------------------------


def find_context(
    accepted: Sequence[AcceptedContext], abstract_syntax: str, transfer_syntax: str | None = None
) -> AcceptedContext:
    """The first accepted context for `abstract_syntax` (and `transfer_syntax`, if given)."""
    for context in accepted:
        if context.abstract_syntax == abstract_syntax and transfer_syntax in (
            None,
            context.transfer_syntax,
        ):
            return context
    wanted = (
        abstract_syntax if transfer_syntax is None else f"{abstract_syntax} / {transfer_syntax}"
    )
    raise NoAcceptedContext(f"no accepted presentation context for {wanted}")
