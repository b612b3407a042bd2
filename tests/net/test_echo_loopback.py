"""connect() and serve() against each other on loopback: C-ECHO, release, abort, concurrency."""

from __future__ import annotations

import contextlib

import anyio
import anyio.abc
import pytest

from aiomove.association import Peer, Timeouts, connect
from aiomove.errors import (
    AssociationRejected,
    ConnectError,
    NoAcceptedContext,
    ReleaseFailed,
)
from aiomove.proto import uids
from aiomove.server import AcceptorConfig, serve
from tests.net.hostile_util import associate_ac

pytestmark = pytest.mark.anyio


async def test_echo_round_trip() -> None:
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, AcceptorConfig(ae_title="SCP"))
        async with connect(Peer("127.0.0.1", port, "SCP"), ae_title="SCU") as assoc:
            status = await assoc.echo()
            assert status.code == 0x0000
            assert assoc.peer_ae_title == "SCP"
            assert assoc.local_ae_title == "SCU"
            assert assoc.is_established
        assert not assoc.is_established
        tg.cancel_scope.cancel()


async def test_echo_over_ipv6() -> None:
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, AcceptorConfig(), "::1")
        async with connect(Peer("::1", port)) as assoc:
            assert (await assoc.echo()).is_success
        tg.cancel_scope.cancel()


async def test_repeated_echoes_on_one_association() -> None:
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, AcceptorConfig())
        async with connect(Peer("127.0.0.1", port)) as assoc:
            ids = []
            for _ in range(5):
                assert (await assoc.echo()).is_success
                ids.append(assoc.next_message_id())
            assert ids == sorted(set(ids))
        tg.cancel_scope.cancel()


async def test_called_ae_title_not_recognised_is_rejected() -> None:
    config = AcceptorConfig(called_ae_titles=frozenset({"ONLYME"}))
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, config)
        with pytest.raises(AssociationRejected) as info:
            async with connect(Peer("127.0.0.1", port, "SOMEONE")):
                pass
        assert (info.value.result, info.value.source, info.value.reason) == (1, 1, 7)
        # the server is still answering
        async with connect(Peer("127.0.0.1", port, "ONLYME")) as assoc:
            assert (await assoc.echo()).is_success
        tg.cancel_scope.cancel()


async def test_no_accepted_context() -> None:
    config = AcceptorConfig(contexts={uids.VERIFICATION: (uids.EXPLICIT_VR_BE,)})
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, config)
        contexts = [(uids.VERIFICATION, (uids.IMPLICIT_VR_LE,))]
        async with connect(Peer("127.0.0.1", port), contexts=contexts) as assoc:
            assert assoc.contexts == ()
            with pytest.raises(NoAcceptedContext):
                await assoc.echo()
        tg.cancel_scope.cancel()


async def test_connection_refused() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()  # nobody listens there now
    with pytest.raises(ConnectError):
        async with connect(Peer("127.0.0.1", port)):
            pass


async def test_abort_leaves_server_serving() -> None:
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, AcceptorConfig())
        async with connect(Peer("127.0.0.1", port)) as assoc:
            await assoc.abort()
            assert not assoc.is_established
        async with connect(Peer("127.0.0.1", port)) as assoc:
            assert (await assoc.echo()).is_success
        tg.cancel_scope.cancel()


async def test_cancelled_user_aborts_and_server_survives() -> None:
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, AcceptorConfig())
        with anyio.CancelScope() as scope:
            async with connect(Peer("127.0.0.1", port)) as assoc:
                scope.cancel()
                await anyio.sleep_forever()
        assert scope.cancelled_caught
        assert assoc.link.closed
        async with connect(Peer("127.0.0.1", port)) as again:
            assert (await again.echo()).is_success
        tg.cancel_scope.cancel()


async def test_exception_in_body_aborts() -> None:
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, AcceptorConfig())
        with pytest.raises(ZeroDivisionError):
            async with connect(Peer("127.0.0.1", port)) as assoc:
                _ = 1 / 0
        assert assoc.link.closed
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_200_concurrent_associations_all_answered() -> None:
    answered = 0
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, AcceptorConfig())

        async def one() -> None:
            nonlocal answered
            async with connect(Peer("127.0.0.1", port), timeouts=Timeouts(acse=60)) as assoc:
                if (await assoc.echo()).is_success:
                    answered += 1

        async with anyio.create_task_group() as clients:
            for _ in range(200):
                clients.start_soon(one)
        tg.cancel_scope.cancel()
    assert answered == 200


async def test_peer_that_never_answers_release_gives_release_failed() -> None:
    """A-RELEASE-RQ with no A-RELEASE-RP: bounded by the ACSE timeout, then A-ABORT (exit 67)."""
    received: list[bytes] = []

    async def acceptor(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()  # the A-ASSOCIATE-RQ (one read is enough on loopback)
            await stream.send(associate_ac())
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                while True:
                    received.append(await stream.receive())

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, acceptor)
        with pytest.raises(ReleaseFailed):
            async with connect(Peer("127.0.0.1", port), timeouts=Timeouts(acse=0.5)):
                pass
        tg.cancel_scope.cancel()
    data = b"".join(received)
    assert data.startswith(bytes.fromhex("05 00 00000004 00000000"))  # A-RELEASE-RQ
    assert data.endswith(bytes.fromhex("07 00 00000004 0000 0000"))  # then A-ABORT (user)
