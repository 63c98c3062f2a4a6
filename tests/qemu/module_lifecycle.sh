#!/bin/sh
# hosts: 1
# timeout: 240
#
# Registration follows the open file: closing /dev/wfs unregisters, a new
# manager can then register; the module cannot be removed while mounted or
# while the device is open, and unloads cleanly otherwise, and loads again.
set -eu
fail() { echo "FAIL: $*"; exit 1; }

wfsctl wait --timeout 60 || fail "manager did not register"
pid=$(pidof wfs-manager) || fail "no manager process"
wfsctl probe-register --expect EBUSY || fail "expected EBUSY while the manager runs"

# SIGTERM: the manager exits cleanly and its session ends with its file.
kill -TERM $pid
i=0
while kill -0 $pid 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "manager did not exit on SIGTERM"; sleep 0.1
done
wfsctl kstatus | grep -q "no manager" || { wfsctl kstatus; fail "kernel still has a manager"; }
# Now a registration succeeds (and unregisters again when the probe exits).
wfsctl probe-register --expect ok || fail "registration after the manager left failed"
wfsctl kstatus | grep -q "no manager" || fail "probe's registration outlived its file"

# The module is pinned while mounted.
if rmmod wfs 2>/dev/null; then fail "rmmod succeeded while /wfs was mounted"; fi
umount /wfs
# ... and while /dev/wfs is open.
exec 3<>/dev/wfs
if rmmod wfs 2>/dev/null; then fail "rmmod succeeded while /dev/wfs was open"; fi
exec 3>&-
rmmod wfs || fail "rmmod failed with nothing mounted or open"
grep -q '^wfs ' /proc/modules && fail "wfs still listed after rmmod"
[ -e /dev/wfs ] && fail "/dev/wfs still exists after rmmod"

# Load again; everything works as before.
insmod /lib/modules/wfs.ko || fail "reload failed"
mount -t wfs none /wfs || fail "mount after reload failed"
wfs-manager --config /etc/wfs/cluster.toml &
wfsctl wait --timeout 60 || fail "manager did not register after reload"
wfsctl probe-register --expect EBUSY || fail "expected EBUSY after reload"
kill -TERM $!
wait $! || fail "manager exited with an error"
echo PASS
