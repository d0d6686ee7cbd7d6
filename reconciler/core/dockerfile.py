"""What a branch's Dockerfile may ask of the engine, checked before any build starts.

The engine's builder fetches `ADD <url>` and `ADD <git repository>` itself, from the
host's own network (its loopback, a cloud metadata address, a Docker API on TCP), and
the response ends up in the image and the build output. So a Dockerfile whose `ADD` (or
`ONBUILD ADD`) has a remote source, or a source the check cannot read before the build
(a `$variable`, an escape character), is refused, naming the Dockerfile and its line.
The instructions are read with `dockerfile-parse`, which knows continuation lines,
comments, parser directives and the JSON form.

The images a build starts from (`FROM`, `COPY --from=<image>`) are returned, each with
its line, so that the image policy (`images.py`) can check them like `image:`.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass

from dockerfile_parse import DockerfileParser

from reconciler.core.errors import SpecError

REMOTE_ADD = (
    "remote sources are not allowed: the engine would fetch them from the server's own "
    "network; vendor the file into the repository and COPY it"
)
_GIT_REMOTE = re.compile(r"^[\w.-]+@[\w.-]+:|\.git(#|$)")
_VARIABLE = re.compile(r"\$")


@dataclass(frozen=True)
class BaseImage:
    image: str
    line: int  # 1-based
    instruction: str  # FROM or COPY --from


def _words(value: str) -> list[str]:
    """The arguments of ADD/COPY: JSON form or whitespace-separated shell form."""
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(w, str) for w in parsed):
            return parsed
    return text.split()


def _remote(source: str) -> str | None:
    """Why an ADD source cannot be allowed, or None for a plain file of the context."""
    if "://" in source or _GIT_REMOTE.search(source):
        return REMOTE_ADD
    if _VARIABLE.search(source):
        return "a variable in an ADD source cannot be checked before the build; use COPY"
    if any(c in source for c in "\\`\"'"):
        return "escape and quote characters are not allowed in an ADD source"
    return None


def check_dockerfile(text: str, file: str) -> tuple[list[SpecError], list[BaseImage]]:
    """(problems, images the build starts from) of the Dockerfile `text` at path `file`."""
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode("utf-8", "replace")))
    errors: list[SpecError] = []
    images: list[BaseImage] = []
    stages: set[str] = set()
    for item in parser.structure:
        instruction = str(item["instruction"]).upper()
        value = str(item["value"])
        line = int(item["startline"]) + 1
        if instruction == "ONBUILD":
            inner, _, rest = value.strip().partition(" ")
            instruction, value = "ONBUILD " + inner.upper(), rest
        if instruction in ("ADD", "ONBUILD ADD"):
            words = [w for w in _words(value) if not w.startswith("--")]
            for source in words[:-1]:  # the last word is the destination
                why = _remote(source)
                if why:
                    errors.append(SpecError(file, line, instruction, f"{source}: {why}"))
        elif instruction == "FROM":
            words = value.split()
            words = [w for w in words if not w.startswith("--")]  # --platform=…
            if not words:
                continue
            image = words[0]
            if len(words) >= 3 and words[1].lower() == "as":
                stages.add(words[2].lower())
            if image.lower() not in stages and image != "scratch":
                images.append(BaseImage(image, line, "FROM"))
        elif instruction == "COPY":
            for word in _words(value):
                if word.startswith("--from="):
                    source = word[len("--from=") :]
                    if source.lower() not in stages and not source.isdigit():
                        images.append(BaseImage(source, line, "COPY --from"))
    return errors, images
