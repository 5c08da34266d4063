#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine (Debian packages with
# apt-get, the Python extras with pip into .venv) and runs the whole suite. Run as root:
# the network-lab tests build namespaces, and they fail (never skip) without them.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_debian_packages influxdb snmpd snmp victoria-metrics nftables iproute2 iputils-ping fping systemd chromium chromium-driver openssh-server poppler-utils
for binary in influxd snmpd snmpget snmpbulkwalk victoria-metrics nft ip tc ping fping systemd-analyze chromium chromedriver sshd pdftoppm; do
    command -v "$binary" >/dev/null 2>&1 || { echo "scripts/test.sh: '$binary' not found after install" >&2; exit 1; }
done
ensure_venv collector,test
ensure_fake_switches
# Two workers (tests/conftest.py says which tests go together): much of the suite waits on daemons
# and clocks. NETTVAKT_TEST_WORKERS=0 runs it in one process.
exec .venv/bin/python -m pytest -p no:cacheprovider -n "${NETTVAKT_TEST_WORKERS:-2}" "$@"
