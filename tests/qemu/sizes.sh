#!/bin/sh
# hosts: 3
# timeout: 500
# coherence: single mrsw
# debug-coherence: mrsw
#
# Files grow across hosts, and every host agrees on their size (h1 owns
# /wfs/grow and /wfs/log; h2 and h3 change them from afar).
#
# 1. A write past the end on h2 grows /wfs/grow from 100 to 5010 bytes. As
#    soon as the write has returned (h2 says so through a shared page), h1
#    and h3 see the new size, through fstat and stat(1), with no retry: the
#    owner answers a growth only once every host has it. The owner's export
#    has the size, h3 reads the bytes, and the gap reads as zeros.
# 2. h2 and h3 each append 50 lines to /wfs/log, each append under an
#    F_SETLKW lock of the whole file with O_APPEND: the log ends with all
#    100 lines, each exactly once, on every host and (after sync) on the
#    owner's disk. An append lands at the end another host made.
# 3. ftruncate grows it (h3, to 20000), then shrinks it: with page 4
#    dirty on h2 (a write at 19000), page 3 cached on h3 and page 2 on
#    the owner, h3 truncates the file to 100 bytes. As soon as that
#    returns, every host has it 100 bytes long (no retry), a load past the
#    end is SIGBUS even on the owner, and the owner's export is cut to the
#    first 100 bytes it had. Grown again (h2, to 20000), everything past
#    100 reads as zeros on every host: nothing cut comes back (not h2's
#    dirty write, not step 1's bytes). O_TRUNC (h2, on /wfs/log) empties a
#    file everywhere.
# 4. A mapping sees the size: on h2 a load past the end is SIGBUS; once
#    the owner grows the file (h1, to 32768) the same load reads zero, and
#    a store there (msync) reaches h3 and the owner's disk.
# 5. h2 and h3 grow the file at once, 20 writes each past the end at
#    interleaved offsets: the file ends at the furthest write, on every
#    host, with every write's bytes in place.
# 6. Times follow writes from any host: 3 s after a barrier (the guests'
#    clocks may differ by a second), h2 writes into /wfs/grow and syncs.
#    Its own stat shows the write's mtime and ctime at once; the owner's
#    export file has them too (the write-back), and h1's stat says exactly
#    the export's; h3, which has had the file cached since step 1, sees
#    the export's mtime (h1 posts it) once a second has passed (the
#    times other hosts' files are cached for; tried again for a few
#    seconds, as a GETATTR whose owner is slow to answer is answered from
#    the cache), and a truncate on h3 moves the ctime on every host.
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
fail() {
    echo "FAIL h$h: $*"
    wfsctl status || true
    wfsctl stats || true
    exit 1
}
G=/wfs/grow
LOG=/wfs/log
S1=0 S2A=4 S2B=8 S3=12 S3B=16 S4=20 S4B=24 S4C=28 S5A=32 S5B=36
S3C=40 S3D=44 S6A=48 S6B=52 S6C=56 S6D=60

if [ "$h" = 1 ]; then
    head -c 100 /dev/urandom > /export/grow
    echo "log" > /export/log
    dd if=/dev/zero of=/export/ctl bs=4096 count=1 2>/dev/null
fi
wfsctl wait --peers --timeout 90 || fail "peers not connected"
appear 30 grow log ctl || fail "the files never appeared"
# end_is FILE N: this host's kernel has FILE N bytes long, before anything
# asks the manager (GETATTR): the owner's push put it there.
end_is() {
    s=$($H/filex "$1" end) || fail "lseek of $1: $s"
    [ "$s" = "$2" ] || fail "this host's kernel has $1 at $s bytes, not $2 (no push of the new size)"
}
size_is() {
    s=$($H/filex "$1" size) || fail "fstat of $1: $s"
    [ "$s" = "$2" ] || fail "fstat says $1 is $s bytes, not $2"
    s=$(stat -c %s "$1")
    [ "$s" = "$2" ] || fail "stat says $1 is $s bytes, not $2"
}

