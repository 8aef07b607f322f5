#!/usr/bin/env python3
"""The peer benchmark: lb-daemon against nginx and HAProxy, interleaved, on loopback.

Three nginx backends (one nginx, `worker_processes 1`, three ports) answer every
request with their name. In front of them, each with the same number of workers:

- nginx:     `hash $arg_key consistent`, upstream `keepalive 64`
- HAProxy:   `balance url_param key`, `hash-type consistent`, `http-reuse always`
- lb-daemon: static runtime, `hash = "nginx"`, `key = ["query:key"]`

`wrk -t1 -cC -dDs` sends a new `?key=` on every request (keyed.lua). Rounds are
interleaved (nginx, HAProxy, lb-daemon, then the next round in a rotated order) and
each cell reports the median of the rounds: req/s, wrk's printed p50/p99, the raw
p50/p75/p90/p99 (wrk's coordinated-omission samples taken out), the balancer's CPU
per request (user+system from /proc over the run) and non-2xx / socket errors.

Modes:
  default   one table per worker count (--workers 1,2) at -c64.
  --scale   -c64, -c1024, -c4096 and -c64 with `Connection: close`, one worker each,
            plus RSS 5 s into each run and 10 s after it, and the kernel's listen
            overflows during lb-daemon's runs; then a cell with bodies (three
            replica-server backends: 10 % POSTs of 4 KiB to /echo, 10 % chunked
            responses from /chunked/4096, the rest GET /home), a cell of 1 MiB
            responses at -c16 (MB/s and CPU ms per MB), five back-to-back -c4096 runs
            (RSS 10 s after each), and `--plot FILE`: req/s and p99 against connections
            as SVG.

Only 127.0.0.1 is ever contacted; every run is bounded by --duration.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "target" / "peer-bench"
BACKEND_PORTS = [18081, 18082, 18083]
PORTS = {"nginx": 18090, "haproxy": 18091, "lb-daemon": 18092}
BALANCERS = ["nginx", "haproxy", "lb-daemon"]
TICK = os.sysconf("SC_CLK_TCK")


def which(*names: str) -> str:
    for name in names:
        found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
        if found:
            return found
    sys.exit(f"peers.py: {names[0]} is missing (run benches/proxy/peers.sh)")


def wait_port(port: int, limit: float = 15.0) -> None:
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"peers.py: nothing listens on 127.0.0.1:{port}")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def listen_overflows() -> int:
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            return int(table.get("ListenOverflows", 0))
    return 0


class Server:
    """A child process (or nginx master) and the pids whose CPU counts as its own."""

    def __init__(self, name: str, argv: list[str], port: int, workers_are_children: bool):
        self.name = name
        log = open(WORK / f"{name}.log", "w")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.workers_are_children = workers_are_children
        wait_port(port)
        time.sleep(0.3)

    def pids(self) -> list[int]:
        if self.workers_are_children:
            return children(self.proc.pid) or [self.proc.pid]
        return [self.proc.pid]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGQUIT if self.workers_are_children else signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


REPLICA_PORTS = [18181, 18182, 18183]
BIG = WORK / "big.bin"


def start_backends() -> Server:
    BIG.write_bytes(b"x" * (1 << 20))
    servers = "\n".join(
        f"  server {{ listen 127.0.0.1:{port} backlog=65535; location / {{ return 200 \"b{i + 1}\\n\"; }}"
        f" location = /big {{ alias {BIG}; }} }}"
        for i, port in enumerate(BACKEND_PORTS)
    )
    conf = WORK / "backends.conf"
    conf.write_text(
        f"""worker_processes 1;
