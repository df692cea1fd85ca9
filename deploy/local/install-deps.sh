#!/usr/bin/env bash
# Installs everything viscount needs to build, test and benchmark on Debian bookworm (as root),
# the fuzz targets' toolchain (clang-14 with its sanitizer and libFuzzer runtimes, llvm-14 for
# llvm-symbolizer), and what the container image and pod test use (podman with runc, debootstrap
# for the base image).
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: run as root (it uses apt-get)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
  build-essential cmake ninja-build pkg-config ccache git ca-certificates \
  libevent-dev node-llhttp libnghttp2-dev liburing-dev libssl-dev openssl \
  libspdlog-dev libfmt-dev nlohmann-json3-dev libyaml-cpp-dev \
  libgtest-dev libgmock-dev googletest libbenchmark-dev \
  clang-14 clang-format-14 libclang-rt-14-dev llvm-14 \
  curl nghttp2-client nghttp2-proxy wrk nginx-light haproxy gnuplot-nox linux-perf \
  python3 python3-h2 python3-httpx python3-fastapi python3-uvicorn python3-yaml \
  python3-websockets python3-grpcio \
  podman runc catatonit netavark aardvark-dns iptables debootstrap
