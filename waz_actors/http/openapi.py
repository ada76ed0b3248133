"""The OpenAPI 3 document, built from the route tables (rest.OPS, compat.ROUTES)."""

from __future__ import annotations

from typing import Any

from waz_actors import __version__
from waz_actors.http import compat, rest

ERROR_STATUSES = {
    "400": "bad_request", "401": "unauthorized", "404": "not_found",
    "409": "exists or invalid_state", "413": "too_large",
    "429": "queue_full, busy or quota_exceeded (Retry-After)",
    "501": "the daemon has no such command yet",
    "503": "shutting_down, storage_full or the daemon is unreachable (Retry-After)",
}  # fmt: skip

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}
COMPAT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "message"],
    "properties": {"status": {"type": "string", "enum": ["success", "error"]},
                   "message": {"type": "string"}},
}  # fmt: skip
TOKEN_PARAM = {
    "name": "access_token",
    "in": "query",
    "required": False,
    "description": "The token, WAZIPER's way (or use Authorization: Bearer)",
    "schema": {"type": "string"},
}
COMPAT_FIELDS = {
    "instance_id": "string", "to": "string", "chat_id": "string", "text": "string",
    "message": "string", "caption": "string", "media_url": "string", "filename": "string",
    "idempotency_key": "string",
}  # fmt: skip


# The daemon's id rule (addressing.ID_RULE), so generated requests reach the commands.
ID_SCHEMA = {"type": "string", "pattern": "^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,63}$"}


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": ID_SCHEMA}


def _body(fields: dict[str, str], required: tuple[str, ...], form: bool) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {k: {"type": t} for k, t in fields.items()},
    }
    if required:
        schema["required"] = list(required)
    content = {"application/json": {"schema": schema}}
    if form:
        flat = {k: {"type": "string"} for k in fields}
        content["application/x-www-form-urlencoded"] = {
            "schema": {"type": "object", "properties": flat}
        }
    return {"required": False, "content": content}


def _rest_op(op: rest.Op) -> dict[str, Any]:
    params = [_path_param(p) for p in op.path_params]
    params += [
        {"name": n, "in": "query", "required": False, "schema": {"type": rest.QUERY_TYPES[k][0]}}
        for n, k in op.query.items()
    ]
    params.append(TOKEN_PARAM)
    ok = "201" if op.created else "200"
    out: dict[str, Any] = {
        "operationId": op.cmd.replace(".", "_"),
        "summary": op.summary,
        "description": f"Control command `{op.cmd}` (docs/protocol.md).",
        "tags": [op.tag],
        "parameters": params,
        "responses": {
            ok: {"description": "the command's result",
                 "content": {"application/json": {"schema": {}}}},
            **{s: {"description": d, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}
               for s, d in ERROR_STATUSES.items()},
        },
    }  # fmt: skip
    if op.method == "POST":
        out["requestBody"] = _body(op.body, op.required, form=False)
    return out


def _compat_op(method: str, path: str, summary: str) -> dict[str, Any]:
    params = [_path_param(p.strip("{}")) for p in path.split("/") if p.startswith("{")]
    if "{instance_id}" not in path:
        params.append(
            {"name": "instance_id", "in": "query", "required": method == "GET",
             "schema": {"type": "string"}}
        )  # fmt: skip
    params.append(TOKEN_PARAM)
    out: dict[str, Any] = {
        "operationId": "compat_" + path.split("/")[1],
        "summary": summary,
        "tags": ["compat"],
        "parameters": params,
        "responses": {"200": {
            "description": "`status` says success or error (HTTP 200 either way, like WAZIPER)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Compat"}}},
        }},
    }  # fmt: skip
    if method == "POST":
        out["requestBody"] = _body(COMPAT_FIELDS, (), form=True)
    return out


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in rest.OPS:
        paths.setdefault(op.path, {})[op.method.lower()] = _rest_op(op)
    for method, path, _handler, summary in compat.ROUTES:
        paths.setdefault(path, {})[method.lower()] = _compat_op(method, path, summary)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "waz-actors HTTP gateway",
            "version": __version__,
            "description": "HTTP in front of the waz-actors control protocol (docs/http.md).",
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA, "Compat": COMPAT_SCHEMA},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }
