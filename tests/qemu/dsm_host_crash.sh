#!/bin/sh
# hosts: 3
# timeout: 600
# kill: 2@15
#
# A guest dies outright in the middle of the work: tools/wfs-vm kills h2's
# QEMU (memory, kernel and manager gone, like a power cut) 15 s into its
# command. h3 owns three files: /wfs/ctr (the spin-lock counter of
# dsm_failover: a lock, the counter, each host's own count), /wfs/log (16
# pages of records) and /wfs/ctl (flags). h1 and h2 count at once, and h2
# also keeps a journal: it writes record i to /wfs/log and msyncs it, then
# writes i to /wfs/ctl and msyncs that, until it dies.
#
# - h1 finishes all its increments: its faults on pages h2 held wait for
#   the others to take h2 for dead (the failure time-out after its
#   connections went quiet) and recover the pages, not for ever.
# - The counter page is consistent: the counter is the sum of the hosts'
#   own counts (an increment is kept whole or lost whole).
# - Synced data survives the crash: whatever record number /wfs/ctl says,
#   the owner's disk holds every record up to it.
# - h1 and h3 took h2 for dead, and `wfsctl status` shows it dead.
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
N=3000           # h1's increments (about twice as long as h2 lives)
PAUSE=3000       # microseconds after each increment
# Words of /wfs/ctl.
JOURNAL=0        # the last record h2 synced
READY=16         # + 4*h: h is ready
DONE=48          # h1 has counted
FINAL=64         # the counter as the owner found it (+1, so never 0)
CHECKED=80       # h1 read the owner's counter
fail() { fail_with_state "$@"; }

echo 0 > /proc/sys/vm/dirty_writeback_centisecs
wfsctl wait --peers --timeout 90 || fail "peers not connected"
if [ "$h" = 3 ]; then
    # (Whole before their names appear, as a peer's lookup sees them.)
    for f in ctr log ctl; do
        [ $f = log ] && c=16 || c=1
        dd if=/dev/zero of=/export/.$f bs=4096 count=$c 2>/dev/null
        mv /export/.$f /export/$f
    done
fi
appear 60 ctr log ctl || fail "/wfs/ctr, /wfs/log or /wfs/ctl never appeared"

case $h in
1)
    together /wfs/ctl $READY 2 || fail "h2 never got ready"
    start=$(date +%s)
    v=$($H/dsm tally /wfs/ctr $N 1 10 $PAUSE) || fail "counting failed (status $?)"
    echo "h1: counted $N in $(($(date +%s) - start)) s; the counter was $v"
    $H/dsm set /wfs/ctl $DONE 1
    ;;
2)
    together /wfs/ctl $READY 1 || fail "h1 never got ready"
    echo "h2: counting and journaling until this guest is killed"
    $H/dsm journal /wfs/log /wfs/ctl $JOURNAL 20000 &
    $H/dsm tally /wfs/ctr 1000000 2 10 $PAUSE > /dev/null
    fail "still alive after counting to a million"
    ;;
esac

$H/dsm wait /wfs/ctl $DONE 1 300 || fail "h1 never finished counting"
# h1 may finish before h2 is taken for dead (20 s after it was last heard
# from, its lease and the margin, if it held no page h1 needed).
i=0
until [ "$(failures 1)" -ge 1 ]; do
    i=$((i + 1))
    [ $i -le 600 ] || fail "h2 was never taken for dead"
    sleep 0.1
done
wfsctl status | grep -q "^peer h2 .*; dead (incarnation 0x[0-9a-f]*), holds [0-9]* of this host's pages$" ||
    fail "status does not show h2 dead: $(wfsctl status | grep '^peer h2')"
if [ "$h" = 3 ]; then
    c=$($H/dsm get /wfs/ctr 4)
    m1=$($H/dsm get /wfs/ctr 12)
    m2=$($H/dsm get /wfs/ctr 16)
    j=$($H/dsm get /wfs/ctl $JOURNAL)
    lost=$(failures 2)
    echo "h3: counter $c = h1 $m1 + h2 $m2; journal at record $j; pages lost $lost"
    [ "$c" = $((m1 + m2)) ] || fail "counter $c is not the sum of the hosts' counts ($m1 + $m2): an increment was torn"
    [ "$m1" -le $N ] || fail "h1's count $m1 is more than its $N increments"
    [ "$m2" -ge 1 ] && [ "$j" -ge 1 ] || fail "h2 neither counted nor journaled before it died (count $m2, journal $j)"
    $H/dsm journaled /export/log "$j" || fail "the owner's disk lacks a record up to $j, each synced before"
    $H/dsm set /wfs/ctl $FINAL $((c + 1))
    # The owner stays until h1 has read (its files go with it).
    $H/dsm wait /wfs/ctl $CHECKED 1 120 || fail "h1 never read the counter"
else
    $H/dsm wait /wfs/ctl $FINAL 1 120 || fail "the owner never checked"
    want=$(($($H/dsm get /wfs/ctl $FINAL) - 1))
    c=$($H/dsm get /wfs/ctr 4)
    [ "$c" = "$want" ] || fail "h1 reads counter $c, the owner read $want"
    echo "h1: reads the owner's counter $c"
    $H/dsm set /wfs/ctl $CHECKED 1
fi
wfsctl stats || true
sleep 3
echo "PASS h$h"
