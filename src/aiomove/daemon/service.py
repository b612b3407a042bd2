"""`aiomove daemon`: a Storage SCP, a pool of workers and the HTTP API in one asyncio loop.

Workers claim jobs for the peers whose schedule window is open (highest priority first) and
run them (`aiomove.daemon.worker`). Idle workers look again every `poll_interval` seconds, or
at once when this daemon's HTTP API accepts a job (other daemons' submissions are seen on the
next poll: the store is the only thing daemons share).

Start: stale staging files of dead runs are removed, and jobs still leased to this daemon's
owner name (a previous run that was killed) go back to the queue at once instead of waiting
for their lease to expire.

SIGTERM / SIGINT: stop claiming; running jobs get `grace` seconds to finish, then are stopped
(their C-MOVE left with C-CANCEL); their leases are released (back to the queue); the HTTP
server, the Storage SCP and the store close. A second signal does not shorten the grace.

asyncio only (SQLAlchemy's async engine).
"""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING, Any, cast

import anyio
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig

from aiomove.daemon.config import DaemonConfig
from aiomove.daemon.jobs import JobState
from aiomove.daemon.metrics import Metrics
from aiomove.daemon.worker import JobRun, Runtime, shielded_write
from aiomove.layout import LayoutSink, staging_area
from aiomove.log import get_logger
from aiomove.retrieve import open_session

if TYPE_CHECKING:
    from aiomove.daemon.store import JobStore

log = get_logger("aiomove.daemon")


class Daemon:
    """The running daemon: what the HTTP API and the workers share."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.config = rt.config
        self.store = rt.store
        self.metrics = rt.metrics
        self.running: dict[int, JobRun] = {}
        self.stopping = anyio.Event()
        self._wake = anyio.Event()
        self._http_stop = anyio.Event()

    # --- hooks for the HTTP API ----------------------------------------------------------

    def wake(self) -> None:
        """New work: idle workers look for jobs now."""
        self._wake.set()
        self._wake = anyio.Event()

    def stop_local(self, job_id: int, state: JobState) -> None:
        """A job changed state through this daemon's API: stop it here without waiting for the
        next heartbeat (other daemons see the change on theirs)."""
        run = self.running.get(job_id)
        if run is not None and state in (JobState.CANCELLED, JobState.PAUSED):
            run.stop(str(state))

    def status(self) -> dict[str, Any]:
        return {
            "status": "draining" if self.stopping.is_set() else "ok",
            "owner": self.rt.owner,
            "ae_title": self.config.ae_title,
            "storage_port": self.rt.session.port,
            "workers": self.config.workers,
            "running": sorted(self.running),
        }

    # --- main ------------------------------------------------------------------------------

    async def run(self, *, install_signals: bool = True) -> None:
        released = await self.store.release(self.rt.owner)
        if released:
            log.info("daemon.recovered", jobs=released, owner=self.rt.owner)
        signals = anyio.CancelScope()
        async with anyio.create_task_group() as tg:
            if install_signals:
                tg.start_soon(self._signals, signals)
            if self.config.http_port:
                await tg.start(self._serve_http)
            log.info(
                "daemon.started",
                owner=self.rt.owner,
                ae_title=self.config.ae_title,
                storage_port=self.rt.session.port,
                http_port=self.config.http_port or None,
                workers=self.config.workers,
                peers=sorted(self.config.peers),
            )
            async with anyio.create_task_group() as workers:
                for index in range(self.config.workers):
                    workers.start_soon(self._worker, index)
                await self.stopping.wait()
                await self._drain()
            released = 0  # on timeout the leases expire by themselves
            with shielded_write(self.config.store_timeout, "release"):
                released = await self.store.release(self.rt.owner)
            log.info("daemon.stopped", released=released)
            # The HTTP server ends by itself (graceful, bounded); cancelling it would cut
            # hypercorn's own shutdown short.
            self._http_stop.set()
            signals.cancel()

    def shutdown(self) -> None:
        if not self.stopping.is_set():
            log.info("daemon.stopping", grace=self.config.grace, running=len(self.running))
            self.stopping.set()
            self.wake()

    async def _signals(self, scope: anyio.CancelScope) -> None:
        with scope, anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("daemon.signal", signal=signal.Signals(signum).name)
                self.shutdown()

    async def _drain(self) -> None:
        """Let running jobs finish within the grace period, then stop them."""
        with anyio.move_on_after(self.config.grace):
            for run in list(self.running.values()):
                await run.done.wait()
        for run in list(self.running.values()):
            run.stop("shutdown")

    async def _worker(self, index: int) -> None:
        config = self.config
        while not self.stopping.is_set():
            open_peers = [name for name, p in config.peers.items() if p.schedule.is_open()]
            job = None
            if open_peers:
                try:
                    job = await self.store.claim(
                        self.rt.owner, lease=config.lease, peers=open_peers
                    )
                except Exception as exc:  # the database may be back on the next poll
                    log.warning("daemon.claim_failed", error=str(exc), worker=index)
            if job is None:
                with anyio.move_on_after(config.poll_interval):
                    await self._wake.wait()
                continue
            if self.stopping.is_set():  # claimed while stopping: released with the others
                break
            run = JobRun(self.rt, job)
            self.running[job.id] = run
            try:
                await run.execute()
            finally:
                del self.running[job.id]

    async def _serve_http(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        from aiomove.daemon.api import create_app

        hconfig = HypercornConfig()
        hconfig.bind = [f"{self.config.http_host}:{self.config.http_port}"]
        hconfig.accesslog = None
        quiet = logging.getLogger("aiomove.daemon.hypercorn")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        hconfig.errorlog = quiet
        hconfig.graceful_timeout = 2.0
        app = create_app(self.store, self.config, self.metrics, daemon=self)
        task_status.started()
        # Starlette is an ASGI app; hypercorn's annotation names its own framework types.
        await hypercorn_serve(cast(Any, app), hconfig, shutdown_trigger=self._http_stop.wait)


async def run_daemon(
    config: DaemonConfig, *, store: JobStore | None = None, install_signals: bool = True
) -> None:
    """Open the store, the Storage SCP and the workers; return after a clean shutdown."""
    from aiomove.daemon.store import open_store

    config.output.mkdir(parents=True, exist_ok=True)
    own_store = store is None
    if store is None:
        store = await open_store(config.store)
    try:
        with staging_area(config.output) as staging:
            security = config.security
            sink = LayoutSink(
                config.output, config.parsed_layout, staging, **security.get("sink", {})
            )
            async with open_session(
                sink,
                port=config.port,
                host=config.host,
                ae_title=config.ae_title,
                # The shared per-peer limit is the store's slots; this only bounds the process.
                per_peer_limit=config.workers,
                prefer=config.preference,
                timeouts=config.timeouts,
                linger=config.linger,
                ssl_context=config.ssl_context,
                only_moved=config.only_moved,
                storage_options={**security.get("handler", {}), **security.get("acceptor", {})},
            ) as session:
                rt = Runtime(config, store, session, Metrics(), config.owner)
                await Daemon(rt).run(install_signals=install_signals)
    finally:
        if own_store:
            with shielded_write(config.store_timeout, "close"):
                await store.close()