# -- 1. a write past the end ---------------------------------------------------
if [ "$h" = 2 ]; then
    size_is $G 100
    out=$($H/filex $G pwrite 5000 BBBBBBBBBB) || fail "a write past the end failed: $out"
    size_is $G 5010
    flag $S1
else
    flagwait $S1
    end_is $G 5010
    size_is $G 5010
    if [ "$h" = 1 ]; then
        [ "$(stat -c %s /export/grow)" = 5010 ] || fail "the owner's export is $(stat -c %s /export/grow) bytes, not 5010"
    fi
    [ "$(dd if=$G bs=1 skip=5000 count=10 2>/dev/null)" = BBBBBBBBBB ] || fail "the bytes written past the end are not there"
    [ "$(dd if=$G bs=100 skip=1 count=49 2>/dev/null | tr -d '\0' | wc -c)" = 0 ] || fail "the gap does not read as zeros"
fi
echo "h$h: step 1: a write past the end grew the file everywhere"

barrier 1
# -- 2. appends under a lock from two hosts ------------------------------------
if [ "$h" != 1 ]; then
    out=$($H/filex $LOG appendn 50 h$h) || fail "appends failed: $out"
    sync
    if [ "$h" = 2 ]; then flag $S2A; else flag $S2B; fi
fi
flagwait $S2A 300
flagwait $S2B 300
lines=$(wc -l < $LOG)
[ "$lines" = 101 ] || fail "the log has $lines lines, not 101: $(sort $LOG | uniq -c | awk '$1 != 1' | head -5)"
for w in 2 3; do
    n=$(grep -c "^h$w [0-9][0-9][0-9][0-9]\$" $LOG) || true
    u=$(grep "^h$w " $LOG | sort -u | wc -l)
    [ "$n" = 50 ] && [ "$u" = 50 ] || fail "the log has $n lines of h$w ($u different), not 50"
done
if [ "$h" = 1 ]; then
    cmp $LOG /export/log || fail "the owner's disk does not hold the log its hosts see"
fi
echo "h$h: step 2: 100 appends from two hosts, each exactly once"

barrier 2
# -- 3. ftruncate grows, then shrinks the file everywhere ----------------------
if [ "$h" = 3 ]; then
    out=$($H/filex $G truncate 20000) || fail "ftruncate to 20000 failed: $out"
    size_is $G 20000
    flag $S3
else
    flagwait $S3
    end_is $G 20000
    size_is $G 20000
    [ "$h" = 2 ] || [ "$(stat -c %s /export/grow)" = 20000 ] || fail "the owner's export is not 20000 bytes"
fi
head -c 100 $G > /tmp/first100
# Pages cached here and there when the shrink comes: page 4 dirty on h2,
# page 3 on h3, page 2 on the owner.
case $h in
    1) dd if=$G bs=4096 skip=2 count=1 2>/dev/null | wc -c > /dev/null ;;
    2) out=$($H/filex $G pwrite 19000 TAIL) || fail "a write at 19000 failed: $out" ;;
    3) dd if=$G bs=4096 skip=3 count=1 2>/dev/null | wc -c > /dev/null ;;
esac
barrier 30
if [ "$h" = 3 ]; then
    out=$($H/filex $G truncate 100) || fail "a shrink to 100 bytes failed: $out"
    size_is $G 100
    flag $S3B
else
    flagwait $S3B
    end_is $G 100
    size_is $G 100
fi
head -c 200 $G > /tmp/now
cmp /tmp/now /tmp/first100 || fail "after the shrink the file does not hold its first 100 bytes (and no more)"
out=$($H/filex $G mapget 5000) && fail "a load past the end after the shrink read $out, not SIGBUS"
[ "$out" = SIGBUS ] || fail "a load past the end after the shrink: $out, not SIGBUS"
if [ "$h" = 1 ]; then
    [ "$(stat -c %s /export/grow)" = 100 ] || fail "the owner's export is $(stat -c %s /export/grow) bytes after the shrink, not 100"
    cmp /export/grow /tmp/first100 || fail "the owner's export does not hold the first 100 bytes after the shrink"
