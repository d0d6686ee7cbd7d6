"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright against
a real Service (in-memory runtime, real git repo) on a real socket. Screenshots land in
test-artifacts/dashboard-*.png.

Skipped with the reason when Chromium (/usr/bin/chromium) or the playwright package is
missing, unless CI is set: then that is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.settings import ApiSettings, RepoSettings, Settings
from reconciler.runtime.memory import MemoryRuntime

from .conftest import GitRemote
from .webhook_helpers import LiveService, wait_for

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
TOKEN = "browser-t0ken"
ENV = "main-shop"
LONG = "echo " + "a-long-unbroken-argument-" * 6
CRONTAB = f"@every 1h echo hi\n*/5 * * * * {LONG}\n"
WAIT = 20_000  # ms: the page refreshes itself every 5 s


def missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install playwright)"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test must run in CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    root = tmp_path_factory.mktemp("dashboard-browser")
    remote = GitRemote(root / "git")
    remote.commit(
        "main",
        {
            ".hoody/app.yaml": "name: shop\nimage: busybox:1.36\nports: [8080]\n",
            ".hoody/crontab": CRONTAB,
        },
    )
    rt = MemoryRuntime()
    rt.images.add("busybox:1.36")
    rt.job_handler = lambda cmd, env: (0, f"ran {cmd[-1]}\n{'x' * 300}\n".encode(), b"")
    cfg = Settings(
        state_dir=root / "state",
        api=ApiSettings(token=TOKEN),
        repos=(RepoSettings(name="shop", url=str(remote.bare), poll_interval=0),),
    )
    with LiveService(cfg, rt) as svc:
        svc.settle()
        yield svc


def entry_id(live: LiveService, command: str) -> str:
    return next(
        s.entry.id for s in live.service.scheduler.entries(ENV) if s.entry.command == command
    )


def ensure_a_run(live: LiveService) -> None:
    if not live.store.runs.list(env=ENV):
        run_id = live.service.scheduler.trigger(ENV, entry_id(live, LONG))
        assert run_id is not None
        wait_for(lambda: live.store.runs.get(run_id).status != "running", 10, "a run")  # type: ignore[union-attr]


def new_page(browser: Any, errors: list[str], **context: Any) -> Any:
    page = browser.new_context(**context).new_page()
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


def test_lists_environments_and_run_now_adds_a_run(browser: Any, live: LiveService) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page = new_page(browser, errors, viewport={"width": 1280, "height": 900})
    page.goto(f"{live.url}/")
    row = page.locator("#env-main-shop")
    expect(row).to_contain_text("healthy")
    expect(row).to_contain_text("main")
    page.screenshot(path=ARTIFACTS / "dashboard-index.png", full_page=True)

    page.get_by_role("link", name=ENV).click()
    page.get_by_role("link", name="Sign in to run").first.click()
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{live.url}/environments/{ENV}")

    hi = entry_id(live, "echo hi")
    page.locator(f"#entry-{hi}").get_by_role("button", name="Run now").click()
    expect(page.locator("#flash")).to_contain_text("Started run #")
    (run,) = live.store.runs.list(env=ENV, entry_id=hi)
    assert run.trigger == "manual"
    shown = page.locator(f"#run-{run.id}")
    expect(shown).to_be_visible()
    shown.locator("summary").click()
    expect(shown).to_contain_text("ran echo hi", timeout=WAIT)  # maybe on the next refresh
    expect(shown.locator(".badge")).to_have_text("succeeded", timeout=WAIT)

    # A run started elsewhere shows up by itself: the page refreshes without a reload,
    # and the run output that was open stays open.
    page.evaluate("window.__sameDocument = true")
    other = live.service.scheduler.trigger(ENV, entry_id(live, LONG))
    expect(page.locator(f"#run-{other}")).to_be_visible(timeout=WAIT)
    assert page.evaluate("window.__sameDocument === true")
    expect(shown).to_have_attribute("open", "")
    expect(page.locator("#live")).to_contain_text("updated")
    page.screenshot(path=ARTIFACTS / "dashboard-environment.png", full_page=True)

    page.goto(f"{live.url}/runs")
    page.get_by_label("Status").select_option("succeeded")  # submits itself
    expect(page).to_have_url(re.compile(r"/runs\?status=succeeded$"))
    expect(page.locator(f"#run-{run.id}")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "dashboard-runs.png", full_page=True)
    assert errors == []


def test_phone_width_has_no_horizontal_scroll(browser: Any, live: LiveService) -> None:
    from playwright.sync_api import expect

    ensure_a_run(live)
    errors: list[str] = []
    page = new_page(
        browser,
        errors,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    for name, path in [
        ("index", "/"),
        ("environment", f"/environments/{ENV}"),
        ("runs", "/runs"),
        ("login", "/login"),
    ]:
        page.goto(f"{live.url}{path}")
        expect(page.locator("main h1")).to_be_visible()
        if name == "environment":
            page.locator("details.run summary").first.click()
        width = page.evaluate("document.scrollingElement.scrollWidth")
        assert width <= 390, f"{path} is {width}px wide on a 390px phone"
        page.screenshot(path=ARTIFACTS / f"dashboard-phone-{name}.png", full_page=True)
    assert errors == []


def test_reads_without_javascript(browser: Any, live: LiveService) -> None:
    from playwright.sync_api import expect

    ensure_a_run(live)
    page = browser.new_context(java_script_enabled=False).new_page()
    page.goto(f"{live.url}/")
    expect(page.locator("#env-main-shop")).to_contain_text("healthy")
    expect(page.locator("noscript")).to_have_count(1)
    page.goto(f"{live.url}/environments/{ENV}")
    expect(page.locator(".next-time")).to_have_count(6)
    run = page.locator("details.run").first
    run.locator("summary").click()  # <details> opens without any script
    expect(run.locator("pre.out")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "dashboard-nojs-environment.png", full_page=True)
