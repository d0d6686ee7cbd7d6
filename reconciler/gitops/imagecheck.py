"""An environment's images before anything of it is created: present, pulled or built,
and for a fork pull request only what it may use.

Apart from the applier because this is the heavy, bounded step of an environment's work
(a build is CPU and disk): the per-environment queue holds one of its `workers` build
slots only around it, so health waits and starts never wait for a build.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.core.errors import SpecError
from reconciler.core.images import allowed
from reconciler.core.model import (
    LABEL_COMMIT,
    LABEL_MANAGED,
    LABEL_REPO,
    SPEC_FILE,
    DesiredEnvironment,
    DesiredService,
)
from reconciler.core.settings import BuildSettings, ImagesSettings, LimitsSettings
from reconciler.gitops.git import Mirror
from reconciler.runtime import BuildRequest, Progress, Runtime


class ImageCheck:
    def __init__(
        self,
        runtime: Runtime,
        mirrors: Callable[[str], Mirror],
        limits: LimitsSettings,
        build: BuildSettings,
        images: ImagesSettings,
    ) -> None:
        self.runtime = runtime
        self.mirrors = mirrors
        self.limits = limits
        self.build = build
        self.images = images

    def refuse_for_fork(self, env: DesiredEnvironment, svc: DesiredService) -> None:
        """A fork pull request without `images.allow` may only use images already on the
        engine (its `image:` and its Dockerfile's FROM images)."""
        if not env.fork:
            return
        for image, field in self._untrusted_images(svc):
            if not self._usable_by_fork(image):
                raise SpecError(
                    SPEC_FILE,
                    None,
                    field,
                    f"image {image!r} is not present on the engine; pull requests from "
                    "forks may only use local images unless the server's images.allow "
                    "lists them",
                )

    def present(self, svc: DesiredService) -> bool:
        return self.runtime.has_image(svc.image)

    def fetch(self, env: DesiredEnvironment, svc: DesiredService, progress: Progress) -> None:
        """Pull or build the image of `svc`. A fork pull request gets no network in its
        build and no registry credentials."""
        build = svc.spec.build
        if build is None:
            self.runtime.pull_image(svc.image, progress, anonymous=env.fork)
            return
        mirror = self.mirrors(env.repo)
        commit, context = env.commit, build.context
        network = "none" if env.fork or self.build.network == "none" else None
        request = BuildRequest(
            context=lambda: mirror.archive(commit, context),
            dockerfile=build.dockerfile,
            args=build.args,
            labels={LABEL_MANAGED: "true", LABEL_REPO: env.repo, LABEL_COMMIT: commit},
            network=network,
            anonymous=env.fork,
            memory=self.limits.max_memory,
        )
        self.runtime.build_image(svc.image, request, progress)

    @staticmethod
    def _untrusted_images(svc: DesiredService) -> list[tuple[str, str]]:
        field = f"services.{svc.name}"
        if svc.spec.build is None:
            return [(svc.image, f"{field}.image")]
        return [(image, f"{field}.build (FROM {image})") for image in svc.base_images]

    def _usable_by_fork(self, image: str) -> bool:
        if self.images.allow is not None:
            return allowed(image, self.images.allow)  # pulled without credentials if missing
        return self.runtime.has_image(image)
