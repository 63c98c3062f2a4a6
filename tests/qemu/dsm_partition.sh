#!/bin/sh
# hosts: 3
# timeout: 600
# cut: 2@8+9
#
# A link cut shorter than the failure time-out loses nothing. h1 and h2
# count at once in one page of h3's (`dsm tally`: a spin lock, the counter,
# each host's own count); 8 s into its command h2 is cut off the network
# for 9 s (tools/wfs-vm --cut): longer than the 5 s without heartbeat that
# closes its connections, shorter than that plus the 10 s failure
# time-out. Faults that need the other side wait; when the link heals the
# managers reconnect, resend what the other did not acknowledge, and go
# on.
#
# - Both finish all their increments: the counter is exactly 2 N, and so
#   are the hosts' own counts.
# - Nobody was taken for dead and no page was reported lost; the
#   connections did drop and come back (h2's connection count grew).
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
N=1500
PAUSE=3000
READY=16         # + 4*h: h is ready
DONE=48          # + 4*h: h has counted
fail() { fail_with_state "$@"; }
connections() { wfsctl stats | sed -n 's/^peer messages: .*; connections \([0-9]*\)$/\1/p'; }

echo 0 > /proc/sys/vm/dirty_writeback_centisecs
wfsctl wait --peers --timeout 90 || fail "peers not connected"
if [ "$h" = 3 ]; then
    dd if=/dev/zero of=/export/ctr bs=4096 count=1 2>/dev/null
    dd if=/dev/zero of=/export/ctl bs=4096 count=1 2>/dev/null
fi
appear 60 ctr ctl || fail "/wfs/ctr or /wfs/ctl never appeared"
before=$(connections)

if [ "$h" != 3 ]; then
    other=$((3 - h))
    together /wfs/ctl $READY $other || fail "h$other never got ready"
    start=$(date +%s)
    v=$($H/dsm tally /wfs/ctr $N $h 50 $PAUSE) || fail "counting failed (status $?)"
    echo "h$h: counted $N in $(($(date +%s) - start)) s; the counter was $v"
    $H/dsm set /wfs/ctl $((DONE + 4 * h)) 1
fi
$H/dsm wait /wfs/ctl $((DONE + 4)) 1 300 || fail "h1 never finished counting"
$H/dsm wait /wfs/ctl $((DONE + 8)) 1 300 || fail "h2 never finished counting"
c=$($H/dsm get /wfs/ctr 4)
m1=$($H/dsm get /wfs/ctr 12)
m2=$($H/dsm get /wfs/ctr 16)
echo "h$h: counter $c = h1 $m1 + h2 $m2"
[ "$c" = $((2 * N)) ] && [ "$m1" = $N ] && [ "$m2" = $N ] || fail "counter $c (h1 $m1, h2 $m2), not $((2 * N)) ($N each)"
[ "$(failures 1)" = 0 ] || fail "a peer was taken for dead"
[ "$(failures 2)" = 0 ] || fail "a page was reported lost"
if [ "$h" = 2 ]; then
    [ "$(connections)" -gt "$before" ] || fail "the connections never dropped: the cut did not happen during the run"
fi
# Stay until everyone has read (h3's files go with it).
$H/dsm set /wfs/ctl $((64 + 4 * h)) 1
for o in 1 2 3; do
    $H/dsm wait /wfs/ctl $((64 + 4 * o)) 1 120 || fail "h$o never read"
done
sleep 2
echo "PASS h$h"
