from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.model import Ref
from reconciler.core.naming import container_name, env_name, is_dns_label, volume_name


def branch(name: str) -> Ref:
    return Ref(f"refs/heads/{name}", "0" * 40)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("main", "main-shop"),
        ("feature/billing-v2", "feature-billing-v2-shop"),
        ("fix/typo", "fix-typo-shop"),
    ],
)
def test_lossless_branches_get_plain_names(name: str, expected: str) -> None:
    assert env_name(branch(name), "shop") == expected


@pytest.mark.parametrize(
    "name", ["feature-billing-v2", "Main", "fix_login", "a/b/c", "pr/7", "pr-7", "x" * 80, "ü/ß"]
)
def test_lossy_branches_get_a_hash(name: str) -> None:
    result = env_name(branch(name), "shop")
    assert "--" in result
    assert is_dns_label(result)
    assert result.endswith("-shop")


def test_pull_requests() -> None:
    assert env_name(Ref("refs/pull/42/head", "0" * 40, "pr", 42), "shop") == "pr-42-shop"


def test_object_names_cannot_collide_across_environments() -> None:
    # "_" never appears in an environment name, so env/service splits are unambiguous.
    assert container_name("a-b", "c") != container_name("a", "b-c")
    assert volume_name("a-b", "c") != volume_name("a", "b-c")


ref_names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=120
)


@settings(max_examples=2000)
@given(ref_names)
def test_names_are_dns_labels_and_deterministic(name: str) -> None:
    first = env_name(branch(name), "shop")
    assert is_dns_label(first), first
    assert first == env_name(branch(name), "shop")


@settings(max_examples=3000)
@given(ref_names, ref_names)
def test_distinct_refs_never_share_a_name(a: str, b: str) -> None:
    if a != b:
        assert env_name(branch(a), "shop") != env_name(branch(b), "shop")


slashy = st.text(alphabet="ab-/_1A", min_size=1, max_size=12)


@settings(max_examples=3000)
@given(slashy, slashy)
def test_distinct_refs_never_share_a_name_near_misses(a: str, b: str) -> None:
    # A small alphabet makes near-collisions (a/b vs a-b vs A-b) frequent.
    if a != b:
        assert env_name(branch(a), "shop") != env_name(branch(b), "shop")


@settings(max_examples=500)
@given(slashy, st.integers(min_value=1, max_value=10**6))
def test_branches_never_take_a_pull_request_name(a: str, n: int) -> None:
    pr = env_name(Ref(f"refs/pull/{n}/head", "0" * 40, "pr", n), "shop")
    assert env_name(branch(a), "shop") != pr
