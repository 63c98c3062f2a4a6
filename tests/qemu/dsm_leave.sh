#!/bin/sh
# hosts: 3
# timeout: 300
#
# A host that leaves on purpose loses nothing. h1 writes into two pages of
# h3's files through shared mappings (a "done" note among them), leaves
# them dirty (no msync, periodic writeback off) and finishes: tools/wfs-vm
# then stops its manager with SIGTERM, as a shutdown does, before the guest
# powers off. The manager hands every page it holds back to its owner,
# dirty data included, and tells the peers it is leaving.
#
# - h2, once it sees h1 gone (`wfsctl status`: dead), reads both pages and
#   finds h1's bytes.
# - The owner's disk holds them, and nothing was reported lost: the pages
#   came home, they did not wait for the failure time-out to be taken back
#   from a dead host.
# Before, the guest took the pages it last wrote with it.
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
READ=0           # /wfs/flags: h2 has read h1's bytes
fail() { fail_with_state "$@"; }

echo 0 > /proc/sys/vm/dirty_writeback_centisecs
wfsctl wait --peers --timeout 90 || fail "peers not connected"
if [ "$h" = 3 ]; then
    dd if=/dev/zero of=/export/.data bs=4096 count=4 2>/dev/null && mv /export/.data /export/data
    dd if=/dev/zero of=/export/flags bs=4096 count=1 2>/dev/null
fi
appear 60 data flags || fail "/wfs/data or /wfs/flags never appeared"

case $h in
1)
    $H/mmapwrite /wfs/data 16384 8192 written-by-h1 || fail "writing page 2"
    $H/mmapwrite /wfs/data 16384 12288 h1-is-done || fail "writing page 3"
    grep -q written-by-h1 /export/data 2>/dev/null && fail "h1 owns nothing, yet /export/data changed"
    echo "h1: wrote two pages of /wfs/data, left them dirty; leaving"
    ;;
2)
    i=0
    until wfsctl status | grep -q "^peer h1 .*; dead "; do
        i=$((i + 1))
        [ $i -le 600 ] || fail "h1 never left: $(wfsctl status | grep '^peer h1')"
        sleep 0.1
    done
    echo "h2: h1 has left"
    [ "$(dd if=/wfs/data bs=1 skip=12288 count=10 2>/dev/null)" = h1-is-done ] ||
        fail "page 3 lacks h1's note: $(dd if=/wfs/data bs=1 skip=12288 count=10 2>/dev/null | od -c | head -2)"
    [ "$(dd if=/wfs/data bs=1 skip=8192 count=13 2>/dev/null)" = written-by-h1 ] ||
        fail "page 2 lacks h1's bytes"
    echo "h2: reads h1's bytes after it left"
    $H/dsm set /wfs/flags $READ 1
    $H/dsm wait /wfs/flags 4 1 120 || fail "the owner never checked"
    ;;
3)
    $H/dsm wait /wfs/flags $READ 1 180 || fail "h2 never read h1's bytes"
    grep -q written-by-h1 /export/data || fail "/export/data lacks h1's bytes"
    grep -q h1-is-done /export/data || fail "/export/data lacks h1's note"
    lost=$(failures 2)
    [ "$lost" = 0 ] || fail "$lost page(s) reported lost with h1, which left cleanly"
    [ "$(failures 1)" -ge 1 ] || fail "h1's leaving was not taken as its end"
    echo "h3: h1's bytes are on disk, nothing lost"
    $H/dsm set /wfs/flags 4 1
    ;;
esac
sleep 2
echo "PASS h$h"
