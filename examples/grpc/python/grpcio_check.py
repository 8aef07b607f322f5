#!/usr/bin/env python3
"""grpcio (Python) servers and client through lb-daemon, as a new user would try it.

Three grpcio servers (unary `echo.Echo/Say`, raw bytes in and out, no generated code;
`grpc.health.v1` from grpcio-health-checking) on ephemeral ports, the daemon before them
with the static runtime, `upstream.protocol = "h2c"` and `heartbeat.kind = "grpc"`, and a
grpcio client sending `x-lb-key` metadata: 20 keys, 3 calls each. Passes when every call
succeeds, each key sticks to one server, the daemon spreads the keys over more than one
server, and the server's custom trailing metadata reaches the client.

    python3 examples/grpc/python/grpcio_check.py target/release/lb-daemon

Needs `pip install grpcio grpcio-health-checking`. Only 127.0.0.1 is contacted; the
daemon is stopped at the end. Exit status 0 on success, 1 on a failed check.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(name: str) -> tuple[grpc.Server, int]:
    def say(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.set_trailing_metadata((("x-served-by", name),))
        return request + b"|" + name.encode()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        "echo.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)}
    )
    server.add_generic_rpc_handlers((handler,))
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def wait_port(port: int, limit: float = 15.0) -> None:
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"grpcio_check: the daemon does not listen on {port}")


def main() -> int:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    daemon_bin = sys.argv[1]
    servers = [start_server(f"py{i + 1}") for i in range(3)]
    listen = free_port()
    replicas = "".join(
        f'[[runtime.replicas]]\nname = "py{i + 1}"\naddress = "127.0.0.1:{port}"\n'
        for i, (_, port) in enumerate(servers)
    )
    config = (
        f'listen = "127.0.0.1:{listen}"\n\n[upstream]\nprotocol = "h2c"\n\n'
        f'[heartbeat]\nkind = "grpc"\ninterval_ms = 300\ntimeout_ms = 250\n\n'
        f'[runtime]\nkind = "static"\n{replicas}'
    )
    workdir = Path(tempfile.mkdtemp(prefix="grpcio-check-"))
    (workdir / "lb.toml").write_text(config)
    log = open(workdir / "daemon.log", "w")
    daemon = subprocess.Popen([daemon_bin, "--config", str(workdir / "lb.toml")], stdout=log, stderr=subprocess.STDOUT)
    failures = []
    try:
        wait_port(listen)
        time.sleep(1.0)  # two heartbeat rounds: every replica confirmed SERVING
        channel = grpc.insecure_channel(f"127.0.0.1:{listen}")
        say = channel.unary_unary("/echo.Echo/Say")
        homes: dict[str, set[str]] = defaultdict(set)
        calls = 0
        for round_ in range(3):
            for k in range(20):
                key = f"user-{k}"
                message = f"hello {round_}".encode()
                try:
                    reply, call = say.with_call(message, metadata=(("x-lb-key", key),), timeout=5)
                except grpc.RpcError as e:
                    failures.append(f"{key}: {e.code()} {e.details()}")
                    continue
                calls += 1
                body, _, served = reply.partition(b"|")
                trailing = dict(call.trailing_metadata() or ())
                if body != message:
                    failures.append(f"{key}: echoed {body!r}")
                if trailing.get("x-served-by") != served.decode():
                    failures.append(f"{key}: trailing metadata {trailing!r}, served by {served!r}")
                homes[key].add(served.decode())
        moved = {k: v for k, v in homes.items() if len(v) != 1}
        used = set().union(*homes.values()) if homes else set()
        if moved:
            failures.append(f"keys on more than one server: {moved}")
        if len(used) < 2:
            failures.append(f"every key on {used}")
        print(f"grpcio_check: {calls}/60 calls succeeded, {len(homes)} keys each on one server, "
              f"servers used: {sorted(used)}, trailing metadata checked on every call")
        channel.close()
    finally:
        daemon.terminate()
        daemon.wait(timeout=15)
        for server, _ in servers:
            server.stop(0)
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
