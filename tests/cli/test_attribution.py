"""`aiomove.attribution`: the one rule `aiomove move` and `RetrieveSession` share."""

from __future__ import annotations

import pytest

from aiomove.attribution import owners
from aiomove.proto import uids
from aiomove.storage import StoreRequest

OURS, PEER = "MOVESCU", "PACS"
REQUESTS = {3: "request 3", 4: "request 4"}


def store(originator: str | None, message_id: int | None) -> StoreRequest:
    return StoreRequest(
        message_id=1,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        sop_instance_uid="1.2.3",
        transfer_syntax=uids.EXPLICIT_VR_LE,
        calling_ae_title=PEER,
        called_ae_title=OURS,
        move_originator_ae_title=originator,
        move_originator_message_id=message_id,
        assoc_id=0,
        peer="test",
        priority=0,
    )


def find(request: StoreRequest) -> list[str]:
    return owners(request, OURS, REQUESTS, ["request 4"], lambda _: PEER)


@pytest.mark.parametrize("originator", [None, "", OURS, PEER])
def test_a_message_id_names_its_request_when_the_originator_is_ours_or_the_peers(
    originator: str | None,
) -> None:
    assert find(store(originator, 3)) == ["request 3"]
    assert find(store(originator, None)) == ["request 4"]  # the caller's fallback


def test_a_foreign_originator_or_an_unknown_message_id_is_not_ours() -> None:
    assert find(store("SOMEONE-ELSE", 3)) == []
    assert find(store("SOMEONE-ELSE", None)) == []
    assert find(store(OURS, 99)) == []  # not the running request either
