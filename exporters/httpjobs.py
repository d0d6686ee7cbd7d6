"""HTTP jobs (`CronEntry.request`: a request to a service of the environment, with its
timeout, accepted statuses and retries) on the platforms.

Cloud Run and Vercel have a scheduler that makes HTTP requests itself: Cloud Scheduler
HTTP targets (`exporters.cloudscheduler`) and Vercel crons (GET requests to a path).
Everywhere else a job is a command, so an HTTP job is a container of a small HTTP client
image, `CLIENT_IMAGE` (curl; the app's own image may have no client at all), running
`request_script`: one line of POSIX sh that makes the request with curl and does what
hoody does with it — the method, headers and body as written, `--max-time` the timeout,
success when the status is accepted (`expect`, else any 2xx), else a retry after
`retry_backoff` seconds doubled for each next one, `retries` times, then exit 1.

On EventBridge Scheduler (ECS) too it is such a task, not an API destination: the
Scheduler has no HTTP target of its own (API destinations are targets of EventBridge
rules, so it would take a connection, an API destination, a rule and a schedule putting
events), an API destination reaches only public HTTPS endpoints (or a VPC Lattice
resource), waits at most 5 seconds for an answer and retries with its own policy; a task
in the services' subnet reaches them at the address the jobs already use, with the
request's own timeout and retries.

`${VAR}` in headers and body: hoody expands them at run time from the environment's
variables (the cron service's, as a command job sees them). In an export, each one the
environment sets becomes a variable of the job's container with the value `service_env`
gives it (a `${NAME}` placeholder, or the committed value with `--include-spec-values`),
referenced from the script as `"${VAR}"`, so the platform's secret handling and the
`envsubst` rules apply to it as to every other variable. One the environment does not
set (in a fork's export, which carries none of the repository's env, the repository's
secrets) stays literal text, warned: no export ever fills in a value it was not given.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from reconciler.core.httpjob import HttpRequest

from .base import Collector, ExportSource, Job, service_env
from .calls import Address, rewrite_calls

CLIENT_IMAGE = "curlimages/curl:8.11.1"
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def client_note(where: str) -> str:
    """The warning that names the client image; `where`: how the platform runs it."""
    return (
        f"HTTP jobs run {where} in {CLIENT_IMAGE} (curl, with sh), which makes the "
        "request with the job's timeout, accepted statuses and retries"
    )


def pieces(text: str) -> list[tuple[str, str | None]]:
    """`text` cut at its `${VAR}` references: (literal text, None) and (`${VAR}`, VAR)."""
    out: list[tuple[str, str | None]] = []
    at = 0
    for m in _REF.finditer(text):
        if m.start() > at:
            out.append((text[at : m.start()], None))
        out.append((m[0], m[1]))
        at = m.end()
    if at < len(text):
        out.append((text[at:], None))
    return out


def used_vars(request: HttpRequest) -> list[str]:
    """The variables the request's headers and body reference, in order, once each."""
    texts = [value for _, value in request.headers]
    if request.body is not None:
        texts.append(request.body)
    names: list[str] = []
    for text in texts:
        names += [v for _, v in pieces(text) if v is not None and v not in names]
    return names


def request_env(source: ExportSource, job: Job, out: Collector) -> dict[str, Any]:
    """VAR -> the platform's value, for each `${VAR}` of the request the environment
    sets; the others are warned and stay literal text."""
    assert job.entry.request is not None
    env = service_env(source, job.service, out)
    values: dict[str, Any] = {}
    for name in used_vars(job.entry.request):
        if name in env:
            values[name] = env[name]
        else:
            out.warn(
                f"{job.label}: ${{{name}}} in the request is not a variable this export "
                "knows for the environment, so it is sent as that literal text; set it in "
                "the spec's env (or the server's repo env, for a branch of the repository)"
            )
    return values


def shell_text(text: str, known: set[str] | dict[str, Any]) -> str:
    """`text` as one sh word: literal parts single-quoted, `${VAR}` of `known` expanded."""
    words = [
        f'"${{{var}}}"' if var is not None and var in known else shlex.quote(part)
        for part, var in pieces(text)
    ]
    return "".join(words) or "''"


def request_script(request: HttpRequest, url: str, known: set[str] | dict[str, Any]) -> str:
    """The request as one line of sh running curl; `url` is shell text (quoted, and
    pointed at the platform's name for the service)."""
    curl = ["curl", "-sS", "-o", "/dev/null", "-w", "'%{http_code}'"]
    curl += ["--max-time", f"{request.timeout:g}"]
    curl += ["--head"] if request.method == "HEAD" else ["-X", request.method]
    names = {name.lower() for name, _ in request.headers}
    for name, value in request.headers:
        curl += ["-H", shell_text(f"{name}: {value}", known)]
    if request.body is not None:
        if "content-type" not in names:
            curl += ["-H", "'Content-Type:'"]  # curl's default form type: hoody sends none
        curl += ["--data-raw", shell_text(request.body, known)]
    curl.append(url)
    accepted = "|".join(str(code) for code in request.expect) or "2??"
    waits = [f"{request.retry_backoff * 2**i:g}" for i in range(request.retries)] + ["-"]
    what = shlex.quote(f"{request.method} {request.path}")
    return (
        f"for hoody_wait in {' '.join(waits)}; do "
        f"hoody_status=$({' '.join(curl)}); "
        f"case $hoody_status in {accepted}) exit 0;; esac; "
        f"printf '%s: HTTP %s\\n' {what} \"$hoody_status\" >&2; "
        '[ "$hoody_wait" = - ] && exit 1; sleep "$hoody_wait"; done'
    )


def request_job(
    source: ExportSource, job: Job, platform: str, address: Address | None, out: Collector
) -> tuple[str, dict[str, Any]]:
    """The script of the job's client container and the variables it needs: the
    request's `${VAR}`s and, when `address` names the service on the platform, the
    variable that holds its address (None: the URL's service name resolves as it is)."""
    request = job.entry.request
    assert request is not None
    env = request_env(source, job, out)
    known = set(env)
    url = shlex.quote(request.url)
    if address is not None:
        url = rewrite_calls(url, job, source.app, platform, address, out, env)
    return request_script(request, url, known), env


def attempts_seconds(request: HttpRequest) -> float:
    """The longest the request takes: every attempt timing out, and the waits between."""
    waits = sum(request.retry_backoff * 2.0**i for i in range(request.retries))
    return request.timeout * (request.retries + 1) + waits


def not_carried(request: HttpRequest, what: dict[str, bool]) -> list[str]:
    """Names of the request's parts that are set and that a platform cannot carry
    (`what`: part -> whether the platform lacks it)."""
    present = {
        "method": request.method != "GET",
        "headers": bool(request.headers),
        "body": request.body is not None,
        "retries": request.retries > 0,
        "expect": bool(request.expect),
        "timeout": True,
    }
    return [part for part, lacks in what.items() if lacks and present.get(part)]
