#!/bin/sh
# hosts: 1
# timeout: 120
#
# Page grants belong to the host, so the host has one WFS page cache: a
# second `mount -t wfs` is refused with EBUSY (and says why in the kernel
# log), a bind mount shares the one super block, and the first mount keeps
# working. Two independent mounts used to hold two copies of a page the
# manager believed single, and INVALIDATE could overwrite the dirty one
# with a clean stale copy.
set -eu
fail() { echo "FAIL: $*"; exit 1; }
wfsctl wait --timeout 60 || fail "manager did not register"
printf 'one copy' > /export/m
[ "$(cat /wfs/m)" = "one copy" ] || fail "first mount does not serve"
mkdir -p /wfs2 /wfs3
if mount -t wfs none /wfs2 2> /tmp/mount.err; then
    fail "a second wfs mount was allowed"
fi
cat /tmp/mount.err
grep -qi "busy" /tmp/mount.err || fail "second mount: not EBUSY: $(cat /tmp/mount.err)"
dmesg | grep -q "wfs is mounted already" || fail "the refusal is not explained in the kernel log"
[ "$(wfsctl kstatus | sed -n 's/.*mounts \([0-9]*\).*/\1/p')" = 1 ] || fail "mount count: $(wfsctl kstatus)"
mount --bind /wfs /wfs3 || fail "bind mount refused"
printf 'TWO' | dd of=/wfs3/m bs=1 seek=4 conv=notrunc 2>/dev/null
[ "$(cat /wfs/m)" = "one TWOy" ] || fail "the bind mount is not the same page cache: $(cat /wfs/m)"
sync
[ "$(cat /export/m)" = "one TWOy" ] || fail "write through the bind mount not written back"
umount /wfs3
# After the last umount, a new mount is fine.
umount /wfs
mount -t wfs none /wfs2 || fail "mount after umount refused"
[ "$(cat /wfs2/m)" = "one TWOy" ] || fail "new mount does not serve"
umount /wfs2
mount -t wfs none /wfs
echo PASS
