"""The `hoody` command. Wiring and printing only; the work is in the controller."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from reconciler.cli.ops import package_version, stop_on_signals
from reconciler.core.errors import ConfigError, ReconcilerError, SpecError
from reconciler.core.model import CRONTAB_FILE, SPEC_FILE
from reconciler.core.plan import action_json
from reconciler.core.settings import Settings, load_settings
from reconciler.serve.logs import setup_logging

log = logging.getLogger("hoody")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def _services(args: argparse.Namespace) -> tuple[Settings, Any, Any]:
    from reconciler.runtime.swarm import runtime_for
    from reconciler.storage.store import Store

    settings = _settings(args)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return settings, Store(settings.database_url, settings.retention), runtime_for(settings)


def _store(args: argparse.Namespace) -> Any:
    from reconciler.storage.store import Store

    settings = _settings(args)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return Store(settings.database_url, settings.retention)


def _repos(settings: Settings, only: str | None) -> list[str]:
    names = [r.name for r in settings.repos]
    if only:
        if only not in names:
            raise ConfigError("repos", f"no repo named {only!r}")
        return [only]
    return names


# -- validate ------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    from reconciler.core.spec import parse_app_spec

    root = Path(args.dir)
    errors: list[str] = []
    warnings: list[str] = []
    spec_path = root / SPEC_FILE
    if not spec_path.exists():
        print(f"{SPEC_FILE}: not found in {root}", file=sys.stderr)
        return 1
    try:
        spec = parse_app_spec(spec_path.read_text(), SPEC_FILE, default_name=root.resolve().name)
        for svc in spec.services.values():
            if svc.build is None:
                continue
            ctx = root / svc.build.context
            if not ctx.is_dir():
                errors.append(
                    f"{SPEC_FILE}: services.{svc.name}.build.context: "
                    f"{svc.build.context} is not a directory"
                )
            elif not (ctx / svc.build.dockerfile).is_file():
                errors.append(
                    f"{SPEC_FILE}: services.{svc.name}.build.dockerfile: "
                    f"{svc.build.context}/{svc.build.dockerfile} not found"
                )
            else:  # what the server refuses in a Dockerfile (ADD of a URL, ...)
                from reconciler.core.dockerfile import check_dockerfile

                name = os.path.normpath(os.path.join(svc.build.context, svc.build.dockerfile))
                text = (ctx / svc.build.dockerfile).read_text(errors="replace")
                errors.extend(str(e) for e in check_dockerfile(text, name)[0])
        tz = spec.cron.timezone
    except SpecError as e:
        errors.extend(str(e).splitlines())
        tz = "UTC"
    crontab_path = root / CRONTAB_FILE
    if crontab_path.exists():
        try:
            from reconciler.core.crontab import parse_crontab

            tab = parse_crontab(crontab_path.read_text(), CRONTAB_FILE, default_timezone=tz)
            warnings.extend(tab.warnings)
        except SpecError as e:
            errors.extend(str(e).splitlines())
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    for err in errors:
        print(err, file=sys.stderr)
    if errors:
        return 1
    print(f"{root}: ok")
    return 0


# -- plan / apply ----------------------------------------------------------------------------


def _run_pass(args: argparse.Namespace, dry_run: bool) -> int:
    from reconciler.gitops.controller import Controller

    settings, store, runtime = _services(args)

    def progress(repo: str, env: str | None, msg: str) -> None:
        if not args.json:
            print(f"  {env or repo}: {msg}", file=sys.stderr, flush=True)

    controller = Controller(settings, store, runtime, progress=progress)
    everything: list[dict[str, Any]] = []
    failed = False
    for name in _repos(settings, args.repo):
        started = time.monotonic()
        result = controller.reconcile(
            name, allow_mass_prune=getattr(args, "allow_mass_prune", False), dry_run=dry_run
        )
        failed |= bool(result.errors) or result.fetch_error is not None
        if args.json:
            everything.append(
                {
                    "repo": name,
                    "actions": [action_json(a) for a in result.actions],
                    "errors": result.errors,
                    "fetch_error": result.fetch_error,
                }
            )
            continue
        print(f"repo {name}:")
        if result.fetch_error:
            print(f"  ! {result.fetch_error} (nothing is torn down)")
        for a in result.actions:
            mark = {"create": "+", "update": "~", "remove": "-", "noop": "="}[a.op.value]
            print(f"  {mark} {a.describe()}")
        for e in result.errors:
            print(f"  ! {e}")
        if not dry_run:
            print(f"  done in {time.monotonic() - started:.1f}s")
    if args.json:
        print(json.dumps(everything, indent=2))
    return 1 if failed else 0


def cmd_plan(args: argparse.Namespace) -> int:
    return _run_pass(args, dry_run=True)


def cmd_apply(args: argparse.Namespace) -> int:
    return _run_pass(args, dry_run=False)


# -- envs / events / suspend -----------------------------------------------------------------


def cmd_envs(args: argparse.Namespace) -> int:
    settings, store, runtime = _services(args)
    rows = []
    status = {r["name"]: r for r in store.environments()}
    for repo in _repos(settings, args.repo):
        for name, env in sorted(runtime.observe(repo).items()):
            st = status.get(name, {})
            rows.append(
                {
                    "name": name,
                    "repo": repo,
                    "ref": env.ref,
                    "commit": env.commit,
                    "status": st.get("status", "unknown"),
                    "url": st.get("url"),
                    "containers": [
                        {"name": c.name, "service": c.service, "state": c.status}
                        for c in env.containers
                    ],
                    "suspended": name in store.suspended(),
                    "last_error": st.get("last_error"),
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no environments")
    for r in rows:
        flag = " (suspended)" if r["suspended"] else ""
        print(f"{r['name']:<40} {r['status']:<9} {r['commit'][:12]:<12} {r['url'] or '-'}{flag}")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    store = _store(args)
    events = store.events(env=args.env, repo=args.repo, limit=args.limit)
    if args.json:
        print(json.dumps([e.as_dict() for e in events], indent=2))
        return 0
    for e in reversed(events):
        ts = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.ts))
        print(f"{ts} {e.level:<7} {e.repo}/{e.env or '-'} {e.kind}: {e.message}")
    return 0


def cmd_suspend(args: argparse.Namespace) -> int:
    store = _store(args)
    store.suspend(args.env, args.reason)
    print(f"{args.env}: suspended; the reconciler leaves it alone until `hoody resume`")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    store = _store(args)
    if not store.resume(args.env):
        print(f"{args.env}: was not suspended", file=sys.stderr)
        return 1
    print(f"{args.env}: resumed")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from exporters.cli import run

    def resolve(name: str) -> Any:
        from reconciler.gitops.controller import Controller
        from reconciler.gitops.exporting import export_source

        settings, store, runtime = _services(args)
        source = export_source(store, Controller(settings, store, runtime).sources, name)
        if source is None:
            raise ReconcilerError(f"no environment named {name!r} (see `hoody envs`)")
        return source

    return run(args, resolve)


# -- serve -------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from reconciler.http.app import create_app
    from reconciler.http.server import make_server
    from reconciler.serve.service import Service

    settings, store, runtime = _services(args)
    if args.port is not None or args.host is not None:
        from dataclasses import replace

        server = replace(
            settings.server,
            host=args.host or settings.server.host,
            port=args.port if args.port is not None else settings.server.port,
        )
        settings = replace(settings, server=server)
    service = Service(settings, store, runtime)
    app = create_app(settings, service)
    with stop_on_signals():
        try:
            service.start(watch=not args.no_watch)
            log.info(
                "serving on http://%s:%s (%d repos)",
                settings.server.host,
                settings.server.port,
                len(settings.repos),
            )
            make_server(app, settings.server).run()
        except SystemExit:
            pass  # a signal before the server was up: the same clean stop
        finally:
            log.info(
                "stopping: running jobs get up to %.0fs (scheduler.shutdown_grace); "
                "environments keep running",
                settings.scheduler.shutdown_grace,
            )
            service.stop()
            log.info("stopped")
    return 0


# -- main --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hoody", description=__doc__)
    p.add_argument(
        "--config",
        default=os.environ.get("HOODY_CONFIG", "hoody.yaml"),
        help="server configuration (default ./hoody.yaml)",
    )
    p.add_argument("--version", action="version", version=f"hoody {package_version()}")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("validate", help="check the .hoody/ files of a working tree")
    s.add_argument("dir", nargs="?", default=".")
    s.set_defaults(func=cmd_validate)

    for name, func, helptext in (
        ("plan", cmd_plan, "show what a pass would do"),
        ("apply", cmd_apply, "run one pass now"),
    ):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--json", action="store_true")
        s.add_argument("--repo")
        if name == "apply":
            s.add_argument(
                "--allow-mass-prune",
                action="store_true",
                help="let this pass remove more than prune.max_fraction",
            )
        s.set_defaults(func=func)

    s = sub.add_parser("serve", help="run the service: HTTP, reconcile loop, schedules")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--no-watch", action="store_true", help="do not watch local repos")
    s.set_defaults(func=cmd_serve)

    from reconciler.cli.ops import add_parsers as add_ops_parsers

    add_ops_parsers(sub)

    s = sub.add_parser("envs", help="list environments")
    s.add_argument("--json", action="store_true")
    s.add_argument("--repo")
    s.set_defaults(func=cmd_envs)

    s = sub.add_parser("events", help="recent decisions")
    s.add_argument("--env")
    s.add_argument("--repo")
    s.add_argument("--limit", type=int, default=50)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_events)

    from reconciler.cli.cron import add_parsers as add_cron_parsers

    add_cron_parsers(sub)

    from exporters.cli import add_parser as add_export_parser

    add_export_parser(sub).set_defaults(func=cmd_export)

    s = sub.add_parser("suspend", help="leave one environment alone")
    s.add_argument("env")
    s.add_argument("--reason")
    s.set_defaults(func=cmd_suspend)
    s = sub.add_parser("resume", help="let the reconciler manage an environment again")
    s.add_argument("env")
    s.set_defaults(func=cmd_resume)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_format, logging.DEBUG if args.verbose else logging.INFO)
    try:
        return int(args.func(args))
    except ReconcilerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
