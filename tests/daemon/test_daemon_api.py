"""The HTTP API over a real job store (SQLite and PostgreSQL), through an HTTP client.

The app runs in-process (httpx's ASGI transport); the daemon tests scrape it over TCP.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aiomove.daemon.api import create_app
from aiomove.daemon.config import DaemonConfig, PeerConfig, load_config
from aiomove.daemon.jobs import JobState
from aiomove.daemon.metrics import Metrics
from aiomove.daemon.openapi import openapi
from aiomove.daemon.store import JobStore, open_store

pytestmark = pytest.mark.anyio

UID = "1.2.840.113619.2.55.3.604688119.1"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[JobStore]:
    js = await open_store(store_url)
    try:
        yield js
    finally:
        await js.close()


@pytest.fixture
async def client(store: JobStore, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    config = DaemonConfig(
        store="unused",
        output=tmp_path,
        peers={"MAIN": PeerConfig("MAIN", "127.0.0.1", 104, "PACS")},
    )
    app = create_app(store, config, Metrics())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as http:
        yield http


def study(uid: str = UID, **extra: Any) -> dict[str, Any]:
    return {"peer": "MAIN", "level": "STUDY", "keys": {"StudyInstanceUID": uid}, **extra}


async def test_submit_deduplicates_and_lists(client: httpx.AsyncClient) -> None:
    first = await client.post("/jobs", json=study(priority=5))
    assert first.status_code == 201
    job = first.json()["job"]
    assert first.json()["created"] is True
    assert (job["state"], job["priority"], job["keys"]) == ("queued", 5, {"StudyInstanceUID": UID})
    again = await client.post("/jobs", json=study())
    assert again.status_code == 200
    assert again.json() == {"job": again.json()["job"], "created": False}
    assert again.json()["job"]["id"] == job["id"]
    batch = await client.post(
        "/jobs", json={"jobs": [study(UID + ".2"), study(UID)], "max_attempts": 2}
    )
    assert batch.status_code == 201
    assert [r["created"] for r in batch.json()["jobs"]] == [True, False]
    assert batch.json()["jobs"][0]["job"]["max_attempts"] == 2
    listed = (await client.get("/jobs", params={"state": "queued"})).json()["jobs"]
    assert sorted(j["keys"]["StudyInstanceUID"] for j in listed) == [UID, UID + ".2"]
    shown = (await client.get(f"/jobs/{job['id']}")).json()
    assert shown["progress"] == {
        "expected": None,
        "received": 0,
        "failed": 0,
        "bytes": 0,
        "percent": None,
    }
    assert (await client.get(f"/jobs/{job['id']}/receipts")).json() == {"receipts": []}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"peer": "OTHER", "keys": {"StudyInstanceUID": UID}}, "unknown peer"),
        ({"peer": "MAIN", "keys": {"StudyInstanceUID": "x"}}, "not a valid UID"),
        ({"peer": "MAIN", "keys": {"StudyInstanceUID": UID}, "colour": 1}, "unknown field"),
        ({"peer": "MAIN", "level": "SERIES", "keys": {"StudyInstanceUID": UID}}, "Series"),
        ({"jobs": []}, "1 to"),
        ({"peer": "MAIN", "keys": {"PatientID": "P"}, "max_attempts": 0}, "max_attempts"),
    ],
)
async def test_bad_submissions_are_400(
    client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    answer = await client.post("/jobs", json=body)
    assert answer.status_code == 400
    assert message in answer.json()["error"]


async def test_actions_and_their_conflicts(client: httpx.AsyncClient) -> None:
    job_id = (await client.post("/jobs", json=study())).json()["job"]["id"]
    assert (await client.post(f"/jobs/{job_id}/pause")).json()["state"] == "paused"
    assert (await client.post(f"/jobs/{job_id}/resume")).json()["state"] == "queued"
    assert (await client.post(f"/jobs/{job_id}/retry")).status_code == 409  # not failed
    assert (await client.post(f"/jobs/{job_id}/cancel")).json()["state"] == "cancelled"
    assert (await client.post(f"/jobs/{job_id}/resume")).status_code == 409
    retried = await client.post(f"/jobs/{job_id}/retry")
    assert (retried.status_code, retried.json()["state"]) == (200, "queued")
    for path in ("/jobs/999999", "/jobs/999999/receipts"):
        assert (await client.get(path)).status_code == 404
    assert (await client.post("/jobs/999999/cancel")).status_code == 404
    assert (await client.get("/jobs", params={"state": "lost"})).status_code == 400
    assert (await client.post("/jobs", content=b"{not json")).status_code == 400


async def test_health_and_metrics(client: httpx.AsyncClient) -> None:
    await client.post("/jobs", json=study())
    await client.post("/jobs", json=study(UID + ".3"))
    health = (await client.get("/health")).json()
    assert health["status"] == "ok"
    assert health["jobs"]["queued"] == 2
    scraped = await client.get("/metrics")
    assert scraped.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
    jobs = {s.labels["state"]: s.value for s in families["aiomove_jobs"].samples}
    assert jobs == {str(s): (2.0 if s is JobState.QUEUED else 0.0) for s in JobState}
    for name in (
        "aiomove_instances_received",
        "aiomove_bytes_received",
        "aiomove_associations_open",
        "aiomove_retries",
        "aiomove_errors",
        "aiomove_jobs_finished",
    ):
        assert name in families


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


async def test_openapi_describes_every_route(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec == openapi()
    assert spec["openapi"].startswith("3.1")
    assert {"title", "version"} <= set(spec["info"])
    schemas = spec["components"]["schemas"]
    for ref in _refs(spec):  # every reference resolves
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in schemas
    routes = {
        ("post", "/jobs"),
        ("get", "/jobs"),
        ("get", "/jobs/{job_id}"),
        ("get", "/jobs/{job_id}/receipts"),
        ("get", "/health"),
        ("get", "/metrics"),
        *(("post", f"/jobs/{{job_id}}/{a}") for a in ("cancel", "pause", "resume", "retry")),
    }
    described = {(m, p) for p, item in spec["paths"].items() for m in item}
    assert described == routes
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    for item in spec["paths"].values():
        for op in item.values():
            assert op["responses"]
            assert all(code.isdigit() for code in op["responses"])
            for param in op.get("parameters", []):
                assert param["in"] in ("path", "query")
                assert "schema" in param
    # The job document the API returns has exactly the described properties.
    job = (await client.post("/jobs", json=study())).json()["job"]
    assert set(job) == set(schemas["Job"]["properties"])
    assert set(job["progress"]) == set(schemas["Progress"]["properties"])


async def test_oversized_bodies_are_413_before_being_read(client: httpx.AsyncClient) -> None:
    from aiomove.daemon.api import MAX_BODY

    padding = " " * MAX_BODY
    declared = await client.post("/jobs", content=(padding + json.dumps(study())).encode())
    assert declared.status_code == 413
    assert "larger than" in declared.json()["error"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(MAX_BODY // 65536 + 2):
            yield b" " * 65536

    streamed = await client.post("/jobs", content=chunks())
    assert streamed.status_code == 413
    # Just below the limit is read and parsed.
    fits = await client.post("/jobs", content=(json.dumps(study())).ljust(MAX_BODY).encode())
    assert fits.status_code == 201


@pytest.mark.parametrize("job_id", ["0", str(1 << 63), "99999999999999999999999"])
async def test_job_ids_outside_bigint_are_404(client: httpx.AsyncClient, job_id: str) -> None:
    for method, path in (("GET", ""), ("GET", "/receipts"), ("POST", "/cancel")):
        answer = await client.request(method, f"/jobs/{job_id}{path}")
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json() == {"error": "no such job"}
    largest = await client.get(f"/jobs/{(1 << 63) - 1}")  # in range, no such job
    assert largest.status_code == 404


async def test_api_token_guards_every_route_but_health(store: JobStore, tmp_path: Path) -> None:
    """With `api_token` (here from AIOMOVE_API_TOKEN, as a deployment sets it), requests
    without the bearer token get 401 and change nothing; /health stays open for probes."""
    environ = {"AIOMOVE_API_TOKEN": "s3cret", "AIOMOVE_STORE": "unused"}
    config = replace(
        load_config(None, environ=environ, overrides={"output": str(tmp_path)}),
        peers={"MAIN": PeerConfig("MAIN", "127.0.0.1", 104, "PACS")},
    )
    assert config.api_token == "s3cret"
    app = create_app(store, config, Metrics())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://daemon"
    ) as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            refused = await http.post("/jobs", json=study(), headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["www-authenticate"] == "Bearer"
            assert (await http.get("/metrics", headers=headers)).status_code == 401
        assert await store.list() == []  # nothing was submitted
        assert (await http.get("/health")).status_code == 200
        good = {"Authorization": "Bearer s3cret"}
        assert (await http.post("/jobs", json=study(), headers=good)).status_code == 201
        assert (await http.get("/jobs", headers=good)).status_code == 200
