"""Fuzz of every dashboard route over a real socket, the way schemathesis fuzzes the API:
random path segments (ids too large for any integer column, NUL, unicode, dots), query
strings, form bodies, cookies and headers, with GET, HEAD and POST. No answer is a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core.settings import ApiSettings, RepoSettings, Settings
from reconciler.runtime.memory import MemoryRuntime

from .conftest import GitRemote, git
from .webhook_helpers import LiveService

TOKEN = "fuzz-t0ken"
SEGMENT = st.one_of(
    st.text(min_size=1, max_size=80),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.sampled_from(
        ["main-shop", "1", "0", "..", ".", "%00", "\x00", "a" * 300, "-1", str(2**63), str(2**70)]
    ),
)
ROUTES = [
    ("GET", "/"),
    ("GET", "/environments/{a}"),
    ("GET", "/runs"),
    ("GET", "/runs/{a}"),
    ("POST", "/environments/{a}/cron/{b}/run"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/logout"),
    ("POST", "/logout"),
    ("GET", "/static/dashboard/{a}"),
]


@pytest.fixture(scope="module", params=[True, False], ids=["public", "private"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveService]:
    root = tmp_path_factory.mktemp("fuzz")
    remote = GitRemote(root / "git")
    remote.commit("main", {".hoody/app.yaml": "name: shop\nimage: busybox:1.36\n",
                           ".hoody/crontab": "@every 1h true\n"})  # fmt: skip
    git(remote.work, "log", "-1")
    rt = MemoryRuntime()
    rt.images.add("busybox:1.36")
    cfg = Settings(
        state_dir=root / "state",
        api=ApiSettings(token=TOKEN, public_read=request.param),
        repos=(RepoSettings(name="shop", url=str(remote.bare), poll_interval=0),),
    )
    with LiveService(cfg, rt) as service:
        service.settle()
        yield service


@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    a=SEGMENT,
    b=SEGMENT,
    head=st.booleans(),
    query=st.dictionaries(
        st.sampled_from(["status", "env", "next", "n", "x"]), st.text(max_size=40), max_size=3
    ),
    form=st.dictionaries(
        st.sampled_from(["token", "csrf", "next"]), st.text(max_size=60), max_size=3
    ),
    cookie=st.one_of(
        st.none(),
        st.text(
            st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=';,"\\'),
            max_size=80,
        ),
        st.just("1.2.3"),
        st.just(f"{2**70}.abc.def"),
    ),
    partial=st.booleans(),
    origin=st.one_of(st.none(), st.sampled_from(["null", "http://evil.example", "http://"])),
)
def test_no_dashboard_route_answers_a_server_error(
    live: LiveService,
    route: tuple[str, str],
    a: str,
    b: str,
    head: bool,
    query: dict[str, str],
    form: dict[str, str],
    cookie: str | None,
    partial: bool,
    origin: str | None,
) -> None:
    method, template = route
    path = template.format(a=quote(a, safe=""), b=quote(b, safe=""))
    if method == "GET" and head:
        method = "HEAD"
    headers = {"X-Partial": "1"} if partial else {}
    if origin is not None:
        headers["Origin"] = origin
    cookies = {"hoody_session": cookie} if cookie else None
    r = requests.request(
        method,
        f"{live.url}{path}",
        params=query,
        data=form if method == "POST" else None,
        headers=headers,
        cookies=cookies,
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code < 500, (method, path, query, r.status_code, r.text[:300])
