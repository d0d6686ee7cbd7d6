"""The fixtures under tests/fixtures/ are the shared ones, byte for byte: the webhook
payloads, the provider payload corpus and the export platforms' schemas."""

from __future__ import annotations

from pathlib import Path

import pytest

from .webhook_helpers import CORPUS, FIXTURES, SHARED_CORPUS, SHARED_FIXTURES

SCHEMAS = Path(__file__).resolve().parent / "fixtures" / "export-schemas"
SHARED_SCHEMAS = SHARED_FIXTURES.parent / "export-schemas"


def files(root: Path, pattern: str = "*") -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob(pattern) if p.is_file()
    }


def test_the_copy_holds_every_provider_payload() -> None:
    names = sorted(p.relative_to(FIXTURES).as_posix() for p in FIXTURES.glob("*/*.json"))
    assert "github/pull_request.opened.json" in names and "gitlab/merge_request.json" in names
    assert len(names) >= 13


def test_the_copy_holds_every_export_schema() -> None:
    names = set(files(SCHEMAS))
    assert {
        "README.md",
        "compose-spec/compose-spec.json",
        "compose-go/compose-spec.json",
        "kubernetes/v1.37.0-strict.json",
        "knative/service-crd.yaml",
        "google-discovery/run.v1.json",
        "google-discovery/cloudscheduler.v1.json",
        "botocore/ecs-2014-11-13-RegisterTaskDefinition.json",
        "botocore/scheduler-2021-06-30-CreateSchedule.json",
        "schemastore/cloud-run-v1.json",
        "schemastore-catalog/render-blueprints.json",
        "schemastore-catalog/railway.json",
        "schemastore-catalog/vercel.json",
        "vercel-cli/vercel-64.0.2-config-crons.json",
    } <= names


@pytest.mark.skipif(not SHARED_FIXTURES.exists(), reason="no ../shared next to this checkout")
def test_the_copy_is_identical_to_the_shared_fixtures() -> None:
    assert files(FIXTURES, "*.json") == files(SHARED_FIXTURES, "*.json")


@pytest.mark.skipif(not SHARED_SCHEMAS.exists(), reason="no ../shared next to this checkout")
def test_the_schema_copy_is_identical_to_the_shared_schemas() -> None:
    assert files(SCHEMAS) == files(SHARED_SCHEMAS)


@pytest.mark.skipif(not SHARED_CORPUS.exists(), reason="no ../shared next to this checkout")
def test_the_corpus_copy_is_identical_to_the_shared_corpus() -> None:
    assert files(CORPUS) == files(SHARED_CORPUS)
