#!/usr/bin/env python3
"""Round-trip time of one keep-alive HTTP/1.1 connection against the gap between
requests: back to back, then 0.2, 1 and 5 ms apart (the client spins through each gap,
so its own wake-up is not measured), then 5 ms apart with a sleep.

    python3 benches/proxy/idle_rtt.py 127.0.0.1 PORT [PATH]

On the 2-core VM this project is measured on, any server (nginx, the replica server,
lb-daemon) answers a request that follows 5 ms of silence 0.25-0.6 ms later than one
that follows another at once: the machine's wake-up from idle, which `lbctl bench
--mode tsunami` at 200 req/s reports as latency and `--mode avalanche -c 1` does not
see. Standard library only; 400 requests per gap.
"""
import socket
import statistics
import sys
import time


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    path = sys.argv[3] if len(sys.argv) > 3 else "/home"
    conn = socket.create_connection((host, port))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nx-lb-key: k\r\n\r\n".encode()

    def one() -> float:
        start = time.perf_counter_ns()
        conn.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                raise SystemExit("the server closed the connection")
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                raise SystemExit("the server closed the connection")
            body += chunk
        return (time.perf_counter_ns() - start) / 1e6

    for gap_ms, spin in [(0, True), (0.2, True), (1, True), (5, True), (5, False)]:
        latencies = []
        for _ in range(400):
            if spin:
                due = time.perf_counter() + gap_ms / 1000
                while time.perf_counter() < due:
                    pass
            else:
                time.sleep(gap_ms / 1000)
            latencies.append(one())
        how = "spin" if spin else "sleep"
        print(f"gap {gap_ms:>4} ms ({how}): median {statistics.median(latencies):.3f} ms")


if __name__ == "__main__":
    main()
