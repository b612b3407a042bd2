"""aiomove: an asyncio-native DICOM retrieve service.

The public surface is small and listed in `__all__`; `aiomove.proto` is the low-level sans-IO
protocol core for those who build their own transport.
"""

from aiomove.association import Association, Peer, Timeouts, connect
from aiomove.errors import (
    AcseTimeout,
    AiomoveError,
    AssociationAborted,
    AssociationError,
    AssociationRejected,
    ConnectError,
    ConnectTimeout,
    DimseTimeout,
    LocalProtocolError,
    NoAcceptedContext,
    ProtocolError,
    ReleaseFailed,
    RemoteProtocolError,
    StatusError,
    TransportError,
)
from aiomove.find import FindResponse, find_all
from aiomove.move import MoveResponse
from aiomove.proto.status import Status
from aiomove.retrieve import RetrieveResult, RetrieveSession, open_session, retrieve
from aiomove.server import AcceptorConfig, serve
from aiomove.storage import FileSink, OutputOptions, StoreRequest, StoreResult

__version__ = "0.1.0"

__all__ = [
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
    "FileSink",
    "FindResponse",
    "LocalProtocolError",
    "MoveResponse",
    "NoAcceptedContext",
    "OutputOptions",
    "Peer",
    "ProtocolError",
    "ReleaseFailed",
    "RemoteProtocolError",
    "RetrieveResult",
    "RetrieveSession",
    "Status",
    "StatusError",
    "StoreRequest",
    "StoreResult",
    "Timeouts",
    "TransportError",
    "__version__",
    "connect",
    "find_all",
    "open_session",
    "retrieve",
    "serve",
]
