"""The daemon's HTTP JSON API (Starlette), served by hypercorn in the daemon's event loop.

    POST /jobs                       submit one job, or {"jobs": [...]} (deduplicated)
    GET  /jobs?state=&limit=&offset= list
    GET  /jobs/{id}                  one job with its progress
    GET  /jobs/{id}/receipts         the instances it received
    POST /jobs/{id}/cancel|pause|resume|retry
    GET  /health                     200 while the store answers (503 otherwise)
    GET  /metrics                    Prometheus text exposition
    GET  /openapi.json               the OpenAPI 3.1 description (`aiomove.daemon.openapi`)

Errors are `{"error": "..."}` with 400 (bad input), 404 (no such job) or 409 (the job is not in
a state that allows the action). With `api_token` set, every route but /health needs
`Authorization: Bearer <token>` (401 otherwise). asyncio only.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from aiomove.daemon.config import DaemonConfig
from aiomove.daemon.jobs import Job, JobSpec, JobState
from aiomove.daemon.metrics import CONTENT_TYPE_LATEST, Metrics
from aiomove.daemon.openapi import openapi
from aiomove.daemon.specs import ACTION_FROM, SpecError, job_json, make_spec
from aiomove.log import get_logger

if TYPE_CHECKING:
    from aiomove.daemon.store import JobStore

log = get_logger("aiomove.daemon.api")

MAX_LIST = 1000

MAX_BATCH = 10000
#: The largest request body read (bytes): a full batch of small jobs fits.
MAX_BODY = 1 << 20
#: Job ids are positive BIGINTs (PostgreSQL's range).
MAX_JOB_ID = (1 << 63) - 1


class DaemonHooks(Protocol):
    def wake(self) -> None: ...
    def stop_local(self, job_id: int, state: JobState) -> None: ...
    def status(self) -> dict[str, Any]: ...


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class _BadRequest(Exception):
    pass


class _TooLarge(Exception):
    pass


class _NoSuchJob(Exception):
    pass


def spec_from_json(body: Any, peers: list[str]) -> JobSpec:
    if not isinstance(body, dict):
        raise SpecError("a job is a JSON object")
    unknown = set(body) - {"peer", "level", "keys", "priority"}
    if unknown:
        raise SpecError(f"unknown field(s) {sorted(unknown)}")
    peer = body.get("peer")
    if not isinstance(peer, str):
        raise SpecError("peer (a configured peer name) is required")
    return make_spec(
        peer,
        str(body.get("level", "STUDY")),
        body.get("keys") or {},
        priority=body.get("priority", 0),
        peers=peers,
    )


def create_app(
    store: JobStore,
    config: DaemonConfig,
    metrics: Metrics,
    *,
    daemon: DaemonHooks | None = None,
) -> Starlette:
    """The ASGI app over `store`; `daemon` (optional) is told about submissions and stops."""
    peers = sorted(config.peers)

    async def body_of(request: Request) -> Any:
        try:
            return json.loads(await _limited_body(request))
        except ValueError:
            raise _BadRequest("the body is not JSON") from None

    async def submit(request: Request) -> Response:
        body = await body_of(request)
        batch = isinstance(body, dict) and "jobs" in body
        items = body["jobs"] if batch else [body]
        if not isinstance(items, list) or not items or len(items) > MAX_BATCH:
            raise _BadRequest(f"jobs must be a list of 1 to {MAX_BATCH} jobs")
        max_attempts = config.max_attempts
        if isinstance(body, dict) and "max_attempts" in body:
            max_attempts = body.pop("max_attempts")
            if not isinstance(max_attempts, int) or max_attempts < 1:
                raise _BadRequest("max_attempts must be a positive integer")
        try:
            specs = [spec_from_json(item, peers) for item in items]
        except SpecError as exc:
            raise _BadRequest(str(exc)) from None
        results = []
        for spec in specs:
            job, created = await store.submit(spec, max_attempts=max_attempts)
            results.append({"job": job_json(job), "created": created})
            log.info("job.submitted", job_id=job.id, created=created, peer=spec.peer)
        if daemon is not None:
            daemon.wake()
        created_any = any(r["created"] for r in results)
        answer: dict[str, Any] = {"jobs": results} if batch else results[0]
        return JSONResponse(answer, status_code=201 if created_any else 200)

    async def list_jobs(request: Request) -> Response:
        params = request.query_params
        try:
            state = JobState(params["state"]) if "state" in params else None
            limit = int(params.get("limit", "100"))
            offset = int(params.get("offset", "0"))
        except ValueError:
            raise _BadRequest("state must be a job state; limit and offset integers") from None
        if not 1 <= limit <= MAX_LIST or offset < 0:
            raise _BadRequest(f"limit must be 1 to {MAX_LIST}, offset not negative")
        jobs = await store.list(state=state, limit=limit, offset=offset)
        return JSONResponse({"jobs": [job_json(j) for j in jobs]})

    async def show(request: Request) -> Response:
        job = await store.get(_job_id(request))
        if job is None:
            return _error(404, "no such job")
        return JSONResponse(job_json(job))

    async def receipts(request: Request) -> Response:
        job_id = _job_id(request)
        if await store.get(job_id) is None:
            return _error(404, "no such job")
        rows = await store.receipts(job_id)
        return JSONResponse(
            {
                "receipts": [
                    {
                        "sop_instance_uid": r.sop_instance_uid,
                        "sop_class_uid": r.sop_class_uid,
                        "path": r.path,
                        "size": r.size,
                    }
                    for r in rows
                ]
            }
        )

    def action(
        name: str, call: Callable[[int], Awaitable[Job | None]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            job_id = _job_id(request)
            before = await store.get(job_id)
            if before is None:
                return _error(404, "no such job")
            if before.state not in ACTION_FROM[name]:
                return _error(409, f"cannot {name} a {before.state} job")
            job = await call(job_id)
            if job is None:
                return _error(404, "no such job")
            log.info("job.action", action=name, job_id=job_id, state=str(job.state))
            if daemon is not None:
                daemon.stop_local(job_id, job.state)
                daemon.wake()
            return JSONResponse(job_json(job))

        return handler

    async def health(request: Request) -> Response:
        answer: dict[str, Any] = {"status": "ok"} if daemon is None else daemon.status()
        try:
            counts = await store.counts()
        except Exception as exc:
            answer.update(status="store_unavailable", error=str(exc))
            return JSONResponse(answer, status_code=503)
        answer["jobs"] = {str(s): counts.get(s, 0) for s in JobState}
        return JSONResponse(answer)

    async def scrape(request: Request) -> Response:
        counts = await store.counts()
        metrics.set_job_counts({str(k): v for k, v in counts.items()}, [str(s) for s in JobState])
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def describe(request: Request) -> Response:
        return JSONResponse(openapi())

    async def bad_request(request: Request, exc: Exception) -> Response:
        return _error(400, str(exc))

    async def too_large(request: Request, exc: Exception) -> Response:
        return _error(413, f"the body is larger than {MAX_BODY} bytes")

    async def no_such_job(request: Request, exc: Exception) -> Response:
        return _error(404, "no such job")

    routes = [
        Route("/jobs", submit, methods=["POST"]),
        Route("/jobs", list_jobs, methods=["GET"]),
        Route("/jobs/{job_id:int}", show, methods=["GET"]),
        Route("/jobs/{job_id:int}/receipts", receipts, methods=["GET"]),
        Route("/jobs/{job_id:int}/cancel", action("cancel", store.cancel), methods=["POST"]),
        Route("/jobs/{job_id:int}/pause", action("pause", store.pause), methods=["POST"]),
        Route("/jobs/{job_id:int}/resume", action("resume", store.resume), methods=["POST"]),
        Route("/jobs/{job_id:int}/retry", action("retry", store.retry), methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", scrape, methods=["GET"]),
        Route("/openapi.json", describe, methods=["GET"]),
    ]
    middleware = [Middleware(BearerAuth, token=config.api_token)] if config.api_token else []
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            _BadRequest: bad_request,
            _TooLarge: too_large,
            _NoSuchJob: no_such_job,
        },
    )


class BearerAuth:
    """`Authorization: Bearer <token>` on every route but /health (container health checks)."""

    OPEN = frozenset({"/health"})

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self.OPEN:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):  # constant time
                log.warning("api.unauthorized", path=scope["path"])
                answer = JSONResponse(
                    {"error": "missing or wrong bearer token"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _job_id(request: Request) -> int:
    """The path's job id; one outside 1..2^63-1 names no job (and would overflow BIGINT)."""
    job_id = int(request.path_params["job_id"])
    if not 1 <= job_id <= MAX_JOB_ID:
        raise _NoSuchJob
    return job_id


async def _limited_body(request: Request) -> bytes:
    """The body, read in chunks and refused (413) beyond MAX_BODY before it is all in memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise _TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise _TooLarge
    return bytes(body)
