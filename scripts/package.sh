#!/usr/bin/env bash
# Builds the crus packages: a DEB (cargo-deb) and an RPM (cargo-generate-rpm)
# of one build of `crus` with the etcd store, with its systemd unit, default
# /etc/crus/crus.toml, man pages and shell completions. Prints the paths of
# the two packages on its last two lines.
#
#   scripts/package.sh                      # the release profile: what sites install
#   scripts/package.sh --profile ci-package # a cheaper optimised build, same contents
#   scripts/package.sh --profile ci-package --binary target/debug/crus
#                                           # package a crus already built with
#                                           # --features etcd (CI: the test build's)
#
# cargo-deb and cargo-generate-rpm are built once into target/tools (or
# $CRUS_PACKAGE_TOOLS) and reused. The etcd feature needs protoc at build
# time only (apt-get install protobuf-compiler); the package does not.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)

profile=release
binary=""
while (($#)); do
    case $1 in
        --binary) binary=${2:?--binary needs the path of a crus built with --features etcd}; shift 2 ;;
        --profile) profile=${2:?--profile needs a profile name}; shift 2 ;;
        --profile=*) profile=${1#--profile=}; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "error: unknown argument $1 (see $0 --help)" >&2; exit 2 ;;
    esac
done

CARGO_DEB_VERSION=3.7.0
CARGO_GENERATE_RPM_VERSION=0.19.0
tools=${CRUS_PACKAGE_TOOLS:-$root/target/tools}
target_dir=${CARGO_TARGET_DIR:-$root/target}
out="$target_dir/$profile"

# Installs a cargo subcommand at a pinned version into $tools, once.
install_tool() {
    local crate=$1 version=$2
    if [[ -x "$tools/bin/$crate" ]] && [[ "$(cat "$tools/.$crate" 2>/dev/null)" == "$version" ]]; then
        return
    fi
    echo "==> building $crate $version into $tools (once)"
    cargo install --locked --quiet --root "$tools" --version "$version" "$crate"
    echo "$version" > "$tools/.$crate"
}
install_tool cargo-deb "$CARGO_DEB_VERSION"
install_tool cargo-generate-rpm "$CARGO_GENERATE_RPM_VERSION"
export PATH="$tools/bin:$PATH"

if [[ -n $binary ]]; then
    # cargo-deb and cargo-generate-rpm take the binary from the profile's
    # directory; the given one is put there.
    "$binary" --version >/dev/null || { echo "error: $binary does not run" >&2; exit 1; }
    echo "==> packaging $binary as the $profile build"
    mkdir -p "$out"
    cp "$binary" "$out/crus"
else
    if ! command -v protoc >/dev/null; then
        echo "error: protoc is missing; the etcd store needs it to build (apt-get install protobuf-compiler)" >&2
        exit 1
    fi
    echo "==> cargo build --profile $profile -p crus-cli --features etcd"
    cargo build --locked --profile "$profile" -p crus-cli --features etcd
fi

echo "==> man pages, completions and the default configuration"
rm -rf "$out/package"
mkdir -p "$out/package"
# The packaged binary without debug information (symbols stay, so a
# backtrace still names functions): a tenth of the size, and fast to compress.
strip --strip-debug -o "$out/package/crus" "$out/crus"
"$out/crus" generate man "$out/package/man"
"$out/crus" generate completions "$out/package/completions"
sh packaging/default-config.sh docs/crus.example.toml > "$out/package/crus.toml"
# The default file must pass the check the unit runs before every start
# (its token file exists once installed; here a stand-in does).
sed "s|/etc/crus/tokens|$out/package/tokens-for-check|" "$out/package/crus.toml" > "$out/package/crus-check.toml"
echo "stand-in" > "$out/package/tokens-for-check"
"$out/crus" config check --offline --config "$out/package/crus-check.toml" >/dev/null
rm "$out/package/crus-check.toml" "$out/package/tokens-for-check"

echo "==> cargo deb"
deb=$(cargo deb -p crus-cli --no-build --profile "$profile" --output "$target_dir/packages/" | tail -n 1)
echo "==> cargo generate-rpm"
cargo generate-rpm -p crates/cli --profile "$profile" --target-dir "$target_dir" --output "$target_dir/packages/"
rpm=$(ls -t "$target_dir"/packages/crus-*.rpm | head -n 1)
echo "$deb"
echo "$rpm"
