#!/bin/sh
# hosts: 2
# timeout: 400
#
# fcntl and flock locks across hosts, decided by the file's owner (h1 owns
# /wfs/lockf; h2 takes locks on it from afar).
#
# 1. h2 holds a POSIX write lock on bytes 0..99. On h1, F_SETLK of an
#    overlapping write lock gets EAGAIN, an OFD read lock on it too (the two
#    kinds conflict), a read lock past it is granted, and F_GETLK reports
#    h2's lock with a negative pid (a lock held on another host); flock is
#    independent of record locks and granted. h1 then waits (F_SETLKW) for
#    byte 0; h2 kills its holder with SIGKILL, and h1's wait is granted: the
#    lock of a killed process goes with it, on every host.
# 2. Both hosts add one to a counter in the file's first 8 bytes 300 times
#    each under an F_SETLKW write lock, with pread/pwrite (no mapping), then
#    (once both are done: the two kinds of lock do not exclude each other)
#    100 times each under flock(LOCK_EX): the counter ends at exactly 800
#    on both hosts, which it cannot if the locks failed to exclude.
# 3. A wait is killable: h1 holds the whole file; h2's F_SETLKW waiter dies
#    at once on SIGKILL, and one a SIGALRM interrupts fails with EINTR;
#    their places at the owner go with them (h2 takes the lock once h1
#    lets go). A wait is bounded by the mount's time-out:
#    with /wfs remounted -o timeout=5 on h2, an F_SETLKW behind a lock h1
#    holds for 40 s fails with ENOLCK after about 4 s (the owner gives the
#    wait up a quarter before the time-out).
# 4. A host taken for dead loses its locks: h2 holds the whole file and h1
#    waits for it; h2's manager is restarted (SIGTERM: it leaves, and h1
#    takes that incarnation for dead), and h1's wait is granted.
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
fail() {
    echo "FAIL h$h: $*"
    wfsctl status || true
    exit 1
}
L=/wfs/lockf
# Word offsets in /wfs/ctl (a shared page): one flag per step.
HELD=0 WAITING=4 KILLED=8 GO=12 DONE1=16 DONE2=20 HOLD3=24 STEP3=28 HOLD4=32 DONE4=36 POSIX1=40 POSIX2=44 HOLD5=48 WAIT5=52 DONE5=56

if [ "$h" = 1 ]; then
    dd if=/dev/zero of=/export/lockf bs=4096 count=1 2>/dev/null
    dd if=/dev/zero of=/export/ctl bs=4096 count=1 2>/dev/null
fi
wfsctl wait --peers --timeout 90 || fail "peers not connected"
appear 30 lockf ctl || fail "/wfs/lockf or /wfs/ctl never appeared"
# hold MARK SECS STEP...: in the background ($held is its pid), lockx on
# $L runs the STEPs, touches MARK and holds what it took for SECS seconds;
# returns once MARK is there.
hold() {
    _mark=$1 _secs=$2
    shift 2
    $H/lockx $L "$@" touch "$_mark" sleep "$_secs" > "$_mark.out" &
    held=$!
    within 30 test -e "$_mark" || fail "could not take the lock ($*): $(cat "$_mark.out")"
}

# -- 1. conflicts across hosts, F_GETLK, a killed holder ----------------------
if [ "$h" = 2 ]; then
    hold /tmp/held 600 set posix w 0 100
    holder=$held
    flag $HELD
    flagwait $WAITING
    sleep 1
    kill -KILL $holder
    wait $holder 2>/dev/null || true
    flag $KILLED
else
    flagwait $HELD
    out=$($H/lockx $L set posix w 50 10) && fail "an overlapping write lock was granted: $out"
    [ "$out" = EAGAIN ] || fail "overlapping write lock: '$out', not EAGAIN"
    out=$($H/lockx $L set ofd r 10 1) && fail "an OFD read lock over h2's write lock was granted"
    [ "$out" = EAGAIN ] || fail "OFD read lock: '$out', not EAGAIN"
    out=$($H/lockx $L set posix r 200 10) || fail "a read lock past h2's lock was refused: $out"
    out=$($H/lockx $L set flock w 0 0) || fail "flock was refused beside a record lock: $out"
    out=$($H/lockx $L get posix w 0 0) || fail "F_GETLK failed: $out"
    echo "h1: F_GETLK says: $out"
    case "$out" in
        "w 0 100 -"[1-9]*) ;;
        *) fail "F_GETLK did not report h2's lock on 0..99 with a negative pid: '$out'" ;;
    esac
    $H/lockx $L wait posix w 0 1 touch /tmp/got > /tmp/waiter.out &
    waiter=$!
    sleep 1
    [ -e /tmp/got ] && fail "the wait was granted while h2 held the lock"
    flag $WAITING
    flagwait $KILLED
    within 20 test -e /tmp/got || fail "the killed holder's lock was never released: $(cat /tmp/waiter.out)"
    wait $waiter || fail "the waiter failed: $(cat /tmp/waiter.out)"
    echo "h1: h2's killed holder let go; the wait was granted"
