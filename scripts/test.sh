#!/usr/bin/env bash
# Installs what the tests need (idempotently), then runs every test of the workspace.
#
# Later features add their system packages to SYSTEM_PACKAGES and their Python
# tools to the virtualenv below; the script installs only what is missing.
set -euo pipefail

cd "$(dirname "$0")/.."

# Debian packages the tests need (real components are started by the tests themselves).
SYSTEM_PACKAGES=()

install_system_packages() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if ((${#missing[@]})); then
        echo "==> installing system packages: ${missing[*]}"
        local sudo=""
        [[ $(id -u) -eq 0 ]] || sudo="sudo"
        $sudo apt-get update -q
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

if ((${#SYSTEM_PACKAGES[@]})); then
    install_system_packages "${SYSTEM_PACKAGES[@]}"
fi

if ! command -v cargo >/dev/null; then
    echo "error: cargo is not installed; install Rust (https://rustup.rs) and run again" >&2
    exit 1
fi

echo "==> cargo test --workspace --all-features"
cargo test --workspace --all-features
