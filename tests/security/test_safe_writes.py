"""Safe writes through real sockets: hostile UIDs never become paths, every file is complete
or absent, a really full disk (a tmpfs mounted by the test) answers 0xA700 and the service
goes on, the free-disk floor, the instance size limit, and C-STOREs nobody asked for."""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import structlog.testing

from aiomove.association import Timeouts
from aiomove.server import ActiveAssociations
from aiomove.storage import (
    CANNOT_UNDERSTAND,
    NOT_AUTHORIZED,
    OUT_OF_RESOURCES,
    FileSink,
    StoreRequest,
    storage_config,
)
from tests.net.hostile_util import abort_fields, p_data, pdv
from tests.peers import dcmtk
from tests.security.util import (
    HANG,
    data_pdus,
    events,
    find_rq_command,
    listing,
    raw_storage_association,
    raw_store,
    running,
    small_dataset,
    store_rq_command,
)

pytestmark = pytest.mark.anyio

SLOW = Timeouts(acse=HANG, dimse=HANG)


# --- hostile UIDs ------------------------------------------------------------------------------

HOSTILE_UIDS = {
    "parent directories": b"../../x",
    "absolute path": b"/etc/passwd",
    "embedded NUL": b"1.2.3\x00/../../x",
    "NUL then dots": b"1.2\x00..",
    "slash inside": b"1.2.3/4",
    "backslash": b"1.2.3\\..\\x",
    "dot dot": b"..",
    "too long": b"1." * 40 + b"1",
    "leading zero": b"1.02.3",
    "letters": b"1.2.abc",
    "non-ASCII": "1.2.\u00e9".encode("latin-1"),
}


@pytest.mark.parametrize("uid", HOSTILE_UIDS.values(), ids=HOSTILE_UIDS.keys())
async def test_hostile_sop_instance_uid_is_refused_on_the_wire(tmp_path: Path, uid: bytes) -> None:
    out = tmp_path / "out"
    out.mkdir()
    config = storage_config("STORESCP", FileSink(out), timeouts=SLOW)
    async with running(config) as port:
        peer = await raw_storage_association(port)
        try:
            assert await raw_store(peer, uid, small_dataset("1.2.3.1")) == CANNOT_UNDERSTAND
            # the data set was drained: the same association goes on in step
            assert await raw_store(peer, "1.2.3.1", small_dataset("1.2.3.1")) == 0
        finally:
            await peer.aclose()
    assert listing(tmp_path) == ["out", "out/CT.1.2.3.1"]


async def test_empty_sop_instance_uid_is_a_malformed_command(tmp_path: Path) -> None:
    """(0000,1000) is required in a C-STORE-RQ: without a value the command does not decode,
    and the association is aborted (nothing is stored, the server goes on)."""
    config = storage_config("STORESCP", FileSink(tmp_path), timeouts=SLOW)
    async with running(config) as port:
        peer = await raw_storage_association(port)
        try:
            with anyio.fail_after(HANG):
                await peer.send(p_data(pdv(1, store_rq_command(b""), command=True)))
                answer = await peer.read_to_eof()
        finally:
            await peer.aclose()
        assert abort_fields(answer)[0] in (0, 2)
    assert listing(tmp_path) == []