fi

# -- 2. a counter under locks from both hosts ---------------------------------
if [ "$h" = 1 ]; then flag $GO; else flagwait $GO; fi
v=$($H/lockx $L count 300) || fail "fcntl counter: $v"
# Record locks and flock locks do not exclude each other: both hosts
# finish the fcntl round before either starts the flock one.
if [ "$h" = 1 ]; then flag $POSIX1; else flag $POSIX2; fi
flagwait $POSIX1 300
flagwait $POSIX2 300
v=$($H/lockx $L fcount 100) || fail "flock counter: $v"
if [ "$h" = 1 ]; then flag $DONE1; else flag $DONE2; fi
flagwait $DONE1 300
flagwait $DONE2 300
total=$(od -An -tu8 -N8 $L | tr -d ' ')
[ "$total" = 800 ] || fail "the counter is $total, not 800: the locks did not exclude"
echo "h$h: counter at 800"

# -- 3. a wait is killable, and bounded by the time-out -----------------------
if [ "$h" = 1 ]; then
    hold /tmp/whole 8 set posix w 0 0
    flag $HOLD3
    flagwait $STEP3
    wait
    # Held for 40 s: h2's wait gives up long before.
    hold /tmp/whole4 40 set posix w 0 0
    h4=$held
    flag $HOLD4
    flagwait $DONE4 120
    kill $h4
    wait $h4 2>/dev/null || true
else
    flagwait $HOLD3
    $H/lockx $L wait posix w 0 0 > /tmp/w3.out &
    w=$!
    sleep 2
    kill -0 $w 2>/dev/null || fail "the wait ended while h1 held the lock: $(cat /tmp/w3.out)"
    kill -KILL $w
    i=0
    while kill -0 $w 2>/dev/null; do
        i=$((i + 1))
        [ $i -lt 20 ] || fail "a waiter did not die on SIGKILL within 2 s"
        sleep 0.1
    done
    # Any signal ends a wait (EINTR without SA_RESTART), as locally.
    t0=$(date +%s)
    out=$($H/lockx $L alarm 1 wait posix w 0 0) && fail "a wait went on through a signal: $out"
    [ "$out" = EINTR ] || fail "a wait a signal interrupted failed with '$out', not EINTR"
    [ $(($(date +%s) - t0)) -le 4 ] || fail "a signal took more than 4 s to end a wait"
    # Once h1 lets go (after 8 s), the lock is free for h2: the killed
    # and the interrupted waiters hold nothing.
    out=$($H/lockx $L wait posix w 0 0 set posix u 0 0) || fail "h2 could not take the lock h1 let go: $out"
    flag $STEP3
    umount /wfs
    mount -t wfs -o timeout=5 none /wfs || fail "mount -o timeout=5 refused"
    flagwait $HOLD4
    t0=$(date +%s)
    out=$($H/lockx $L wait posix w 0 0) && fail "a wait behind a 40 s lock was granted: $out"
    t=$(($(date +%s) - t0))
    [ "$out" = ENOLCK ] || fail "a wait past the time-out failed with '$out', not ENOLCK"
    [ $t -ge 3 ] && [ $t -le 15 ] || fail "a wait with a 5 s time-out ended after $t s"
    echo "h2: a wait past the 5 s time-out failed with ENOLCK after $t s"
    umount /wfs
    mount -t wfs none /wfs || fail "remount with the default time-out refused"
    flag $DONE4
fi

# -- 4. a host taken for dead loses its locks ---------------------------------
if [ "$h" = 2 ]; then
    # (A wait: h1 lets its 40 s holder go only once it sees DONE4.)
    hold /tmp/held5 600 wait posix w 0 0
    flag $HOLD5
    flagwait $WAIT5
    # SIGTERM: the manager leaves, and h1 takes this incarnation for dead
    # at once; a new manager comes up.
    restart_manager_with
    wfsctl wait --peers --timeout 90 || fail "the new manager never reconnected"
    flag $DONE5
else
    flagwait $HOLD5
    $H/lockx $L wait posix w 0 0 touch /tmp/got5 > /tmp/w5.out &
    w5=$!
    sleep 1
    [ -e /tmp/got5 ] && fail "the wait was granted while h2 held the lock"
    flag $WAIT5
    within 25 test -e /tmp/got5 || fail "h2's lock outlived its manager: $(cat /tmp/w5.out)"
    wait $w5 || fail "the waiter failed: $(cat /tmp/w5.out)"
    echo "h1: h2's manager left; its lock went and the wait was granted"
    flagwait $DONE5 120
fi
wfsctl wait --peers --timeout 60 || fail "peers went away"
sleep 3
echo "PASS h$h"
