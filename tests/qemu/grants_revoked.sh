#!/bin/sh
# hosts: 1
# timeout: 240
#
# Grants die with the manager that gave them. Three pages are cached under
# a manager that grants read-write: page 0 read (clean), page 1 written and
# synced (clean), page 2 written and not synced (dirty, the only copy).
# The manager is killed and a new one (granting read-only) registers. The
# new session starts with no page granted: reading page 0 or writing page
# 1 asks the new manager again (READ). Page 2 (kept: its data exists
# nowhere else) is written back by the new manager as it starts, without
# any sync, and reaches the export; the manager then drops it from the
# kernel (it never granted it), so the first write to page 2 asks again
# (READ, then UPGRADE under the read-only grant). Before, all three kept
# their grants: no READ, no UPGRADE, and a page the new manager never
# granted was written through.
set -eu
fail() { echo "FAIL: $*"; exit 1; }
stat_of() { wfsctl stats | awk -v op="$1" '$1 == op { print $2 }'; }
H=/opt/helpers
wfsctl wait --timeout 60 || fail "manager did not register"
# No periodic writeback, and a share of the dirty limit for WFS's bdi, so
# that page 2 stays dirty until the test syncs it.
echo 0 > /proc/sys/vm/dirty_writeback_centisecs
for b in /sys/class/bdi/wfs-*; do echo 50 > "$b/min_ratio"; done

dd if=/dev/zero of=/export/g bs=4096 count=3 2>/dev/null
[ "$($H/mmapget /wfs/g 12288 0)" = 0 ] || fail "reading page 0"
$H/mmapwrite /wfs/g 12288 4096 synced sync || fail "writing page 1"
$H/mmapwrite /wfs/g 12288 8192 only-copy || fail "writing page 2"
grep -q only-copy /export/g && fail "page 2 was written back already; the test needs it dirty"
grep -q synced /export/g || fail "page 1 was not synced"

kill -KILL "$(pidof wfs-manager)"
while pidof wfs-manager > /dev/null; do sleep 0.1; done
{ echo 'grant = "read-only"'; cat /etc/wfs/cluster.toml; } > /tmp/ro.toml
wfs-manager --config /tmp/ro.toml &
wfsctl wait --timeout 60 || fail "manager did not register again"
# The new manager writes back what the old one left dirty, at once.
i=0
until grep -q only-copy /export/g; do
    i=$((i + 1))
    [ $i -le 100 ] || fail "page 2 was not written back by the new manager within 10 s"
    sleep 0.1
done
r0=$(stat_of READ); u0=$(stat_of UPGRADE)
echo "new manager: READ $r0 UPGRADE $u0"

[ "$($H/mmapget /wfs/g 12288 0)" = 0 ] || fail "reading page 0 again"
r1=$(stat_of READ)
[ "$r1" -gt "$r0" ] || fail "page 0 was read without asking the new manager (READ $r0 -> $r1)"
$H/mmapwrite /wfs/g 12288 4100 Z || fail "writing page 1 again"
r2=$(stat_of READ)
[ "$r2" -gt "$r1" ] || fail "page 1 was written without asking the new manager (READ $r1 -> $r2)"
u1=$(stat_of UPGRADE)
$H/mmapwrite /wfs/g 12288 8192 ONLY || fail "writing page 2 again"
u2=$(stat_of UPGRADE)
[ "$u2" -gt "$u1" ] || fail "page 2 was written under the dead manager's grant (UPGRADE $u1 -> $u2)"
sync
grep -q "ONLY-copy" /export/g || fail "page 2's data did not survive: $(od -c /export/g | sed -n '/020000/,+1p')"
echo PASS
