#!/usr/bin/env python3
"""The HTTP/2 and gRPC peer benchmark: lb-daemon against HAProxy and nginx, interleaved,
one worker each, driven by `h2load` (Debian nghttp2-client) over h2c on loopback.

- `--mode h2c`: h2c clients, HTTP/1.1 to the three nginx backends of peers.py.
  `h2load -c16 -m32 -t1` over 20,000 keyed URIs (`/?key=N`).
  nginx `listen … http2` + `hash $arg_key consistent`; HAProxy `bind … proto h2` +
  `balance url_param key`; lb-daemon `key = ["query:key"]`.
- `--mode grpc`: gRPC unary calls (`/echo.Echo/Say?key=N`, one pre-encoded
  `SayRequest`, `content-type: application/grpc`, `te: trailers`) to three
  `grpc-replica` (tonic) processes over h2c: HAProxy `server … proto h2`, nginx
  `grpc_pass` with `hash $arg_key consistent`, lb-daemon `upstream.protocol = "h2c"`.

Each cell is the median of the rounds: req/s, the balancer's CPU per request (user +
system of its processes from /proc over the run, µs), h2load's mean and max request
time, and failed/errored requests (a gRPC call counts as succeeded on HTTP 200: a
trailers-only failure would show in the replicas' own counts, not here).

Only 127.0.0.1 is contacted; every run is bounded by --duration.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402  (shared process helpers)
from peers import ROOT, WORK, Server, cpu_seconds, which  # noqa: E402

PORTS = {"nginx": 18290, "haproxy": 18291, "lb-daemon": 18292}
GRPC_PORTS = [18281, 18282, 18283]
BALANCERS = ["nginx", "haproxy", "lb-daemon"]


def start_grpc_replicas() -> peers.Group:
    binary = str(ROOT / "target" / "release" / "grpc-replica")
    return peers.Group(
        [
            Server(f"grpc-{i + 1}", [binary, "--id", f"g{i + 1}", "--port", str(port), "--host", "127.0.0.1"], port, False)
            for i, port in enumerate(GRPC_PORTS)
        ]
    )


def start_nginx(mode: str, backends: list[int]) -> Server:
    upstreams = "\n".join(f"    server 127.0.0.1:{p};" for p in backends)
    if mode == "grpc":
        location = "grpc_pass grpc://app;"
    else:
        location = 'proxy_pass http://app;\n      proxy_http_version 1.1;\n      proxy_set_header Connection "";'
    conf = WORK / "nginx-h2.conf"
    conf.write_text(
        f"""worker_processes 1;
daemon off;
pid {WORK}/nginx-h2.pid;
error_log {WORK}/nginx-h2.err warn;
worker_rlimit_nofile 19000;
events {{ worker_connections 65536; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  http2_max_requests 1000000;
  upstream app {{
    hash $arg_key consistent;
{upstreams}
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{PORTS['nginx']} http2 backlog=4096;
    location / {{
      {location}
    }}
  }}
}}
"""
    )
    return Server("nginx", [which("nginx"), "-c", str(conf), "-p", str(WORK)], PORTS["nginx"], True)


def start_haproxy(mode: str, backends: list[int]) -> Server:
    proto = " proto h2" if mode == "grpc" else ""
    servers = "\n".join(f"  server b{i + 1} 127.0.0.1:{p}{proto}" for i, p in enumerate(backends))
    conf = WORK / "haproxy-h2.cfg"
    conf.write_text(
        f"""global
  nbthread 1
  maxconn 9000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend fe
  bind 127.0.0.1:{PORTS['haproxy']} proto h2
  default_backend be
backend be
  balance url_param key
  hash-type consistent
{servers}
"""
    )
    return Server("haproxy", [which("haproxy"), "-db", "-f", str(conf)], PORTS["haproxy"], False)


def start_lb(mode: str, backends: list[int]) -> Server:
    protocol = "h2c" if mode == "grpc" else "http1"
    replicas = "\n".join(
        f'[[runtime.replicas]]\nname = "127.0.0.1:{p}"\naddress = "127.0.0.1:{p}"' for p in backends
    )
    heartbeat = 'kind = "grpc"' if mode == "grpc" else ""
    conf = WORK / "lb-h2.toml"
    conf.write_text(
        f"""listen = "127.0.0.1:{PORTS['lb-daemon']}"
