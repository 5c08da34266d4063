#!/usr/bin/env bash
# Installs nettvakt (and, as root, a local InfluxDB) and runs `nettvakt demo`: a collector and
# an agent on this machine. Without root it runs without InfluxDB: the collector keeps the
# points in its own durable store until InfluxDB is configured.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

if [ "$(id -u)" -eq 0 ]; then
    ensure_debian_packages influxdb
fi
ensure_venv collector
exec .venv/bin/nettvakt demo "$@"
