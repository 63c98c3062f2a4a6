#!/bin/sh
# hosts: 3
# timeout: 500
# coherence: single mrsw
# debug-coherence: mrsw
#
# Files are made and removed from any host, and every host sees the change
# as soon as the call that made it returns (Documentation/fs-plan.md,
# step 3). h1 exports /wfs/ctl and /wfs/victim to begin with.
#
# 1. Every host looks /wfs/made up first (missing: the kernel caches the
#    miss). h2 then makes it with O_CREAT (a shell redirection) and writes
#    to it: at once, h1 and h3 read it, stat gives its size and mode, and
#    ls lists it; after a sync everywhere, h2's export holds it (h2 owns
#    what it makes), nobody else's does.
# 2. O_EXCL race: the three hosts open /wfs/race with O_CREAT | O_EXCL at
#    once. Exactly one succeeds (each says so in /wfs/ctl), every host can
#    open the file afterwards (a name made twice would be refused as a
#    duplicate), and each host's answer matches its own export: the
#    winner has the file, the others got EEXIST.
# 3. O_CREAT race without O_EXCL: the three hosts open /wfs/shared at once,
#    each writing its own bytes at its own offset: one file, with all
#    three writes, on every host.
# 4. Unlink from afar: h2 reads /wfs/victim (3 pages, h1's), h3 removes it
#    (rm): at once it is gone on every host (stat, ls, open) and from h1's
#    export; removing it again is ENOENT. h2 then makes a file of the same
#    name (h2 owns it now): every host reads the new bytes, not the old
#    file's.
# 5. Ordinary tools: cp of a file into /wfs on h3 and cmp on h1; tar
#    round trip: h1 writes a tar archive of files whose times it set
#    (touch -d) into /wfs, h2 unpacks it into /wfs (tar makes the files
#    and sets their times: SETTIMES), h3 compares them with its own
#    copies, and every file has its archived time on h3 and in h2's
#    export (the owner's). h1 then sets one of them back in time (touch
#    -d): h3, which has it cached with its later time, sees the earlier
#    one, and so does h2's export. rm of all of it from h1.
# 6. On h2, a file removed while it is open, made again (another file,
#    one link), and removed again, without a kernel warning; the open
#    file still reads its own data.
# 7. Placement: every host restarts its manager (in turn, h1 last) with a
#    rule that places files named *.db at h1. h3 makes /wfs/p.db and
#    /wfs/q.txt: every host reads p.db, and after a sync h1's export holds
#    it (not h3's), while q.txt, which no rule matches, is h3's; O_EXCL of
#    p.db is EEXIST on every host; h3's stats count one creation placed
#    elsewhere. h2 removes both.
# 8. Rename (mv): h1 makes /wfs/mv.src (2 pages); h2 and h3 read it. h3
#    renames it to mv.dst: at once mv.src is gone on every host (stat, ls)
#    and mv.dst is the same file (its data, its inode number) everywhere,
#    in h1's export under the new name; h2 writes it through the new name
#    and h3 reads that. h1 makes mv.old, which h2 reads; h2 renames mv.dst
#    over it: mv.old is mv.dst's file on every host (inode, data), the old
#    bytes are gone from the export, mv.dst is gone. A file of another
#    owner (h2's mv.h2) cannot be replaced by a rename (EXDEV): h3's mv
#    copies mv.old over it and removes mv.old, and every host reads the
#    copy; h3's stats count the renames and the refusal.
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
fail() {
    echo "FAIL h$h: $*"
    ls -l /wfs /export || true
    wfsctl status || true
    wfsctl stats || true
    exit 1
}
S1=0 S4A=4 S4B=8 S4C=12 S5A=16 S5B=20 S7=24 S8A=28 S8B=32 S8C=36 S5C=52 S5D=56 S5E=60 WIN=1024

if [ "$h" = 1 ]; then
    dd if=/dev/zero of=/export/ctl bs=4096 count=1 2>/dev/null
    head -c 12288 /dev/urandom > /export/victim
fi
wfsctl wait --peers --timeout 90 || fail "peers not connected"
appear 30 ctl victim || fail "the files never appeared"

