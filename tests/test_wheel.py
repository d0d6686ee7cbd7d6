"""The package as a user installs it: `python -m build` makes an sdist and a wheel (the
wheel built from the sdist), the wheel carries the templates and dashboard assets, and a
fresh venv with only the wheel installed runs `hoody --version`, `hoody validate` on the
example and `hoody serve`, whose dashboard renders from the installed package data."""

from __future__ import annotations

import signal
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

from .deploy_support import ROOT, free_port, http, run, wait_for

pytestmark = pytest.mark.slow

DATA_SUFFIXES = (".html", ".css", ".js", ".j2", ".json")
CSS = "reconciler/http/dashboard/static/dashboard.css"


def package_data() -> set[str]:
    """Every data file of the packages in the source tree, as a path inside the wheel."""
    return {
        str(p.relative_to(ROOT))
        for top in ("reconciler", "webhooks", "exporters")
        for p in (ROOT / top).rglob("*")
        if p.suffix in DATA_SUFFIXES and "__pycache__" not in p.parts
    }


@pytest.mark.timeout(600)
def test_the_wheel_installs_into_a_fresh_venv_and_runs(tmp_path: Path) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], timeout=300)
    wheel = dist / f"hoody_reconciler-{version}-py3-none-any.whl"
    assert wheel.is_file() and (dist / f"hoody_reconciler-{version}.tar.gz").is_file()
    inside = set(zipfile.ZipFile(wheel).namelist())
    assert package_data() - inside == set()
    assert "reconciler/http/dashboard/templates/dashboard/index.html" in inside
    assert CSS in inside

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    run([str(bin_dir / "pip"), "install", "-q", str(wheel)], timeout=400)
    hoody = str(bin_dir / "hoody")
    # From a directory outside the checkout, so nothing can come from the source tree.
    out = run([hoody, "--version"], cwd=tmp_path)
    assert out.stdout.strip() == f"hoody {version}"
    out = run([hoody, "validate", str(ROOT / "examples" / "demo")], cwd=tmp_path)
    assert out.stdout.strip().endswith(": ok")
    where = run(
        [str(bin_dir / "python"), "-c", "import reconciler; print(reconciler.__file__)"],
        cwd=tmp_path,
    )
    assert where.stdout.startswith(str(env_dir))

    port = free_port()
    config = tmp_path / "hoody.yaml"
    config.write_text(f"state_dir: ./state\nserver: {{host: 127.0.0.1, port: {port}}}\nrepos: []\n")
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [hoody, "--config", str(config), "serve", "--no-watch"],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http(f"{base}/healthz")[0] == 200, 60, "/healthz")
        status, page = http(f"{base}/")
        assert status == 200 and "<html" in page.lower()
        status, css = http(f"{base}/static/dashboard/dashboard.css")
        assert status == 200 and css == (ROOT / CSS).read_text()
        out = run([hoody, "--config", str(config), "healthcheck"], cwd=tmp_path)
        assert out.stdout.startswith("ok: ")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_path.read_text()
        assert "SIGTERM received: stopping" in log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    out = run([hoody, "--config", str(config), "healthcheck"], cwd=tmp_path, check=False)
    assert out.returncode == 1 and "unhealthy" in out.stderr
