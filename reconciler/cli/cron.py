"""`hoody cron …` talks to the running service's API (the schedule lives in that
process); `hoody crontab explain` works on a file alone."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from reconciler.core.crontab import explain, next_fires, parse_crontab
from reconciler.core.errors import ReconcilerError, SpecError
from reconciler.core.settings import Settings, load_settings


class ApiClient:
    def __init__(self, settings: Settings) -> None:
        host = settings.server.host
        host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        self.base = os.environ.get("HOODY_URL", f"http://{host}:{settings.server.port}")
        token = os.environ.get("HOODY_TOKEN") or settings.api.token
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def call(self, method: str, path: str, **params: Any) -> Any:
        url = f"{self.base}/api/v1{path}"
        try:
            r = requests.request(
                method,
                url,
                headers=self.headers,
                timeout=30,
                params={k: v for k, v in params.items() if v is not None},
            )
        except requests.RequestException as e:
            raise ReconcilerError(
                f"cannot reach the service at {self.base} ({e}); is `hoody serve` running?"
            ) from e
        body = r.json() if r.headers.get("Content-Type", "").startswith("application/json") else {}
        if r.status_code >= 400 and r.status_code != 409:
            err = body.get("error", {}) if isinstance(body, dict) else {}
            raise ReconcilerError(f"{r.status_code}: {err.get('message') or r.text[:200]}")
        return body


def _short(ts: str | None) -> str:
    if not ts:
        return "-"
    return datetime.fromisoformat(ts).strftime("%Y-%m-%d %H:%M:%S%z")


def run(args: argparse.Namespace) -> int:
    if args.cron_cmd == "explain":
        return explain_file(Path(args.file))
    client = ApiClient(load_settings(args.config))
    if args.cron_cmd in ("ls", "next"):
        data = client.call("GET", f"/environments/{args.env}/cron", n=getattr(args, "n", None))
        if args.json:
            print(json.dumps(data, indent=2))
            return 0
        rejected = data["schedule"].get("rejected")
        if rejected:
            print(f"! {rejected}", file=sys.stderr)
        for e in data["entries"]:
            flag = " (paused)" if e["paused"] else ""
            if args.cron_cmd == "ls":
                last = e["last_run"]
                last_txt = f"{last['status']} {_short(last['finished_at'])}" if last else "-"
                print(
                    f"{e['id']:<14} {e['user']:<8} {e['source']:<8} {e['schedule']:<18} "
                    f"next {_short(e['next'][0] if e['next'] else None)}  last {last_txt}  "
                    f"{e['command']}{flag}"
                )
            else:
                print(f"{e['id']} {e['schedule']} {e['command']}{flag}")
                for t in e["next_local"]:
                    print(f"    {_short(t)}")
        return 0
    if args.cron_cmd == "runs":
        data = client.call(
            "GET",
            f"/environments/{args.env}/runs",
            entry=args.entry,
            status=args.status,
            limit=args.limit,
        )
        if args.json:
            print(json.dumps(data, indent=2))
            return 0
        for r in data["runs"]:
            dur = f"{r['duration']:.1f}s" if r["duration"] is not None else "-"
            code = r.get("http_status")
            result = f"HTTP {code}" if code is not None else f"exit {r['exit_code']}"
            result = result if code is not None or r["exit_code"] is not None else "-"
            print(
                f"#{r['id']:<6} {r['status']:<11} {r['trigger']:<9} "
                f"{_short(r['scheduled_for'])} {dur:>8} {result:<9} {r['command']}"
            )
        return 0
    if args.cron_cmd == "trigger":
        data = client.call("POST", f"/environments/{args.env}/cron/{args.entry}/trigger")
        if data.get("skipped"):
            print("skipped: the previous run is still running (concurrency policy)")
            return 1
        print(f"run #{data['run']} started")
        return 0
    if args.cron_cmd == "resume":
        data = client.call("POST", f"/environments/{args.env}/cron/{args.entry}/resume")
        print("resumed" if data.get("resumed") else "it was not paused")
        return 0
    raise ReconcilerError(f"unknown command {args.cron_cmd}")


def explain_file(path: Path) -> int:
    try:
        tab = parse_crontab(path.read_text(), str(path))
    except SpecError as e:
        print(e, file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{path}: {e.strerror}", file=sys.stderr)
        return 1
    now = datetime.now(UTC)
    for w in tab.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for entry in tab.entries:
        print(f"line {entry.line}: {entry.raw_schedule} {entry.command}")
        print(f"    {explain(entry)}")
        for t in next_fires(entry, now, 3):
            print(f"    next: {t.astimezone(_zone(entry.timezone)).isoformat()}")
    return 0


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def add_parsers(sub: Any) -> None:
    cron = sub.add_parser("cron", help="an environment's schedule (talks to `hoody serve`)")
    csub = cron.add_subparsers(dest="cron_cmd", required=True)
    for name, helptext in (
        ("ls", "entries, next run and last run"),
        ("next", "next firing times in each entry's zone"),
    ):
        p = csub.add_parser(name, help=helptext)
        p.add_argument("env")
        if name == "next":
            p.add_argument("-n", type=int, default=5)
        p.add_argument("--json", action="store_true")
    p = csub.add_parser("runs", help="recent runs")
    p.add_argument("env")
    p.add_argument("--entry")
    p.add_argument("--status")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    for name, helptext in (
        ("trigger", "run an entry now"),
        ("resume", "resume an entry paused after failures"),
    ):
        p = csub.add_parser(name, help=helptext)
        p.add_argument("env")
        p.add_argument("entry")
    cron.set_defaults(func=run)
    tab = sub.add_parser("crontab", help="work with a crontab file")
    tsub = tab.add_subparsers(dest="cron_cmd", required=True)
    p = tsub.add_parser("explain", help="each line in words, with its next times")
    p.add_argument("file")
    tab.set_defaults(func=run)
