"""Jobs that call the app: which URLs are the app's, and how each platform's rewrite
keeps the shell text working whatever its quoting (run through a real sh here)."""

from __future__ import annotations

import subprocess
from dataclasses import replace

import pytest

from exporters.base import Collector, jobs
from exporters.calls import Via, app_call, app_calls, reach_app

from .test_export_support import multi_source


def test_only_urls_of_the_app_are_calls() -> None:
    app = multi_source().app
    text = (
        "curl http://localhost:8080/a http://127.0.0.1/b https://web:8443 http://api:9090?q "
        "http://web.example.com/x http://webx:8080 http://db:5432 ftp://web:21 http://[::1]:8080"
    )
    got = [(c.service, c.port, text[c.start : c.end]) for c in app_calls(text, app, "web")]
    assert got == [
        ("web", 8080, "http://localhost:8080"),
        ("web", 80, "http://127.0.0.1"),
        ("web", 8443, "https://web:8443"),
        ("api", 9090, "http://api:9090"),
        ("web", 8080, "http://[::1]:8080"),
    ]
    call = app_call("http://api:9090/nightly?full=1", app, "web")
    assert call is not None and (call.service, call.port, call.path) == (
        "api",
        9090,
        "/nightly?full=1",
    )
    assert app_call("see http://api:9090/", app, "web") is None


COMMANDS = [
    "echo http://web:8080/a",
    "echo 'http://web:8080/a b'",
    'echo "http://web:8080/a $X"',
    "echo it\\'s http://localhost:8080/a",
    "X='q' && echo \"$X\" 'http://api:9090/n?x=1'",
]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("host_only", [False, True])
def test_rewritten_commands_expand_the_variable_in_any_quoting(
    command: str, host_only: bool
) -> None:
    source = multi_source()
    job = jobs(source)[0]
    job = replace(job, entry=replace(job.entry, command=command, env={}))
    value = "platform-host" if host_only else "https://platform.example"

    def address(service: str, port: int) -> Via:
        return Via(f"HOODY_{service.upper()}", value, host_only)

    out = Collector()
    rewritten, env = reach_app(job, source.app, "Test", address, out)
    assert env and not out.warnings
    original = subprocess.run(["sh", "-c", command], capture_output=True, text=True, env={"X": "x"})
    run = subprocess.run(
        ["sh", "-c", rewritten.script],
        capture_output=True,
        text=True,
        env={"X": "x", **{k: value for k in env}},
    )
    assert run.returncode == 0, run.stderr
    expected = original.stdout
    for base in ("http://web:8080", "http://localhost:8080", "http://api:9090"):
        port = base.rsplit(":", 1)[1]
        expected = expected.replace(base, f"http://platform-host:{port}" if host_only else value)
    assert run.stdout == expected
