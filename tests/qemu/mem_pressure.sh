#!/bin/sh
# hosts: 1
# timeout: 360
# smp: 2
# mem: 192
# append: numa=fake=2
#
# WFS pages under memory pressure, page migration and compaction, on a
# small guest (192 MiB) with two emulated NUMA nodes. Throughout, memhog
# grows anonymous memory until the kernel has to reclaim page cache, in
# waves (restarted if the OOM killer takes it), and memx exercises a
# 16 MiB file at random (pread, pwrite, reads and writes through a shared
# mapping; every read checked against a shadow copy), in two phases:
#  1. reclaim (30 s): a write-heavy mix that never syncs, so that reclaim
#     meets dirty WFS pages and hands them to writepage;
#  2. migration (40 s): the full mix (msync, fsync and MADV_PAGEOUT too),
#     the hog now in 3 s bursts with 2 s rests (a migration needs a free
#     page on its target node), while memx's second thread moves the
#     mapped pages between nodes 0 and 1 with move_pages(2) and this
#     script asks for compaction
#     (/proc/sys/vm/compact_memory) every half second; both migrate dirty
#     pages (through filemap_migrate_folio; without a migrate_folio they
#     went through writepage, and hit kernel BUG at mm/rmap.c).
# writepage must refuse reclaim's calls without leaving the page locked: with
# the hung-task detector at 20 s, a task stuck on a page lock shows up as
# "INFO: task ... blocked", which fails the run, as does any oops, and memx
# must finish each phase. After each phase memx's checks passed, the
# phase did its work (operations; reclaim met dirty pages; pages moved
# between nodes, where a kernel with one node fails, once more without
# the hog if a contended machine left no node a free page; compactions), and
# after a sync /export (the owner's disk, read directly) equals the
# shadow copy.
set -eu
fail() { echo "FAIL: $*"; exit 1; }
H=/opt/helpers
# A /proc/vmstat counter, 0 if the kernel does not count it (the event
# counters need CONFIG_VM_EVENT_COUNTERS).
vm() { awk -v k="$1" '$1 == k { v = $2 } END { print v + 0 }' /proc/vmstat; }
events=0
grep -q '^pgscan_kswapd ' /proc/vmstat && events=1
problem='kernel BUG at|BUG:|Oops:|WARNING:|blocked for more than|general protection'
wfsctl wait --timeout 60 || fail "manager did not register"

echo "$(nproc) CPUs; NUMA nodes: $(cat /sys/devices/system/node/online)"
[ -d /sys/devices/system/node/node1 ] || fail "no NUMA node 1: boot with numa=fake=2 (# append)"
[ -w /proc/sys/kernel/hung_task_timeout_secs ] || fail "no hung-task detector (CONFIG_DETECT_HUNG_TASK)"
[ -w /proc/sys/vm/compact_memory ] || fail "no /proc/sys/vm/compact_memory (CONFIG_COMPACTION)"
echo 20 > /proc/sys/kernel/hung_task_timeout_secs
# The OOM killer may take the hog, not this test or the manager.
echo -1000 > /proc/self/oom_score_adj
for p in $(pidof wfs-manager); do echo -1000 > /proc/$p/oom_score_adj; done

dd if=/dev/urandom of=/export/mx bs=1M count=16 2>/dev/null
grep -E '^(MemTotal|MemFree|MemAvailable)' /proc/meminfo | tr -s ' ' | tr '\n' ' '; echo

# The hog, again whenever it ends (the OOM killer) until told to stop.
# With /tmp/hog.duty it runs 3 s and rests 2 s, over and over: move_pages
# needs a free page on the target node, and a hog that never rests keeps
# both nodes at their low marks (on the debug kernel, beside other guests
# on the machine's two cores, a CI run's every move_pages failed whole with
# ENOMEM and the migration phase moved nothing).
: > /tmp/hog.on
( while [ -e /tmp/hog.on ]; do
      if [ -e /tmp/hog.duty ]; then
          $H/memhog 12 3 >> /tmp/hog.out 2>&1 || echo "memhog: exit $?" >> /tmp/hog.out
          sleep 2
      else
          $H/memhog 12 300 >> /tmp/hog.out 2>&1 || echo "memhog: exit $?" >> /tmp/hog.out
      fi
  done ) &
hogs=$!
stop_hog() {
    rm -f /tmp/hog.on
    kill $(pidof memhog) 2>/dev/null || true
    wait $hogs 2>/dev/null || true
}

