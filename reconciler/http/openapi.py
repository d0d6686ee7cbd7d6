"""The OpenAPI 3 document of `/api/v1`. A test compares it with the app's routes, so a
route without documentation fails the build."""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(*codes: int) -> dict[str, Any]:
    words = {
        400: "Bad request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not found",
        409: "Conflict",
        415: "Unsupported media type",
    }
    return {str(c): _json(ERROR, words[c]) for c in codes}


def _obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


S = {"type": "string"}
NS = {"type": ["string", "null"]}
I = {"type": "integer"}  # noqa: E741
NI = {"type": ["integer", "null"]}
B = {"type": "boolean"}
ANY: dict[str, Any] = {}


def _list(key: str, item: dict[str, Any]) -> dict[str, Any]:
    return _obj(**{key: {"type": "array", "items": item}})


def _p(
    name: str,
    where: str = "path",
    schema: dict[str, Any] | None = None,
    required: bool | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path" if required is None else required,
        "schema": schema or S,
    }


ENV, ENTRY, USER = _p("env"), _p("entry"), _p("user")
RUN = _p("run_id", schema={"type": "integer", "minimum": 0})
SECURED: list[dict[str, list[str]]] = [{"bearer": []}]

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": S, "message": S, "details": ANY},
            }
        },
    },
    "Environment": {
        "type": "object",
        "required": ["name", "status", "kind"],
        "properties": {
            "name": S,
            "repo": NS,
            "kind": {"type": "string", "enum": ["branch", "pr"]},
            "ref": NS,
            "branch": NS,
            "pr": NI,
            "commit": NS,
            "status": {
                "type": "string",
                "enum": ["pending", "building", "healthy", "degraded", "failed", "removing"],
            },
            "url": NS,
            "services": {"type": "array", "items": ANY},
            "schedule": ANY,
            "last_error": NS,
            "last_output": NS,
            "suspended": B,
            "updated_at": NS,
        },
    },
    "Run": {
        "type": "object",
        "required": ["id", "status"],
        "properties": {
            "id": I,
            "env": S,
            "entry": S,
            "status": S,
            "trigger": S,
            "exit_code": NI,
            "http_status": NI,  # an HTTP job's last response status
            "duration": {"type": ["number", "null"]},
            "job_kind": {"type": "string", "enum": ["command", "http"]},
            "stdout": NS,  # an HTTP job: the response body (head and tail)
            "stderr": NS,  # an HTTP job: one line per attempt
        },
    },
    "Entry": {
        "type": "object",
        "properties": {
            "id": S,
            "user": S,
            "source": S,
            "schedule": S,
            "command": S,
            "job_kind": {"type": "string", "enum": ["command", "http"]},
            "request": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Request"}]},
            "next": {"type": "array", "items": S},
        },
    },
    "Request": {
        "type": "object",
        "required": ["method", "url"],
        "properties": {
            "method": {"type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]},
            "url": S,  # http://<service>:<port>/<path>
            "headers": {"type": "object", "additionalProperties": S},
            "body": NS,
            "timeout": ANY,  # seconds, or "10s"
            "expect": ANY,  # [200, 204] or "200,204"
            "retries": ANY,
            "retry_backoff": ANY,
        },
    },
}

_ENTRY_BODY = {
    "type": "object",
    "properties": {
        "schedule": S,
        "run_at": S,
        "command": S,
        "request": {"$ref": "#/components/schemas/Request"},
        "retries": ANY,
        "retry_backoff": ANY,
        "timeout": ANY,
        "expect": ANY,
        "expires_at": S,
    },
}
_ENVIRONMENT = {"$ref": "#/components/schemas/Environment"}
_RUN = {"$ref": "#/components/schemas/Run"}


def _op(
    summary: str,
    responses: dict[str, Any],
    params: list[dict[str, Any]] | None = None,
    secured: bool = False,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "parameters": params or [], "responses": responses}
    if secured:
        op["security"] = SECURED
        op["responses"] = {**responses, **_err(401, 403)}
    if body is not None:
        op["requestBody"] = body
    return op


