"""The dashboard over a real socket: a real Service (in-memory runtime, real git repo)
under waitress, read with plain HTTP the way a browser without JavaScript would."""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from reconciler.core.settings import ApiSettings, RepoSettings, Settings
from reconciler.runtime.memory import MemoryRuntime

from .conftest import GitRemote
from .webhook_helpers import LiveService, wait_for

SPEC = "name: shop\nimage: busybox:1.36\nports: [8080]\n"
CRONTAB = "@every 1h echo hi\n"
TOKEN = "dashboard-t0ken"
ENV = "main-shop"


class Jobs:
    """The memory runtime's job handler: exit code, output and a gate to hold jobs."""

    def __init__(self) -> None:
        self.exit_code = 0
        self.stdout = "ran {cmd}\n"
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, cmd: list[str], env: dict[str, str]) -> tuple[int, bytes, bytes]:
        self.gate.wait(30)
        err = b"it broke\n" if self.exit_code else b""
        return self.exit_code, self.stdout.format(cmd=cmd[-1]).encode(), err


Start = Callable[..., LiveService]


@pytest.fixture
def start(tmp_path: Path, remote: GitRemote) -> Iterator[Start]:
    with ExitStack() as stack:

        def run(
            api: ApiSettings | None = None, crontab: str = CRONTAB, jobs: Jobs | None = None
        ) -> LiveService:
            remote.commit("main", {".hoody/app.yaml": SPEC, ".hoody/crontab": crontab})
            rt = MemoryRuntime()
            rt.images.add("busybox:1.36")
            rt.job_handler = jobs or Jobs()
            cfg = Settings(
                state_dir=tmp_path / "state",
                api=api or ApiSettings(),
                repos=(RepoSettings(name="shop", url=str(remote.bare), poll_interval=0),),
            )
            live = stack.enter_context(LiveService(cfg, rt))
            live.settle()
            return live

        yield run


def get(live: LiveService, path: str, session: requests.Session | None = None, **kw: object):  # type: ignore[no-untyped-def]
    return (session or requests).get(f"{live.url}{path}", timeout=5, **kw)  # type: ignore[arg-type]


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


def run_action(html: str) -> str:
    m = re.search(r'action="(/environments/[^"]+/cron/[^"]+/run)"', html)
    assert m, "no Run now form on the page"
    return m.group(1)


def login(live: LiveService, s: requests.Session, nxt: str = f"/environments/{ENV}") -> None:
    r = s.post(
        f"{live.url}/login", data={"token": TOKEN, "next": nxt}, allow_redirects=False, timeout=5
    )
    assert r.status_code == 303 and r.headers["Location"] == nxt


def finished(live: LiveService, run_id: int) -> bool:
    record = live.store.runs.get(run_id)
    return record is not None and record.status != "running"


def test_index_lists_the_environments_with_status_ref_and_commit(
    start: Start, remote: GitRemote
) -> None:
    live = start()
    r = get(live, "/")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    row = re.search(r'<tr id="env-main-shop".*?</tr>', r.text, re.S)
    assert row, r.text
    assert 'href="/environments/main-shop"' in row.group(0)
    assert '<span class="badge st-healthy">healthy</span>' in row.group(0)
    assert ">main</span>" in row.group(0)  # the branch, by its name
    sha = live.store.environment(ENV)["commit"]
    assert f">{sha[:7]}</code>" in row.group(0)
    assert 'name="viewport"' in r.text and "<noscript>" in r.text
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]

    partial = get(live, "/", headers={"X-Partial": "1"})
    assert partial.status_code == 200 and "<html" not in partial.text
    assert 'id="env-main-shop"' in partial.text
    assert "X-Partial" in partial.headers["Vary"] and partial.headers["Cache-Control"] == "no-store"


def test_environment_page_shows_services_schedule_and_next_three_times(start: Start) -> None:
    live = start()
    html = get(live, f"/environments/{ENV}").text
    assert "<code>main-shop_app</code>" in html
    entry = re.search(r'<article class="entry".*?</article>', html, re.S)
    assert entry, html
    assert "@every 1h" in entry.group(0) and "echo hi" in entry.group(0)
    assert "Next (UTC)" in entry.group(0)
    times = [
        datetime.fromisoformat(t) for t in re.findall(r'class="next-time" datetime="([^"]+)"', html)
    ]
    assert len(times) == 3
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(times))
    assert all(t.minute == 0 and t.second == 0 for t in times)
    assert "created" in html  # the events timeline


