#!/bin/sh
# hosts: 1
# timeout: 240
#
# Many requests in flight: 8 threads fault at once on a 256-page file,
# half of them on disjoint ranges and half on every page in random order,
# so the same page is faulted by several threads together; every byte is
# checked. Done on a fresh file three times.
set -eu
fail() { echo "FAIL: $*"; exit 1; }
wfsctl wait --timeout 60 || fail "manager did not register"
for round in 1 2 3; do
    /opt/helpers/mtfault make /export/m$round 256 || fail "cannot make the file"
    /opt/helpers/mtfault check /wfs/m$round 8 || fail "round $round: wrong data"
    cmp /wfs/m$round /export/m$round || fail "round $round: read(2) differs"
done
wfsctl kstatus | grep -q "inflight 0 " || fail "requests left in flight"
wfsctl kstatus | grep -q "pool_free 64$" || fail "pool slots leaked"
echo PASS
