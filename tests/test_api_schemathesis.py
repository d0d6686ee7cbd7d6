"""schemathesis against the live server: no 5xx, and no response that breaks the
OpenAPI document (status codes, content types, bodies)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.core.settings import ApiSettings, RepoSettings, Settings
from reconciler.runtime.memory import MemoryRuntime

from .conftest import GitRemote
from .webhook_helpers import LiveService

BIN = Path(sys.executable).parent / "schemathesis"


@pytest.mark.skipif(
    not BIN.exists() and not shutil.which("schemathesis"), reason="schemathesis not installed"
)
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    tmp_path: Path, remote: GitRemote
) -> None:
    remote.commit(
        "main",
        {
            ".hoody/app.yaml": "name: shop\nimage: busybox:1.36\n",
            ".hoody/crontab": "@every 1h echo hi\n",
        },
    )
    rt = MemoryRuntime()
    rt.images.add("busybox:1.36")
    cfg = Settings(
        state_dir=tmp_path / "s",
        api=ApiSettings(token="schemathesis-token"),
        repos=(RepoSettings(name="shop", url=str(remote.bare), poll_interval=0),),
    )
    with LiveService(cfg, rt) as live:
        live.settle()
        out = subprocess.run(
            [
                str(BIN),
                "run",
                f"{live.url}/api/v1/openapi.json",
                "--checks",
                "not_a_server_error,status_code_conformance,"
                "content_type_conformance,response_schema_conformance",
                "--header",
                "Authorization: Bearer schemathesis-token",
                "--max-examples",
                "15",
                "--workers",
                "2",
                "--phases",
                "examples,coverage,fuzzing",
                "--seed",
                "1",
                "--max-time",
                "40",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
