from __future__ import annotations

from pathlib import Path

from reconciler.core.settings import parse_settings


def test_every_top_level_section_is_accepted() -> None:
    s = parse_settings(
        {
            "api": {"token": "t", "public_read": False},
            "notify": ["json://127.0.0.1/x"],
            "scheduler": {
                "workers": 3,
                "per_env": 1,
                "shutdown_grace": "10s",
                "kill_grace": 2,
                "claim_ahead": "250ms",
            },
            "public_url": "https://hoody.example",
            "url_template": "http://{env}.example",
            "server": {"max_body": 1024},
            "workers": 2,
        },
        Path("/"),
        environ={},
    )
    assert s.api.token == "t" and not s.api.public_read
    assert s.notify == ("json://127.0.0.1/x",)
    assert (s.scheduler.workers, s.scheduler.shutdown_grace) == (3, 10.0)
    assert s.scheduler.claim_ahead == 0.25
    assert s.server.max_body == 1024


def test_claim_ahead_is_bounded() -> None:
    import pytest

    from reconciler.core.settings import ConfigError

    with pytest.raises(ConfigError, match=r"scheduler\.claim_ahead"):
        parse_settings({"scheduler": {"claim_ahead": "5m"}}, Path("/"), environ={})
    assert parse_settings({}, Path("/"), environ={}).scheduler.claim_ahead == 1.0


def test_database_url_defaults_to_sqlite_in_the_state_dir_and_takes_postgresql() -> None:
    import pytest

    from reconciler.core.settings import ConfigError
    from reconciler.storage.store import make_engine

    default = parse_settings({"state_dir": "/srv/hoody"}, Path("/"), environ={})
    assert default.database_url == "sqlite:////srv/hoody/hoody.db"
    pg = parse_settings(
        {"database": {"url": "${HOODY_DB}"}},
        Path("/"),
        environ={"HOODY_DB": "postgres://hoody:secret@db.internal/hoody"},
    )
    assert pg.database_url == "postgres://hoody:secret@db.internal/hoody"
    # postgres:// and postgresql:// mean the psycopg 3 driver we ship (no connection yet)
    assert make_engine(pg.database_url).url.drivername == "postgresql+psycopg"
    with pytest.raises(ConfigError, match=r"database\.url: expected sqlite"):
        parse_settings({"database": {"url": "mysql://x/y"}}, Path("/"), environ={})
    with pytest.raises(ConfigError, match=r"database\.pool: unknown key"):
        parse_settings({"database": {"pool": 3}}, Path("/"), environ={})
