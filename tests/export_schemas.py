"""Validators built from the platforms' own published schemas (tests/fixtures/export-schemas,
sources and licences in its README), one function per kind of file an export writes.

Each `check_*` raises AssertionError naming the file and what is wrong. The Knative CRD
and Google's discovery documents are not JSON Schema: they are converted here, strictly
(an object with declared properties takes no other key, as `kubectl apply` and the Cloud
Run API refuse unknown fields). botocore's subsets are real botocore service models.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from botocore.model import ServiceModel
from botocore.validate import ParamValidator

SCHEMAS = Path(__file__).resolve().parent / "fixtures" / "export-schemas"


def load(rel: str) -> Any:
    text = (SCHEMAS / rel).read_text(encoding="utf-8")
    return yaml.safe_load(text) if rel.endswith(".yaml") else json.loads(text)


def _validator(schema: dict[str, Any]) -> Any:
    """The draft a schema declares, also when it spells the URI loosely
    (`https://json-schema.org/draft-07/schema`). Vercel's file says draft-04 but uses
    draft-06+ keywords: it is read as draft-07, as editors do."""
    declared = str(schema.get("$schema", ""))
    if "2020-12" in declared:
        return jsonschema.Draft202012Validator
    if "draft-07" in declared or "draft-04" in declared:
        return jsonschema.Draft7Validator
    raise AssertionError(f"unexpected $schema {declared!r}")


def _validate(schema: dict[str, Any], doc: Any, what: str) -> None:
    validator_cls = _validator(schema)
    errors = sorted(validator_cls(schema).iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        lines = [
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}"
            for e in errors[:10]
        ]
        raise AssertionError(f"{what}: " + "\n  ".join(lines))


# -- compose ------------------------------------------------------------------------------

COMPOSE = (
    "compose-spec/compose-spec.json",
    "compose-go/compose-spec.json",
    "schemastore-catalog/docker-compose-yml.json",
)


def check_compose(doc: Any, path: str) -> None:
    for rel in COMPOSE:
        _validate(load(rel), doc, f"{path} against {rel}")


# -- kubernetes -----------------------------------------------------------------------------


def check_kubernetes(doc: dict[str, Any], path: str) -> None:
    """kubernetes-validate's strict 1.37 schema for the document's own kind."""
    whole = load("kubernetes/v1.37.0-strict.json")
    ref = whole["kinds"].get(f"{doc['apiVersion']}/{doc['kind']}")
    assert ref, f"{path}: {doc['apiVersion']}/{doc['kind']} is not a kind the export writes"
    schema = {"$schema": whole["$schema"], "$ref": ref, "$defs": whole["$defs"]}
    _validate(schema, doc, f"{path} against kubernetes 1.37 strict")


# -- Cloud Run, Knative, Cloud Scheduler --------------------------------------------------


def _from_openapi(node: Any) -> Any:
    """A CRD's openAPIV3Schema as JSON Schema, strict where the CRD does not say
    `x-kubernetes-preserve-unknown-fields`."""
    if isinstance(node, list):
        return [_from_openapi(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _from_openapi(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    out.pop("nullable", None)
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def _knative() -> dict[str, Any]:
    crd = load("knative/service-crd.yaml")
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = _from_openapi(v1["schema"]["openAPIV3Schema"])
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    return schema  # type: ignore[no-any-return]


def _from_discovery(doc: dict[str, Any]) -> dict[str, Any]:
    """A Google discovery document's schemas as JSON Schema definitions, strict."""

    def convert(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return {"$ref": f"#/definitions/{node['$ref']}"}
        out: dict[str, Any] = {}
        kind = node.get("type")
        if kind == "string" and node.get("format") in ("int64", "uint64"):
            out["anyOf"] = [{"type": "integer"}, {"type": "string", "pattern": r"^-?\d+$"}]
        elif kind == "any":
            pass
        elif kind:
            out["type"] = kind
        if "enum" in node:
            out["enum"] = node["enum"]
        if "properties" in node:
            out["properties"] = {k: convert(v) for k, v in node["properties"].items()}
            out["additionalProperties"] = False
        if "additionalProperties" in node:
            out["additionalProperties"] = convert(node["additionalProperties"])
        if "items" in node:
            out["items"] = convert(node["items"])
        return out

    return {name: convert(s) for name, s in doc["schemas"].items()}


@cache
def _discovery(rel: str) -> dict[str, Any]:
    return _from_discovery(load(rel))


def _check_discovery(rel: str, name: str, doc: Any, path: str) -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$ref": f"#/definitions/{name}",
        "definitions": _discovery(rel),
    }
    _validate(schema, doc, f"{path} against {rel} {name}")


