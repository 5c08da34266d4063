#!/usr/bin/env bash
# Installs nettvakt with snmpsim (and, as root, a local InfluxDB) and runs `nettvakt demo`: a
# collector, an agent on this machine, and a simulated firewall, switch, printer and UPS, with
# alert rules and a replacement plan. Without root it runs without InfluxDB: the collector keeps
# the points in its own durable store until InfluxDB is configured.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

if [ "$(id -u)" -eq 0 ]; then
    ensure_debian_packages influxdb
fi
ensure_venv collector,demo
exec .venv/bin/nettvakt demo "$@"
