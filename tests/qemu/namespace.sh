#!/bin/sh
# hosts: 1
# timeout: 240
#
# The flat namespace through upcalls: /wfs lists the regular files of the
# export directory with their sizes and modes (READDIR, LOOKUP, GETATTR);
# what is not a regular file is not shared; sizes are refreshed; a dead
# manager makes every access fail at once with EIO, not hang; a new
# manager serves again.
set -eu
fail() { echo "FAIL: $*"; exit 1; }
wfsctl wait --timeout 60 || fail "manager did not register"

# The manager reads the export directory on demand.
dd if=/dev/urandom of=/export/data bs=4096 count=3 2>/dev/null
printf 'hello' > /export/small
chmod 640 /export/small
chmod 604 /export/data
mkdir /export/subdir
ln -s /etc/passwd /export/link

ls -l /wfs
names=$(ls /wfs | tr '\n' ' ')
[ "$names" = "data small " ] || fail "ls /wfs shows '$names'"
# The raw getdents64 order: the dots, then the manager's sorted names.
raw=$(/opt/helpers/lsdir /wfs | tr '\n' ' ')
[ "$raw" = ". .. data small " ] || fail "getdents64 gives '$raw'"
[ "$(stat -c '%s %a %F' /wfs/data)" = "12288 604 regular file" ] || fail "data: $(stat -c '%s %a %F' /wfs/data)"
[ "$(stat -c '%s %a %F' /wfs/small)" = "5 640 regular file" ] || fail "small: $(stat -c '%s %a %F' /wfs/small)"
# ls -l shows sizes (beyond Chunk's readdir).
ls -l /wfs | grep -q ' 12288 .* data$' || fail "ls -l does not show the size of data"
# Names that are not shared files do not exist.
for n in missing subdir link; do
    [ ! -e /wfs/$n ] || fail "/wfs/$n exists"
done
if stat /wfs/missing 2>/tmp/err; then fail "stat of a missing name succeeded"; fi
grep -q 'No such file' /tmp/err || fail "missing name: $(cat /tmp/err)"
# Inode numbers are the manager's stable file ids, the same on every lookup.
i1=$(stat -c %i /wfs/data); i2=$(stat -c %i /wfs/data)
[ "$i1" = "$i2" ] && [ "$i1" != "$(stat -c %i /wfs/small)" ] || fail "inode numbers"
# GETATTR refreshes the size.
printf ', world' >> /export/small
[ "$(stat -c %s /wfs/small)" = "12" ] || fail "size not refreshed: $(stat -c %s /wfs/small)"

# Kill the manager: accesses fail at once with EIO, nothing hangs.
pid=$(pidof wfs-manager)
kill -KILL $pid
while kill -0 $pid 2>/dev/null; do sleep 0.1; done
wfsctl kstatus | grep -q "no manager" || fail "kernel still has a manager"
start=$(date +%s)
if stat /wfs/data 2>/tmp/err; then fail "stat succeeded without a manager"; fi
grep -q 'Input/output error' /tmp/err || fail "stat without manager: $(cat /tmp/err)"
# (busybox ls treats a failed readdir as the end: lsdir reports it.)
if /opt/helpers/lsdir /wfs >/dev/null 2>/tmp/err; then fail "readdir succeeded without a manager"; fi
grep -q 'Input/output error' /tmp/err || fail "readdir without manager: $(cat /tmp/err)"
[ $(( $(date +%s) - start )) -le 2 ] || fail "failing without a manager took too long"

# A new manager serves again.
wfs-manager --config /etc/wfs/cluster.toml &
wfsctl wait --timeout 60 || fail "restarted manager did not register"
[ "$(stat -c %s /wfs/data)" = "12288" ] || fail "not served after restart"
[ "$(/opt/helpers/lsdir /wfs | tr '\n' ' ')" = ". .. data small " ] || fail "readdir after restart"
kill -TERM $!
wait $! || fail "manager exited with an error"
echo PASS
