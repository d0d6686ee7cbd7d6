"""The parser reads each section by its dataclass's fields: keys and defaults cannot drift."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated

import pytest

from reconciler.core.errors import ConfigError
from reconciler.core.sections import Between, Seconds, known_keys, read_section
from reconciler.core.settings import (
    PruneSettings,
    PullRequestSettings,
    RepoSettings,
    SchedulerSettings,
    Settings,
    parse_settings,
)


@dataclass(frozen=True)
class RetentionSettings:
    max_age: Seconds = 7 * 86400.0
    max_rows: Annotated[int, Between(1, 10**9)] = 100_000
    tables: tuple[str, ...] = ("events",)


@dataclass(frozen=True)
class WiderSettings(Settings):
    retention: RetentionSettings = field(default_factory=RetentionSettings)


@dataclass(frozen=True)
class WiderPrune(PruneSettings):
    dry_run: bool = False


def test_an_empty_file_gives_every_dataclass_default() -> None:
    assert parse_settings({"state_dir": "/srv"}, Path("/"), environ={}) == Settings(
        state_dir=Path("/srv")
    )
    repo = parse_settings(
        {"repos": [{"name": "shop", "url": "https://git.example/shop.git"}]},
        Path("/"),
        environ={},
    ).repos[0]
    assert repo == RepoSettings(name="shop", url="https://git.example/shop.git")


@pytest.mark.parametrize(
    "cls", [Settings, RepoSettings, SchedulerSettings, PruneSettings, PullRequestSettings]
)
def test_known_keys_are_the_fields(cls: type) -> None:
    # a field marked metadata={"key": False} is set by the parser, not read from hoody.yaml
    assert known_keys(cls) == tuple(f.name for f in fields(cls) if f.metadata.get("key", True))


def test_the_expanded_values_are_not_a_key_of_hoody_yaml(tmp_path: Path) -> None:
    assert "expanded" not in known_keys(Settings)
    with pytest.raises(ConfigError, match="expanded: unknown key"):
        parse_settings({"expanded": ["x"]}, tmp_path)
    s = parse_settings({"api": {"token": "${T}"}}, tmp_path, environ={"T": "tok-1234"})
    assert s.expanded == ("tok-1234",)


def test_a_section_added_as_a_dataclass_is_known_with_its_defaults() -> None:
    s = read_section(WiderSettings, {"workers": 2})
    assert s.retention == RetentionSettings() and s.workers == 2
    s = read_section(WiderSettings, {"retention": {"max_age": "2d", "tables": "deliveries"}})
    assert s.retention == RetentionSettings(max_age=172800.0, tables=("deliveries",))
    with pytest.raises(ConfigError) as e:
        read_section(WiderSettings, {"retention": {"max_rowz": 5}})
    assert str(e.value).startswith("retention.max_rowz: unknown key (known: max_age, max_rows")
    with pytest.raises(ConfigError, match=r"^retention\.max_rows: must be between 1 and"):
        read_section(WiderSettings, {"retention": {"max_rows": 0}})
    with pytest.raises(ConfigError, match=r"^retention\.max_age: not a duration"):
        read_section(WiderSettings, {"retention": {"max_age": "soon"}})


def test_a_field_added_to_a_section_is_known_with_its_default() -> None:
    assert read_section(WiderPrune, {}) == WiderPrune(max_fraction=0.5, dry_run=False)
    assert read_section(WiderPrune, {"dry_run": True}).dry_run is True
    with pytest.raises(ConfigError, match=r"^repos\[0\]\.prune\.dry_run: expected a boolean"):
        read_section(WiderPrune, {"dry_run": "yes"}, "repos[0].prune")


def test_a_field_without_default_is_required() -> None:
    with pytest.raises(ConfigError, match=r"^repos\[1\]\.url: required$"):
        parse_settings({"repos": [{"name": "a", "url": "x"}, {"name": "b"}]}, Path("/"), environ={})
