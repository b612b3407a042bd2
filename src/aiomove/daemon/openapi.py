"""The OpenAPI 3.1 description of the daemon's HTTP API (served at /openapi.json)."""

from __future__ import annotations

from typing import Any

from aiomove import __version__
from aiomove.daemon.jobs import LEVELS, JobState


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = _json(_ref("Error"), "error")
_JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "integer"}}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "JobSpec": {
        "type": "object",
        "required": ["peer", "keys"],
        "additionalProperties": False,
        "properties": {
            "peer": {"type": "string", "description": "a configured peer name"},
            "level": {"type": "string", "enum": sorted(LEVELS), "default": "STUDY"},
            "keys": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "DICOM keyword -> value, e.g. StudyInstanceUID, "
                "AccessionNumber or PatientID for a STUDY job",
            },
            "priority": {"type": "integer", "default": 0, "description": "higher first"},
        },
    },
    "Submit": {
        "oneOf": [
            {
                "allOf": [
                    _ref("JobSpec"),
                    {"properties": {"max_attempts": {"type": "integer", "minimum": 1}}},
                ]
            },
            {
                "type": "object",
                "required": ["jobs"],
                "properties": {
                    "jobs": {"type": "array", "items": _ref("JobSpec"), "minItems": 1},
                    "max_attempts": {"type": "integer", "minimum": 1},
                },
            },
        ]
    },
    "Submitted": {
        "type": "object",
        "required": ["job", "created"],
        "properties": {
            "job": _ref("Job"),
            "created": {"type": "boolean", "description": "false: an active duplicate"},
        },
    },
    "Progress": {
        "type": "object",
        "properties": {
            "expected": {"type": ["integer", "null"]},
            "received": {"type": "integer"},
            "failed": {"type": "integer"},
            "bytes": {"type": "integer"},
            "percent": {"type": ["number", "null"]},
        },
    },
    "Job": {
        "type": "object",
        "required": ["id", "peer", "level", "keys", "state", "progress"],
        "properties": {
            "id": {"type": "integer"},
            "peer": {"type": "string"},
            "level": {"type": "string", "enum": sorted(LEVELS)},
            "keys": {"type": "object", "additionalProperties": {"type": "string"}},
            "priority": {"type": "integer"},
            "state": {"type": "string", "enum": [str(s) for s in JobState]},
            "attempts": {"type": "integer"},
            "max_attempts": {"type": "integer"},
            "not_before": {"type": ["string", "null"], "format": "date-time"},
            "lease_owner": {"type": ["string", "null"]},
            "lease_expires": {"type": ["string", "null"], "format": "date-time"},
            "progress": _ref("Progress"),
            "error": {"type": ["string", "null"]},
            "error_kind": {"type": ["string", "null"], "enum": ["transient", "permanent", None]},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
        },
    },
    "Receipt": {
        "type": "object",
        "properties": {
            "sop_instance_uid": {"type": "string"},
            "sop_class_uid": {"type": "string"},
            "path": {"type": "string"},
            "size": {"type": "integer"},
        },
    },
}


def _action(name: str, summary: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": f"{name}Job",
            "summary": summary,
            "parameters": [_JOB_ID],
            "responses": {
                "200": _json(_ref("Job"), "the job after the action"),
                "404": _ERROR,
                "409": _ERROR,
            },
        }
    }


def openapi() -> dict[str, Any]:
    """A fresh copy of the description (callers may modify it)."""
    jobs_list = {"type": "object", "properties": {"jobs": {"type": "array", "items": _ref("Job")}}}
    paths: dict[str, Any] = {
        "/jobs": {
            "post": {
                "operationId": "submitJobs",
                "summary": "Submit a job, or a batch; active duplicates are not created again",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Submit")}},
                },
                "responses": {
                    "201": _json(_ref("Submitted"), "created (a batch: {jobs: [Submitted]})"),
                    "200": _json(_ref("Submitted"), "every job already existed"),
                    "400": _ERROR,
                    "413": _ERROR,
                },
            },
            "get": {
                "operationId": "listJobs",
                "summary": "List jobs, newest first",
                "parameters": [
                    {
                        "name": "state",
                        "in": "query",
                        "schema": {"type": "string", "enum": [str(s) for s in JobState]},
                    },
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 100}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "default": 0}},
                ],
                "responses": {"200": _json(jobs_list, "jobs"), "400": _ERROR},
            },
        },
        "/jobs/{job_id}": {
            "get": {
                "operationId": "getJob",
                "summary": "A job's state and progress",
                "parameters": [_JOB_ID],
                "responses": {"200": _json(_ref("Job"), "the job"), "404": _ERROR},
            }
        },
        "/jobs/{job_id}/receipts": {
            "get": {
                "operationId": "getReceipts",
                "summary": "The instances a job received",
                "parameters": [_JOB_ID],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"receipts": {"type": "array", "items": _ref("Receipt")}},
                        },
                        "receipts",
                    ),
                    "404": _ERROR,
                },
            }
        },
        "/jobs/{job_id}/cancel": _action("cancel", "Cancel (a running retrieve gets C-CANCEL)"),
        "/jobs/{job_id}/pause": _action("pause", "Pause: not claimed until resumed"),
        "/jobs/{job_id}/resume": _action("resume", "Resume a paused job"),
        "/jobs/{job_id}/retry": _action("retry", "Queue a failed or cancelled job again"),
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Liveness: 200 while the job store answers",
                "responses": {
                    "200": _json({"type": "object"}, "healthy"),
                    "503": _json({"type": "object"}, "the job store does not answer"),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics (text exposition format)",
                "responses": {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "aiomove daemon",
            "version": __version__,
            "description": "Durable DICOM retrieve jobs (C-MOVE into this daemon's Storage SCP).",
        },
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            # Required only when the daemon's api_token is set (every route but /health).
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
