#!/bin/sh
# hosts: 2
# timeout: 400
#
# A page handed over dirty to a READ that has given up is not lost. h1 owns
# /wfs/t and dirties its page through a mapping (no msync). h2 mounts /wfs
# with a 2 s timeout; h1 stops its manager; h2's read of the page times out
# (EIO) while its request to h1 waits (the manager stays stopped well
# past it). h1's manager resumes and sends the
# page, dirty, to h2, whose kernel no longer wants it: h2's manager writes
# it home instead. h1's /export then holds the dirty bytes, both hosts read
# them, and h2's pool gets every slot back.
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
fail() {
    echo "FAIL h$h: $*"
    wfsctl status || true
    exit 1
}
CTL=/wfs/ctl
STEP=0          # + 4*h: the step host h has reached
step() { $H/dsm set $CTL $((STEP + 4 * h)) "$1" || fail "cannot set step $1"; }
await() { $H/dsm wait $CTL $((STEP + 4 * $1)) "$2" 120 || fail "h$1 never reached step $2"; }
TEXT="dirty bytes of h1"

wfsctl wait --peers --timeout 90 || fail "peers not connected"
if [ "$h" = 1 ]; then
    # No periodic writeback, and a share of the dirty limit for WFS's bdi
    # (a new bdi has none, so every dirtied page would be written back at
    # once): the page stays dirty until it is taken.
    echo 0 > /proc/sys/vm/dirty_writeback_centisecs
    for b in /sys/class/bdi/wfs-*; do echo 50 > "$b/min_ratio"; done
    dd if=/dev/zero of=/export/ctl bs=4096 count=1 2>/dev/null
    dd if=/dev/zero of=/export/t bs=4096 count=1 2>/dev/null
    # Dirty in h1's page cache only.
    $H/mmapwrite /wfs/t 4096 0 "$TEXT"
    head -c 17 /export/t | grep -q "dirty" && fail "the page was written back already"
    step 1
    await 2 1
    # h2 reads 4 s after its step 1: stop the manager for 12 s (h2 gives
    # up 2 s into its read). The margins cover h1 seeing h2's step late (on
    # the debug kernel under TCG that once took more than 2 s) and h2's
    # read starting late.
    pid=$(pidof wfs-manager)
    kill -STOP "$pid"
    sleep 12
    kill -CONT "$pid"
    # h2's manager sends the page home.
    i=0
    until [ "$(head -c 17 /export/t)" = "$TEXT" ]; do
        i=$((i + 1))
        [ $i -lt 100 ] || fail "/export/t never got the dirty bytes: '$(head -c 17 /export/t)'"
        sleep 0.1
    done
    echo "h1: /export/t holds the page h2's kernel refused"
    [ "$(head -c 17 /wfs/t)" = "$TEXT" ] || fail "h1 reads '$(head -c 17 /wfs/t)'"
    step 2
    await 2 2
else
    appear 60 ctl || fail "$CTL never appeared"
    await 1 1
    umount /wfs
    mount -t wfs -o timeout=2 none /wfs || fail "mount -o timeout=2 refused"
    [ -e /wfs/t ] || fail "/wfs/t is gone after the remount"
    step 1
    sleep 4
    start=$(date +%s)
    if cat /wfs/t > /dev/null 2>/tmp/err; then fail "the read succeeded with h1's manager stopped"; fi
    grep -q 'Input/output error' /tmp/err || fail "read: $(cat /tmp/err)"
    echo "h2: the read gave up after $(( $(date +%s) - start )) s"
    # h1's manager is still stopped: back to the default time-out, so that
    # the step flags in /wfs/ctl (h1's) wait for it instead of failing.
    umount /wfs
    mount -t wfs none /wfs || fail "remount with the default time-out refused"
    await 1 2
    [ "$(head -c 17 /wfs/t)" = "$TEXT" ] || fail "h2 reads '$(head -c 17 /wfs/t)'"
    k=$(wfsctl kstatus)
    echo "$k" | grep -q "pool_free 64$" || fail "pool slots leaked: $k"
    home=$(wfsctl stats | grep '^pages:' | sed 's/.*gave up \([0-9]*\)[,;].*/\1/')
    [ "$home" -ge 1 ] || fail "no page went home after its READ gave up: $(wfsctl stats | grep '^pages:')"
    step 2
fi
# Whoever wrote last holds the page: stay up while the other reads it.
sleep 3
echo "PASS h$h"
