#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine (Debian packages with
# apt-get, the Python extras with pip into .venv) and runs the whole suite. Run as root:
# the network-lab tests build namespaces, and CI fails (never skips) without them.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(influxdb snmpd snmp victoria-metrics nftables iproute2 iputils-ping)

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "scripts/test.sh: missing Debian packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
    echo "scripts/test.sh: installing Debian packages: ${missing[*]}"
    # Keep the packages' own daemons (influxdb, snmpd) from starting system-wide: tests start their own.
    policy_made=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_made=1
    fi
    trap '[ "$policy_made" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get update -q || { echo "scripts/test.sh: apt-get update failed" >&2; exit 1; }
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; then
        echo "scripts/test.sh: could not install Debian packages: ${missing[*]}" >&2
        exit 1
    fi
fi

for binary in influxd snmpd snmpget snmpbulkwalk victoria-metrics nft ip tc ping; do
    command -v "$binary" >/dev/null 2>&1 || { echo "scripts/test.sh: '$binary' not found after install" >&2; exit 1; }
done

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[collector,test]'

exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
