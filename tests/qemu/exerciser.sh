#!/bin/sh
# hosts: 2
# timeout: 600
# coherence: single mrsw
# debug-coherence: mrsw
#
# fsx, our seeded file exerciser (helpers/fsx.c), against /wfs from two
# hosts at once, each on a file the other owns (h1 owns x1, h2 owns x2):
# random pwrites (growing the file), preads, reads and writes through a
# shared mapping, ftruncate up and down (the pages past a new end taken
# back from the other host first; what was cut reads as zeros once the
# file grows again), fsync, msync and reopening, each checked against a
# model in memory (bytes read, the size fstat and lseek give, zeros past
# the end of a mapped last page).
#
# 1. h2 runs 1500 operations on x1 while h1 runs 1500 on x2. Each owner
#    then finds in its export exactly the bytes the exerciser's model
#    ended with (compared by size and checksum, told through a shared
#    page).
# 2. Each owner goes on with 600 operations on its own file from where the
#    other host left it (the pages come back), and the other host then
#    reads the same bytes through /wfs.
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
fail() {
    echo "FAIL h$h: $*"
    wfsctl status || true
    exit 1
}
o=$((3 - h))   # the other host
if [ "$h" = 1 ]; then seed=11; else seed=22; fi

head -c 20000 /dev/urandom > /export/x$h
dd if=/dev/zero of=/export/r$h bs=64 count=1 2>/dev/null
if [ "$h" = 1 ]; then dd if=/dev/zero of=/export/ctl bs=4096 count=1 2>/dev/null; fi
wfsctl wait --peers --timeout 90 || fail "peers not connected"
appear 30 x1 x2 r1 r2 ctl || fail "the files never appeared"

# tell FILE TEXT: TEXT, padded, into the shared file FILE.
tell() { $H/filex "$1" pwrite 0 "$(printf '%-40s' "$2")" > /dev/null || fail "could not write $1"; }
heard() { dd if="$1" bs=40 count=1 2>/dev/null | tr -s ' ' | sed 's/ $//'; }

# -- 1. each host on the other's file --------------------------------------------
out=$($H/fsx /wfs/x$o $seed 1500) || fail "fsx on x$o: $out"
echo "h$h: fsx on x$o: $out"
tell /wfs/r$o "${out#ok }"
barrier 1
want=$(heard /wfs/r$h)
got=$($H/fsx --sum /export/x$h)
[ "$got" = "$want" ] || fail "x$h on this owner's disk is '$got', the exerciser's model '$want'"
echo "h$h: x$h on disk matches the model ($got)"
barrier 2

# -- 2. each owner goes on with its own file ---------------------------------------
out=$($H/fsx /wfs/x$h $((seed + 1)) 600) || fail "fsx on x$h: $out"
echo "h$h: fsx on x$h: $out"
tell /wfs/r$o "${out#ok }"
barrier 3
want=$(heard /wfs/r$h)
# (The other host's result is in r$h: it exercised x$o; check that.)
got=$($H/fsx --sum /wfs/x$o)
[ "$got" = "$want" ] || fail "x$o read here is '$got', its owner's model '$want'"
echo "h$h: x$o read here matches its owner's model ($got)"
barrier 4
# (Stay up a little: the other host may still read the last flags.)
sleep 3
echo "PASS h$h"
