"""One exception tree for the whole service; it is also the retry contract.

    ReconcilerError                                                 retried, first after
    ├── ConfigError            hoody.yaml is wrong (names the key path)        no
    ├── SpecError              a branch file is wrong (file, line and field)   no
    │   └── SpecErrors         several SpecError at once (a whole file)        no
    ├── BadValue               one value is wrong; its reader adds the place   no
    ├── ExprError              a cron schedule is wrong ((field, message)s)    no
    ├── RequestProblem         an HTTP job's request is wrong (`field`)        no
    ├── HttpJobRefused         an HTTP job may not be made (target, ${VAR})    no
    ├── StoreUnavailable       the run log cannot be written (database down)   yes, 5 s
    ├── GitError               fetch / read failed                             yes, 15 s
    ├── RuntimeUnavailable     the container engine cannot be reached          yes, 10 s
    ├── RuntimeFailure         the engine refused an operation (`status`)      no
    │   ├── NameConflict       an object we did not create holds the name      no
    │   ├── RuntimeConflict    written at a version the swarm moved on         yes, 2 s
    │   ├── HealthTimeout      a new version never became healthy              no
    │   └── BuildFailed        a build failed; its output is kept apart        no
    ├── ProxyUnavailable       the proxy's admin API cannot be reached         yes, 10 s
    ├── ProxyFailure           the proxy refused a configuration change        yes, 30 s
    │   └── ProxyNotFound      no such path or `@id` in the proxy's config     yes, 30 s
    ├── ProviderError          a provider API call failed or was unreadable    no answer, 429,
    │                                                                          5xx: 30 s
    ├── UnknownEnvironment     no environment of that name has a schedule      no
    ├── WebhookError           a webhook delivery is refused                   no
    │   ├── SignatureError     not authenticated
    │   ├── BodyTooLarge       larger than can be accepted or verified (413)
    │   └── MalformedPayload   authenticated but not understood (`reason`)
    ├── ExportError            an export cannot be produced at all             no
    ├── Abandoned              an environment's work stopped at a step (the    no
    │                          service stops: everything is left as it is)
    │   ├── Superseded         a newer version of the environment is waiting
    │   └── LeaseLost          another replica leads the repo now
    └── ApiError               an API request is refused (HTTP status, code)   no

`retryable` and `retry_after` are on the type (ProviderError decides per instance, from
the HTTP status). `retry_delay(error)` is what the serve loop reads: a pass that failed
with a retryable error is queued again after `retry_after`, doubled for each further
consecutive failure of that repo up to a cap, and the count resets on a pass that has
nothing to retry. A terminal error is reported on the environment and waits for a new
commit (or the next poll or webhook). An error outside the tree (a bug, an OS error) ends
the pass and is retried after `UNEXPECTED_RETRY_AFTER`: a pass only reads before it acts,
so running it again is safe.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reconciler.core.redact import scrub

DEFAULT_RETRY_AFTER = 30.0  # a retryable type that names no delay of its own
UNEXPECTED_RETRY_AFTER = 30.0  # an exception outside the tree


class ReconcilerError(Exception):
    retryable: bool = False
    retry_after: float | None = None  # seconds before the first retry (when retryable)


def retry_delay(error: BaseException) -> float | None:
    """Seconds before the first retry of a pass that failed with `error`; None: terminal."""
    if not isinstance(error, ReconcilerError):
        return UNEXPECTED_RETRY_AFTER
    if not error.retryable:
        return None
    return error.retry_after if error.retry_after is not None else DEFAULT_RETRY_AFTER


class ConfigError(ReconcilerError):
    def __init__(self, path: str, message: str, file: str | None = None) -> None:
        self.path = path
        self.message = message
        self.file = file
        where = f"{file}: " if file else ""
        super().__init__(f"{where}{path}: {message}" if path else f"{where}{message}")


class SpecError(ReconcilerError):
    """A problem in a branch file. `str()` is `file:line: field: message`."""

    def __init__(self, file: str, line: int | None, field: str | None, message: str) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        super().__init__(self.render())

    def render(self) -> str:
        loc = f"{self.file}:{self.line}" if self.line else self.file
        return f"{loc}: {self.field}: {self.message}" if self.field else f"{loc}: {self.message}"


class SpecErrors(SpecError):
    """Every problem of one file, reported at once."""

    def __init__(self, errors: Iterable[SpecError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        ReconcilerError.__init__(self, "\n".join(e.render() for e in self.errors))
        self.file, self.line, self.field, self.message = (
            first.file,
            first.line,
            first.field,
            first.message,
        )

    def render(self) -> str:
        return "\n".join(e.render() for e in self.errors)


class BadValue(ReconcilerError):
    """One value is wrong. Raised by converters that see only the value; whoever holds its
    node and field path turns it into a SpecError with file, line and field."""


class ExprError(ReconcilerError):
    """Problems in a schedule: a list of (field name or None, message). The crontab
    reader adds the file and line."""

    def __init__(self, problems: list[tuple[str | None, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{f}: {m}" if f else m for f, m in problems))


class RequestProblem(ReconcilerError):
    """What is wrong with an HTTP job's request, and the field it is in (`url`, ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class HttpJobRefused(ReconcilerError):
    """An HTTP job's request is not made: its target is outside the environment and not
    allowed, its service has no address, or a `${VAR}` it names is not set."""