def check_cloudrun_service(doc: dict[str, Any], path: str) -> None:
    _validate(load("schemastore/cloud-run-v1.json"), doc, f"{path} against SchemaStore")
    _validate(_knative(), doc, f"{path} against the Knative Service CRD")
    _check_discovery("google-discovery/run.v1.json", "Service", doc, path)


def check_cloudrun_job(doc: dict[str, Any], path: str) -> None:
    _check_discovery("google-discovery/run.v1.json", "Job", doc, path)


def check_cloud_scheduler_job(doc: dict[str, Any], path: str) -> None:
    _check_discovery("google-discovery/cloudscheduler.v1.json", "Job", doc, path)


# -- AWS ---------------------------------------------------------------------------------------


@cache
def _input_shape(rel: str) -> Any:
    subset = load(rel)
    operation = dict(subset["operation"])
    if isinstance(operation.get("input"), str):
        operation["input"] = {"shape": operation["input"]}
    model = ServiceModel(
        {
            "metadata": subset["metadata"],
            "operations": {operation["name"]: operation},
            "shapes": subset["shapes"],
        }
    )
    return model.operation_model(operation["name"]).input_shape


def _check_botocore(rel: str, params: dict[str, Any], path: str) -> None:
    report = ParamValidator().validate(params, _input_shape(rel))
    assert not report.has_errors(), f"{path} against {rel}: {report.generate_report()}"


def check_ecs_task_definition(params: dict[str, Any], path: str) -> None:
    _check_botocore("botocore/ecs-2014-11-13-RegisterTaskDefinition.json", params, path)


def check_eventbridge_schedule(params: dict[str, Any], path: str) -> None:
    _check_botocore("botocore/scheduler-2021-06-30-CreateSchedule.json", params, path)


# -- Render, Railway, Vercel ---------------------------------------------------------------


def check_render(doc: Any, path: str) -> None:
    _validate(load("schemastore-catalog/render-blueprints.json"), doc, f"{path} against Render")


def check_railway(doc: Any, path: str) -> None:
    _validate(load("schemastore-catalog/railway.json"), doc, f"{path} against Railway")


RAILWAY_ENV = {"RAILWAY_GITHUB_REPO": "org/app", "RAILWAY_GITHUB_BRANCH": "main"}


def railway_graph(text: str, path: str, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Evaluate a `.railway/railway.py` the way the Railway CLI does, with Railway's own
    SDK (railway-sdk, offline): its `main(ctx)` returns the project graph."""
    import runpy
    import tempfile

    from railway_sdk import create_railway_context

    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "railway.py"
        file.write_text(text, encoding="utf-8")
        saved = dict(os.environ)
        os.environ.update(RAILWAY_ENV if environ is None else environ)
        try:
            program = runpy.run_path(str(file))
            graph = program["main"](create_railway_context(environment="production"))
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return graph.to_graph()  # type: ignore[no-any-return]


def check_railway_program(text: str, path: str) -> None:
    """Each service's `build` and `deploy` are Railway's Config as Code blocks (the IaC
    graph keeps their fields): validated against Railway's published schema."""
    graph = railway_graph(text, path)
    services = [r for r in graph["resources"] if r["type"] == "service"]
    assert services, f"{path}: no service"
    for node in services:
        blocks = {k: node[k] for k in ("build", "deploy") if k in node}
        check_railway(blocks, f"{path} service {node['name']}")


def check_vercel(doc: Any, path: str) -> None:
    _validate(load("schemastore-catalog/vercel.json"), doc, f"{path} against Vercel")
    cli = load("vercel-cli/vercel-64.0.2-config-crons.json")
    _validate(cli, doc, f"{path} against the Vercel CLI 64.0.2")
