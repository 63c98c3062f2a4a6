#!/bin/sh
# hosts: 1
# timeout: 300
#
# /dev/wfs against bad input: wfsfuzz registers as the manager and mixes
# 12,000 rounds of malformed writes, forged and mismatched replies, bad
# ioctls, short reads and bad pool mappings with correct service of real
# LOOKUP, READ, LOCK, SETSIZE, SETTIMES, CREATE, RENAME and UNLINK traffic from a background
# reader; then it answers LOOKUPs
# and READs with every errno from 1 to 4095. Every bad input must
# get its documented errno, the kernel must print no oops or WARNING (the
# harness checks), and afterwards no request is in flight and every pool
# slot is free. An UPGRADE answered "refault" has the page read in anew.
# Then a real manager serves again.
set -eu
fail() { echo "FAIL: $*"; exit 1; }
. /opt/helpers/lib.sh
stop_manager || fail "manager did not register"

# Traffic (fstraffic, one process): every new name is a LOOKUP, every
# file's page a READ, and every tenth file is locked (F_GETLK, F_SETLK,
# and the unlock at close: LOCK requests); every seventh grows and shrinks
# (ftruncate: SETSIZE requests; a write past the end would leave a dirty
# page that a later mode's manager would be sent) and has its time set
# (futimens: SETTIMES); every fifth makes a
# name, renames it and removes it (CREATE, RENAME, UNLINK).
/opt/helpers/fstraffic /wfs > /dev/null 2>&1 &
bg=$!
/opt/helpers/wfsfuzz 12000 $$ 500 || { kill $bg; fail "wfsfuzz found a surprise"; }
kill $bg
wait $bg 2>/dev/null || true

# Every errno a manager could send, 1..4095, to LOOKUP and to READ: the
# kernel's own (512 and up: ERESTARTSYS, EIOCBQUEUED, which reaches a
# BUG_ON in fs/read_write.c) are refused, and user space only ever sees
# errnos below 512.
/opt/helpers/wfsfuzz errors || fail "a manager's errno got through"

# The device is root's, and the pool is the registered manager's alone.
[ "$(stat -c %a /dev/wfs)" = 600 ] || fail "/dev/wfs is mode $(stat -c %a /dev/wfs), not 600"
/opt/helpers/wfsfuzz hardening || fail "pool hardening"

# An UPGRADE answered "refault" (the copy is stale): the kernel drops the
# page and reads it in anew, through a shared mapping (read first, or
# first touched by the store) and through write(2).
/opt/helpers/wfsfuzz refault || fail "refault"

k=$(wfsctl kstatus)
echo "$k"
echo "$k" | grep -q "no manager registered" || fail "fuzzer's registration outlived it"
echo "$k" | grep -q "inflight 0 " || fail "requests left in flight"
echo "$k" | grep -q "pool_free 64$" || fail "pool slots leaked"

# A real manager works normally afterwards.
printf 'still fine' > /export/after
wfs-manager --config /etc/wfs/cluster.toml &
wfsctl wait --timeout 60 || fail "manager did not register after the fuzzing"
[ "$(cat /wfs/after)" = "still fine" ] || fail "not served after the fuzzing"
kill -TERM $!
wait $! || fail "manager exited with an error"
echo PASS
