#!/usr/bin/env python3
"""A replica that hangs instead of dying, under load: what the clients see.

Runs the README's default daemon (three child-process replicas, default heartbeats:
1000 ms interval, 500 ms timeout, fall 3) in release mode, drives it with
`wrk -t1 -c32 --timeout 10s` with a new `x-lb-key` per request, and after `--fault-at`
seconds makes replica server2 misbehave:

- `sigstop`: the process is frozen with SIGSTOP (its kernel still accepts connections);
- `wedge`: every path but /heartbeat hangs (replica-server's wedge fault), so heartbeats
  keep passing;
- `delay`: every answer 200 ms late (the fault `delay:200`).

Prints requests, non-2xx, socket errors, raw latency percentiles and the max (wrk's
histogram without the synthetic samples its correction adds), and what /status said about server2 over time.
Traffic goes to 127.0.0.1 only; the run stops by itself.

    python3 benches/hung/hung.py --scenario sigstop   # after cargo build --release
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "target" / "release"
LUA = ROOT / "benches" / "proxy" / "keyed.lua"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())


def post(url: str, body: str) -> str:
    request = urllib.request.Request(url, data=body.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=2) as response:
        return response.read().decode()


def wait_ready(url: str, limit: float = 30.0) -> None:
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            get_json(url + "/rep")
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"the daemon did not answer at {url}")


def latency(histogram: Path, connections: int) -> dict[str, float]:
    """Raw p50/p75/p90/p99 (peers.py takes out the samples wrk's correction added) and
    the max, which is always a measured sample, in ms."""
    sys.path.insert(0, str(ROOT / "benches" / "proxy"))
    from peers import raw_percentiles  # noqa: E402  (a sibling script, not a package)

    out = raw_percentiles(histogram, connections)
    values = [int(line.split()[0]) for line in histogram.read_text().split("\n")[2:] if line.strip()[:1].isdigit()]
    out["max"] = max(values) / 1000.0 if values else 0.0
    return out


def suspected_after(log: Path, fault_wall: float) -> str:
    """How long after the fault the daemon logged its first "replica suspected", in ms
    (from the log line's own timestamp, so not limited by the /status polling)."""
    from datetime import datetime

    for line in log.read_text(errors="replace").splitlines():
        if "replica suspected" not in line:
            continue
        stamp = re.sub(r"\x1b\[[0-9;]*m", "", line).split()[0]
        whole, _, fraction = stamp.rstrip("Z").partition(".")
        when = datetime.fromisoformat(f"{whole}.{(fraction + '000000')[:6]}+00:00").timestamp()
        return f"{(when - fault_wall) * 1000:.0f} ms after the fault"
    return "never"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=["sigstop", "wedge", "delay", "none"], default="sigstop")
    parser.add_argument("--duration", type=int, default=30, help="seconds of load (default 30)")
    parser.add_argument("--fault-at", type=float, default=5.0, help="seconds into the load (default 5)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--recover-at", type=float, default=None,
                        help="seconds into the load at which the fault ends (wedge, delay: fault none; sigstop: SIGCONT)")
    parser.add_argument("--suspect-after", type=int, default=None,
                        help="upstream.suspect_after_ms (default: the daemon's, 220; 0: no suspicion)")
    parser.add_argument("--hedge", choices=["on", "off"], default="on", help="upstream.hedge (default on)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lb-hung-"))
    port = free_port()
    state = work / "state.json"
    config = work / "lb.toml"
    config.write_text(
        f'listen = "127.0.0.1:{port}"\nreplicas = 3\nstate_file = "{state}"\n'
        "[upstream]\n"
        + (f"suspect_after_ms = {args.suspect_after}\n" if args.suspect_after is not None else "")
        + f"hedge = {'true' if args.hedge == 'on' else 'false'}\n"
    )
    log = open(work / "daemon.log", "w")
    daemon = subprocess.Popen(
        [str(RELEASE / "lb-daemon"), "--config", str(config)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    timeline: list[str] = []
    stop = threading.Event()
    try:
        wait_ready(url)
        saved = json.loads(state.read_text())
        victim = next(r for r in saved["replicas"] if r["name"] == "server2")
        pid, address = victim["pid"], victim["address"]

        def watch() -> None:
            last = None
            started = time.time()
            while not stop.is_set():
                try:
                    row = next(r for r in get_json(url + "/status")["message"]["replicas"] if r["name"] == "server2")
                    seen = (row["state"], row.get("suspected"), row["respawns"])
                    if seen != last:
                        timeline.append(
                            f"{time.time() - started:6.2f} s  state {row['state']}, in flight {row['in_flight']}, "
                            f"respawns {row['respawns']}" + (f", suspected {row['suspected']}" if "suspected" in row else "")
                        )
                        last = seen
                except (OSError, StopIteration, KeyError, ValueError):
                    pass
                time.sleep(0.05)

        histogram = work / "hist.txt"
        env = dict(os.environ, WRK_HISTOGRAM=str(histogram), WRK_PATH="/home", WRK_KEY_HEADER="x-lb-key")
        wrk = subprocess.Popen(
            ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "10s", "-s", str(LUA), url],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        time.sleep(args.fault_at)
        timeline.append(f"{args.fault_at:6.2f} s  fault: {args.scenario} on server2 (pid {pid}, {address})")
        fault_wall = time.time()
        if args.scenario == "sigstop":
            os.kill(pid, signal.SIGSTOP)
        elif args.scenario == "wedge":
            post(f"http://{address}/fault", "wedge")
        elif args.scenario == "delay":
            post(f"http://{address}/fault", "delay:200")
        if args.recover_at is not None:
            time.sleep(max(0.0, args.recover_at - args.fault_at))
            timeline.append(f"{args.recover_at:6.2f} s  recovery: the fault on server2 ends")
            if args.scenario == "sigstop":
                os.kill(pid, signal.SIGCONT)
            else:
                post(f"http://{address}/fault", "none")
        output, _ = wrk.communicate(timeout=args.duration + 60)
        stop.set()
        watcher.join(timeout=2)
        with urllib.request.urlopen(url + "/metrics", timeout=2) as response:
            metrics = response.read().decode()
    finally:
        stop.set()
        try:
            os.kill(pid, signal.SIGCONT)  # type: ignore[possibly-undefined]
        except (OSError, NameError):
            pass
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=15)
        except subprocess.TimeoutExpired:
            daemon.kill()

    requests = re.search(r"(\d+) requests in", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    measured = latency(histogram, args.connections)
    print(
        f"scenario {args.scenario}, suspect_after_ms {args.suspect_after if args.suspect_after is not None else 'default'}, "
        f"hedge {args.hedge}, "
        f"wrk -t1 -c{args.connections} -d{args.duration}s --timeout 10s, fault at {args.fault_at} s"
    )
    print(f"requests {requests.group(1) if requests else '?'}, non-2xx {non_2xx.group(1) if non_2xx else 0}, "
          f"socket errors {'/'.join(errors.groups()) if errors else '0/0/0/0'} (connect/read/write/timeout)")
    print("raw latency ms: " + ", ".join(f"{k} {v:.2f}" for k, v in measured.items() if k != "samples"))
    counted = {}
    for name in ("lb_hedges_sent_total", "lb_hedges_won_total", "lb_hedges_lost_total", "lb_moved_requests_total",
                 "lb_retries_total"):
        found = re.search(rf"^{name} (\S+)$", metrics, re.MULTILINE)
        counted[name.removeprefix("lb_").removesuffix("_total")] = found.group(1) if found else "?"
    print("counters: " + ", ".join(f"{k} {v}" for k, v in counted.items()))
    print(f"first suspicion (daemon log): {suspected_after(work / 'daemon.log', fault_wall)}")  # type: ignore[possibly-undefined]
    print("server2 in /status:")
    for line in timeline:
        print("  " + line)


if __name__ == "__main__":
    main()
