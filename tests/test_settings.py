from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.core.errors import ConfigError
from reconciler.core.settings import load_settings, parse_settings


def test_full_example_loads_and_expands_variables(tmp_path: Path) -> None:
    cfg = tmp_path / "hoody.yaml"
    cfg.write_text("""\
state_dir: ./state
server: {host: 0.0.0.0, port: 9090}
docker: {publish_host: 127.0.0.1}
repos:
  - name: shop
    url: ./shop.git
    provider: github
    branches: ["main", "feature/*"]
    poll_interval: 5m
    env: {DATABASE_URL: "${SHOP_DB_URL}"}
    prune: {max_fraction: 0.25}
""")
    s = load_settings(cfg, environ={"SHOP_DB_URL": "postgres://secret"})
    repo = s.repos[0]
    assert s.state_dir == tmp_path / "state"
    assert s.server.port == 9090
    assert repo.url == str(tmp_path / "shop.git") and repo.is_local
    assert repo.poll_interval == 300
    assert repo.env == {"DATABASE_URL": "postgres://secret"}
    assert repo.prune.max_fraction == 0.25


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        ({"repos": [{"name": "a", "url": "x", "brnches": []}]}, "repos[0].brnches", "unknown"),
        (
            {"repos": [{"name": "a", "url": "x"}, {"name": "a", "url": "y"}]},
            "repos[1].name",
            "duplicate",
        ),
        (
            {"repos": [{"name": "a", "url": "x", "poll_interval": True}]},
            "repos[0].poll_interval",
            "boolean",
        ),
        ({"server": {"port": "eighty"}}, "server.port", "integer"),
        ({"repos": [{"name": "A b", "url": "x"}]}, "repos[0].name", "lower-case"),
        (
            {"repos": [{"name": "a", "url": "x", "env": {"K": "${NOPE}"}}]},
            "repos[0].env.K",
            "NOPE is not set",
        ),
        ({"repos": [{"name": "a", "url": "x", "provider": "svn"}]}, "repos[0].provider", "one of"),
        ({"extra": 1}, "extra", "unknown"),
        ({"server": {"port": 70000}}, "server.port", "between 0 and 65535"),
        ({"repos": [{"name": "a", "url": ""}]}, "repos[0].url", "required"),
        (
            {"repos": [{"name": "a", "url": "x", "branches": ["main", ""]}]},
            "repos[0].branches[1]",
            "non-empty glob pattern",
        ),
        (
            {"repos": [{"name": "a", "url": "x", "branches": ["main", 3]}]},
            "repos[0].branches[1]",
            "expected a string, got int",
        ),
        (
            {"repos": [{"name": "a", "url": "x", "prune": {"max_fraction": 2}}]},
            "repos[0].prune.max_fraction",
            "between 0 and 1",
        ),
        (
            {"repos": [{"name": "a", "url": "x", "pull_requests": {"expire_after": "soon"}}]},
            "repos[0].pull_requests.expire_after",
            "not a duration",
        ),
        ({"notify": ["json://a/b", "mailto"]}, "notify[1]", "Apprise URL"),
        ({"scheduler": {"per_env": True}}, "scheduler.per_env", "boolean"),
    ],
)
def test_errors_name_the_key_path(data: dict, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_settings(data, Path("/"), environ={})
    assert e.value.path == path
    assert message in e.value.message


def test_yaml_error_names_file_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "hoody.yaml"
    cfg.write_text("repos:\n  - name: a\n   url: [\n")
    with pytest.raises(ConfigError) as e:
        load_settings(cfg)
    assert str(cfg) in str(e.value) and "line" in str(e.value)
