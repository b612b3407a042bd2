"""Whether a C-STORE belongs to one of our C-MOVE requests: one rule for `aiomove move`
(`movescu._Collector`) and `RetrieveSession` (and so `aiomove retrieve` and the daemon).

A C-STORE sub-operation names the C-MOVE that caused it with Move Originator Application Entity
Title (0000,1030) and Move Originator Message ID (0000,1031) (PS3.7 §9.1.1.1, §9.3.1.1). The
rule:
- the Move Originator AE title is absent, empty, ours, or the C-MOVE SCP's own (some sources,
  e.g. pynetdicom's Q/R SCP, name themselves), and
- the Move Originator Message ID is one of our requests' (a finished one's too: the caller
  decides which it still counts); absent (sources that omit both fields): the caller's
  fallback, i.e. the request running (`aiomove move`) or an outstanding retrieve chosen by
  calling AE title and content (`RetrieveSession`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from aiomove.storage import StoreRequest

Request = TypeVar("Request")


def originator_matches(request: StoreRequest, ae_title: str, peer_ae_title: str) -> bool:
    """The AE title half of the rule, for a C-MOVE sent as `ae_title` to `peer_ae_title`."""
    return request.move_originator_ae_title in (None, "", ae_title, peer_ae_title)


def owners(
    request: StoreRequest,
    ae_title: str,
    by_message_id: Mapping[int, Request],
    unnamed: Iterable[Request],
    peer_ae_title: Callable[[Request], str],
) -> list[Request]:
    """The requests `request` may belong to under the rule above.

    With a Move Originator Message ID: the one request of `by_message_id` it names, or none.
    Without: those of `unnamed` (the fallback's candidates) whose AE title half matches.
    """
    message_id = request.move_originator_message_id
    if message_id is None:
        candidates = list(unnamed)
    else:
        named = by_message_id.get(message_id)
        candidates = [] if named is None else [named]
    return [r for r in candidates if originator_matches(request, ae_title, peer_ae_title(r))]