def test_next_times_are_shown_in_the_entrys_own_zone(start: Start) -> None:
    live = start(crontab="CRON_TZ=Asia/Kolkata\n30 9 * * * echo chai\n")
    html = get(live, f"/environments/{ENV}").text
    assert "Next (Asia/Kolkata)" in html
    stamps = re.findall(r'class="next-time" datetime="([^"]+)"[^>]*>([^<]+)<', html)
    assert len(stamps) == 3
    for iso, text in stamps:
        assert iso.endswith("T09:30:00+05:30"), iso
        assert text.endswith("09:30 +05:30"), text


def test_all_runs_filters_by_status(start: Start) -> None:
    jobs = Jobs()
    live = start(jobs=jobs)
    entry = live.service.scheduler.entries(ENV)[0].entry.id
    ok = live.service.scheduler.trigger(ENV, entry)
    assert ok is not None
    wait_for(lambda: finished(live, ok), 10, "the first run")
    jobs.exit_code = 1
    bad = live.service.scheduler.trigger(ENV, entry)
    assert bad is not None
    wait_for(lambda: finished(live, bad), 10, "the second run")

    everything = get(live, "/runs").text
    assert f'id="run-{ok}"' in everything and f'id="run-{bad}"' in everything
    failed = get(live, "/runs?status=failed").text
    assert f'id="run-{bad}"' in failed and f'id="run-{ok}"' not in failed
    assert set(re.findall(r'data-status="([^"]+)"', failed)) == {"failed"}
    assert '<option value="failed" selected>' in failed
    succeeded = get(live, "/runs?status=succeeded").text
    assert f'id="run-{ok}"' in succeeded and f'id="run-{bad}"' not in succeeded
    assert get(live, "/runs?status=bogus").status_code == 400
    detail = get(live, f"/runs/{bad}")
    assert detail.status_code == 200 and "it broke" in detail.text


def test_pages_load_nothing_from_other_hosts(start: Start) -> None:
    live = start()
    entry = live.service.scheduler.entries(ENV)[0].entry.id
    run_id = live.service.scheduler.trigger(ENV, entry)
    wait_for(lambda: finished(live, run_id), 10, "a run")
    env_url = live.store.environment(ENV)["url"]
    own = urlsplit(live.url).netloc
    pages = ["/", f"/environments/{ENV}", "/runs", f"/runs/{run_id}", "/login", "/environments/x"]
    for path in pages:
        r = get(live, path)
        assert r.headers["Content-Type"].startswith("text/html"), path
        for tag, attr, url in re.findall(r'<(\w+)[^>]*?\s(src|href|action)="([^"]*)"', r.text):
            parts = urlsplit(url)
            if url.startswith("//") or parts.scheme not in ("", "data"):
                # The one absolute link allowed: the environment itself, for people to open.
                assert (tag, url) == ("a", env_url) or parts.netloc == own, (path, tag, attr, url)
            if tag in ("script", "link", "img"):
                assert not parts.netloc, (path, url)
    for asset in ("dashboard.css", "dashboard.js"):
        text = get(live, f"/static/dashboard/{asset}").text
        assert text and not re.search(r"https?:|@import|url\(", text), asset


