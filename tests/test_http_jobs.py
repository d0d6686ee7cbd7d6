"""HTTP jobs: the crontab syntax, its errors, the target rule, and the runner against a
real HTTP server on loopback (allowed by `cron.http_allow`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reconciler.core.crontab import explain, parse_crontab
from reconciler.core.errors import SpecErrors
from reconciler.core.httpjob import parse_request_line, request_line
from reconciler.cron.httpjobs import HttpJobRunner, check_target
from reconciler.cron.jobs import DockerJobRunner, Handle, Job
from reconciler.runtime.memory import MemoryRuntime


def test_a_request_line_is_parsed_with_its_options() -> None:
    (e,) = parse_crontab(
        "*/5 * * * * | post http://web:8080/tasks/digest?day=1%202 retries=3 "
        "retry_backoff=2s timeout=10s expect=200,204 header='X-Token: ${TOKEN}' body='{\"a\": 1}'\n"
    ).entries
    req = e.request
    assert e.job_kind == "http" and req is not None
    assert (req.method, req.service, req.port, req.path) == (
        "POST",
        "web",
        8080,
        "/tasks/digest?day=1%202",  # `%` is literal on an HTTP line
    )
    assert (req.retries, req.retry_backoff, req.timeout, req.expect) == (3, 2.0, 10.0, (200, 204))
    assert req.headers == (("X-Token", "${TOKEN}"),) and req.body == '{"a": 1}'
    assert parse_request_line(request_line(req)) == req
    assert "POST http://web:8080/tasks/digest?day=1%202 (HTTP" in explain(e)
    assert "up to 3 retries" in explain(e)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("| FETCH http://web/", "method: 'FETCH' is not one of GET"),
        ("| GET ftp://web/", "url: 'ftp://web/': expected http://<service>:<port>/<path>"),
        ("| GET http://u:p@web/", "url: no credentials in the URL"),
        ("| GET http://web/ retries=many", "retries: 'many' is not a whole number"),
        ("| GET http://web/ retries=99", "retries: at most 10"),
        ("| GET http://web/ expect=2xx", "expect: '2xx' is not a status code"),
        ("| GET http://web/ colour=red", "colour: unknown option"),
        ("| GET http://web/ header=NoColon", "header: 'NoColon' is not Name:value"),
        ("| GET http://web/ 'body=unclosed", "request: No closing quotation"),
        ("| GET", "request: an HTTP job is `| METHOD URL [key=value ...]`"),
    ],
)
def test_request_line_errors_name_line_and_field(line: str, message: str) -> None:
    with pytest.raises(SpecErrors) as caught:
        parse_crontab(f"# a comment\n@hourly {line}\n")
    assert f".hoody/crontab:2: {message}" in str(caught.value)


def test_targets_outside_the_environment_are_refused_unless_allowed() -> None:
    (e,) = parse_crontab("@hourly | GET http://10.0.0.5:9000/x\n").entries
    assert e.request is not None
    refused = check_target(e.request, {"web", "worker"}, ())
    assert refused and "not a service of this environment (web, worker)" in refused
    assert check_target(e.request, {"web"}, ("10.0.0.5:9000",)) is None
    assert check_target(e.request, {"web"}, ("10.0.0.5",)) is None
    assert check_target(e.request, {"web"}, ("10.0.0.5:9001",)) is not None


class _Handler(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, dict[str, str], bytes]] = []
    fail_first = 0

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        _Handler.seen.append((self.command, self.path, dict(self.headers), body))
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/")
            self.end_headers()
            return
        status = 500 if _Handler.fail_first > 0 else 200
        _Handler.fail_first -= 1
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"body of " + self.path.encode() + b" " + body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    _Handler.seen = []
    _Handler.fail_first = 0
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


def job(line: str, variables: dict[str, str] | None = None) -> Job:
    (e,) = parse_crontab(f"@hourly {line}\n").entries
    return Job(1, "shop", "main-shop", e.id, "c", "/bin/sh", e.command, None,
               variables or {}, request=e.request)  # fmt: skip


def test_runner_retries_a_500_with_backoff_then_succeeds(server: int) -> None:
    _Handler.fail_first = 2
    runner = DockerJobRunner(MemoryRuntime())  # type: ignore[arg-type]
    runner.http = HttpJobRunner(MemoryRuntime(), allow=("127.0.0.1",))  # type: ignore[arg-type]
    out = runner.run(
        job(
            f"| POST http://127.0.0.1:{server}/hook retries=3 retry_backoff=0.01s "
            "header='Authorization: Bearer ${TOKEN}' body=hello",
            {"TOKEN": "tok-secret-1", "OTHER": "never-sent-value"},
        ),
        Handle(),
    )
    assert out.status == "succeeded" and out.http_status == 200
    assert [s[1] for s in _Handler.seen] == ["/hook"] * 3
    assert out.stderr.count("500") == 2 and "attempt 3: 200 OK" in out.stderr
    sent = _Handler.seen[-1]
    assert sent[2]["Authorization"] == "Bearer tok-secret-1" and sent[3] == b"hello"
    assert "never-sent-value" not in repr(sent)
    assert sent[2]["Host"] == f"127.0.0.1:{server}"
    assert "tok-secret-1" not in out.stdout + out.stderr


def test_runner_does_not_follow_redirects(server: int) -> None:
    runner = HttpJobRunner(MemoryRuntime(), allow=("127.0.0.1",))  # type: ignore[arg-type]
    out = runner.run(job(f"| GET http://127.0.0.1:{server}/redirect"), Handle())
    assert out.status == "failed" and out.http_status == 302
    assert "not followed" in out.stderr and len(_Handler.seen) == 1


def test_runner_refuses_a_target_not_allowed_and_an_unset_variable(server: int) -> None:
    runner = HttpJobRunner(MemoryRuntime())  # type: ignore[arg-type]
    out = runner.run(job(f"| GET http://127.0.0.1:{server}/x"), Handle())
    assert out.status == "error" and "refused" in (out.reason or "")
    allowed = HttpJobRunner(MemoryRuntime(), allow=("127.0.0.1",))  # type: ignore[arg-type]
    out = allowed.run(job(f"| GET http://127.0.0.1:{server}/x header=X-A:${{NOPE}}"), Handle())
    assert out.status == "error" and "${NOPE} is not set" in (out.reason or "")
    assert _Handler.seen == []


def test_crontab_explain_shows_the_request_and_the_random_pick(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from pathlib import Path

    from reconciler.cli.cron import explain_file

    path = Path(str(tmp_path)) / "crontab"
    path.write_text("0~30 * * * * echo a\n*/5 * * * * | POST http://web:8080/t retries=2\n")
    assert explain_file(path) == 0
    out = capsys.readouterr().out
    assert "random ranges picked: minute" in out
    assert "POST http://web:8080/t (HTTP, timeout 30s, expecting 2xx, up to 2 retries" in out
