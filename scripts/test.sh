#!/usr/bin/env bash
# Installs what the tests need (idempotently), then checks formatting and
# lints and runs every test of the workspace. Exits non-zero on any failure.
#
# Tests that need a real component start it themselves from what is installed
# here, and fail loudly (naming this script) when it is missing.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)

# Debian packages the tests need.
SYSTEM_PACKAGES=(python3-venv slurmctld slurmd slurm-client munge openssl etcd-server etcd-client protobuf-compiler chromium chromium-driver
    prometheus prometheus-alertmanager
    rpm man-db systemd dpkg-dev)
# Python tools the tests need, installed in a virtualenv under the build directory.
PYTHON_PACKAGES=("schemathesis==4.32.5" "sushy-tools==2.2.0")
VENV="$root/target/py"

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

install_system_packages() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if ((${#missing[@]})); then
        echo "==> installing system packages: ${missing[*]}"
        as_root apt-get update -q
        # The munge and slurm packages' init scripts would start system daemons
        # (and grab their ports) at install time; the tests start their own.
        # A policy-rc.d that denies starts prevents that; one made here is
        # removed again so later installs behave as before.
        local made_policy=""
        if [[ ! -e /usr/sbin/policy-rc.d ]]; then
            printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
            as_root chmod +x /usr/sbin/policy-rc.d
            made_policy=1
        fi
        local status=0
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends "${missing[@]}" || status=$?
        if [[ -n $made_policy ]]; then as_root rm -f /usr/sbin/policy-rc.d; fi
        return "$status"
    fi
}

install_python_tools() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "==> creating the test virtualenv in $VENV"
        python3 -m venv "$VENV"
    fi
    local stamp="$VENV/.installed"
    local wanted="${PYTHON_PACKAGES[*]}"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
        echo "==> installing Python tools: $wanted"
        "$VENV/bin/pip" install -q --disable-pip-version-check "${PYTHON_PACKAGES[@]}"
        echo "$wanted" > "$stamp"
    fi
}

if ! command -v cargo >/dev/null; then
    echo "error: cargo is not installed; install Rust (https://rustup.rs) and run again" >&2
    exit 1
fi

if command -v apt-get >/dev/null; then
    install_system_packages "${SYSTEM_PACKAGES[@]}"
else
    echo "warning: no apt-get; make sure these are installed: ${SYSTEM_PACKAGES[*]}" >&2
fi
install_python_tools

# Where the tests find the tools installed above.
export CRUS_SCHEMATHESIS="$VENV/bin/schemathesis"
export CRUS_SUSHY_EMULATOR="$VENV/bin/sushy-emulator"

# Incremental compilation pays off when a crate is rebuilt after a small
# change; on a cold build (CI's clean clone) it only costs: crus-core and its
# tests built in 339 s with it and 115 s without. A caller may still set it.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

echo "==> cargo test --workspace --all-features"
cargo test --workspace --all-features

# The packages, of the crus the tests above built (with every feature, etcd
# included): the same files as the release packages sites install (see
# README "Install"), without a second build of the workspace. Then the DEB
# is installed, checked and purged, and the RPM listed. cargo-deb and
# cargo-generate-rpm are built once into target/tools.
echo "==> scripts/package.sh --profile ci-package --binary (the test build's crus)"
package_output=$(mktemp)
scripts/package.sh --profile ci-package --binary "${CARGO_TARGET_DIR:-$root/target}/debug/crus" | tee "$package_output"
deb=$(tail -n 2 "$package_output" | head -n 1)
rpm=$(tail -n 1 "$package_output")
rm -f "$package_output"
echo "==> scripts/check-packages.sh"
scripts/check-packages.sh "$deb" "$rpm"