def test_run_now_needs_sign_in_and_a_csrf_token_then_the_run_shows(start: Start) -> None:
    live = start(api=ApiSettings(token=TOKEN), jobs=Jobs())
    page = f"/environments/{ENV}"
    s = requests.Session()
    html = get(live, page, s).text
    assert "Sign in to run" in html and 'name="csrf"' not in html

    wrong = s.post(f"{live.url}/login", data={"token": "nope"}, allow_redirects=False, timeout=5)
    assert wrong.status_code == 403 and "hoody_session" not in wrong.headers.get("Set-Cookie", "")
    r = s.post(
        f"{live.url}/login", data={"token": TOKEN, "next": page}, allow_redirects=False, timeout=5
    )
    cookie = r.headers["Set-Cookie"]
    assert r.status_code == 303 and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert TOKEN not in cookie

    html = get(live, page, s).text
    action, csrf = run_action(html), csrf_of(html)
    refused = [
        s.post(f"{live.url}{action}", data={}, allow_redirects=False, timeout=5),
        s.post(f"{live.url}{action}", data={"csrf": "0" * 64}, allow_redirects=False, timeout=5),
        s.post(
            f"{live.url}{action}",
            data={"csrf": csrf},
            headers={"Origin": "http://evil.example"},
            allow_redirects=False,
            timeout=5,
        ),
    ]
    other = requests.Session()  # a different sign-in: this page's CSRF token is not its own
    login(live, other)
    refused.append(
        other.post(f"{live.url}{action}", data={"csrf": csrf}, allow_redirects=False, timeout=5)
    )
    assert [x.status_code for x in refused] == [403, 403, 403, 403]
    assert live.store.runs.list(env=ENV) == []

    r = s.post(f"{live.url}{action}", data={"csrf": csrf}, allow_redirects=False, timeout=5)
    assert r.status_code == 303 and r.headers["Location"] == page
    (run,) = live.store.runs.list(env=ENV)
    assert run.trigger == "manual"
    after = get(live, page, s).text
    assert f'Started <a href="/runs/{run.id}">run #{run.id}</a>.' in after
    assert f'data-run-id="{run.id}"' in after
    assert "Started <a" not in get(live, page, s).text  # a flash shows once

    wait_for(lambda: finished(live, run.id), 10, "the run")
    shown = re.search(
        rf'<details class="run" id="run-{run.id}".*?</details>', get(live, page, s).text, re.S
    )
    assert shown and "st-succeeded" in shown.group(0) and "ran echo hi" in shown.group(0)

    out = s.post(f"{live.url}/logout", data={"csrf": csrf}, allow_redirects=False, timeout=5)
    assert out.status_code == 303
    assert "Sign in to run" in get(live, page, s).text


def test_run_now_reports_a_skip_by_the_overlap_policy(start: Start) -> None:
    jobs = Jobs()
    live = start(api=ApiSettings(token=TOKEN), jobs=jobs)
    s = requests.Session()
    login(live, s)
    html = get(live, f"/environments/{ENV}", s).text
    action, csrf = run_action(html), csrf_of(html)
    jobs.gate.clear()
    try:
        first = s.post(f"{live.url}{action}", data={"csrf": csrf}, timeout=5)
        assert "Started <a" in first.text
        second = s.post(f"{live.url}{action}", data={"csrf": csrf}, timeout=5)
        assert "Skipped by the overlap policy" in second.text
        assert [r.status for r in live.store.runs.list(env=ENV)] == ["skipped", "running"]
    finally:
        jobs.gate.set()


def test_without_a_token_run_now_is_disabled(start: Start) -> None:
    live = start()
    html = get(live, f"/environments/{ENV}").text
    assert re.search(r'<button type="button" class="btn" disabled[^>]*>Run now</button>', html)
    assert "set api.token" in html and "Sign in" not in html
    entry = live.service.scheduler.entries(ENV)[0].entry.id
    r = requests.post(f"{live.url}/environments/{ENV}/cron/{entry}/run", timeout=5)
    assert r.status_code == 403 and "set api.token" in r.text
    assert live.store.runs.list(env=ENV) == []
    assert "No <code>api.token</code> is configured" in get(live, "/login").text


def test_private_reads_need_sign_in(start: Start) -> None:
    live = start(api=ApiSettings(token=TOKEN, public_read=False))
    r = get(live, "/", allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/login?next=/"
    r = get(live, "/runs?status=failed", allow_redirects=False)
    assert r.headers["Location"] == "/login?next=/runs?status%3Dfailed"
    assert get(live, "/", headers={"X-Partial": "1"}).status_code == 401
    assert get(live, f"/environments/{ENV}", allow_redirects=False).status_code == 303
    assert get(live, "/static/dashboard/dashboard.css").status_code == 200
    s = requests.Session()
    login(live, s, "/")
    assert 'id="env-main-shop"' in get(live, "/", s).text


def test_unknown_things_are_friendly_html_404s(start: Start) -> None:
    live = start()
    for path, words in [
        ("/environments/nope", "no environment named"),
        ("/runs/4242", "no run #4242"),
    ]:
        r = get(live, path)
        assert r.status_code == 404 and r.headers["Content-Type"].startswith("text/html")
        assert words in r.text and "Back to the environments" in r.text


def test_output_is_escaped(start: Start) -> None:
    jobs = Jobs()
    jobs.stdout = "<script>alert(1)</script>\n"
    live = start(jobs=jobs)
    entry = live.service.scheduler.entries(ENV)[0].entry.id
    run_id = live.service.scheduler.trigger(ENV, entry)
    wait_for(lambda: finished(live, run_id), 10, "the run")
    html = get(live, f"/environments/{ENV}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
