#!/bin/sh
# hosts: 3
# timeout: 300
#
# Mether's inconsistent views (Documentation/views.md): every host mounts
# a view of the cluster's files beside /wfs (`mount -t wfs -o ro,view`),
# whose pages show what their owner has on disk, are never taken back by
# the page protocol, and are refreshed with msync(MS_INVALIDATE).
#
# - A view must be mounted read-only (`-o view` alone is refused), and
#   its files refuse writes.
# - h1 owns /wfs/v, whose first word is 1. Every host (h1 too, a view of
#   its own file) maps /view/v and reads 1; h2 and h3 read it through
#   /wfs too (a coherent copy, which h1's write must take back, with the
#   views mounted beside). h1 then writes 2 there through /wfs and syncs
#   it. h2 and h3 read 2 through /wfs; every view still reads 1 (the write
#   took no view's copy away: a view registers nothing with the owner,
#   and INVALIDATE leaves a view's pages alone); after msync(MS_INVALIDATE)
#   on its page, 2.
# - `wfsctl stats` counts the pages read for views, and the VIEW upcalls
#   among the others, with their times.
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
fail() { fail_with_state "$@"; }
READY=0     # + 4*h: h's view read the old value
GO=16       # h1 wrote the new value and synced it
SEEN=48     # + 4*h: h read the old value through /wfs
DONE=32     # + 4*h: h is done

if [ "$h" = 1 ]; then
    dd if=/dev/zero of=/export/.v bs=4096 count=2 2>/dev/null
    dd if=/dev/zero of=/export/.ctl bs=4096 count=1 2>/dev/null
    mv /export/.v /export/v
    mv /export/.ctl /export/ctl
    $H/dsm set /export/v 0 1
fi
wfsctl wait --peers --timeout 90 || fail "peers not connected"
appear 60 v ctl || fail "/wfs/v or /wfs/ctl never appeared"

mkdir -p /view /view2
if mount -t wfs -o view none /view2 2>/dev/null; then
    fail "a view mounted read-write"
fi
mount -t wfs -o ro,view none /view || fail "cannot mount a view"
[ -s /view/v ] || fail "/view/v is missing or empty"
if echo x 2>/dev/null > /view/v; then
    fail "a view's file took a write"
fi

views0=$(wfsctl stats | sed -n 's/^views: pages read for a view \([0-9]*\)$/\1/p')
$H/mview /view/v 0 1 2 /wfs/ctl $((READY + 4 * h)) $GO 120 > /tmp/mview.out 2>&1 &
viewer=$!

if [ "$h" != 1 ]; then
    $H/dsm wait /wfs/ctl $((READY + 4 * h)) 1 120 || fail "the view never read /view/v"
    [ "$($H/dsm get /wfs/v 0)" = 1 ] || fail "/wfs/v reads $($H/dsm get /wfs/v 0), not 1"
    $H/dsm set /wfs/ctl $((SEEN + 4 * h)) 1
fi
if [ "$h" = 1 ]; then
    for o in 1 2 3; do
        $H/dsm wait /wfs/ctl $((READY + 4 * o)) 1 120 || fail "h$o's view never read /view/v"
    done
    for o in 2 3; do
        $H/dsm wait /wfs/ctl $((SEEN + 4 * o)) 1 120 || fail "h$o never read /wfs/v"
    done
    $H/dsm set /wfs/v 0 2
    [ "$($H/dsm get /export/v 0)" = 2 ] || fail "h1's write is not on its disk"
    $H/dsm set /wfs/ctl $GO 1
fi
if [ "$h" != 1 ]; then
    $H/dsm wait /wfs/ctl $GO 1 120 || fail "h1 never wrote"
    [ "$($H/dsm get /wfs/v 0)" = 2 ] || fail "/wfs/v reads $($H/dsm get /wfs/v 0) after h1's write, not 2"
fi
wait $viewer || fail "the view: $(cat /tmp/mview.out)"
cat /tmp/mview.out
views1=$(wfsctl stats | sed -n 's/^views: pages read for a view \([0-9]*\)$/\1/p')
[ "$views1" -ge $((views0 + 2)) ] || fail "wfsctl stats counts $views0 -> $views1 pages read for a view, not 2 more"
# Each of those pages was a VIEW upcall, timed with the others.
nview=$(stat_of VIEW)
[ -n "$nview" ] && [ "$nview" -ge $((views1 - views0)) ] ||
    fail "wfsctl stats counts ${nview:-no} VIEW upcalls for $((views1 - views0)) pages read for a view"
umount /view || fail "cannot unmount the view"
owner_last /wfs/ctl $DONE 1 || fail "a host never finished"
echo "PASS h$h"