# phase NAME SECONDS MEMX-OPTIONS...: one memx run under watch. memx works
# for SECONDS, then checks the whole file; if it is not done SECONDS + 60
# after that, something is stuck. A kernel problem ends the wait at once
# (after an oops the hung-task detector is silent, and memx may go on
# until it meets the page the oops left locked).
phase() {
    name=$1 secs=$2
    shift 2
    echo "== phase $name: $secs s"
    $H/memx "$@" /wfs/mx /export/mx /tmp/shadow $secs > /tmp/memx.out 2>&1 &
    mx=$!
    t=0 oops=
    while kill -0 $mx 2>/dev/null && [ $t -lt $((2 * secs + 60)) ]; do
        sleep 1; t=$((t + 1))
        if dmesg | grep -qE "$problem"; then oops=1; break; fi
    done
    if [ -n "$oops" ] || kill -0 $mx 2>/dev/null; then
        if [ -n "$oops" ]; then
            echo "kernel problem $t s into phase $name:"
            dmesg | grep -E "$problem" | head -5
        else
            echo "memx did not finish phase $name within $t s"
        fi
        echo "tasks in D state:"
        for d in /proc/[0-9]*; do
            st=$(sed 's/.*) //' $d/stat 2>/dev/null | cut -d' ' -f1)
            [ "$st" = D ] || continue
            echo "  ${d#/proc/} $(cat $d/comm) wchan $(cat $d/wchan)"
            sed 's/^/      /' $d/stack 2>/dev/null || true
        done
        grep -E '^(MemFree|MemAvailable|Dirty|Writeback):' /proc/meminfo
        wfsctl stats || true
        cat /tmp/memx.out
        echo w > /proc/sysrq-trigger 2>/dev/null || true
        [ -n "$oops" ] && fail "kernel problem in phase $name"
        fail "memx hung in phase $name (a page left locked?)"
    fi
    set +e
    wait $mx; rc=$?
    set -e
    cat /tmp/memx.out
    [ $rc = 0 ] || fail "memx exited with status $rc in phase $name"
    # Nothing dirty may stay behind: after sync the owner's disk has it
    # all. (A sync stuck on a locked page must not hang the test.)
    sync & sy=$!
    t=0
    while kill -0 $sy 2>/dev/null; do
        sleep 1; t=$((t + 1))
        [ $t -lt 60 ] || fail "sync after phase $name did not finish in 60 s"
    done
    cmp /export/mx /tmp/shadow || fail "/export/mx differs from memx's shadow copy after phase $name"
    ops=$(sed -n 's/^MEMX-RESULT ops=\([0-9]*\).*/\1/p' /tmp/memx.out)
    moved=$(sed -n 's/^MEMX-RESULT.* moved=\([0-9]*\).*/\1/p' /tmp/memx.out)
    [ "${ops:-0}" -ge 1000 ] || fail "only ${ops:-0} operations in phase $name"
}

# 1. Reclaim meets dirty pages.
imm0=$(vm nr_vmscan_immediate_reclaim)
phase reclaim 30 -n -w
immediate=$(( $(vm nr_vmscan_immediate_reclaim) - imm0 ))
echo "reclaim met $immediate dirty or writeback pages it could not free at once" \
     "(nr_vmscan_immediate_reclaim); $(vm nr_vmscan_write) pages written by reclaim"
[ $immediate -ge 1 ] || fail "reclaim never met a dirty page: no pressure on the WFS file?"

# 2. Migration: move_pages and compaction, with reclaim going on.
scan0=$(( $(vm pgscan_kswapd) + $(vm pgscan_direct) ))
mig0=$(vm pgmigrate_success)
: > /tmp/compact.on
( n=0
  while [ -e /tmp/compact.on ]; do
      echo 1 > /proc/sys/vm/compact_memory
      n=$((n + 1)); echo $n > /tmp/compactions
      sleep 0.5
  done ) &
compactor=$!
: > /tmp/hog.duty
kill $(pidof memhog) 2>/dev/null || true
phase migration 40
if [ "${moved:-0}" -lt 100 ]; then
    # A machine so busy (the debug kernel beside other guests on two
    # cores) that neither node had a free page for the whole phase: every
    # move_pages failed whole with ENOMEM. The pages must still move: once
    # more, with the hog stopped (compaction and memx's own load go on).
    echo "only ${moved:-0} pages moved with the hog running ($(grep '^memx: move_pages' /tmp/memx.out)): again without it"
    stop_hog
    phase migration-quiet 20
fi
rm -f /tmp/compact.on
wait $compactor 2>/dev/null || true
stop_hog
cat /tmp/hog.out

compactions=$(cat /tmp/compactions)
ooms=$(grep -c "memhog: exit" /tmp/hog.out || true)
waves=$(sed -n 's/^memhog: held.* \([0-9]*\) waves.*/\1/p' /tmp/hog.out | awk '{ n += $1 } END { print n + 0 }')
echo "$moved pages moved by move_pages, $compactions compactions," \
     "$waves waves of the hog down to 12 MiB available, hog ended early $ooms time(s)"
if [ $events = 1 ]; then
    scanned=$(( $(vm pgscan_kswapd) + $(vm pgscan_direct) - scan0 ))
    migrated=$(( $(vm pgmigrate_success) - mig0 ))
    echo "$migrated pages migrated in all, $scanned pages scanned by reclaim"
    grep -E '^(compact_stall|compact_success|compact_fail|pgmigrate_fail|pgsteal_kswapd|pgsteal_direct|oom_kill) ' /proc/vmstat | tr '\n' ' '; echo
fi
grep -E '^(workingset_refault_file|nr_vmscan_write|nr_vmscan_immediate_reclaim) ' /proc/vmstat | tr '\n' ' '; echo
wfsctl stats
[ "${moved:-0}" -ge 100 ] || fail "only ${moved:-0} pages moved between nodes ($(grep '^memx: move_pages' /tmp/memx.out))"
[ "$compactions" -ge 20 ] || fail "only $compactions compactions"
[ $((waves + ooms)) -ge 3 ] || fail "the hog reached its low mark only $waves time(s) and was killed $ooms time(s)"
if [ $events = 1 ]; then
    [ "$migrated" -ge "$moved" ] || fail "vmstat counts $migrated migrations, memx $moved"
    [ "$scanned" -ge 1000 ] || fail "the hog drove no reclaim ($scanned pages scanned)"
fi
echo PASS