fi
barrier 31
if [ "$h" = 2 ]; then
    out=$($H/filex $G truncate 20000) || fail "ftruncate back to 20000 failed: $out"
    flag $S3C
else
    flagwait $S3C
    end_is $G 20000
fi
size_is $G 20000
cmp -n 100 $G /tmp/first100 || fail "the first 100 bytes changed"
[ "$(tail -c +101 $G | tr -d '\0' | wc -c)" = 0 ] || fail "bytes cut by the shrink came back: $(tail -c +101 $G | tr -d '\0' | head -c 40)"
if [ "$h" = 1 ]; then
    [ "$(tail -c +101 /export/grow | tr -d '\0' | wc -c)" = 0 ] || fail "bytes cut by the shrink came back on the owner's disk"
fi
barrier 32
if [ "$h" = 2 ]; then
    out=$($H/filex $LOG otrunc) || fail "O_TRUNC failed: $out"
    size_is $LOG 0
    flag $S3D
else
    flagwait $S3D
    end_is $LOG 0
    size_is $LOG 0
    [ "$h" = 3 ] || [ "$(stat -c %s /export/log)" = 0 ] || fail "the owner's log is not empty after O_TRUNC"
fi
echo "h$h: step 3: ftruncate grew and shrank the file everywhere; nothing cut came back"

barrier 3
# -- 4. a mapping sees the size ------------------------------------------------
if [ "$h" = 2 ]; then
    out=$($H/filex $G mapget 19999) || fail "a load before the end failed: $out"
    out=$($H/filex $G mapget 20480) && fail "a load past the end read $out, not SIGBUS"
    [ "$out" = SIGBUS ] || fail "a load past the end: $out, not SIGBUS"
    flag $S4
    flagwait $S4B
    out=$($H/filex $G mapget 20480) || fail "a load once the owner grew the file: $out"
    [ "$out" = 0 ] || fail "a load in the grown part read $out, not 0"
    out=$($H/filex $G mapput 30000 MMAP) || fail "a store in the grown part failed: $out"
    flag $S4C
elif [ "$h" = 1 ]; then
    flagwait $S4
    out=$($H/filex $G truncate 32768) || fail "the owner could not grow the file: $out"
    size_is $G 32768
    flag $S4B
    flagwait $S4C
    [ "$(dd if=/export/grow bs=1 skip=30000 count=4 2>/dev/null)" = MMAP ] || fail "the store (msync) is not on the owner's disk"
else
    flagwait $S4C
    size_is $G 32768
    [ "$(dd if=$G bs=1 skip=30000 count=4 2>/dev/null)" = MMAP ] || fail "h2's store through its mapping is not seen here"
fi
echo "h$h: step 4: a mapping faults past the end, and sees the file grow"

barrier 4
# -- 5. two hosts grow the file at once ----------------------------------------
if [ "$h" != 1 ]; then
    k=0
    while [ $k -lt 20 ]; do
        off=$((40000 + k * 200 + (h - 2) * 100))
        out=$($H/filex $G pwrite $off "h$h-$(printf %04d $k)-") || fail "write $k at $off: $out"
        k=$((k + 1))
    done
    sync
    if [ "$h" = 2 ]; then flag $S5A; else flag $S5B; fi
fi
flagwait $S5A 300
flagwait $S5B 300
end_is $G 43908
size_is $G 43908
for w in 2 3; do
    k=0
    while [ $k -lt 20 ]; do
        off=$((40000 + k * 200 + (w - 2) * 100))
        got=$(dd if=$G bs=1 skip=$off count=8 2>/dev/null)
        [ "$got" = "h$w-$(printf %04d $k)-" ] || fail "write $k of h$w at $off reads '$got'"
        k=$((k + 1))
    done
done
if [ "$h" = 1 ]; then
    [ "$(stat -c %s /export/grow)" = 43908 ] || fail "the owner's export is not 43908 bytes"
    cmp $G /export/grow || fail "the owner's disk does not hold what its hosts see"
