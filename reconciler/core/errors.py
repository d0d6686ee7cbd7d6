"""One exception tree for the whole service.

    ReconcilerError
    ├── ConfigError            hoody.yaml is wrong (names the key path)
    ├── SpecError              a branch file is wrong (names file, line and field)
    │   └── SpecErrors         several SpecError at once (a whole file's problems)
    ├── GitError               fetch / read failed            (retryable)
    ├── RuntimeUnavailable     the container engine cannot be reached (retryable)
    ├── RuntimeFailure         the engine refused an operation (terminal for this apply)
    │   ├── NameConflict       an object we did not create holds the name we need
    │   └── HealthTimeout      a new version never became healthy
    └── PlanRefused            a pass was stopped by a guard (mass prune)

`retryable` is on the type: the controller backs off and tries again on retryable
errors; terminal ones are reported on the environment and wait for a new commit.
"""

from __future__ import annotations

from collections.abc import Iterable


class ReconcilerError(Exception):
    retryable = False


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


class GitError(ReconcilerError):
    retryable = True


class RuntimeUnavailable(ReconcilerError):
    retryable = True


class RuntimeFailure(ReconcilerError):
    pass


class NameConflict(RuntimeFailure):
    pass


class HealthTimeout(RuntimeFailure):
    pass


class PlanRefused(ReconcilerError):
    pass