daemon off;
pid {WORK}/backends.pid;
error_log {WORK}/backends.err warn;
worker_rlimit_nofile 19000;
events {{ worker_connections 65536; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
{servers}
}}
"""
    )
    return Server("backends", [which("nginx"), "-c", str(conf), "-p", str(WORK)], BACKEND_PORTS[-1], True)


class Group:
    """Several servers started and stopped together (the replica-server backends)."""

    def __init__(self, servers: list[Server]):
        self.servers = servers

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def start_replica_backends() -> Group:
    binary = str(ROOT / "target" / "release" / "replica-server")
    return Group(
        [
            Server(f"replica-{i + 1}", [binary, "--id", f"b{i + 1}", "--port", str(port), "--host", "127.0.0.1"], port, False)
            for i, port in enumerate(REPLICA_PORTS)
        ]
    )


def start_nginx(workers: int, backends: list[int]) -> Server:
    upstreams = "\n".join(f"    server 127.0.0.1:{p};" for p in backends)
    conf = WORK / "nginx-lb.conf"
    conf.write_text(
        f"""worker_processes {workers};
daemon off;
pid {WORK}/nginx-lb.pid;
error_log {WORK}/nginx-lb.err warn;
worker_rlimit_nofile 19000;
events {{ worker_connections 65536; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  upstream app {{
    hash $arg_key consistent;
{upstreams}
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{PORTS['nginx']} backlog=4096;
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""
    )
    return Server("nginx", [which("nginx"), "-c", str(conf), "-p", str(WORK)], PORTS["nginx"], True)


def start_haproxy(workers: int, backends: list[int]) -> Server:
    servers = "\n".join(f"  server b{i + 1} 127.0.0.1:{p}" for i, p in enumerate(backends))
    conf = WORK / "haproxy.cfg"
    conf.write_text(
        f"""global
  nbthread {workers}
  maxconn 9000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend fe
  bind 127.0.0.1:{PORTS['haproxy']}
  default_backend be
backend be
  balance url_param key
  hash-type consistent
{servers}
"""
    )
    return Server("haproxy", [which("haproxy"), "-db", "-f", str(conf)], PORTS["haproxy"], False)


def start_lb(workers: int, backends: list[int]) -> Server:
    replicas = "\n".join(
        f'[[runtime.replicas]]\nname = "127.0.0.1:{p}"\naddress = "127.0.0.1:{p}"' for p in backends
    )
    conf = WORK / "lb.toml"
    conf.write_text(
        f"""listen = "127.0.0.1:{PORTS['lb-daemon']}"
workers = {workers}
hash = "nginx"
key = ["query:key"]

[server]
{os.environ.get("LB_SERVER_CONFIG", "")}

[runtime]
kind = "static"
{replicas}
"""
    )
    binary = os.environ.get("LB_DAEMON_BIN", str(ROOT / "target" / "release" / "lb-daemon"))
    return Server("lb-daemon", [binary, "--config", str(conf)], PORTS["lb-daemon"], False)


STARTERS = {"nginx": start_nginx, "haproxy": start_haproxy, "lb-daemon": start_lb}

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    return float(match.group(1)) * UNITS[match.group(2)] if match else float("nan")


def raw_percentiles(histogram: Path, connections: int) -> dict[str, float]:
    """Percentiles (ms) of the latencies wrk measured, without the synthetic samples its
    `stats_correct` added (wrk.c: for every recorded n ≥ 2·interval it adds samples at
    n − interval, n − 2·interval, ... while above interval; undone here from the top)."""
    lines = histogram.read_text().split("\n")
    duration = int(lines[0].split()[1])
    requests = int(lines[1].split()[1])
    counts = {}
    if len(lines) > 2 and lines[2] == "truncated":
        return {"p50": float("nan"), "p75": float("nan"), "p90": float("nan"), "p99": float("nan"), "samples": 0}
    for line in lines[2:]:
        if line.strip():
            value, count = line.split()
            counts[int(value)] = int(float(count))
    interval = duration // (requests // connections) if requests // connections > 0 else 0
    raw = dict(counts)
    top = max(counts) if counts else 0
    if interval > 0:
        for value in sorted(counts, reverse=True):
            if value <= interval:
                continue
            synthetic = 0
            above = value + interval
            while above <= top:
                synthetic += raw.get(above, 0)
                above += interval
            raw[value] = counts[value] - synthetic
    pairs = sorted((v, c) for v, c in raw.items() if c > 0)
    total = sum(c for _, c in pairs)
    result = {}
    for p in (50, 75, 90, 99):
        rank, seen = total * p / 100, 0
        for value, count in pairs:
            seen += count
            if seen >= rank:
                result[f"p{p}"] = value / 1000
                break
    result["samples"] = total
    return result


UNIT_BYTES = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}


def run_wrk(
    name: str, server: Server, args: argparse.Namespace, connections: int, close: bool = False, extra: dict | None = None
) -> dict:
    histogram = WORK / f"hist-{name}.txt"
    env = dict(os.environ, WRK_HISTOGRAM=str(histogram), WRK_CLOSE="1" if close else "0", **(extra or {}))
    pids = server.pids()
    cpu_before = cpu_seconds(pids)
    overflow_before = listen_overflows()
    rss_during = {}

    def sample_rss():
        time.sleep(min(5.0, args.duration / 2))
        rss_during["mib"] = rss_mib(pids)

    sampler = threading.Thread(target=sample_rss)
    sampler.start()
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{args.duration}s", "--latency", "-s", str(Path(__file__).parent / "keyed.lua"),
            f"http://127.0.0.1:{PORTS[name]}/"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=args.duration + 60).stdout
    sampler.join()
    cpu = cpu_seconds(pids) - cpu_before
    overflows = listen_overflows() - overflow_before
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)", out)
    mb_per_s = float(transfer.group(1)) * UNIT_BYTES[transfer.group(2)] / (1 << 20) if transfer else float("nan")
    lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result = {
        "rps": rps,
        "wrk_p50": wrk_ms(lat.get("50", "nan")),
        "wrk_p99": wrk_ms(lat.get("99", "nan")),
        "cpu_us": cpu / max(requests, 1) * 1e6,
        "mb_per_s": mb_per_s,
        "cpu_ms_per_mb": cpu * 1e3 / max(mb_per_s * args.duration, 1e-9),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
        "rss_mib": rss_during.get("mib", float("nan")),
        "overflows": overflows,
    }
    result.update(raw_percentiles(histogram, connections))
    return result