# --- a real full disk --------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted on `directory` for the test, unmounted afterwards."""
    directory.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        if "permission denied" in done.stderr.lower() or "must be superuser" in done.stderr:
            pytest.skip(f"this machine forbids mounting a tmpfs: {done.stderr.strip()}")
        raise OSError(errno.EIO, f"mount failed: {done.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


async def test_full_disk_answers_out_of_resources_removes_the_partial_file_and_goes_on(
    tmp_path: Path,
) -> None:
    """A 2 MiB tmpfs and a 3 MiB instance: ENOSPC mid data set. DCMTK storescu is the peer."""
    with tmpfs(tmp_path / "disk", "2m") as disk:
        big = tmp_path / "big.dcm"
        small = tmp_path / "small.dcm"
        from tests.store_util import make_dataset

        make_dataset("1.2.3.100", pixel_bytes=3 << 20).save_as(big, implicit_vr=False)
        make_dataset("1.2.3.101", pixel_bytes=4096).save_as(small, implicit_vr=False)
        config = storage_config("STORESCP", FileSink(disk, min_free_bytes=0), timeouts=SLOW)
        with structlog.testing.capture_logs() as logs:
            async with running(config) as port:
                # one association, two C-STOREs: the second must still work
                storescu = [dcmtk("storescu"), "-v", "--no-halt", "-aec", "STORESCP"]
                done = await anyio.run_process(
                    [*storescu, "127.0.0.1", str(port), str(big), str(small)], check=False
                )
        output = done.stdout.decode() + done.stderr.decode()
        assert "Received Store Response (Refused: OutOfResources)" in output, output
        assert "Received Store Response (Success)" in output, output
        assert listing(disk) == ["CT.1.2.3.101"]  # no partial file left behind
    stored = {e["uid"]: e for e in events(logs, "c_store.received")}
    assert stored["1.2.3.100"]["status"] == "0xA700"
    assert "No space left on device" in stored["1.2.3.100"]["error"]
    assert stored["1.2.3.101"]["status"] == "0x0000"
    assert [e["errno"] for e in events(logs, "storage.write_failed")] == [errno.ENOSPC]


async def test_disk_floor_refuses_before_the_disk_is_full(tmp_path: Path) -> None:
    """4 MiB disk, 3 MiB floor: a 1.5 MiB instance is refused, a small one fits."""
    with tmpfs(tmp_path / "disk", "4m") as disk:
        config = storage_config("STORESCP", FileSink(disk, min_free_bytes=3 << 20), timeouts=SLOW)
        with structlog.testing.capture_logs() as logs:
            async with running(config) as port:
                peer = await raw_storage_association(port)
                try:
                    big = small_dataset("1.2.3.110", pixel_bytes=3 << 19)
                    assert await raw_store(peer, "1.2.3.110", big) == OUT_OF_RESOURCES
                    small = small_dataset("1.2.3.111", pixel_bytes=2048)
                    assert await raw_store(peer, "1.2.3.111", small) == 0
                finally:
                    await peer.aclose()
        assert listing(disk) == ["CT.1.2.3.111"]
    floor = events(logs, "storage.disk_floor")
    assert [e["uid"] for e in floor] == ["1.2.3.110"]
    assert floor[0]["floor"] == 3 << 20


# --- size limit and unsolicited C-STOREs ----------------------------------------------------


async def test_instance_larger_than_the_limit_aborts_and_leaves_nothing(tmp_path: Path) -> None:
    config = storage_config(
        "STORESCP", FileSink(tmp_path, max_instance_size=1 << 20), timeouts=SLOW
    )
    data = small_dataset("1.2.3.120", pixel_bytes=3 << 20)
    with structlog.testing.capture_logs() as logs:
        async with running(config) as port:
            peer = await raw_storage_association(port)
            try:
                with anyio.fail_after(HANG):
                    await peer.send(p_data(pdv(1, store_rq_command("1.2.3.120"), command=True)))
                    with contextlib.suppress(anyio.BrokenResourceError, OSError):
                        for pdu in data_pdus(data, 16000):
                            await peer.send(pdu)
                    answer = await peer.read_to_eof()
            finally:
                await peer.aclose()
            # An A-ABORT (service-user), never a C-STORE-RSP. The server closes with our data
            # still unread, so its kernel may reset the connection and the A-ABORT be lost.
            if answer:
                assert abort_fields(answer) == (0, 0)
    assert listing(tmp_path) == []
    assert [e["limit"] for e in events(logs, "c_store.too_large")] == [1 << 20]
    assert not events(logs, "dimse.data_set_too_large")  # logged once, as a C-STORE's


async def test_data_set_of_an_unsupported_request_is_bounded_too(tmp_path: Path) -> None:
    """A C-FIND-RQ's identifier, only drained before 0x0211, is held to the same size limit:
    beyond it the association is aborted instead of reading on."""
    config = storage_config(
        "STORESCP", FileSink(tmp_path, max_instance_size=1 << 20), timeouts=SLOW
    )
    with structlog.testing.capture_logs() as logs:
        async with running(config) as port:
            peer = await raw_storage_association(port)
            try:
                with anyio.fail_after(HANG):
                    await peer.send(p_data(pdv(1, find_rq_command(), command=True)))
                    with contextlib.suppress(anyio.BrokenResourceError, OSError):
                        for pdu in data_pdus(bytes(3 << 20), 16000):
                            await peer.send(pdu)
                    answer = await peer.read_to_eof()
            finally:
                await peer.aclose()
            if answer:  # see above: the A-ABORT may be lost to a reset
                assert abort_fields(answer) == (0, 0)
    assert [e["limit"] for e in events(logs, "dimse.data_set_too_large")] == [1 << 20]
    assert not events(logs, "c_store.too_large")


async def test_c_store_outside_any_c_move_is_refused_not_authorized(tmp_path: Path) -> None:
    expected = {"1.2.3.130"}

    def ours(request: StoreRequest) -> bool:
        return request.sop_instance_uid in expected

    config = storage_config("STORESCP", FileSink(tmp_path), timeouts=SLOW, accept=ours)
    with structlog.testing.capture_logs() as logs:
        async with running(config) as port:
            peer = await raw_storage_association(port)
            try:
                stray = small_dataset("1.2.3.131")
                assert await raw_store(peer, "1.2.3.131", stray) == NOT_AUTHORIZED
                assert await raw_store(peer, "1.2.3.130", small_dataset("1.2.3.130")) == 0
            finally:
                await peer.aclose()
    assert listing(tmp_path) == ["CT.1.2.3.130"]
    assert [e["uid"] for e in events(logs, "c_store.unsolicited")] == ["1.2.3.131"]


# --- lying lengths mid data set ---------------------------------------------------------------


@pytest.mark.parametrize("length", [0xFFFFFFFF, 1 << 20])
async def test_lying_pdu_length_mid_data_set_aborts_and_leaves_no_file(
    tmp_path: Path, length: int
) -> None:
    config = storage_config("STORESCP", FileSink(tmp_path), timeouts=SLOW)
    data = small_dataset("1.2.3.140", pixel_bytes=3 << 20)
    async with running(config) as port:
        peer = await raw_storage_association(port)
        try:
            with anyio.fail_after(HANG):
                await peer.send(p_data(pdv(1, store_rq_command("1.2.3.140"), command=True)))
                pdus = data_pdus(data, 16000)
                for pdu in pdus[:150]:  # > 2 MiB: the temporary file exists by now
                    await peer.send(pdu)
                await peer.send(p_data(pdv(1, data[:100], command=False), length=length))
                answer = await peer.read_to_eof()
        finally:
            await peer.aclose()
        assert abort_fields(answer)[0] == 2  # service-provider: the PDU was invalid
    assert listing(tmp_path) == []


async def test_peer_vanishing_mid_data_set_leaves_no_file(tmp_path: Path) -> None:
    registry = ActiveAssociations()
    config = storage_config("STORESCP", FileSink(tmp_path), timeouts=SLOW, registry=registry)
    data = small_dataset("1.2.3.150", pixel_bytes=3 << 20)
    with structlog.testing.capture_logs() as logs:
        async with running(config) as port:
            peer = await raw_storage_association(port)
            await peer.send(p_data(pdv(1, store_rq_command("1.2.3.150"), command=True)))
            for pdu in data_pdus(data, 16000)[:150]:
                await peer.send(pdu)
            await peer.aclose()
            with anyio.fail_after(HANG):  # the association is gone once its cleanup is done
                await registry.wait_for(lambda: registry.total == 1 and not registry)
            assert listing(tmp_path) == []
    assert not events(logs, "association.crashed")
