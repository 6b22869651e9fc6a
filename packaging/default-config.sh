#!/bin/sh
# Writes the /etc/crus/crus.toml the packages install: docs/crus.example.toml
# (given as $1) with every setting commented out, so the defaults apply and
# the comments document each key, except what an installed service needs:
# the database in the state directory and the token file the package's
# post-install script makes. The defaults run the simulated cluster on
# 127.0.0.1 only: the service starts, and does nothing to real nodes until
# [backends] names them.
set -eu
example=${1:?usage: default-config.sh docs/crus.example.toml}
cat <<'HEADER'
# /etc/crus/crus.toml: configuration of the crus service (man 5 crus.toml).
#
# Installed by the crus package; upgrades keep your changes (a new default
# is installed beside it as crus.toml.rpmnew or offered by dpkg). Every
# setting below is commented out and shows its default, except the database
# and the token file: as installed, crus serves a SIMULATED cluster on
# 127.0.0.1:8080. Choose real backends in [backends] and their sections, and
# check with `crus config check` before `systemctl restart crus`.
# The token accepted by the API is in /etc/crus/tokens (made at install).

HEADER
awk '
    /^\[server\]$/ { print; print "db = \"/var/lib/crus/crus.db\""; next }
    /^\[auth\]$/ { print; print "tokens_file = \"/etc/crus/tokens\""; next }
    /^db = / || /^# tokens_file = / { next }
    /^[^#]/ { print "# " $0; next }
    { print }
' "$example"