# -- 1. a file made on h2 ------------------------------------------------------
[ ! -e /wfs/made ] || fail "/wfs/made exists before anyone made it"
barrier 1
if [ "$h" = 2 ]; then
    echo "made on h2" > /wfs/made || fail "O_CREAT of /wfs/made failed"
    flag $S1
else
    flagwait $S1
fi
[ "$(cat /wfs/made)" = "made on h2" ] || fail "/wfs/made reads '$(cat /wfs/made 2>&1)'"
[ "$(stat -c '%s %a' /wfs/made)" = "11 644" ] || fail "stat /wfs/made: $(stat -c '%s %a' /wfs/made)"
ls /wfs | grep -qx made || fail "ls /wfs does not list made: $(ls /wfs | tr '\n' ' ')"
# (Whichever host holds the page dirty writes it home.)
sync
barrier 11
if [ "$h" = 2 ]; then
    [ "$(cat /export/made)" = "made on h2" ] || fail "h2's export does not hold made after sync"
else
    [ ! -e /export/made ] || fail "made is in h$h's export too"
fi

# -- 2. O_EXCL race ------------------------------------------------------------
barrier 2
r=$($H/filex /wfs/race excl) || true
# Each host says how it went (1: made it, 2: EEXIST) in /wfs/ctl.
case "$r" in ok) v=1 ;; EEXIST) v=2 ;; *) v=3 ;; esac
$H/dsm set /wfs/ctl $((WIN + 4 * h)) $v || fail "cannot say how the race went"
barrier 3
wins=0
for o in 1 2 3; do
    [ "$($H/dsm get /wfs/ctl $((WIN + 4 * o)))" = 1 ] && wins=$((wins + 1))
done
[ "$wins" = 1 ] || fail "$wins hosts made /wfs/race with O_EXCL, not 1"
case "$r" in
ok) [ -e /export/race ] || fail "O_EXCL succeeded here, but this host's export lacks race" ;;
EEXIST) [ ! -e /export/race ] || fail "O_EXCL failed (EEXIST) here, but this host made race" ;;
*) fail "O_EXCL of /wfs/race: $r" ;;
esac
$H/filex /wfs/race size > /dev/null || fail "race cannot be opened (made twice?)"
echo "h$h: O_EXCL race: $r"

# -- 3. O_CREAT race -----------------------------------------------------------
barrier 4
out=$($H/filex /wfs/shared create pwrite $((h * 100)) "written by h$h") ||
    fail "O_CREAT of /wfs/shared: $out"
barrier 5
for o in 1 2 3; do
    got=$(dd if=/wfs/shared bs=1 skip=$((o * 100)) count=13 2>/dev/null)
    [ "$got" = "written by h$o" ] || fail "/wfs/shared at $((o * 100)) reads '$got'"
done
[ -e /export/shared ] && echo "h$h owns shared"

# -- 4. unlink from afar -------------------------------------------------------
if [ "$h" = 2 ]; then
    cmp -s -n 4096 /wfs/victim /wfs/victim || fail "cannot read victim"
fi
barrier 6
if [ "$h" = 3 ]; then
    rm /wfs/victim || fail "rm of h1's /wfs/victim failed"
    flag $S4A
else
    flagwait $S4A
fi
[ ! -e /wfs/victim ] || fail "victim still exists after its rm returned"
ls /wfs | grep -qx victim && fail "ls still lists victim"
if [ "$h" = 1 ]; then
    [ ! -e /export/victim ] || fail "victim is still in its owner's export"
fi
r=$($H/filex /wfs/victim unlink 2>&1) && fail "opening the removed victim worked: $r"
barrier 7
if [ "$h" = 1 ]; then
    r=$(rm /wfs/victim 2>&1) && fail "a second rm of victim succeeded"
    echo "$r" | grep -q 'No such file' || fail "a second rm of victim: $r"
fi
barrier 12
if [ "$h" = 2 ]; then
    echo "victim again, on h2" > /wfs/victim || fail "making victim again failed"
    [ -e /export/victim ] || fail "h2 made victim, but its export lacks it"
    flag $S4B
