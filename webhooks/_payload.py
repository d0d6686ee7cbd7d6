"""Shared plumbing for the provider modules: headers, secrets, JSON and typed field access.

Why it exists: webhook bodies are hostile input. Every provider must turn them into either a
value or a `MalformedPayload` whose reason names the offending field, and never let a
KeyError or TypeError escape. Doing that once here keeps github.py, gitlab.py and gitea.py
about their provider's rules only. Every secret comparison goes through `same()`, which is
`hmac.compare_digest` on bytes (constant time, and no TypeError on non-ASCII input).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from webhooks.events import MalformedPayload, SignatureError

Headers = Mapping[str, str]
JsonObject = dict[str, Any]

IDEMPOTENCY_KEY = "Idempotency-Key"
MAX_DELIVERY_ID = 200  # the width of deliveries.delivery_id
ZERO_SHA = "0" * 40


# ---------------------------------------------------------------------------- headers


def header(headers: Headers, name: str) -> str | None:
    """Case-insensitive header lookup; blank values count as absent."""
    value: object = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    if value is None:
        wanted = name.lower()
        for key, candidate in headers.items():
            if isinstance(key, str) and key.lower() == wanted:
                value = candidate
                break
    if not isinstance(value, str):
        return None
    return value.strip() or None


def delivery_id(headers: Headers, *names: str) -> str | None:
    """The first delivery id found among `names` (in order of preference)."""
    for name in names:
        value = header(headers, name)
        if value is not None:
            if len(value) > MAX_DELIVERY_ID:
                raise MalformedPayload(f"{name} header: longer than {MAX_DELIVERY_ID} characters")
            return value
    return None


# ---------------------------------------------------------------------------- secrets


def same(given: str, expected: str) -> bool:
    """Constant-time string equality (encodes first: compare_digest rejects non-ASCII str)."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def require_secret(secret: str) -> None:
    if not isinstance(secret, str) or not secret:
        raise SignatureError("no webhook secret configured")


# ---------------------------------------------------------------------------- JSON


def load_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except RecursionError:
        raise MalformedPayload("body: JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int too large
        raise MalformedPayload(f"body: not valid JSON ({_short(exc)})") from None


def load_object(headers: Headers, body: bytes) -> JsonObject:
    """The JSON object in `body`; also accepts GitHub/Gitea form encoding (`payload=<json>`)."""
    content_type = (header(headers, "Content-Type") or "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        try:
            fields = parse_qs(body.decode("utf-8"), max_num_fields=100)
        except ValueError:  # UnicodeDecodeError or too many fields
            raise MalformedPayload("body: not valid form data") from None
        payloads = fields.get("payload")
        if not payloads:
            raise MalformedPayload("payload: missing form field")
        body = payloads[0].encode("utf-8", "surrogatepass")
    data = load_json(body)
    if not isinstance(data, dict):
        raise MalformedPayload(f"body: expected a JSON object, got {kind_of(data)}")
    return data


def kind_of(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def clip(text: str, limit: int = 80) -> str:
    """Untrusted text echoed into a reason or log line, cut to a readable length."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(exc: Exception) -> str:
    return clip(str(exc), 120)


# ---------------------------------------------------------------------------- fields


def lookup(data: JsonObject, path: str) -> Any:
    """The value at dotted `path`; None when a step is missing or null."""
    node: Any = data
    walked: list[str] = []
    for part in path.split("."):
        if node is None:
            return None
        if not isinstance(node, dict):
            raise MalformedPayload(f"{'.'.join(walked)}: expected an object, got {kind_of(node)}")
        node = node.get(part)
        walked.append(part)
    return node


def _wrong(path: str, expected: str, value: object) -> MalformedPayload:
    return MalformedPayload(f"{path}: expected {expected}, got {kind_of(value)}")


def opt_str(data: JsonObject, path: str) -> str | None:
    value = lookup(data, path)
    if value is None or isinstance(value, str):
        return value
    raise _wrong(path, "a string", value)


def req_str(data: JsonObject, path: str) -> str:
    value = opt_str(data, path)
    if value is None:
        raise MalformedPayload(f"{path}: missing")
    if not value:
        raise MalformedPayload(f"{path}: empty")
    return value


def opt_int(data: JsonObject, path: str) -> int | None:
    value = lookup(data, path)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(path, "an integer", value)
    return value


def req_int(data: JsonObject, path: str) -> int:
    value = opt_int(data, path)
    if value is None:
        raise MalformedPayload(f"{path}: missing")
    return value


def opt_bool(data: JsonObject, path: str) -> bool:
    """A boolean flag; missing or null means False."""
    value = lookup(data, path)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _wrong(path, "a boolean", value)
    return value


def req_obj(data: JsonObject, path: str) -> JsonObject:
    value = lookup(data, path)
    if value is None:
        raise MalformedPayload(f"{path}: missing")
    if not isinstance(value, dict):
        raise _wrong(path, "an object", value)
    return value


def names(data: JsonObject, path: str, key: str) -> tuple[str, ...]:
    """`[item[key] for item in data[path]]` for a list of objects (labels); missing -> ()."""
    items = lookup(data, path)
    if items is None:
        return ()
    if not isinstance(items, list):
        raise _wrong(path, "an array", items)
    out: list[str] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise _wrong(f"{path}[{index}]", "an object", item)
        value = item.get(key)
        if value is None:
            raise MalformedPayload(f"{path}[{index}].{key}: missing")
        if not isinstance(value, str):
            raise _wrong(f"{path}[{index}].{key}", "a string", value)
        out.append(value)
    return tuple(out)


def best_effort_str(data: JsonObject, path: str) -> str | None:
    """Like opt_str, but a wrong shape yields None (for events that are ignored anyway)."""
    try:
        return opt_str(data, path)
    except MalformedPayload:
        return None


def is_zero_sha(value: str | None) -> bool:
    return bool(value) and set(value or "") == {"0"}
