#!/bin/sh
# hosts: 3
# timeout: 400
# coherence: single mrsw
# debug-coherence: mrsw
#
# Open sets (Documentation/fs-plan.md, step 2): a file removed while
# other hosts have it open or mapped keeps its data until the last close,
# as POSIX says, across hosts. h1 exports /wfs/ctl and /wfs/kept (3 pages
# of "kept\n").
#
# 1. h2 and h3 map kept (mmaphold), and h3 also opens it (a descriptor of
#    its shell). h3 removes it (rm): at once the name is gone on every host
#    (stat, ls) and from h1's export, but h1's export keeps the data under
#    a hidden name that no host lists or finds, and no host can make.
# 2. Through the removed file, the memory is still shared: h2 writes
#    through its mapping and h3 reads that through its mapping and through
#    /proc/self/fd (an open of the removed file); h3 writes by write(2)
#    there and h2 reads it through its mapping.
# 3. h2 unmaps and closes: still kept (h3 has it). h3 closes its
#    descriptor and its mapping's process is killed (SIGKILL): the hidden
#    file goes from h1's export, and h1's stats count one file kept.
# 4. On the owner itself: h1 makes /wfs/own, keeps it open, and h2
#    removes it: h1 reads it whole through its descriptor; the hidden file
#    goes at h1's close.
# 5. Across a manager's restart: h2 opens h1's /wfs/sess and restarts its
#    manager, which lists what its kernel has open (IOC_OPENS) and tells
#    the owners; h2 opens the file again. h1 removes it: kept. h2 closes
#    the descriptor it opened before the restart (its RELEASE is the new
#    manager's, which adopted it): still kept; h2 reads the file whole
#    through the other one; the hidden file goes at h2's last close.
#    (Before, a restarted manager knew nothing of its kernel's opens: the
#    rm removed the data, and the old descriptor's RELEASE took the new
#    open off the count.)
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
fail() {
    echo "FAIL h$h: $*"
    ls -la /wfs /export || true
    wfsctl status || true
    wfsctl stats || true
    exit 1
}
hex() { printf %s "$1" | od -An -tx1 | tr -d ' \n'; }
kept_here() { ls -a /export | grep -q '^\.wfs-gone-'; }
no_kept_here() { ! kept_here; }
S1=0 S2=4 S3=8 S4=12 S5=16 S6=20 S7=24 S8=28 S9=32 S10=36 S11=40 S12=44 S13=48 S14=52

if [ "$h" = 1 ]; then
    dd if=/dev/zero of=/export/ctl bs=4096 count=1 2>/dev/null
    yes kept | head -c 12288 > /export/kept
fi
wfsctl wait --peers --timeout 90 || fail "peers not connected"
appear 30 ctl kept || fail "the files never appeared"

# -- 1. removed while mapped and open elsewhere ---------------------------------
if [ "$h" != 1 ]; then
    hold /wfs/kept 12288
    cmd r 0 5; [ "$R" = "$(hex "kept
")" ] || fail "mapped read of kept: $R"
fi
[ "$h" = 3 ] && exec 4< /wfs/kept
barrier 1
if [ "$h" = 3 ]; then
    rm /wfs/kept || fail "rm of the open /wfs/kept failed"
    flag $S1
else
    flagwait $S1
fi
[ ! -e /wfs/kept ] || fail "kept still exists after its rm returned"
ls /wfs | grep -qx kept && fail "ls still lists kept"
ls -a /wfs | grep -q 'wfs-gone' && fail "ls shows a hidden name: $(ls -a /wfs | tr '\n' ' ')"
if [ "$h" = 1 ]; then
    [ ! -e /export/kept ] || fail "kept is still in its owner's export"
    kept_here || fail "no hidden file keeps kept's data: $(ls -a /export | tr '\n' ' ')"
    hidden=$(ls -a /export | grep '^\.wfs-gone-')
    [ "$(head -c 5 "/export/$hidden")" = "kept" ] || fail "the hidden file does not hold kept's data"
    [ ! -e "/wfs/$hidden" ] || fail "the hidden name $hidden is found under /wfs"
    if echo x > "/wfs/$hidden" 2>/dev/null; then fail "a hidden name could be made"; fi