STAGES = ["request_head", "upstream_connection", "response_head", "response_body"]


def stage_snapshot() -> dict:
    """lb-daemon's `lb_request_stage_seconds` as {stage: {le: count}}, all workers summed
    (`le` as float; `inf` for +Inf), with "sum" and "count" under their own keys."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", PORTS["lb-daemon"], timeout=5)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
    except OSError:
        return {}
    found: dict = {}
    for line in text.splitlines():
        if not line.startswith("lb_request_stage_seconds"):
            continue
        stage = re.search(r'stage="(\w+)"', line).group(1)
        value = float(line.rsplit(" ", 1)[1])
        entry = found.setdefault(stage, {"sum": 0.0, "count": 0.0, "buckets": {}})
        if line.startswith("lb_request_stage_seconds_bucket"):
            le = re.search(r'le="([^"]+)"', line).group(1)
            le = float("inf") if le == "+Inf" else float(le)
            entry["buckets"][le] = entry["buckets"].get(le, 0.0) + value
        elif line.startswith("lb_request_stage_seconds_sum"):
            entry["sum"] += value
        elif line.startswith("lb_request_stage_seconds_count"):
            entry["count"] += value
    return found


def stage_line(before: dict, after: dict) -> str:
    """Mean and p90 (bucket upper bound) of each stage between two snapshots, ms."""
    parts = []
    for stage in STAGES:
        a, b = after.get(stage), before.get(stage, {"sum": 0.0, "count": 0.0, "buckets": {}})
        if not a:
            continue
        count = a["count"] - b["count"]
        if count <= 0:
            continue
        mean = (a["sum"] - b["sum"]) / count * 1e3
        p90 = float("nan")
        for le in sorted(a["buckets"]):
            if a["buckets"][le] - b["buckets"].get(le, 0.0) >= 0.9 * count:
                p90 = le * 1e3
                break
        parts.append(f"{stage} {mean:.3f} / ≤{p90:.3f}")
    return "; ".join(parts)


def key_check(keys: int) -> str:
    """Sends `keys` keys to each balancer twice and compares the backend each chose."""
    chosen = {}
    for name in BALANCERS:
        conn = http.client.HTTPConnection("127.0.0.1", PORTS[name], timeout=5)
        answers = []
        for attempt in range(2):
            picks = []
            for k in range(keys):
                conn.request("GET", f"/?key=check-{k}")
                picks.append(conn.getresponse().read().decode().strip())
            answers.append(picks)
        conn.close()
        stable = sum(a == b for a, b in zip(*answers))
        chosen[name] = (answers[0], stable)
    agree = sum(a == b for a, b in zip(chosen["lb-daemon"][0], chosen["nginx"][0]))
    lines = [f"- {name}: {stable:,} of {keys:,} keys to the same backend both times" for name, (_, stable) in chosen.items()]
    lines.append(f"- lb-daemon and nginx chose the same backend for {agree:,} of {keys:,} keys")
    agree_h = sum(a == b for a, b in zip(chosen["haproxy"][0], chosen["nginx"][0]))
    lines.append(
        f"- HAProxy and nginx: {agree_h:,} of {keys:,} (HAProxy's consistent ring places its points "
        "differently, so it is not expected to match)"
    )
    return "\n".join(lines)


def median_cells(results: list[dict]) -> dict:
    keys = results[0].keys()
    return {k: statistics.median(r[k] for r in results) for k in keys}


def table(rows: dict[str, dict], scale: bool, large: bool = False) -> str:
    head = "| balancer | req/s | wrk p50 ms | wrk p99 ms | raw p50 | raw p75 | raw p90 | raw p99 | CPU µs/req | non-2xx | socket errors |"
    if scale:
        head += " RSS MiB at 5 s | listen overflows |"
    if large:
        head += " MB/s | CPU ms/MB |"
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, m in rows.items():
        line = (
            f"| {name} | {m['rps']:,.0f} | {m['wrk_p50']:.2f} | {m['wrk_p99']:.2f} | {m['p50']:.2f} | {m['p75']:.2f} | "
            f"{m['p90']:.2f} | {m['p99']:.2f} | {m['cpu_us']:.1f} | {m['non2xx']:.0f} | {m['socket_errors']:.0f} |"
        )
        if scale:
            line += f" {m['rss_mib']:.1f} | {m['overflows']:.0f} |"
        if large:
            line += f" {m['mb_per_s']:,.0f} | {m['cpu_ms_per_mb']:.3f} |"
        out.append(line)
    lb, ha, ng = rows.get("lb-daemon"), rows.get("haproxy"), rows.get("nginx")
    if lb and ha and ng:
        out.append("")
        out.append(
            f"lb-daemon / HAProxy: req/s {lb['rps'] / ha['rps']:.2f}×, raw p99 {lb['p99'] / ha['p99']:.2f}×, "
            f"CPU/req {lb['cpu_us'] / ha['cpu_us']:.2f}×; lb-daemon / nginx: req/s {lb['rps'] / ng['rps']:.2f}×, "
            f"raw p99 {lb['p99'] / ng['p99']:.2f}×, CPU/req {lb['cpu_us'] / ng['cpu_us']:.2f}×"
        )
        if large:
            out.append(
                f"lb-daemon / HAProxy: MB/s {lb['mb_per_s'] / ha['mb_per_s']:.2f}×, "
                f"CPU per MB {lb['cpu_ms_per_mb'] / ha['cpu_ms_per_mb']:.2f}×"
            )
    return "\n".join(out)


class Cell:
    """One row group of a run: a load shape against one set of backends."""

    def __init__(self, label: str, connections: int, close: bool = False, extra: dict | None = None, large: bool = False):
        self.label, self.connections, self.close, self.extra, self.large = label, connections, close, extra or {}, large


def run_cells(args: argparse.Namespace, workers: int, cells: list[Cell], scale: bool, backends: list[int]) -> dict:
    """Runs `cells` (rounds interleaved) against balancers in front of `backends`;
    returns each cell's medians by balancer."""
    servers = {name: STARTERS[name](workers, backends) for name in BALANCERS}
    idle = {name: rss_mib(s.pids()) for name, s in servers.items()}
    medians = {}
    try:
        for cell in cells:
            results: dict[str, list[dict]] = {name: [] for name in BALANCERS}
            after: dict[str, list[float]] = {name: [] for name in BALANCERS}
            stages: list[str] = []
            for round_ in range(args.rounds):
                order = BALANCERS[round_ % 3:] + BALANCERS[: round_ % 3]
                for name in order:
                    before = stage_snapshot() if name == "lb-daemon" else {}
                    results[name].append(run_wrk(name, servers[name], args, cell.connections, cell.close, cell.extra))
                    if name == "lb-daemon":
                        stages.append(stage_line(before, stage_snapshot()))
                    if scale:
                        time.sleep(args.settle)
                        after[name].append(rss_mib(servers[name].pids()))
                    else:
                        time.sleep(1)
            rows = {name: median_cells(r) for name, r in results.items()}
            medians[cell.label] = rows
            print(f"\n### {cell.label}, {workers} worker(s) each, median of {args.rounds}\n")
            print(table(rows, scale, cell.large))
            if stages and any(stages):
                print("\nlb-daemon's stages per run (`lb_request_stage_seconds`, mean / p90 bucket, ms):\n")
                for line in stages:
                    print(f"- {line}")
            if scale:
                print()
                for name in BALANCERS:
                    runs = ", ".join(f"{v:.1f}" for v in after[name])
                    print(f"- {name}: idle RSS {idle[name]:.1f} MiB; {args.settle:.0f} s after each run: {runs} MiB")
            sys.stdout.flush()
        if args.keys and not scale:
            print(f"\nKey check ({workers} worker(s)):\n")
            print(key_check(args.keys))
    finally:
        for s in servers.values():
            s.stop()
    return medians


