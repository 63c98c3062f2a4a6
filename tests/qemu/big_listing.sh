#!/bin/sh
# hosts: 2
# timeout: 300
#
# A directory bigger than one message: h1 exports 6000 files with the
# longest names there are (255 bytes), and h2 lists them all through
# /wfs. The listing goes in parts (Listed, at most 4096 names and 256 KiB
# each): it used to be cut at 4096 names without a word, and a part of
# 4096 such names was larger than a frame may be, so the connection
# dropped and the listing waited for ever.
set -u
H=/opt/helpers
. $H/lib.sh
h=${WFS_HOST#h}
fail() { echo "FAIL: $*"; wfsctl status || true; exit 1; }
# 250 zeros: with a 5-digit number, a name of 255 bytes.
P=00000000000000000000000000000000000000000000000000
P=$P$P$P$P$P
FIRST=10000
LAST=15999

wfsctl wait --peers --timeout 90 || fail "peers not connected"
# /wfs/ctl (h1's): word 0 is 1 once h1's files exist, word 1 once h2 has
# listed them (h1 stays until then: its manager serves the listing).
CTL=/wfs/ctl
if [ "$h" = 1 ]; then
    dd if=/dev/zero of=/export/ctl bs=4096 count=1 2>/dev/null
    i=$FIRST
    while [ $i -le $LAST ]; do
        : > "/export/$P$i" || fail "cannot create file $i"
        i=$((i + 1))
    done
    $H/dsm set $CTL 0 1 || fail "cannot set the flag"
    $H/dsm wait $CTL 4 1 240 || fail "h2 never listed the directory"
    echo PASS
    exit 0
fi
appear 60 ctl || fail "$CTL never appeared"
$H/dsm wait $CTL 0 1 240 || fail "h1's files never appeared"
$H/lsdir /wfs > /tmp/names || fail "getdents64 of /wfs failed"
n=$((LAST - FIRST + 1))
got=$(grep -c "^$P" /tmp/names)
[ "$got" = $n ] || fail "/wfs lists $got of h1's $n files"
[ "$(grep "^$P" /tmp/names | sort -u | wc -l)" = $n ] || fail "names listed twice"
grep -qx "$P$FIRST" /tmp/names || fail "the first name is missing"
grep -qx "$P$LAST" /tmp/names || fail "the last name is missing"
$H/dsm set $CTL 4 1 || fail "cannot set the flag"
echo PASS
