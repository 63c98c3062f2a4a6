#!/bin/sh
# hosts: 1
# timeout: 240
#
# The manager dies while requests wait for it. A stopped manager (SIGSTOP)
# holds a page fault, a read(2), a write(2) that must read its page first,
# and an UPGRADE of a page granted read-only; then it is killed. Its
# /dev/wfs closes and every waiter fails at once, long before the 30 s
# time-out: the fault and the upgrade with SIGBUS, the syscalls with EIO.
# The guest stays healthy (the harness fails on any oops or WARNING), and
# a new manager serves everything again.
set -eu
fail() { echo "FAIL: $*"; exit 1; }
H=/opt/helpers
wfsctl wait --timeout 60 || fail "manager did not register"

dd if=/dev/urandom of=/export/d bs=4096 count=8 2>/dev/null
# Page 7 is read with a read-only grant, so its first write needs UPGRADE.
kill -TERM "$(pidof wfs-manager)"
while pidof wfs-manager > /dev/null; do sleep 0.1; done
{ echo 'grant = "read-only"'; cat /etc/wfs/cluster.toml; } > /tmp/ro.toml
wfs-manager --config /tmp/ro.toml &
wfsctl wait --timeout 60 || fail "manager did not register again"
[ "$($H/mmapget /wfs/d 32768 28672)" -ge 0 ] || fail "reading page 7"

mpid=$(pidof wfs-manager)
kill -STOP "$mpid"
start=$(date +%s)
# done_ NAME STATUS: records a waiter's exit status, atomically.
done_() { echo "$2" > /tmp/rc.$1.t && mv /tmp/rc.$1.t /tmp/rc.$1; }
( set +e; $H/mmapget /wfs/d 32768 0 > /dev/null 2>&1; done_ fault $? ) &
( set +e; dd if=/wfs/d of=/dev/null bs=4096 skip=2 count=1 2> /tmp/err.read; done_ read $? ) &
( set +e; $H/pwr /wfs/d 16390 x 2> /tmp/err.write; done_ write $? ) &
( set +e; $H/mmapwrite /wfs/d 32768 28700 y 2> /dev/null; done_ upgrade $? ) &
sleep 2
for f in fault read write upgrade; do
    [ -e /tmp/rc.$f ] && fail "the $f did not wait for the stopped manager"
done
[ "$(wfsctl kstatus | sed -n 's/.*inflight \([0-9]*\).*/\1/p')" -ge 4 ] || fail "fewer than 4 requests in flight: $(wfsctl kstatus)"
kill -KILL "$mpid"
i=0
until [ -e /tmp/rc.fault ] && [ -e /tmp/rc.read ] && [ -e /tmp/rc.write ] && [ -e /tmp/rc.upgrade ]; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "waiters still waiting 10 s after the manager died"
    sleep 0.1
done
[ $(( $(date +%s) - start )) -le 15 ] || fail "waiters took too long to fail"
[ "$(cat /tmp/rc.fault)" = 135 ] || fail "fault: status $(cat /tmp/rc.fault), not SIGBUS"
[ "$(cat /tmp/rc.upgrade)" = 135 ] || fail "upgrade: status $(cat /tmp/rc.upgrade), not SIGBUS"
[ "$(cat /tmp/rc.read)" != 0 ] && grep -q "Input/output error" /tmp/err.read || fail "read: $(cat /tmp/err.read)"
[ "$(cat /tmp/rc.write)" = 1 ] && grep -q "Input/output error" /tmp/err.write || fail "write: $(cat /tmp/err.write)"
wfsctl kstatus
wfsctl kstatus | grep -q "inflight 0 " || fail "requests left in flight"

# New accesses fail at once without a manager, and work with a new one.
if cat /wfs/d > /dev/null 2>&1; then fail "read without a manager succeeded"; fi
wfs-manager --config /etc/wfs/cluster.toml &
wfsctl wait --timeout 60 || fail "new manager did not register"
cmp /wfs/d /export/d || fail "not served after the restart"
[ "$($H/pwr /wfs/d 16390 x fsync)" = 1 ] || fail "write after the restart"
kill -TERM $!
wait $! || fail "manager exited with an error"
echo PASS