else
    flagwait $S4B
fi
[ "$(cat /wfs/victim)" = "victim again, on h2" ] || fail "the new victim reads '$(head -c 40 /wfs/victim | od -c | head -2)'"
[ "$(stat -c %s /wfs/victim)" = 20 ] || fail "the new victim is $(stat -c %s /wfs/victim) bytes"
barrier 8

# -- 5. cp, tar, rm ------------------------------------------------------------
if [ "$h" = 3 ]; then
    cp $H/filex /wfs/filex.copy || fail "cp into /wfs failed"
    flag $S5A
fi
if [ "$h" = 1 ]; then
    flagwait $S5A
    cmp $H/filex /wfs/filex.copy || fail "the copy h3 made differs"
    mkdir -p /tmp/t && cp $H/lib.sh $H/filex $H/dsm /tmp/t
    touch -d @1000000001 /tmp/t/lib.sh && touch -d @1000000002 /tmp/t/filex &&
        touch -d @1000000003 /tmp/t/dsm || fail "touch -d in /tmp failed"
    (cd /tmp/t && tar -cf /wfs/helpers.tar lib.sh filex dsm) || fail "tar into /wfs failed"
    flag $S5B
fi
if [ "$h" = 2 ]; then
    flagwait $S5B
    tar -xf /wfs/helpers.tar -C /wfs || fail "tar -x into /wfs failed"
    flag $S4C
