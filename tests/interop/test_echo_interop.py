"""C-ECHO both ways with real peers on loopback: DCMTK (storescp, echoscu) and pynetdicom."""

from __future__ import annotations

import subprocess
import sys

import anyio
import pytest

from aiomove.association import Peer, connect
from aiomove.server import AcceptorConfig, serve
from tests.peers import dcmtk, pynetdicom_scp, storescp

pytestmark = pytest.mark.interop

AIOMOVE = [sys.executable, "-m", "aiomove"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AIOMOVE, *args], capture_output=True, text=True, timeout=60)


def test_aiomove_echo_cli_against_dcmtk_storescp() -> None:
    with storescp() as port:
        result = run_cli("echo", "-aec", "STORESCP", "127.0.0.1", str(port), "--repeat", "3")
    assert result.returncode == 0, result.stderr


def test_aiomove_echo_cli_against_pynetdicom() -> None:
    with pynetdicom_scp() as port:
        result = run_cli("echo", "-v", "127.0.0.1", str(port))
    assert result.returncode == 0, result.stderr
    assert "c_echo.response" in result.stderr


def test_aiomove_echo_cli_aborts_with_dcmtk() -> None:
    with storescp() as port:
        result = run_cli("echo", "--abort", "127.0.0.1", str(port))
    assert result.returncode == 0, result.stderr


def test_aiomove_echo_cli_no_context_with_pynetdicom() -> None:
    with pynetdicom_scp("--no-verification") as port:
        result = run_cli("echo", "127.0.0.1", str(port))
    assert result.returncode == 66, result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_dcmtk_echoscu_against_serve() -> None:
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, AcceptorConfig(ae_title="AIOMOVE"))
        result = await anyio.run_process(
            [dcmtk("echoscu"), "-v", "-aec", "AIOMOVE", "127.0.0.1", str(port), "--repeat", "2"],
            check=False,
        )
        tg.cancel_scope.cancel()
    out = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, out
    assert "Association Accepted" in out
    assert out.count("Received Echo Response (Success)") == 2


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_dcmtk_echoscu_three_transfer_syntaxes_and_abort() -> None:
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, AcceptorConfig())
        result = await anyio.run_process(
            [dcmtk("echoscu"), "-pts", "3", "-ppc", "5", "--abort", "127.0.0.1", str(port)],
            check=False,
        )
        # still serving after the abort
        again = await anyio.run_process([dcmtk("echoscu"), "127.0.0.1", str(port)], check=False)
        tg.cancel_scope.cancel()
    assert result.returncode == 0, result.stderr
    assert again.returncode == 0, again.stderr


PYNETDICOM_ECHO = """
import sys
from pynetdicom import AE
from pynetdicom.sop_class import Verification
ae = AE(ae_title="PYSCU")
ae.add_requested_context(Verification)
assoc = ae.associate("127.0.0.1", int(sys.argv[1]), ae_title="AIOMOVE")
assert assoc.is_established, "not established"
status = assoc.send_c_echo()
print(hex(status.Status))
assoc.release()
"""


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_pynetdicom_echo_against_serve() -> None:
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, AcceptorConfig())
        result = await anyio.run_process(
            [sys.executable, "-W", "ignore", "-c", PYNETDICOM_ECHO, str(port)], check=False
        )
        tg.cancel_scope.cancel()
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip() == "0x0"


@pytest.mark.anyio
async def test_library_echo_against_dcmtk_storescp() -> None:
    with storescp() as port:
        async with connect(Peer("127.0.0.1", port, "STORESCP")) as assoc:
            assert (await assoc.echo()).is_success