def back_to_back(args: argparse.Namespace, connections: int) -> None:
    """`args.repeats` runs of -c`connections` in a row per balancer (fresh process each),
    RSS read `args.settle` s after each: memory given back, and no growth."""
    print(f"\n### Memory over {args.repeats} back-to-back -c{connections} runs, one worker each\n")
    print("| balancer | idle MiB | RSS MiB 5 s into each run | RSS MiB " + f"{args.settle:.0f} s after each run |")
    print("|---|---:|---|---|")
    for name in BALANCERS:
        server = STARTERS[name](1, BACKEND_PORTS)
        try:
            idle = rss_mib(server.pids())
            during, after = [], []
            for _ in range(args.repeats):
                during.append(run_wrk(name, server, args, connections)["rss_mib"])
                time.sleep(args.settle)
                after.append(rss_mib(server.pids()))
        finally:
            server.stop()
        print(
            f"| {name} | {idle:.1f} | {', '.join(f'{v:.1f}' for v in during)} | {', '.join(f'{v:.1f}' for v in after)} |"
        )
        sys.stdout.flush()


def plot(medians: dict, path: Path) -> None:
    """req/s and raw p99 against connections, one line per balancer, as SVG (no
    plotting library needed)."""
    points = [(64, "-c64"), (1024, "-c1024"), (4096, "-c4096")]
    colors = {"nginx": "#2a9d8f", "haproxy": "#e76f51", "lb-daemon": "#264653"}
    width, height, pad = 360, 260, 50
    panels = [("req/s", "rps", False), ("raw p99 (ms, log)", "p99", True)]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * width}" height="{height + 40}" font-family="sans-serif" font-size="11">']
    for index, (title, key, log) in enumerate(panels):
        x0 = index * width
        values = [medians[label][name][key] for _, label in points for name in BALANCERS]
        top = max(values) * 1.1
        low = min(v for v in values if v > 0) / 1.5 if log else 0.0

        def y(v: float) -> float:
            if log:
                import math

                frac = (math.log10(max(v, low)) - math.log10(low)) / (math.log10(top) - math.log10(low))
            else:
                frac = v / top
            return height - pad / 2 - frac * (height - pad)

        def x(i: int) -> float:
            return x0 + pad + i * (width - 1.5 * pad) / (len(points) - 1)

        out.append(f'<text x="{x0 + width / 2}" y="14" text-anchor="middle" font-weight="bold">{title}</text>')
        out.append(f'<line x1="{x0 + pad}" y1="{height - pad / 2}" x2="{x0 + width - pad / 2}" y2="{height - pad / 2}" stroke="#999"/>')
        out.append(f'<line x1="{x0 + pad}" y1="{pad / 2}" x2="{x0 + pad}" y2="{height - pad / 2}" stroke="#999"/>')
        for i, (conns, _) in enumerate(points):
            out.append(f'<text x="{x(i)}" y="{height - pad / 2 + 14}" text-anchor="middle">{conns}</text>')
        for tick in (top / 1.1, (top / 1.1) / 2) if not log else (top / 1.1, low * 1.5):
            out.append(f'<text x="{x0 + pad - 4}" y="{y(tick) + 4}" text-anchor="end">{tick:,.0f}</text>')
        for name in BALANCERS:
            line = " ".join(f"{x(i):.1f},{y(medians[label][name][key]):.1f}" for i, (_, label) in enumerate(points))
            out.append(f'<polyline fill="none" stroke="{colors[name]}" stroke-width="2" points="{line}"/>')
            for i, (_, label) in enumerate(points):
                out.append(f'<circle cx="{x(i):.1f}" cy="{y(medians[label][name][key]):.1f}" r="3" fill="{colors[name]}"/>')
    for i, name in enumerate(BALANCERS):
        out.append(f'<rect x="{60 + i * 130}" y="{height + 18}" width="12" height="4" fill="{colors[name]}"/>')
        out.append(f'<text x="{78 + i * 130}" y="{height + 24}">{name}</text>')
    out.append(f'<text x="{width}" y="{height + 38}" text-anchor="middle">client connections (wrk -t1), one worker each</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")
    print(f"\nplot written to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2", help="worker counts, one table each (default 1,2)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--keys", type=int, default=10_000, help="keys for the routing check (0: skip)")
    parser.add_argument("--scale", action="store_true", help="the concurrency curve (one worker each)")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds after a scale run before RSS is read")
    parser.add_argument("--repeats", type=int, default=5, help="back-to-back -c4096 runs in the scale mode (0: skip)")
    parser.add_argument("--plot", type=Path, help="scale mode: write req/s and p99 against connections as SVG here")
    parser.add_argument("--only", help="scale mode: comma-separated cell names to run (c64,c1024,c4096,close,bodies,large)")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 200_000) if hard > 0 else soft), hard))
    backends = start_backends()
    try:
        print(f"peer benchmark on {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}")
        if args.scale:
            only = set(args.only.split(",")) if args.only else None
            curve = [
                ("c64", Cell("-c64", 64)),
                ("c1024", Cell("-c1024", 1024)),
                ("c4096", Cell("-c4096", 4096)),
                ("close", Cell("-c64, Connection: close", 64, close=True)),
                ("large", Cell("-c16, 1 MiB responses", 16, extra={"WRK_PATH": "/big"}, large=True)),
            ]
            medians = run_cells(args, 1, [c for n, c in curve if not only or n in only], True, BACKEND_PORTS)
            if not only or "bodies" in only:
                replicas = start_replica_backends()
                try:
                    bodies = Cell(
                        "-c64 with bodies (10 % POST 4 KiB, 10 % chunked responses)",
                        64,
                        extra={
                            "WRK_PATH": "/home",
                            "WRK_POST_EVERY": "10",
                            "WRK_POST_PATH": "/echo",
                            "WRK_CHUNKED_EVERY": "10",
                            "WRK_CHUNKED_PATH": "/chunked/4096",
                        },
                    )
                    run_cells(args, 1, [bodies], True, REPLICA_PORTS)
                finally:
                    replicas.stop()
            if args.repeats and (not only or "c4096" in only):
                back_to_back(args, 4096)
            if args.plot and all(label in medians for label in ("-c64", "-c1024", "-c4096")):
                plot(medians, args.plot)
        else:
            for workers in [int(w) for w in args.workers.split(",")]:
                run_cells(args, workers, [Cell(f"-c{args.connections}", args.connections)], False, BACKEND_PORTS)
    finally:
        backends.stop()


if __name__ == "__main__":
    main()
