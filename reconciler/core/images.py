"""Which images a branch or pull request may run or build from (`images.allow`).

An image reference comes from untrusted files (`image:` in `.hoody/app.yaml`, `FROM` and
`COPY --from` in a Dockerfile). With an allow-list, only references matching one of its
glob patterns are used, for every ref. Without one, branches may name any image (pulled
if missing) and fork pull requests only images already present on the engine; pulls for
fork pull requests never carry the host's registry credentials (see runtime/docker.py).

References are compared in Docker's short form: `docker.io/library/busybox` is
`busybox`, and a reference without a tag or digest means `:latest`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

_HUB = ("docker.io/", "index.docker.io/", "registry-1.docker.io/")


def normalise(image: str) -> str:
    """`docker.io/library/busybox` -> `busybox:latest`; `a/b@sha256:…` stays as is."""
    ref = image.strip()
    for prefix in _HUB:
        if ref.startswith(prefix):
            ref = ref[len(prefix) :]
            break
    ref = ref.removeprefix("library/")
    last = ref.rsplit("/", 1)[-1]
    if "@" not in ref and ":" not in last:
        ref += ":latest"
    return ref


def allowed(image: str, patterns: Sequence[str]) -> bool:
    ref = normalise(image)
    return any(fnmatch.fnmatchcase(ref, p) or fnmatch.fnmatchcase(image, p) for p in patterns)


def refusal(image: str, patterns: Sequence[str] | None) -> str | None:
    """Why `image` may not be used under `images.allow`, or None when it may."""
    if patterns is None or allowed(image, patterns):
        return None
    listed = ", ".join(patterns) if patterns else "nothing"
    return f"image {image!r} is not allowed by the server's images.allow ({listed})"