fi
echo "h$h: step 5: two hosts grew the file at once; every write is there"

barrier 6
# -- 6. mtime and ctime ---------------------------------------------------------
t0=$(date +%s)
# times_after WHAT FILE: FILE's mtime and ctime are 2 s past t0 at least,
# and not in the future.
times_after() {
    m=$(stat -c %Y "$2") c=$(stat -c %Z "$2") now=$(date +%s)
    [ "$m" -ge $((t0 + 2)) ] && [ "$m" -le $((now + 1)) ] ||
        fail "$1: mtime $m, not after the write (t0 $t0, now $now)"
    [ "$c" -ge $((t0 + 2)) ] && [ "$c" -le $((now + 1)) ] ||
        fail "$1: ctime $c, not after the write (t0 $t0, now $now)"
}
# eventually CMD...: CMD succeeds, tried 5 times 1.2 s apart at most: a
# GETATTR whose owner does not answer within a second (a slow debug guest)
# is answered from the cache, and the next one asks again.
eventually() {
    _n=1
    until "$@"; do
        [ $_n -lt 5 ] || return 1
        _n=$((_n + 1))
        sleep 1.2
    done
}
mtime_is() { [ "$(stat -c %Y "$1")" = "$2" ]; }
ctime_past() { [ "$(stat -c %Z "$1")" -ge "$2" ]; }
if [ "$h" = 2 ]; then
    sleep 3
    out=$($H/filex $G pwrite 123 TIMES) || fail "a write at 123 failed: $out"
    times_after "h2's own stat right after its write" $G
    sync
    flag $S6A
else
    flagwait $S6A
fi
if [ "$h" = 1 ]; then
    times_after "the owner's export after h2's write and sync" /export/grow
    em=$(stat -c %Y /export/grow)
    [ "$(stat -c %Y $G)" = "$em" ] || fail "h1's stat says mtime $(stat -c %Y $G), its export $em"
    /opt/helpers/dsm set /wfs/ctl $S6B "$em" || fail "cannot post the export's mtime"
    flag $S6D
fi
if [ "$h" = 3 ]; then
    flagwait $S6D
    em=$(/opt/helpers/dsm get /wfs/ctl $S6B)
    [ "$em" -gt 1 ] || fail "the owner never posted its export's mtime"
    sleep 1.2
    eventually mtime_is $G "$em" || fail "h3's stat says mtime $(stat -c %Y $G), the owner's export $em"
    times_after "h3's stat after h2's write" $G
    sleep 2
    c0=$(stat -c %Z $G)
    out=$($H/filex $G truncate 50000) || fail "a truncate to 50000 failed: $out"
    [ "$(stat -c %Z $G)" -gt "$c0" ] || fail "a truncate on h3 left its ctime at $c0"
    flag $S6C
else
    flagwait $S6C
    sleep 1.2
    eventually ctime_past $G $((t0 + 5)) ||
        fail "the truncate on h3 did not move the ctime on h$h ($(stat -c %Z $G), t0 $t0)"
    c=$(stat -c %Z $G) c0=$(stat -c %Z /export/grow 2>/dev/null || echo 0)
    [ "$h" != 1 ] || [ "$c" = "$c0" ] || fail "h1's stat says ctime $c, its export $c0"
fi
size_is $G 50000
echo "h$h: step 6: mtime and ctime follow writes and truncates from other hosts"
st=$(wfsctl stats | grep "^sizes")
echo "h$h: $st"
told=$(echo "$st" | sed -n 's/.*sent to peers \([0-9]*\).*/\1/p')
heard=$(echo "$st" | sed -n 's/.*heard from owners \([0-9]*\).*/\1/p')
if [ "$h" = 1 ]; then
    [ "${told:-0}" -gt 0 ] || fail "the owner counts no new size sent to its peers"
else
    [ "${heard:-0}" -gt 0 ] || fail "h$h counts no new size heard from the owner"
fi
sleep 3
echo "PASS h$h"
