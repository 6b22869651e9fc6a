#!/usr/bin/env bash
# Checks the packages scripts/package.sh made (paths as its last two lines
# print them): installs the DEB with dpkg and removes it again (purge),
# leaving the machine as it was; lists the RPM with rpm. Needs root (CI runs
# as root), dpkg, rpm, man-db and systemd-analyze. Fails loudly, naming what
# is wrong.
#
#   scripts/check-packages.sh target/packages/crus_0.1.0-1_amd64.deb target/packages/crus-0.1.0-1.x86_64.rpm
set -euo pipefail

deb=${1:?usage: check-packages.sh DEB RPM}
rpm_file=${2:?usage: check-packages.sh DEB RPM}

fail() {
    echo "check-packages: FAILED: $*" >&2
    exit 1
}
as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# What the packages must hold (DEB paths; the RPM's differ only where noted).
FILES=(
    /usr/bin/crus
    /etc/crus/crus.toml
    /lib/systemd/system/crus.service
    /usr/lib/sysusers.d/crus.conf
    /usr/share/man/man1/crus.1
    /usr/share/man/man1/crus-serve.1
    /usr/share/man/man1/crus-session.1
    /usr/share/man/man1/crus-config.1
    /usr/share/man/man5/crus.toml.5
    /usr/share/bash-completion/completions/crus
    /usr/share/zsh/vendor-completions/_crus
    /usr/share/fish/vendor_completions.d/crus.fish
)

echo "==> the DEB: $deb"
[[ -f $deb ]] || fail "no DEB at $deb"
contents=$(dpkg-deb --contents "$deb")
for file in "${FILES[@]}"; do
    # cargo-deb puts units under /lib or /usr/lib depending on its version,
    # and compresses the man pages it names one by one.
    pattern=".$file"
    [[ $file == /lib/systemd/* ]] && pattern="lib/systemd/system/crus.service"
    [[ $file == /usr/share/man/* ]] && pattern=".$file"
    grep -qE -- "${pattern//./\\.}(\\.gz)?\$" <<<"$contents" || fail "the DEB lacks $file"
done
dpkg-deb --field "$deb" Package | grep -qx crus || fail "the DEB's package is not named crus"

was_installed=""
dpkg-query -W -f='${Status}' crus 2>/dev/null | grep -q "install ok installed" && was_installed=1
[[ -z $was_installed ]] || fail "a crus package is already installed here; this check installs and purges its own"
had_user=""
getent passwd crus >/dev/null && had_user=1
had_etc=""
[[ -e /etc/crus ]] && had_etc=1

cleanup() {
    as_root dpkg --purge crus >/dev/null 2>&1 || true
    if [[ -z $had_user ]] && getent passwd crus >/dev/null; then
        as_root userdel crus >/dev/null 2>&1 || true
        getent group crus >/dev/null && as_root groupdel crus >/dev/null 2>&1 || true
    fi
    [[ -n $had_etc ]] || as_root rm -rf /etc/crus
}
trap cleanup EXIT

as_root dpkg -i "$deb" || fail "dpkg -i $deb failed"
crus --version | grep -q '^crus ' || fail "crus --version: $(crus --version 2>&1)"
getent passwd crus >/dev/null || fail "the postinst made no crus user"
[[ -s /etc/crus/tokens ]] || fail "the postinst made no /etc/crus/tokens"
[[ $(stat -c '%a %G' /etc/crus/tokens) == "640 crus" ]] || fail "/etc/crus/tokens is $(stat -c '%a %U:%G' /etc/crus/tokens), not 640 root:crus"
dpkg-query --showformat='${Conffiles}\n' --show crus | grep -q ' /etc/crus/crus.toml ' \
    || fail "/etc/crus/crus.toml is not a conffile: $(dpkg-query --showformat='${Conffiles}' --show crus)"
unit=$(dpkg -L crus | grep '/systemd/system/crus.service$')
grep -q '^ExecStart=/usr/bin/crus serve --config /etc/crus/crus.toml$' "$unit" || fail "the unit does not run crus serve --config /etc/crus/crus.toml"
grep -q '^ExecStartPre=/usr/bin/crus config check' "$unit" || fail "the unit does not check its configuration first"
# systemd-analyze verify also runs the ExecStart binaries' existence checks.
verify=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify $unit: $verify"
grep -i "crus.service" <<<"$verify" && fail "systemd-analyze verify complains about the unit: $verify"
# The installed configuration is the one the unit checks before each start.
as_root crus config check --offline --config /etc/crus/crus.toml >/dev/null || fail "the installed /etc/crus/crus.toml fails crus config check"
for page in $(dpkg -L crus | grep '/usr/share/man/man[15]/.'); do
    [[ -f $page ]] || continue
    out=$(MANWIDTH=80 man -l "$page" 2>&1 >/dev/null) || fail "man -l $page: $out"
    [[ -z $out ]] || fail "man -l $page warns: $out"
done
man -l /usr/share/man/man1/crus-serve.1 | grep -q -- '--config' || fail "crus-serve(1) does not document --config"
for completion in /usr/share/bash-completion/completions/crus /usr/share/zsh/vendor-completions/_crus /usr/share/fish/vendor_completions.d/crus.fish; do
    grep -q serve "$completion" || fail "$completion does not complete crus serve"
done
bash -n /usr/share/bash-completion/completions/crus || fail "the bash completion is not valid bash"
as_root dpkg --purge crus || fail "dpkg --purge crus failed"
[[ ! -e /usr/bin/crus ]] || fail "/usr/bin/crus is still there after the purge"
[[ ! -e /etc/crus/tokens ]] || fail "/etc/crus/tokens is still there after the purge"
echo "the DEB installs, checks and purges cleanly"

echo "==> the RPM: $rpm_file"
[[ -f $rpm_file ]] || fail "no RPM at $rpm_file"
listing=$(rpm -qpl "$rpm_file")
for file in "${FILES[@]}"; do
    case $file in
        /lib/systemd/*) file=/usr/lib/systemd/system/crus.service ;;
        /usr/share/zsh/vendor-completions/_crus) file=/usr/share/zsh/site-functions/_crus ;;
    esac
    grep -qx -- "$file" <<<"$listing" || fail "the RPM lacks $file"
done
rpm -qp --queryformat '%{NAME}\n' "$rpm_file" | grep -qx crus || fail "the RPM's package is not named crus"
rpm -qp --requires "$rpm_file" | grep -q '^systemd' || fail "the RPM does not require systemd: $(rpm -qp --requires "$rpm_file")"
rpm -qp --requires "$rpm_file" | grep -q '^libc.so.6' || fail "the RPM lists no libc requirement (auto-req): $(rpm -qp --requires "$rpm_file")"
rpm -qp --configfiles "$rpm_file" | grep -qx /etc/crus/crus.toml || fail "/etc/crus/crus.toml is not a %config file of the RPM"
rpm -qp --queryformat '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' "$rpm_file" | grep -q '^/etc/crus/crus.toml cn' \
    || fail "/etc/crus/crus.toml is not %config(noreplace): $(rpm -qp --queryformat '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' "$rpm_file" | grep crus.toml)"
scripts=$(rpm -qp --scripts "$rpm_file")
for expected in "postinstall scriptlet" "/etc/crus/tokens" "systemd-sysusers" "preuninstall scriptlet" "disable --now crus.service" "postuninstall scriptlet" "try-restart crus.service"; do
    grep -qF -- "$expected" <<<"$scripts" || fail "the RPM's scriptlets lack \"$expected\":
$scripts"
done
echo "the RPM holds the files, requires and scriptlets expected"
