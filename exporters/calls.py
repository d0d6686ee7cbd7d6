"""Jobs that call the app: `curl http://localhost:8080/...`, `wget http://web:8080/...`.

hoody runs a job inside the cron service's running container, so there `localhost` is
the cron service and `web` is service `web` on the environment's network. On the other
platforms a job runs in a container of its own, where `localhost` is nothing and `web`
does not resolve. So each URL of a job (in its command or its crontab variables) whose
host is `localhost` (or 127.0.0.1, 0.0.0.0, [::1]) or a service name is rewritten to
what the platform calls that service:

* a host name (`main-shop-web`: the Kubernetes Service; scheme and port stay), or
* `Via(name, value)`: a variable the job's container gets, holding the service's address
  (a placeholder for a Cloud Run URL, a Render `fromService` host), referenced from the
  shell text with the quoting the URL had (inside '...', "..." or bare);
* None where the platform has no name a job can reach: the URL stays, with a warning.

HTTP jobs (`exporters.httpjobs`) put their request's URL through the same rewriting.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from reconciler.core.model import AppSpec

from .base import Collector, Job, job_script

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "0.0.0.0", "[::1]"})
_URL = re.compile(
    r"(?P<scheme>https?)://(?P<host>\[::1\]|[A-Za-z0-9][A-Za-z0-9.-]*)(?::(?P<port>\d{1,5}))?"
    r"(?![A-Za-z0-9.:-])"
)


@dataclass(frozen=True)
class AppCall:
    """A URL that reaches a service of the app, found in some shell text."""

    service: str
    port: int
    scheme: str
    start: int  # span of `scheme://host[:port]` in the text
    host_start: int
    host_end: int
    end: int
    path: str = ""  # what follows, up to the next blank or quote


@dataclass(frozen=True)
class Via:
    """Reach the service through variable `name` of the job's container. `value` is what
    the platform puts in it; `host_only`: it holds the host (scheme and port stay), else
    the whole base URL (`https://….run.app`)."""

    name: str
    value: Any
    host_only: bool = False


Address = Callable[[str, int], "str | Via | None"]


def app_calls(text: str, app: AppSpec, cron_service: str) -> list[AppCall]:
    """Every URL in `text` whose host is the cron service's `localhost` or a service."""
    calls = []
    for m in _URL.finditer(text):
        host = m["host"].lower()
        service = cron_service if host in LOCAL_HOSTS else host
        if service not in app.services:
            continue
        port = int(m["port"]) if m["port"] else (443 if m["scheme"] == "https" else 80)
        rest = re.match(r"[^\s'\"`;|&<>()]*", text[m.end() :])
        calls.append(
            AppCall(
                service,
                port,
                m["scheme"],
                m.start(),
                m.start("host"),
                m.end("host"),
                m.end(),
                rest[0] if rest else "",
            )
        )
    return calls


def app_call(url: str, app: AppSpec, cron_service: str) -> AppCall | None:
    """The service one whole URL reaches (for HTTP jobs), or None."""
    calls = app_calls(url, app, cron_service)
    return calls[0] if len(calls) == 1 and calls[0].start == 0 else None


def reach_app(
    job: Job, app: AppSpec, platform: str, address: Address, out: Collector
) -> tuple[Job, dict[str, Any]]:
    """`job` with its calls to the app rewritten by `address`, and the variables
    (name -> platform value) its container needs for them."""
    env: dict[str, Any] = {}

    def rewrite(text: str) -> str:
        return rewrite_calls(text, job, app, platform, address, out, env)

    script = job_script(job.entry, rewrite)
    return (replace(job, script=script) if script != job.script else job), env


def rewrite_calls(
    text: str,
    job: Job,
    app: AppSpec,
    platform: str,
    address: Address,
    out: Collector,
    env: dict[str, Any],
) -> str:
    """Shell `text` of `job` with its URLs of the app pointed at `address`'s names; the
    variables that takes are added to `env`."""
    for call in reversed(app_calls(text, app, job.service.name)):
        target = address(call.service, call.port)
        url = text[call.start : call.end]
        if target is None:
            out.warn(
                f"{job.label}: calls {url}, but a {platform} job runs in a container of "
                f"its own and {platform} gives service {call.service!r} no name it can "
                "reach; change the URL"
            )
            continue
        if isinstance(target, str):
            text = text[: call.host_start] + target + text[call.host_end :]
            continue
        env[target.name] = target.value
        ref = _shell_ref(text, call.start, target.name)
        if target.host_only:
            text = text[: call.host_start] + ref + text[call.host_end :]
        else:
            text = text[: call.start] + ref + text[call.end :]
    return text


def _shell_ref(text: str, at: int, name: str) -> str:
    """`${name}` written so that the shell expands it at `at` in `text`, whatever the
    quoting there: `"${N}"` bare, `${N}` inside "...", `'"${N}"'` inside '...'."""
    state = _quoting(text, at)
    if state == "'":
        return f"'\"${{{name}}}\"'"
    if state == '"':
        return f"${{{name}}}"
    return f'"${{{name}}}"'


def _quoting(text: str, at: int) -> str:
    """The quote open at offset `at` of shell text: `'`, `"` or `` (none)."""
    state, i = "", 0
    while i < at:
        ch = text[i]
        if state == "'":
            state = "" if ch == "'" else state
        elif ch == "\\":
            i += 1
        elif state == '"':
            state = "" if ch == '"' else state
        elif ch in "'\"":
            state = ch
        i += 1
    return state
