"""The HTTP surface against an attacker, over a real socket: HEAD is a read like GET
(API, dashboard, metrics), `GET /api/v1/plan` needs the token and fetches single-flight,
`/metrics` follows `public_read` or its own token, signing out ends the session on the
server, failed sign-ins are limited per address, malformed ids are 404/400."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from reconciler.core.settings import ApiSettings, MetricsSettings, RepoSettings, Settings
from reconciler.runtime.memory import MemoryRuntime

from .conftest import GitRemote
from .webhook_helpers import LiveService

SPEC = "name: shop\nimage: busybox:1.36\n"
TOKEN = "surface-t0ken"
ENV = "main-shop"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

Start = Callable[..., LiveService]


@pytest.fixture
def start(tmp_path: Path, remote: GitRemote) -> Iterator[Start]:
    with ExitStack() as stack:

        def run(api: ApiSettings, metrics: MetricsSettings | None = None) -> LiveService:
            remote.commit("main", {".hoody/app.yaml": SPEC, ".hoody/crontab": "@every 1h true\n"})
            rt = MemoryRuntime()
            rt.images.add("busybox:1.36")
            cfg = Settings(
                state_dir=tmp_path / "state",
                api=api,
                metrics=metrics or MetricsSettings(),
                repos=(RepoSettings(name="shop", url=str(remote.bare), poll_interval=0),),
            )
            live = stack.enter_context(LiveService(cfg, rt))
            live.settle()
            return live

        yield run


def call(live: LiveService, method: str, path: str, **kw: object) -> requests.Response:
    return requests.request(method, f"{live.url}{path}", timeout=10, allow_redirects=False, **kw)  # type: ignore[arg-type]


def test_head_is_answered_exactly_like_get_everywhere(start: Start) -> None:
    live = start(ApiSettings(token=TOKEN, public_read=False))
    paths = [
        "/api/v1/environments",
        f"/api/v1/environments/{ENV}",
        "/api/v1/environments/no-such-env",  # no 200/404 difference to enumerate names by
        f"/api/v1/environments/{ENV}/users/root/crontab",
        "/api/v1/events",
        "/metrics",
        "/",
        f"/environments/{ENV}",
        "/runs",
    ]
    for path in paths:
        get, head = call(live, "GET", path), call(live, "HEAD", path)
        assert get.status_code in (401, 303), path
        assert (head.status_code, head.headers.get("Location")) == (
            get.status_code,
            get.headers.get("Location"),
        ), path
        assert "X-Hoody-Source" not in head.headers, path
        assert not head.content
    for path in paths:  # with the token, HEAD still mirrors GET
        if path.startswith("/api/") or path == "/metrics":
            get, head = (
                call(live, "GET", path, headers=AUTH),
                call(live, "HEAD", path, headers=AUTH),
            )
            assert head.status_code == get.status_code, path
            assert head.headers.get("X-Hoody-Source") == get.headers.get("X-Hoody-Source")


def test_plan_needs_the_token_and_concurrent_plans_share_one_fetch(start: Start) -> None:
    live = start(ApiSettings(token=TOKEN))  # reads are public; plan is not a plain read
    assert call(live, "GET", "/api/v1/plan").status_code == 401
    assert (
        call(live, "GET", "/api/v1/plan", headers={"Authorization": "Bearer x"}).status_code == 403
    )
    mirror = live.service.controller.mirror("shop")
    before = mirror.fetches
    answers: list[requests.Response] = []
    gate = threading.Barrier(24)

    def one() -> None:
        gate.wait(10)
        answers.append(call(live, "GET", "/api/v1/plan", headers=AUTH))

    threads = [threading.Thread(target=one) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [a.status_code for a in answers] == [200] * 24
    errors = [p["fetch_error"] for a in answers for p in a.json()["plan"]]
    assert errors == [None] * 24  # no "cannot lock ref": fetches never overlap
    assert mirror.fetches - before < 24  # callers that came during a fetch shared it


def test_metrics_follow_public_read_or_their_own_token(start: Start) -> None:
    live = start(ApiSettings(token=TOKEN, public_read=False), MetricsSettings(token="scrape-me"))
    assert call(live, "GET", "/metrics").status_code == 401
    assert (
        call(live, "GET", "/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    )
    scraped = call(live, "GET", "/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert scraped.status_code == 200 and "hoody_queue_depth" in scraped.text
    assert call(live, "GET", "/metrics", headers=AUTH).status_code == 200


def test_metrics_stay_open_with_public_read(start: Start) -> None:
    live = start(ApiSettings(token=TOKEN))
    assert call(live, "GET", "/metrics").status_code == 200


def test_signing_out_ends_the_session_on_the_server(start: Start) -> None:
    live = start(ApiSettings(token=TOKEN, public_read=False))
    s = requests.Session()
    r = s.post(f"{live.url}/login", data={"token": TOKEN, "next": "/"}, allow_redirects=False)
    assert r.status_code == 303
    stolen = s.cookies.get("hoody_session")
    assert stolen
    page = s.get(f"{live.url}/login", timeout=5).text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert csrf
    out = s.post(f"{live.url}/logout", data={"csrf": csrf.group(1)}, allow_redirects=False)
    assert out.status_code == 303
    replay = call(live, "GET", "/", cookies={"hoody_session": stolen})
    assert replay.status_code == 303 and replay.headers["Location"].startswith("/login")


def test_failed_sign_ins_are_limited_per_address_with_a_clear_429(start: Start) -> None:
    live = start(ApiSettings(token=TOKEN))
    codes = [
        call(live, "POST", "/login", data={"token": f"guess-{i}"}).status_code for i in range(10)
    ]
    assert codes == [403] * 10
    blocked = call(live, "POST", "/login", data={"token": TOKEN})  # even the right one, now
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins" in blocked.text


def test_malformed_ids_are_404_or_400_on_the_dashboard_and_the_api(start: Start) -> None:
    live = start(ApiSettings(token=TOKEN))
    cases = {
        f"/runs/{2**70}": 404,
        "/runs/0": 404,
        f"/api/v1/runs/{2**70}": 404,
        "/environments/" + "x" * 300: 404,
        "/environments/Not_A_Name": 404,
        "/api/v1/environments/%00": 404,
        "/runs?env=%00": 400,
        "/runs?status=nope": 400,
    }
    got = {path: call(live, "GET", path).status_code for path in cases}
    assert got == cases
    entry = live.service.scheduler.entries(ENV)[0].entry.id
    r = call(live, "POST", f"/environments/%00/cron/{entry}/run")
    assert r.status_code in (303, 403, 404)