fi
if [ "$h" = 3 ]; then
    flagwait $S4C
    for f in lib.sh filex dsm; do
        cmp $H/$f /wfs/$f || fail "$f, unpacked into /wfs by h2, differs"
    done
    for ft in lib.sh:1000000001 filex:1000000002 dsm:1000000003; do
        f=${ft%:*} t=${ft#*:}
        [ "$(stat -c %Y /wfs/$f)" = "$t" ] ||
            fail "$f, unpacked by h2, has mtime $(stat -c %Y /wfs/$f) here, not its archived $t"
    done
    flag $S5C
fi
mtime_is() { [ "$(stat -c %Y "$1")" = "$2" ]; }
if [ "$h" = 2 ]; then
    flagwait $S5C
    for ft in lib.sh:1000000001 filex:1000000002 dsm:1000000003; do
        f=${ft%:*} t=${ft#*:}
        mtime_is /export/$f $t ||
            fail "$f has mtime $(stat -c %Y /export/$f) in its owner's export, not $t"
    done
    flag $S5E
fi
if [ "$h" = 1 ]; then
    flagwait $S5E
    touch -d @999999999 /wfs/filex || fail "touch -d of h2's /wfs/filex failed"
    mtime_is /wfs/filex 999999999 || fail "filex has mtime $(stat -c %Y /wfs/filex) after touch -d"
    wfsctl stats | grep -q '^names: .*; times set 1$' ||
        fail "stats: $(wfsctl stats | grep '^names:')"
    flag $S5D
fi
if [ "$h" != 1 ]; then
    flagwait $S5D
    where=/wfs/filex
    [ "$h" = 2 ] && where=/export/filex
    within 10 mtime_is $where 999999999 ||
        fail "$where has mtime $(stat -c %Y $where), not the 999999999 h1 set"
fi
# -- 6. a name removed while open, made again, removed again ------------------
if [ "$h" = 2 ]; then
    echo one > /wfs/again
    exec 3< /wfs/again
    rm /wfs/again || fail "rm of an open file failed"
    echo two > /wfs/again || fail "making a removed name again failed"
    [ "$(stat -c %h /wfs/again)" = 1 ] || fail "a name made again has $(stat -c %h /wfs/again) links"
    [ "$(cat /wfs/again)" = two ] || fail "the name made again reads '$(cat /wfs/again)'"
    rm /wfs/again || fail "the second rm failed"
    # (The first file's data lives until its last close.)
    [ "$(cat <&3)" = one ] || fail "the open file removed reads '$(cat <&3)'"
    exec 3<&-
    if dmesg | grep -q "WARNING"; then
        fail "the kernel warned: $(dmesg | grep -A8 WARNING | head -20)"
    fi
fi
barrier 9
if [ "$h" = 1 ]; then
    rm /wfs/filex.copy /wfs/helpers.tar /wfs/lib.sh /wfs/filex /wfs/dsm /wfs/made ||
        fail "rm from h1 failed"
fi
barrier 10
for f in filex.copy helpers.tar lib.sh filex dsm made; do
    [ ! -e /wfs/$f ] || fail "$f still exists after rm"
    [ ! -e /export/$f ] || fail "$f still in h$h's export after rm"
done

# -- 7. placement ----------------------------------------------------------------
# In turn, h1 (the owner of /wfs/ctl) last: a host restarting right past a
# barrier would take /wfs/ctl away from one still reading its words there
# (restart_in_turn in lib.sh; 128 bytes from 3072).
restart_in_turn /wfs/ctl 3072 1 'place = [{ names = "*.db", host = "h1" }]' ||
    fail "the restart with a placement rule failed"
# (A step of its own: barrier 12, used in step 3, would pass at once, and
# h3 would make p.db while another host's manager is still restarting.)
barrier 24
wfsctl wait --peers --timeout 90 || fail "peers not connected after every restart"
if [ "$h" = 3 ]; then
    echo "placed by h3" > /wfs/p.db || fail "O_CREAT of /wfs/p.db failed"
    echo "made by h3" > /wfs/q.txt || fail "O_CREAT of /wfs/q.txt failed"
    flag $S7
else
    flagwait $S7
fi
[ "$(cat /wfs/p.db)" = "placed by h3" ] || fail "/wfs/p.db reads '$(cat /wfs/p.db 2>&1)'"
[ "$(cat /wfs/q.txt)" = "made by h3" ] || fail "/wfs/q.txt reads '$(cat /wfs/q.txt 2>&1)'"
r=$($H/filex /wfs/p.db excl) || true
[ "$r" = EEXIST ] || fail "O_EXCL of /wfs/p.db, made already: $r"
sync
barrier 13
if [ "$h" = 1 ]; then
    [ "$(cat /export/p.db 2>&1)" = "placed by h3" ] ||
        fail "h1's export does not hold p.db, which the rule places here: $(cat /export/p.db 2>&1)"
else
    [ ! -e /export/p.db ] || fail "p.db is in h$h's export, though the rule places it at h1"
fi
if [ "$h" = 3 ]; then
    [ "$(cat /export/q.txt 2>&1)" = "made by h3" ] || fail "q.txt, which no rule matches, is not in its maker's export"
    wfsctl stats | grep -q '^names: created 2 .*placement rule 1)' ||
        fail "stats: $(wfsctl stats | grep '^names:')"
else
    [ ! -e /export/q.txt ] || fail "q.txt is in h$h's export, not its maker's"
fi
barrier 14
if [ "$h" = 2 ]; then
    rm /wfs/p.db /wfs/q.txt || fail "rm of p.db and q.txt from h2 failed"
fi
barrier 15
for f in p.db q.txt; do
    [ ! -e /wfs/$f ] || fail "$f still exists after rm"
    [ ! -e /export/$f ] || fail "$f still in h$h's export after rm"
done

# -- 8. rename -------------------------------------------------------------------
if [ "$h" = 1 ]; then
    head -c 8192 /dev/urandom > /tmp/src && cp /tmp/src /wfs/mv.src || fail "making mv.src failed"
    echo "old bytes" > /wfs/mv.old || fail "making mv.old failed"
fi
barrier 16
appear 30 mv.src mv.old || fail "mv.src and mv.old never appeared"
ino=$(stat -c %i /wfs/mv.src)
sum=$(md5sum < /wfs/mv.src)
[ "$h" = 2 ] && { [ "$(cat /wfs/mv.old)" = "old bytes" ] || fail "mv.old reads '$(cat /wfs/mv.old)'"; }
barrier 17
if [ "$h" = 3 ]; then
    mv /wfs/mv.src /wfs/mv.dst || fail "mv of h1's mv.src to mv.dst failed"
    flag $S8A
else
    flagwait $S8A
fi
[ ! -e /wfs/mv.src ] || fail "mv.src still exists after its mv returned"
ls /wfs | grep -qx mv.src && fail "ls still lists mv.src"
[ "$(stat -c %i /wfs/mv.dst)" = "$ino" ] || fail "mv.dst is inode $(stat -c %i /wfs/mv.dst), mv.src was $ino"
[ "$(md5sum < /wfs/mv.dst)" = "$sum" ] || fail "mv.dst does not hold mv.src's bytes"
# (Written home, by whichever host holds the pages dirty.)
sync
barrier 23
if [ "$h" = 1 ]; then
    [ ! -e /export/mv.src ] && cmp -s /export/mv.dst /tmp/src || fail "h1's export does not hold mv.src as mv.dst"
fi
barrier 18
if [ "$h" = 2 ]; then
    $H/dsm set /wfs/mv.dst 4096 4242 || fail "writing mv.dst failed"
    flag $S8B
fi
if [ "$h" = 3 ]; then
    flagwait $S8B
    [ "$($H/dsm get /wfs/mv.dst 4096)" = 4242 ] || fail "h2's write to mv.dst reads $($H/dsm get /wfs/mv.dst 4096) on h3"
fi
barrier 19
if [ "$h" = 2 ]; then
    mv /wfs/mv.dst /wfs/mv.old || fail "mv of mv.dst over mv.old failed"
    flag $S8C
else
    flagwait $S8C
fi
[ ! -e /wfs/mv.dst ] || fail "mv.dst still exists after it was renamed over mv.old"
[ "$(stat -c %i /wfs/mv.old)" = "$ino" ] || fail "mv.old is inode $(stat -c %i /wfs/mv.old), not mv.dst's $ino"
[ "$($H/dsm get /wfs/mv.old 4096)" = 4242 ] || fail "mv.old does not hold mv.dst's data"
[ "$(stat -c %s /wfs/mv.old)" = 8192 ] || fail "mv.old is $(stat -c %s /wfs/mv.old) bytes, not mv.dst's 8192"
sync
barrier 20
if [ "$h" = 1 ]; then
    grep -q "old bytes" /export/mv.old && fail "the replaced file's bytes are still in h1's export"
    [ ! -e /export/mv.dst ] || fail "mv.dst still in h1's export"
    [ "$(stat -c %s /export/mv.old)" = 8192 ] || fail "h1's mv.old is $(stat -c %s /export/mv.old) bytes"
fi
if [ "$h" = 2 ]; then
    echo "h2's own" > /wfs/mv.h2 || fail "making mv.h2 failed"
    flag $((S8C + 4))
fi
if [ "$h" = 3 ]; then
    flagwait $((S8C + 4))
    [ "$(cat /wfs/mv.h2)" = "h2's own" ] || fail "mv.h2 reads '$(cat /wfs/mv.h2)'"
    mv /wfs/mv.old /wfs/mv.h2 || fail "mv of h1's mv.old over h2's mv.h2 failed"
    wfsctl stats | grep -q '^names: .*renamed 2 (failed, EXDEV included 1)' ||
        fail "stats: $(wfsctl stats | grep '^names:')"
    flag $((S8C + 8))
else
    flagwait $((S8C + 8))
fi
[ ! -e /wfs/mv.old ] || fail "mv.old still exists after mv copied it over mv.h2"
[ "$($H/dsm get /wfs/mv.h2 4096)" = 4242 ] || fail "mv.h2 does not hold the copy of mv.old"
[ "$(stat -c %s /wfs/mv.h2)" = 8192 ] || fail "mv.h2 is $(stat -c %s /wfs/mv.h2) bytes after the copy"
barrier 21
[ "$h" = 1 ] && { rm /wfs/mv.h2 || fail "rm of mv.h2 failed"; }
barrier 22
[ ! -e /wfs/mv.h2 ] || fail "mv.h2 still exists after rm"

wfsctl stats | grep '^names:'
owner_last /wfs/ctl 2048 1 || fail "not every host finished"
echo "PASS h$h"
