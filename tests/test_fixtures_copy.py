"""The webhook fixtures under tests/fixtures/ are the shared ones, byte for byte."""

from __future__ import annotations

import pytest

from .webhook_helpers import FIXTURES, SHARED_FIXTURES


def test_the_copy_holds_every_provider_payload() -> None:
    names = sorted(p.relative_to(FIXTURES).as_posix() for p in FIXTURES.glob("*/*.json"))
    assert "github/pull_request.opened.json" in names and "gitlab/merge_request.json" in names
    assert len(names) >= 13


@pytest.mark.skipif(not SHARED_FIXTURES.exists(), reason="no ../shared next to this checkout")
def test_the_copy_is_identical_to_the_shared_fixtures() -> None:
    shared = {
        p.relative_to(SHARED_FIXTURES): p.read_bytes() for p in SHARED_FIXTURES.rglob("*.json")
    }
    ours = {p.relative_to(FIXTURES): p.read_bytes() for p in FIXTURES.rglob("*.json")}
    assert ours == shared
