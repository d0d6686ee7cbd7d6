"""The pure rules behind the hostile-input refusals: Dockerfile remote sources, image
patterns, limits, and the names reserved for pull requests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.core.crontab import parse_crontab
from reconciler.core.desired import RefSource, apply_repo_limit, build, refuse_held_names
from reconciler.core.dockerfile import check_dockerfile
from reconciler.core.errors import SpecError
from reconciler.core.images import allowed, normalise, refusal
from reconciler.core.limits import crontab_problems, effective_resources, size_text, spec_problems
from reconciler.core.model import Ref, Resources
from reconciler.core.naming import pull_request_namespace
from reconciler.core.settings import LimitsSettings, RepoSettings
from reconciler.core.spec import parse_app_spec

MiB = 1024 * 1024


@pytest.mark.parametrize(
    "line",
    [
        "ADD http://127.0.0.1:9/meta /s",
        "ADD https://example.com/x.tgz /x",
        'ADD ["http://169.254.169.254/latest/meta-data", "/m"]',
        "ADD --checksum=sha256:00 https://example.com/x /x",
        "ADD git@github.com:acme/private.git /src",
        "ADD https://github.com/acme/private.git#main /src",
        "add http://lower.case/x /x",
        "ONBUILD ADD http://example.com/x /x",
        "ADD $URL /s",
        "ADD ${URL} /s",
        "ADD h\\ttp://x /s",
    ],
)
def test_remote_and_unreadable_add_sources_are_refused_with_file_and_line(line: str) -> None:
    errors, _ = check_dockerfile(f"FROM busybox:1.36\n# a comment\n{line}\n", "ctx/Dockerfile")
    assert len(errors) == 1
    assert str(errors[0]).startswith("ctx/Dockerfile:3: ")


def test_continuation_lines_are_followed_and_local_adds_pass() -> None:
    text = "FROM busybox:1.36\nADD \\\n  http://127.0.0.1:1/m \\\n  /s\nADD app.tar.gz /app/\n"
    errors, _ = check_dockerfile(text, "Dockerfile")
    assert [e.line for e in errors] == [2]
    assert check_dockerfile("FROM busybox\nADD --chown=1:1 a b /dst/\n", "Dockerfile")[0] == []


def test_the_images_a_build_starts_from_are_listed_with_their_lines() -> None:
    text = (
        "FROM busybox:1.36 AS base\nCOPY --from=registry.example.com/tools:1 /t /t\n"
        "COPY --from=base /a /b\nCOPY --from=0 /a /b\nFROM base\nFROM scratch\n"
    )
    _, images = check_dockerfile(text, "Dockerfile")
    assert [(i.image, i.line, i.instruction) for i in images] == [
        ("busybox:1.36", 1, "FROM"),
        ("registry.example.com/tools:1", 2, "COPY --from"),
    ]


def test_image_patterns() -> None:
    assert normalise("docker.io/library/busybox") == "busybox:latest"
    assert normalise("registry:5000/team/app") == "registry:5000/team/app:latest"
    patterns = ("busybox:*", "registry.example.com/team/*")
    assert allowed("busybox", patterns) and allowed("docker.io/busybox:1.36", patterns)
    assert allowed("registry.example.com/team/app:2", patterns)
    assert not allowed("registry.example.com/other/app:2", patterns)
    assert refusal("alpine:3", patterns) == (
        "image 'alpine:3' is not allowed by the server's images.allow "
        "(busybox:*, registry.example.com/team/*)"
    )
    assert refusal("anything", None) is None


def test_resources_within_the_maxima_else_the_defaults() -> None:
    limits = LimitsSettings(memory=64 * MiB, cpus=0.5, max_memory=256 * MiB, max_cpus=2)
    assert effective_resources(Resources(), limits) == Resources(64 * MiB, 0.5)
    assert effective_resources(Resources(128 * MiB, 1.5), limits) == Resources(128 * MiB, 1.5)
    assert effective_resources(Resources(1024 * MiB, 8), limits) == Resources(256 * MiB, 2)
    spec = parse_app_spec(
        "image: busybox\nresources: {memory: 100t, cpus: 100000}\n", default_name="shop"
    )
    assert [str(e) for e in spec_problems(spec, limits, ".hoody/app.yaml")] == [
        ".hoody/app.yaml: services.app.resources.memory: 100t is above the server's limit "
        "of 256m (limits.max_memory)",
        ".hoody/app.yaml: services.app.resources.cpus: 100000 is above the server's limit "
        "of 2 (limits.max_cpus)",
    ]
    assert size_text(262144) == "256k" and size_text(1000) == "1000 bytes"


def test_crontab_limits_name_the_first_line_over() -> None:
    tab = parse_crontab("# head\n" + "".join(f"@every 1m echo {i}\n" for i in range(5)))
    (error,) = crontab_problems(tab, LimitsSettings(max_cron_entries=3), ".hoody/crontab")
    assert str(error) == (
        ".hoody/crontab:5: more than 3 entries (5); the server's limit is "
        "limits.max_cron_entries = 3"
    )


def test_pull_request_names_are_reserved() -> None:
    assert pull_request_namespace("pr-2-shop") == 2
    assert pull_request_namespace("pr-shop") is None
    assert pull_request_namespace("pr-7--0123456789-shop") is None  # hashed branch names
    repo = RepoSettings(name="shop", url="/x", provider="gitlab")
    spec = parse_app_spec("image: busybox\n", default_name="shop")
    branch = Ref("refs/heads/pr", "c" * 40)
    state = build(repo, [RefSource(branch, parse_app_spec("name: 2-shop\nimage: b\n"))], b"k")
    assert state.environments == {}
    (held,) = state.held
    assert held.reason.startswith(
        "environment name pr-2-shop is reserved for pull request #2 "
        "(refs/merge-requests/2/head): refs/heads/pr with app name '2-shop' cannot have it"
    )
    pr = Ref("refs/merge-requests/2/head", "d" * 40, "pr", 2)
    assert set(build(repo, [RefSource(pr, spec)], b"k").environments) == {"pr-2-shop"}


def test_names_held_by_another_repo_and_the_repo_limit() -> None:
    repo = RepoSettings(name="b", url="/x")
    spec = parse_app_spec("image: busybox\n", default_name="shop")
    refs = [Ref(f"refs/heads/{n}", "c" * 40) for n in ("main", "x", "y")]
    state = build(repo, [RefSource(r, spec) for r in refs], b"k")
    refused = refuse_held_names(state, {"main-shop": ("a", "refs/heads/main")})
    assert set(refused.environments) == {"x-shop", "y-shop"}
    assert refused.held[-1].reason.startswith(
        "environment name main-shop is already used by repo 'a' (refs/heads/main); "
        "repo 'b' (refs/heads/main) cannot have it"
    )
    kept, waiting = apply_repo_limit(state, 2, running={"y-shop"})
    assert (set(kept.environments), waiting) == ({"y-shop", "main-shop"}, ["x-shop"])
    kept, waiting = apply_repo_limit(state, 1, running={"x-shop", "y-shop"})
    assert (set(kept.environments), waiting) == ({"x-shop", "y-shop"}, ["main-shop"])


def test_aliases_cannot_amplify_the_parsers_work() -> None:
    env = "env: &e {" + ", ".join(f"K{i}: v" for i in range(2000)) + "}"
    many = "".join(f"  s{i}: {{image: busybox, env: *e}}\n" for i in range(1, 100))
    with pytest.raises(SpecError) as bomb:
        parse_app_spec(f"services:\n  s0: {{image: busybox, {env}}}\n{many}")
    assert "more than 100000 values once its aliases are expanded" in str(bomb.value)
    with pytest.raises(SpecError):
        parse_app_spec("services: {web: {image: busybox, command: &x [*x]}}")
    shared = parse_app_spec("services: {a: {image: b, env: &e {A: 1}}, b: {image: b, env: *e}}")
    assert shared.services["b"].env == {"A": "1"}


def test_validate_reports_a_remote_add_with_its_dockerfile_line(tmp_path: Path) -> None:
    (tmp_path / ".hoody").mkdir()
    (tmp_path / ".hoody" / "app.yaml").write_text("name: x\nbuild: {context: app}\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM busybox\nADD http://127.0.0.1:9/m /m\n")
    out = subprocess.run(
        [sys.executable, "-m", "reconciler.cli.main", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert "app/Dockerfile:2: ADD: http://127.0.0.1:9/m: remote sources are not allowed" in (
        out.stderr
    )
