"""The labels every object of an environment carries: the record of what exists
(invariant 1). Written here, read back by `runtime.observe()`."""

from __future__ import annotations

from reconciler.core.model import (
    LABEL_COMMIT,
    LABEL_ENV,
    LABEL_MANAGED,
    LABEL_PORTS,
    LABEL_PRIMARY,
    LABEL_REF,
    LABEL_REPO,
    LABEL_SERVICE,
    LABEL_SPEC_HASH,
    DesiredEnvironment,
    DesiredService,
)


def env_labels(env: DesiredEnvironment) -> dict[str, str]:
    return {
        LABEL_MANAGED: "true",
        LABEL_REPO: env.repo,
        LABEL_ENV: env.name,
        LABEL_REF: env.ref.name,
        LABEL_COMMIT: env.commit,
        LABEL_SPEC_HASH: env.spec_hash,
    }


def service_labels(env: DesiredEnvironment, svc: DesiredService) -> dict[str, str]:
    labels = {**env_labels(env), LABEL_SERVICE: svc.name, LABEL_SPEC_HASH: svc.spec_hash}
    if svc.spec.ports:
        labels[LABEL_PORTS] = ",".join(str(p) for p in svc.spec.ports)
        primary = next(s for s in env.services.values() if s.spec.ports)
        if primary.name == svc.name:
            labels[LABEL_PRIMARY] = "true"
    return labels
