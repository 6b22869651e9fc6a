#!/bin/sh
# RebootProgram of a crus test cluster (see mod.rs): "reboots" the node whose
# slurmd runs it by stopping that slurmd and starting it again with -b, which
# makes slurmd report a fresh boot, as a node coming back from a reboot does.
#
# slurmd runs this as root, with no argument and no node name, through
# system(), and waits for it: so the node is found by walking up to the
# `slurmd ... -N NODE` process, and the reboot itself runs detached.
#
# Per-node markers in this directory:
#   fail-NODE   exit 1 at once, rebooting nothing (slurmctld is not told; the
#               node times out after ResumeTimeout)
#   hang-NODE   stop slurmd and never start it again
#   delay-NODE  seconds the node stays down (default @DELAY@)
# Each reboot appends "NODE DOWN_AT UP_AT" (Unix seconds; UP_AT is "hang"
# for a node that never comes back) to reboots.log here.
dir='@DIR@'
conf='@CONF@'
slurmd='@SLURMD@'

if [ "$1" = restart ]; then
    node=$2 pid=$3
    kill "$pid" 2>/dev/null
    # The first slurmd of a node is the test's child and stays a zombie until
    # the test reaps it, so "stopped" means gone or a zombie.
    waited=0
    while [ -d "/proc/$pid" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; do
        sleep 0.1
        waited=$((waited + 1))
        [ "$waited" -eq 100 ] && kill -KILL "$pid" 2>/dev/null
    done
    down_at=$(date +%s.%N)
    if [ -e "$dir/hang-$node" ]; then
        echo "$node $down_at hang" >> "$dir/reboots.log"
        exit 0
    fi
    delay=@DELAY@
    [ -f "$dir/delay-$node" ] && delay=$(cat "$dir/delay-$node")
    sleep "$delay"
    echo "$node $down_at $(date +%s.%N)" >> "$dir/reboots.log"
    exec "$slurmd" -b -N "$node" -f "$conf"
fi

pid=$$ node= slurmd_pid=
while [ -n "$pid" ] && [ "$pid" -gt 1 ]; do
    # shellcheck disable=SC2046 # splitting the command line into words is the point
    set -- $(tr '\0' ' ' < "/proc/$pid/cmdline")
    case "$1" in
        *slurmd)
            while [ $# -gt 1 ]; do
                if [ "$1" = -N ]; then
                    node=$2 slurmd_pid=$pid
                fi
                shift
            done
            ;;
    esac
    [ -n "$node" ] && break
    pid=$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status")
done
if [ -z "$node" ]; then
    echo "fake-reboot: no 'slurmd ... -N NODE' among the parents of $$" >&2
    exit 1
fi
[ -e "$dir/fail-$node" ] && exit 1
# Detached, so slurmd's system() returns before this slurmd is stopped.
setsid "$0" restart "$node" "$slurmd_pid" < /dev/null >> "$dir/fake-reboot.out" 2>&1 &
exit 0
