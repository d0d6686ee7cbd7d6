"""A client in its own process, as a browser or a teammate's script would be: it never
shares a Python interpreter (and its lock) with the hoody it measures. Used by
bench_proxy.py; loopback only, one connection per request.

    httpclient.py loop PORT EXPECT HOST...   requests the hosts round-robin until stdin
                                             closes; prints {"requests", "failures"}
    httpclient.py first200 PORT HOST         polls every 5 ms until a 200; prints the
                                             time.monotonic() of it (a clock shared by
                                             every process of the machine)
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time


def fetch(port: int, host: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": host, "Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode().strip()
    finally:
        conn.close()


def loop(port: int, expect: str, hosts: list[str]) -> None:
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    failures: list[str] = []
    done, i, deadline = 0, 0, time.monotonic() + 300
    print("ready", flush=True)
    while not stop.is_set() and time.monotonic() < deadline:
        host = hosts[i % len(hosts)]
        i += 1
        try:
            status, body = fetch(port, host)
            if status != 200 or body != expect:
                failures.append(f"{host}: {status} {body[:40]}")
        except OSError as e:
            failures.append(f"{host}: {e}")
        done += 1
    print(json.dumps({"requests": done, "failures": failures}), flush=True)


def first200(port: int, host: str) -> None:
    print("ready", flush=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if fetch(port, host)[0] == 200:
                print(json.dumps({"at": time.monotonic()}), flush=True)
                return
        except OSError:
            pass
        time.sleep(0.005)
    print(json.dumps({"at": None}), flush=True)


if __name__ == "__main__":
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "loop":
        loop(port, sys.argv[3], sys.argv[4:])
    else:
        first200(port, sys.argv[3])
