#!/bin/sh
# hosts: 1
# timeout: 240
#
# A manager that does not answer: with `-o timeout=2` a read of an uncached
# page fails with EIO and a fault with SIGBUS after about 2 s, never
# hanging; nothing stays in flight and no pool slot leaks; once the
# manager runs again, everything is served. Bad mount options are refused.
set -eu
fail() { echo "FAIL: $*"; exit 1; }
. /opt/helpers/lib.sh
wfsctl wait --timeout 60 || fail "manager did not register"
mkdir -p /mnt/w
for bad in timeout=0 timeout=3601 timeout=abc timeout bogus=1; do
    if mount -t wfs -o $bad none /mnt/w 2>/dev/null; then fail "mount -o $bad accepted"; fi
done
umount /wfs
mount -t wfs -o timeout=2 none /wfs || fail "mount -o timeout=2 refused"

dd if=/dev/urandom of=/export/t bs=4096 count=4 2>/dev/null
[ "$(stat -c %s /wfs/t)" = 16384 ] || fail "size"
# A program that has the file mapped before the manager stops (an open
# needs the manager too: it would fail with EIO after the time-out).
hold /wfs/t 16384
cmd r 0 1
pid=$(pidof wfs-manager)
kill -STOP $pid
start=$(date +%s)
if cat /wfs/t > /dev/null 2>/tmp/err; then fail "read with a stopped manager succeeded"; fi
grep -q 'Input/output error' /tmp/err || fail "read: $(cat /tmp/err)"
echo "r 12288 1" >&3
set +e
wait $hold; rc=$?
set -e
exec 3>&-
[ $rc = 135 ] || fail "fault with a stopped manager gave status $rc, not SIGBUS"
took=$(( $(date +%s) - start ))
echo "timed out in ${took}s"
[ $took -ge 2 ] || fail "failed before the timeout (${took}s)"
[ $took -le 40 ] || fail "took ${took}s: the 2 s timeout was not applied"
dmesg | grep -q 'timed out' || fail "no time-out logged"
k=$(wfsctl kstatus)
echo "$k" | grep -q "inflight 0 " || fail "requests left in flight: $k"
echo "$k" | grep -q "pool_free 64$" || fail "pool slots leaked: $k"

kill -CONT $pid
cmp /wfs/t /export/t || fail "not served after the manager resumed"
echo PASS
