"""The anyio shell under one association: a pump between a byte stream and a sans-IO Connection.

Reading happens on demand (whoever waits for the next event reads), so there is no background
reader task and nothing to clean up beyond the stream. Exceptions from the network are mapped to
aiomove's error tree here, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
from collections.abc import Callable

import anyio
import anyio.abc

from aiomove.errors import (
    AiomoveTimeout,
    AssociationAborted,
    ReadError,
    WriteError,
)
from aiomove.proto.connection import Connection
from aiomove.proto.events import ConnectionEvent
from aiomove.proto.fsm import State

#: How much one receive() asks for. Larger reads mean fewer trips through the event loop.
READ_SIZE = 256 * 1024

_NETWORK_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


def _loop_clock() -> Callable[[], float]:
    """The running loop's clock function, looked up once: `anyio.current_time()` finds the
    backend and the loop on every call, several times per PDU on a busy association."""
    try:
        return asyncio.get_running_loop().time
    except RuntimeError:  # not asyncio (trio)
        return anyio.current_time


class Link:
    """One TCP stream driven by one `Connection`."""

    def __init__(
        self, stream: anyio.abc.ByteStream, conn: Connection, write_timeout: float | None = None
    ) -> None:
        self.stream = stream
        self.conn = conn
        #: A peer that stops reading must not pin us forever (DCMTK: dcmSocketSendTimeout).
        self.write_timeout = write_timeout
        self.closed = False
        self._sock = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        if self._sock is not None:
            # PS3.8 PDUs are often written as header + body in two writes (DCMTK does): with
            # Nagle on and delayed ACKs the second write waits ~40 ms. Disable Nagle for ours.
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._quickack = self._sock is not None and hasattr(socket, "TCP_QUICKACK")
        self._clock = _loop_clock()

    def _ack_now(self) -> None:
        """Linux: ACK at once so a peer with Nagle on does not stall on our delayed ACK.

        TCP_QUICKACK is not sticky (the kernel may fall back to delayed ACKs), so it is set
        again after every read; it is one cheap syscall per read.
        """
        if self._quickack and self._sock is not None:
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            except OSError:
                self._quickack = False

    def now(self) -> float:
        """The event loop's clock (the one cancel-scope deadlines use)."""
        return self._clock()

    async def flush(self) -> None:
        """Send what the core queued; close the stream once the core is back in Sta1."""
        buffers = self.conn.data_to_send()
        if buffers and not self.closed:
            data = b"".join(buffers)  # one write per flush; a lone bytes is not copied
            try:
                with anyio.fail_after(self.write_timeout):
                    await self.stream.send(data)
            except (*_NETWORK_ERRORS, TimeoutError) as exc:
                self.conn.transport_closed(self.now())
                await self.close()
                why = "peer stopped reading" if isinstance(exc, TimeoutError) else repr(exc)
                raise WriteError(f"cannot send to peer: {why}") from exc
        if self.conn.state is State.STA1:
            await self.close()

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            with anyio.CancelScope(shield=True):
                await self.stream.aclose()

    async def next_event(
        self, timeout: float | None, timeout_error: type[AiomoveTimeout]
    ) -> ConnectionEvent:
        """The next event from the core, reading from the peer as needed.

        Honours the core's ARTIM deadline (PS3.8 §9.1.5) as well as the caller's `timeout`,
        which raises `timeout_error` when it passes.
        """
        user_deadline = math.inf if timeout is None else self.now() + timeout
        while True:
            event = self.conn.next_event()
            if event is not None:
                return event
            if self.closed:
                raise AssociationAborted("the connection to the peer is closed")
            artim = self.conn.next_deadline
            deadline = min(user_deadline, math.inf if artim is None else artim)
            data: bytes | None = None
            with anyio.CancelScope(deadline=deadline):
                try:
                    data = await self.stream.receive(READ_SIZE)
                except anyio.EndOfStream:
                    data = b""
                except _NETWORK_ERRORS as exc:
                    self.conn.transport_closed(self.now())
                    await self.close()
                    if self.conn.next_event() is None:
                        raise ReadError(f"cannot read from peer: {exc!r}") from exc
                    continue
            now = self.now()
            if data is None:  # a deadline passed
                if artim is not None and now >= artim:
                    self.conn.handle_timeout(now)
                    await self.flush()
                    continue
                raise timeout_error(f"no answer from the peer within {timeout} s")
            if data:
                self._ack_now()
            self.conn.receive_data(data, now)
            await self.flush()