workers = 1
hash = "nginx"
key = ["query:key"]

[upstream]
protocol = "{protocol}"

[heartbeat]
{heartbeat}

[runtime]
kind = "static"
{replicas}
"""
    )
    binary = peers.os.environ.get("LB_DAEMON_BIN", str(ROOT / "target" / "release" / "lb-daemon"))
    return Server("lb-daemon", [binary, "--config", str(conf)], PORTS["lb-daemon"], False)


STARTERS = {"nginx": start_nginx, "haproxy": start_haproxy, "lb-daemon": start_lb}


def say_request() -> Path:
    """A framed `SayRequest { message: "hello" }`."""
    message = b"\x0a\x05hello"
    path = WORK / "say.bin"
    path.write_bytes(b"\x00" + len(message).to_bytes(4, "big") + message)
    return path


def uris(mode: str, port: int, keys: int) -> Path:
    path = WORK / f"uris-{mode}-{port}.txt"
    target = "/echo.Echo/Say" if mode == "grpc" else "/"
    path.write_text("".join(f"http://127.0.0.1:{port}{target}?key={k}\n" for k in range(keys)))
    return path


def run_h2load(args: argparse.Namespace, name: str, server: Server) -> dict:
    port = PORTS[name]
    argv = [which("h2load"), "-c", str(args.connections), "-m", str(args.streams), "-t", "1",
            "-D", str(args.duration), "-i", str(uris(args.mode, port, args.keys))]
    if args.mode == "grpc":
        argv += ["-d", str(say_request()), "-H", "content-type: application/grpc", "-H", "te: trailers"]
    before = cpu_seconds(server.pids())
    out = subprocess.run(argv, capture_output=True, text=True, timeout=args.duration + 60).stdout
    cpu = cpu_seconds(server.pids()) - before
    done = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    times = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    status = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if not (done and rps and times):
        sys.exit(f"h2load output not understood for {name}:\n{out}")
    succeeded = int(done.group(4))
    return {
        "rps": float(rps.group(1)),
        "cpu_us": cpu / max(succeeded, 1) * 1e6,
        "mean": times.group(3),
        "max": times.group(2),
        "failed": int(done.group(5)) + int(done.group(6)) + (int(status.group(4)) if status else 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["h2c", "grpc"], default="h2c")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--keys", type=int, default=20000)
    parser.add_argument("--only", default=",".join(BALANCERS), help="balancers to run, comma-separated")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    names = [n for n in BALANCERS if n in args.only.split(",")]
    backends_server = start_grpc_replicas() if args.mode == "grpc" else peers.start_backends()
    backends = GRPC_PORTS if args.mode == "grpc" else peers.BACKEND_PORTS
    results: dict[str, list[dict]] = {n: [] for n in names}
    try:
        for r in range(args.rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                server = STARTERS[name](args.mode, backends)
                try:
                    time.sleep(0.5)
                    cell = run_h2load(args, name, server)
                finally:
                    server.stop()
                results[name].append(cell)
                print(f"round {r + 1} {name:9} {cell['rps']:>10.0f} req/s  {cell['cpu_us']:6.1f} µs CPU/req"
                      f"  mean {cell['mean']:>8}  max {cell['max']:>8}  failed {cell['failed']}", flush=True)
    finally:
        backends_server.stop()
    print(f"\n{args.mode}: h2load -c{args.connections} -m{args.streams} -t1 -D{args.duration}, "
          f"{args.keys} keyed URIs, one worker each, median of {args.rounds} rounds")
    print("| balancer | req/s | vs HAProxy | CPU µs/req | mean | max | failed |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    medians = {n: statistics.median(c["rps"] for c in results[n]) for n in names}
    for name in names:
        cpu = statistics.median(c["cpu_us"] for c in results[name])
        ratio = medians[name] / medians["haproxy"] if "haproxy" in medians else float("nan")
        mid = sorted(results[name], key=lambda c: c["rps"])[len(results[name]) // 2]
        failed = sum(c["failed"] for c in results[name])
        print(f"| {name} | {medians[name]:.0f} | {ratio:.2f}x | {cpu:.1f} | {mid['mean']} | {mid['max']} | {failed} |")


if __name__ == "__main__":
    main()
