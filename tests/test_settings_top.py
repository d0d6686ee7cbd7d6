from __future__ import annotations

from pathlib import Path

from reconciler.settings import parse_settings


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

    from reconciler.settings import ConfigError

    with pytest.raises(ConfigError, match=r"scheduler\.claim_ahead"):
        parse_settings({"scheduler": {"claim_ahead": "5m"}}, Path("/"), environ={})
    assert parse_settings({}, Path("/"), environ={}).scheduler.claim_ahead == 1.0