PATHS: dict[str, Any] = {
    "/environments": {
        "get": _op("List environments", {"200": _json(_list("environments", _ENVIRONMENT))})
    },
    "/environments/{env}": {
        "get": _op("One environment", {"200": _json(_ENVIRONMENT), **_err(404)}, [ENV])
    },
    "/environments/{env}/reconcile": {
        "post": _op(
            "Queue a pass for the environment's repo",
            {"202": _json(_obj(queued=S)), **_err(404)},
            [ENV],
            secured=True,
        )
    },
    "/repos": {"get": _op("Watched repositories", {"200": _json(_list("repos", ANY))})},
    "/repos/{name}/sync": {
        "post": _op(
            "Queue a pass", {"202": _json(_obj(queued=S)), **_err(404)}, [_p("name")], secured=True
        )
    },
    "/plan": {
        "get": _op(
            "What the next pass would do, without doing it (fetches: needs the token)",
            {"200": _json(_list("plan", ANY)), **_err(404)},
            [_p("repo", "query")],
            secured=True,
        )
    },
    "/events": {
        "get": _op(
            "Recent decisions",
            {"200": _json(_list("events", ANY)), **_err(400)},
            [
                _p("env", "query"),
                _p("repo", "query"),
                _p("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}),
            ],
        )
    },
    "/environments/{env}/cron": {
        "get": _op(
            "Schedule entries with their next n (default 5) times and last run",
            {
                "200": _json(_list("entries", {"$ref": "#/components/schemas/Entry"})),
                **_err(400, 404),
            },
            [ENV, _p("n", "query", {"type": "integer", "minimum": 1, "maximum": 50})],
        )
    },
    "/environments/{env}/cron/{entry}/trigger": {
        "post": _op(
            "Run an entry now (the overlap policy applies)",
            {
                "202": _json(_obj(run=I)),
                "409": _json(ANY, "Skipped by the overlap policy"),
                **_err(404),
            },
            [ENV, ENTRY],
            secured=True,
        )
    },
    "/environments/{env}/cron/{entry}/resume": {
        "post": _op(
            "Resume an entry paused after failures",
            {"200": _json(_obj(resumed=B)), **_err(404)},
            [ENV, ENTRY],
            secured=True,
        )
    },
    "/environments/{env}/runs": {
        "get": _op(
            "Runs of an environment",
            {"200": _json(_list("runs", _RUN)), **_err(400, 404)},
            [
                ENV,
                _p("entry", "query"),
                _p("status", "query"),
                _p("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}),
            ],
        )
    },
    "/runs": {
        "get": _op(
            "Recent runs of every environment",
            {"200": _json(_list("runs", _RUN)), **_err(400)},
            [
                _p("status", "query"),
                _p("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}),
            ],
        )
    },
    "/runs/{run_id}": {
        "get": _op("One run with its output", {"200": _json(_RUN), **_err(404)}, [RUN])
    },
    "/environments/{env}/users": {
        "get": _op(
            "Users with a schedule in the environment",
            {"200": _json(_list("users", ANY)), **_err(404)},
            [ENV],
        )
    },
    "/environments/{env}/users/{user}/crontab": {
        "get": _op(
            "A user's crontab (X-Hoody-Source: git | api | none)",
            {
                "200": {"description": "The crontab", "content": {"text/plain": {"schema": S}}},
                **_err(404),
            },
            [ENV, USER],
        ),
        "put": _op(
            "Replace a user's schedule atomically (until the next commit that changes "
            ".hoody/crontab)",
            {"200": _json(ANY), **_err(400, 404, 415)},
            [ENV, USER],
            secured=True,
            body={"required": True, "content": {"text/plain": {"schema": S}}},
        ),
    },
    "/environments/{env}/users/{user}/entries": {
        "post": _op(
            "Add a managed entry ({schedule | run_at, command | request, retries?, expires_at?})",
            {"201": _json(_obj(id=S, schedule=S, command=S), "Created"), **_err(400, 404)},
            [ENV, USER],
            secured=True,
            body={
                "required": True,
                "content": {"application/json": {"schema": _ENTRY_BODY}},
            },
        )
    },
    "/environments/{env}/users/{user}/entries/{entry_id}": {
        "patch": _op(
            "Change a managed entry",
            {"200": _json(ANY), **_err(400, 404)},
            [ENV, USER, _p("entry_id")],
            secured=True,
            body={
                "required": True,
                "content": {"application/json": {"schema": _ENTRY_BODY}},
            },
        ),
        "delete": _op(
            "Remove a managed entry",
            {"204": {"description": "Removed"}, **_err(404)},
            [ENV, USER, _p("entry_id")],
            secured=True,
        ),
    },
    "/openapi.json": {"get": _op("This document", {"200": _json(ANY)})},
    "/environments/{env}/export/{fmt}": {
        "get": _op(
            "The environment as files for another platform, secrets masked: JSON "
            "{files, warnings}, or a zip with Accept: application/zip",
            {
                "200": {
                    "description": "The files",
                    "content": {
                        "application/json": {"schema": _obj(files=ANY, warnings=ANY)},
                        "application/zip": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                "422": _json(ERROR, "Cannot export"),
                **_err(404),
            },
            [ENV, _p("fmt")],
        )
    },
}


def document(extra_paths: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hoody-reconciler",
            "version": "1",
            "description": "Environments per branch and pull request, and their schedules.",
        },
        "servers": [{"url": "/api/v1"}],
        "paths": {**PATHS, **(extra_paths or {})},
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
