from __future__ import annotations

from pathlib import Path

from reconciler.settings import parse_settings


def test_every_top_level_section_is_accepted() -> None:
    s = parse_settings(
        {
            "api": {"token": "t", "public_read": False},
            "notify": ["json://127.0.0.1/x"],
            "scheduler": {"workers": 3, "per_env": 1, "shutdown_grace": "10s", "kill_grace": 2},
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
    assert s.server.max_body == 1024
