"""Logging set-up: text for people, JSON lines for collectors. Records carry `repo`,
`env` and (for jobs) `entry` as fields when the caller put them there. Every line goes
through `redact.scrub` on its way out (tracebacks included), as a second guard behind
GitError's own scrub."""

from __future__ import annotations

import json
import logging
import sys
import time

from reconciler.core.redact import scrub

IDENTITY = ("repo", "env", "entry", "run")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in IDENTITY:
            value = getattr(record, key, None)
            if value is not None:
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return scrub(json.dumps(doc, default=str))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def setup_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "docker", "git", "waitress", "watchfiles", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
