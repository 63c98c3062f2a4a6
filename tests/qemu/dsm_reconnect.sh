#!/bin/sh
# hosts: 2
# timeout: 600
# coherence: single mrsw
# debug-coherence: mrsw
#
# The connection between two managers drops again and again while their
# hosts share a page, and the cluster carries on: both hosts increment a
# counter guarded by a spin lock in one shared page (owned by h1) 1000
# times each, while each manager closes its connection to the other every
# 0.3 s (`wfsctl disconnect`). The counter ends at exactly 2000 on both
# hosts and on h1's disk, the managers reconnected every time, and
# messages in flight at a drop were sent again on the next connection
# (sessions: none lost, none delivered twice).
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
F=/wfs/r
LOCK=0
COUNTER=4
DONE=64          # + 4*h: h has counted
RESENT=96        # + 4*h: messages h's manager sent again
FINISHED=128     # 1: h1 has checked its disk
fail() {
    echo "FAIL h$h: $*"
    wfsctl status || true
    wfsctl stats || true
    exit 1
}
if [ "$h" = 1 ]; then other=h2; else other=h1; fi
stat_line() { wfsctl stats | grep '^peer messages'; }
# "peer messages: sent A, received B, sent again after a reconnection C; connections D"
resent() { stat_line | sed 's/.*reconnection \([0-9]*\);.*/\1/'; }
connections() { stat_line | sed 's/.*connections \([0-9]*\)$/\1/'; }

wfsctl wait --peers --timeout 90 || fail "peers not connected"
if [ "$h" = 1 ]; then
    dd if=/dev/zero of=/export/r bs=4096 count=1 2>/dev/null
fi
appear 60 r || fail "$F never appeared"
before=$(connections)

# Drop the connection every 0.3 s while counting.
(
    while [ ! -e /tmp/stop ]; do
        wfsctl disconnect $other >/dev/null 2>&1 || true
        sleep 0.3
    done
) &
dropper=$!
v=$($H/dsm count $F $LOCK 1000 1000) || fail "counting failed"
touch /tmp/stop
wait $dropper
echo "h$h: counted; the counter was $v when it finished"
$H/dsm set $F $((DONE + 4 * h)) 1
$H/dsm wait $F $((DONE + 4 * 1)) 1 300 || fail "h1 never finished counting"
$H/dsm wait $F $((DONE + 4 * 2)) 1 300 || fail "h2 never finished counting"
v=$($H/dsm get $F $COUNTER)
[ "$v" = 2000 ] || fail "counter is $v, not 2000"

wfsctl wait --peers --timeout 60 || fail "did not reconnect"
after=$(connections)
[ $((after - before)) -ge 3 ] || fail "only $((after - before)) reconnections while counting"
echo "h$h: counter 2000 after $((after - before)) reconnections; $(resent) messages sent again"
$H/dsm set $F $((RESENT + 4 * h)) "$(resent)"
sync
$H/dsm set $F $((DONE + 4 * h)) 2
$H/dsm wait $F $((DONE + 4 * 1)) 2 300 || fail "h1 never synced"
$H/dsm wait $F $((DONE + 4 * 2)) 2 300 || fail "h2 never synced"
if [ "$h" = 1 ]; then
    r=$(( $($H/dsm get $F $((RESENT + 4))) + $($H/dsm get $F $((RESENT + 8))) ))
    [ "$r" -gt 0 ] || fail "no message was ever in flight at a drop: the test did not test resending"
    v=$($H/dsm get /export/r $COUNTER)
    [ "$v" = 2000 ] || fail "/export/r holds counter $v, not 2000"
    $H/dsm set $F $FINISHED 1
else
    $H/dsm wait $F $FINISHED 1 300 || fail "h1 never finished"
fi
wfsctl stats
# Whoever wrote last holds the page: stay up while the other reads it.
sleep 3
echo "PASS h$h"
