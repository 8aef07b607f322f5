#!/usr/bin/env bash
# Builds the two images the Docker runtime and `docker compose` use, FROM scratch, each
# holding one statically linked binary (no base image is pulled):
#   lb-replica:latest  -> /replica-server   (listens on $PORT, default 8080)
#   lb-daemon:latest   -> /lb-daemon        (config at /etc/lb/lb.toml)
# Usage: examples/docker/build-images.sh   (from anywhere)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
target=x86_64-unknown-linux-gnu
# The dist profile: release without debug info or symbols (images stay under 20 MB).
RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --profile dist --locked --target "$target" -p lb-daemon -p lb-examples --bins
bin="$root/target/$target/dist"
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "$bin/replica-server" "$bin/lb-daemon" "$context/"
cp "$root/examples/docker/Dockerfile.replica" "$root/examples/docker/Dockerfile.daemon" "$context/"
docker build --quiet -t lb-replica:latest -f "$context/Dockerfile.replica" "$context"
docker build --quiet -t lb-daemon:latest -f "$context/Dockerfile.daemon" "$context"
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^lb-(replica|daemon):latest'
