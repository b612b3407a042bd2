"""The public surface stays small and deliberate."""

from __future__ import annotations

import aiomove

EXPECTED = {
    "FindResponse",
    "find_all",
    "FileSink",
    "MoveResponse",
    "OutputOptions",
    "RetrieveResult",
    "RetrieveSession",
    "StoreRequest",
    "StoreResult",
    "open_session",
    "retrieve",
    "AcceptorConfig",
    "AcseTimeout",
    "AiomoveError",
    "Association",
    "AssociationAborted",
    "AssociationError",
    "AssociationRejected",
    "ConnectError",
    "ConnectTimeout",
    "DimseTimeout",
    "LocalProtocolError",
    "NoAcceptedContext",
    "Peer",
    "ReleaseFailed",
    "ProtocolError",
    "RemoteProtocolError",
    "Status",
    "StatusError",
    "Timeouts",
    "TransportError",
    "__version__",
    "connect",
    "serve",
}


def test_all_is_exactly_the_public_surface() -> None:
    assert set(aiomove.__all__) == EXPECTED
    for name in aiomove.__all__:
        assert hasattr(aiomove, name), name


def test_errors_form_one_tree() -> None:
    for name in aiomove.__all__:
        obj = getattr(aiomove, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, aiomove.AiomoveError), name
    assert issubclass(aiomove.DimseTimeout, TimeoutError)


def test_version_matches_metadata() -> None:
    from importlib.metadata import version

    assert aiomove.__version__ == version("aiomove")
