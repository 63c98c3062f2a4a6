#!/bin/sh
# hosts: 1
# timeout: 300
#
# A manager that stalls with more requests queued than the channel has
# slots (64), some of whose callers time out and some are killed, then
# resumes: every live request must be answered at once. Calls that ended
# before the manager read them used to leave their ids in the channel's
# outbox, which then silently dropped new requests: their callers waited
# out the whole time-out with the manager healthy.
set -eu
fail() { echo "FAIL: $*"; exit 1; }
. /opt/helpers/lib.sh
stop_manager || fail "manager did not register"
umount /wfs
mount -t wfs -o timeout=40 none /wfs
inflight() { wfsctl kstatus | sed -n 's/.*inflight \([0-9]*\).*/\1/p'; }
await_inflight() {
    i=0
    while [ "$(inflight)" != "$1" ]; do
        i=$((i + 1)); [ $i -lt 300 ] || fail "never $1 in flight: $(wfsctl kstatus); callers: $(cat /tmp/r/* 2>/dev/null | sort | uniq -c | tr '\n' ' ')"
        sleep 0.1
    done
}

/opt/helpers/wfsfuzz stall > /tmp/stall.out 2>&1 &
mgr=$!
i=0
until wfsctl kstatus | grep -q "manager registered pid $mgr "; do
    i=$((i + 1)); [ $i -lt 300 ] || fail "stall manager did not register"
    sleep 0.1
done
mkdir -p /tmp/r
# caller N: looks up f<N> (a LOOKUP the stalled manager holds) and records
# whether it succeeded.
caller() { ( if stat /wfs/f$1 > /dev/null 2>&1; then echo ok; else echo fail; fi > /tmp/r/$1 ) & }

# A: 20 callers that will time out (40 s).
for n in $(seq 1 20); do caller $n; done
await_inflight 20
t0=$(date +%s)
sleep 15
# B: 44 more, 15 s later (so they still have 15 s to go when A times out);
# the table is full (64).
for n in $(seq 21 54); do caller $n; done
killed=
for n in $(seq 55 64); do stat /wfs/f$n > /dev/null 2>&1 & killed="$killed $!"; done
await_inflight 64
# C: 20 callers wait for room.
for n in $(seq 65 84); do caller $n; done
sleep 1
# Ten of B are killed before the manager ever read their requests: ten of
# C take their places.
kill -KILL $killed
await_inflight 64
# A times out: the rest of C get in (34 of B and 20 of C).
while [ $(( $(date +%s) - t0 )) -lt 41 ]; do sleep 0.5; done
await_inflight 54
for n in $(seq 1 20); do
    [ "$(cat /tmp/r/$n 2>/dev/null)" = fail ] || fail "caller $n did not time out"
done
# The manager resumes: every live caller (34 of B, all 20 of C) is
# answered within seconds, well inside its time-out.
kill -USR1 $mgr
t1=$(date +%s)
for n in $(seq 21 54) $(seq 65 84); do
    while [ ! -s /tmp/r/$n ]; do
        [ $(( $(date +%s) - t1 )) -lt 8 ] || fail "caller $n not answered 8 s after the manager resumed: $(wfsctl kstatus)"
        sleep 0.2
    done
    [ "$(cat /tmp/r/$n)" = ok ] || fail "caller $n failed"
done
echo "every live caller answered in $(( $(date +%s) - t1 )) s"
[ "$(inflight)" = 0 ] || fail "requests left in flight: $(wfsctl kstatus)"
kill -TERM $mgr
wait $mgr || fail "stall manager: $(cat /tmp/stall.out)"
cat /tmp/stall.out
wfsctl kstatus | grep -q "pool_free 64$" || fail "pool slots leaked: $(wfsctl kstatus)"
echo PASS