fi
barrier 2

# -- 2. the removed file is still one shared memory -----------------------------
if [ "$h" = 2 ]; then
    cmd w 100 fromh2; [ "$R" = ok ] || fail "write through h2's mapping of the removed file: $R"
    flag $S2
    flagwait $S3
    cmd r 200 6; [ "$R" = "$(hex fromh3)" ] || fail "h2's mapping does not see h3's write: $R"
fi
if [ "$h" = 3 ]; then
    flagwait $S2
    cmd r 100 6; [ "$R" = "$(hex fromh2)" ] || fail "h3's mapping does not see h2's write: $R"
    got=$(dd if=/proc/$$/fd/4 bs=1 skip=100 count=6 2>/dev/null)
    [ "$got" = fromh2 ] || fail "reading the removed file through /proc/self/fd gives '$got'"
    r=$($H/filex /proc/$$/fd/4 pwrite 200 fromh3) || fail "write to the removed file: $r"
    flag $S3
fi
barrier 3

# -- 3. the last close removes it -----------------------------------------------
if [ "$h" = 2 ]; then
    exec 3>&-
    wait $hold || fail "h2's mmaphold failed"
    flag $S4
fi
if [ "$h" = 1 ]; then
    flagwait $S4
    sleep 1
    kept_here || fail "the hidden file went while h3 still has it open"
    flag $S8
    flagwait $S5
    within 30 no_kept_here || fail "the hidden file stayed after the last close: $(ls -a /export | tr '\n' ' ')"
    wfsctl stats | grep -q '^names: .*kept open after their name went 1;' ||
        fail "stats: $(wfsctl stats | grep '^names:')"
fi
if [ "$h" = 3 ]; then
    flagwait $S8
    exec 4<&-
    kill -KILL $hold
    wait $hold 2>/dev/null || true
    flag $S5
fi
barrier 4

# -- 4. removed at its owner's while the owner has it open ----------------------
if [ "$h" = 1 ]; then
    yes own | head -c 8192 > /wfs/own || fail "making /wfs/own failed"
    exec 5< /wfs/own
    flag $S6
    flagwait $S7
    [ ! -e /wfs/own ] || fail "own still exists after its rm"
    kept_here || fail "no hidden file keeps own's data"
    [ "$(wc -c <&5)" = 8192 ] || fail "the removed own cannot be read whole through its descriptor"
    exec 5<&-
    within 30 no_kept_here || fail "own's hidden file stayed after the owner's close"
fi
if [ "$h" = 2 ]; then
    flagwait $S6
    rm /wfs/own || fail "rm of h1's open /wfs/own failed"
    flag $S7
fi

barrier 5

# -- 5. a close of an open an earlier manager counted ---------------------------
if [ "$h" = 1 ]; then
    yes sess | head -c 8192 > /wfs/sess || fail "making /wfs/sess failed"
    flag $S9
    flagwait $S10
    rm /wfs/sess || fail "rm of /wfs/sess failed"
    kept_here || fail "sess was removed though h2 has it open across its manager's restart"
    flag $S11
    flagwait $S12
    sleep 1
    kept_here || fail "sess went though h2 still has a descriptor of it"
    flag $S13
    flagwait $S14
    within 30 no_kept_here || fail "sess's hidden file stayed after h2's last close"
fi
if [ "$h" = 2 ]; then
    flagwait $S9
    exec 6< /wfs/sess
    restart_manager_with ''
    wfsctl wait --peers --timeout 90 || fail "peers not connected after the restart"
    exec 7< /wfs/sess
    flag $S10
    flagwait $S11
    exec 6<&-
    flag $S12
    flagwait $S13
    [ "$(wc -c <&7)" = 8192 ] || fail "sess, open here, cannot be read whole after h1 removed it"
    exec 7<&-
    flag $S14
fi
# (Every host stays until h1 saw the last close: h2's restarted manager
# waits for all its peers.)
barrier 6

wfsctl stats | grep '^names:'
owner_last /wfs/ctl 2048 1 || fail "not every host finished"
echo "PASS h$h"
