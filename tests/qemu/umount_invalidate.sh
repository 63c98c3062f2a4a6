#!/bin/sh
# hosts: 1
# timeout: 180
#
# INVALIDATE during an unmount. The unmount writes a dirty page back and
# waits for its WRITE, holding the super block's s_umount; the manager,
# before answering, INVALIDATEs that page (wfsfuzz umount). INVALIDATE
# used to wait for s_umount, i.e. for the unmount, i.e. for itself: the
# WRITE timed out and the page was lost. It must answer EAGAIN at once;
# the unmount then finishes with the page written, and the page is gone.
set -eu
fail() { echo "FAIL: $*"; exit 1; }
. /opt/helpers/lib.sh
stop_manager || fail "manager did not register"
umount /wfs
mount -t wfs -o timeout=10 none /wfs
/opt/helpers/wfsfuzz umount || fail "INVALIDATE during the unmount"
grep -q " /wfs " /proc/mounts && fail "/wfs still mounted"
mount -t wfs none /wfs
echo PASS
