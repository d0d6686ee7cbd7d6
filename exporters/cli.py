"""`hoody export FORMAT [--env NAME [--repo PATH] | --dir PATH] [-o OUTDIR]`, `hoody export --list`.

Kept apart from `reconciler/cli.py` so the command only needs a way to find a server
environment (`resolve_env`), not the service around it. `--dir` needs no server at all.
Without `-o` the files go to stdout, each after a `==> path <==` line; warnings always go
to stderr. Exit codes: 0 exported, 1 the environment or its files are wrong, 2 usage.
Paths into the repository (Compose build contexts) are written relative to where the
files go (`-o`, else the current directory), the repository being `--dir` or, for
`--env`, `--repo` (default: the current directory).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from reconciler.core.errors import ReconcilerError

from . import FORMATS, ExportError, ExportResult, ExportSource, render, source_from_dir

USAGE_ERROR = 2


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `export` to `subparsers` (the object `add_subparsers()` returned)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "export",
        help="write an environment as files for another platform",
        description=f"Export an environment. Formats: {', '.join(FORMATS)}.",
    )
    p.add_argument("format", nargs="?", help="target platform (see --list)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--env", help="an environment the server runs, e.g. main-shop")
    where.add_argument("--dir", help="a working tree with .hoody/ (default: .), no server")
    p.add_argument(
        "--repo",
        help="with --env: where the repository is checked out (default: .), for the paths "
        "into it that an export writes (Compose build contexts)",
    )
    p.add_argument("-o", "--output", help="directory to write the files to (default: stdout)")
    p.add_argument("--list", action="store_true", help="list the formats and exit")
    p.add_argument(
        "--include-spec-values",
        action="store_true",
        help="write env values committed in .hoody/app.yaml instead of ${NAME} placeholders",
    )
    return p


def run(
    args: argparse.Namespace,
    resolve_env: Callable[[str], ExportSource],
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    if args.list:
        for fmt in FORMATS.values():
            print(f"{fmt.name:<11} {fmt.description}", file=out)
        return 0
    if not args.format:
        print("error: give a format (hoody export --list shows them)", file=err)
        return USAGE_ERROR
    if args.format not in FORMATS:
        print(f"error: unknown format {args.format!r}; one of: {', '.join(FORMATS)}", file=err)
        return USAGE_ERROR
    include = bool(args.include_spec_values)
    if args.repo and not args.env:
        print("error: --repo goes with --env (with --dir the repository is --dir)", file=err)
        return USAGE_ERROR
    repo = Path((args.repo if args.env else args.dir) or ".")
    root = repo_root(repo, Path(args.output or "."))
    try:
        if args.env:
            source = replace(resolve_env(args.env), include_spec_values=include)
        else:
            source = source_from_dir(repo, include_spec_values=include)
        result = render(args.format, replace(source, repo_root=root))
    except (ExportError, ReconcilerError) as exc:
        print(f"error: {exc}" if "\n" not in str(exc) else str(exc), file=err)
        return 1
    for warning in result.warnings:
        print(f"warning: {warning}", file=err)
    if args.output:
        written = write_files(result, Path(args.output))
        print(f"wrote {len(written)} files to {args.output}", file=err)
    else:
        for path, text in result.files.items():
            print(f"==> {path} <==", file=out)
            out.write(text if text.endswith("\n") else text + "\n")
    return 0


def repo_root(repo: Path, output: Path) -> str:
    """The repository's folder seen from the output folder, as a POSIX path."""
    rel = os.path.relpath(repo.resolve(), output.resolve())
    return Path(rel).as_posix()


def write_files(result: ExportResult, directory: Path) -> list[Path]:
    """Write every file under `directory`; a path that would leave it is refused."""
    root = directory.resolve()
    targets = [(root / rel).resolve() for rel in result.files]
    for target in targets:
        if not target.is_relative_to(root):
            raise ExportError(f"refusing to write outside {directory}: {target}")
    for target, text in zip(targets, result.files.values(), strict=True):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return targets