class StoreUnavailable(ReconcilerError):
    """The run log could not be written (the database is down or read-only): firings
    that cannot be claimed are skipped, never run unclaimed."""

    retryable = True
    retry_after = 5.0


class GitError(ReconcilerError):
    """Its message never holds a credential: URLs in it are scrubbed (`redact.scrub`)."""

    retryable = True
    retry_after = 15.0

    def __init__(self, message: str) -> None:
        super().__init__(scrub(message))


class RuntimeUnavailable(ReconcilerError):
    retryable = True
    retry_after = 10.0


class RuntimeFailure(ReconcilerError):
    """`status` is the engine's HTTP status when it answered one (404: no such object,
    409: a conflict such as a name in use)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NameConflict(RuntimeFailure):
    pass


class RuntimeConflict(RuntimeFailure):
    """A write the engine refused because the object changed after it was read (a swarm
    service's version moved on: "update out of sequence"): read it again and retry."""

    retryable = True
    retry_after = 2.0


class HealthTimeout(RuntimeFailure):
    """`output` holds the container's last log lines, kept apart like BuildFailed's."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


class BuildFailed(RuntimeFailure):
    """`str()` is the status line; `output` is the build's last lines, which come from the
    branch's own commands, so they are shown apart from it (truncated, and not to
    anonymous readers when `api.public_read` is on)."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


class ProxyUnavailable(ReconcilerError):
    retryable = True
    retry_after = 10.0


class ProxyFailure(ReconcilerError):
    """Caddy refused a change: not the environment's fault, so never a failed version."""

    retryable = True
    retry_after = 30.0


class ProxyNotFound(ProxyFailure):
    """The path or `@id` does not exist in Caddy's configuration (the router then
    creates it, or knows the proxy lost hoody's routes)."""


class ProviderError(ReconcilerError):
    """A provider API call failed (after retries) or answered something we cannot read.
    The message names method, path and status; it never contains the token.

    Retryable when the provider may answer differently later: no answer at all (network,
    timeout), 429 or 5xx (given as `retryable=True`, or read from `status`). A 4xx, a
    redirect elsewhere or an unreadable body is terminal until something changes (a
    token, the configuration)."""

    retry_after = 30.0

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.status = status
        if retryable is None:
            retryable = status is not None and (status == 429 or status >= 500)
        self.retryable = retryable


class UnknownEnvironment(ReconcilerError):
    pass


class WebhookError(ReconcilerError):
    """Base of every error a webhook delivery can be refused with."""


class SignatureError(WebhookError):
    """The delivery is not authenticated: signature or token missing, malformed or wrong."""


class BodyTooLarge(WebhookError):
    """The delivery is larger than can be accepted or verified (413)."""


class MalformedPayload(WebhookError):
    """The delivery is authenticated but cannot be understood. `reason` names the field."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ExportError(ReconcilerError):
    """The export cannot be produced at all (unknown format, unreadable spec)."""


class Abandoned(ReconcilerError):
    """An environment's work stopped at one of its steps; not a failure of the version."""


class Superseded(Abandoned):
    """A newer version of the environment is waiting: this one's half-started containers
    go, the live version keeps serving, the newer one runs next."""


class LeaseLost(Abandoned):
    """Another replica leads the repo now: stop here and leave everything as it is."""


class ApiError(ReconcilerError):
    """An API request refused: the HTTP status, a stable code and a message for people."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
