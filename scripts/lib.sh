# Shared by scripts/demo.sh and scripts/test.sh: install what a fresh Debian machine lacks.

# ensure_debian_packages PKG...: installs the missing ones with apt-get (as root), else says which and fails.
ensure_debian_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "nettvakt: missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
        return 1
    fi
    echo "nettvakt: installing Debian packages: ${missing[*]}"
    # Keep the packages' own daemons (influxdb, snmpd) from starting system-wide: nettvakt starts its own.
    local policy_made=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_made=1
    fi
    local rc=0
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
    [ "$policy_made" = 1 ] && rm -f /usr/sbin/policy-rc.d
    if [ "$rc" -ne 0 ]; then
        echo "nettvakt: could not install Debian packages: ${missing[*]} (apt-get exit $rc)" >&2
        return 1
    fi
}

# ensure_venv EXTRAS: .venv with nettvakt installed in editable mode with the given extras.
ensure_venv() {
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[$1]"
}

# ensure_fake_switches: the Cisco switch emulator the SSH tests log into. Its 1.5.0 release
# pins an old Twisted; its real dependencies come with the `test` extra, so no deps here.
ensure_fake_switches() {
    .venv/bin/python -c "import fake_switches" 2>/dev/null && return 0
    .venv/bin/python -m pip install -q --no-deps "fake-switches==1.5.0"
}
