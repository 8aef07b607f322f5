#!/usr/bin/env bash
# The peer benchmark: lb-daemon against nginx and HAProxy in one interleaved run, on
# this machine's loopback only. Installs what is missing (Debian nginx-light, haproxy,
# wrk), builds lb-daemon in release mode, then runs peers.py. Arguments go to peers.py
# (`--help` lists them; `--scale` runs the concurrency curve).
set -euo pipefail
cd "$(dirname "$0")/../.."
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
    $SUDO rm -f /usr/sbin/policy-rc.d
fi
cargo build --release --locked -p lb-daemon -p lb-examples
exec python3 benches/proxy/peers.py "$@"
