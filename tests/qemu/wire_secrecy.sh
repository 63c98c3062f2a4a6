#!/bin/sh
# hosts: 2
# timeout: 300
#
# Pages travel encrypted (issue 13), as a passive observer on the wire
# sees them. h1 exports two files of 32 pages, every page the marker
# string over and over. h2 watches every TCP packet to or from port 7070
# (the sniff helper: a packet socket) while it reads the first file
# through /wfs: the pages came over (at least their size in payload),
# and no packet holds the marker. Then both managers restart with
# transport = "plain" and h2 reads the second file the same way: now
# the marker is on the wire, which shows the watch sees what it would
# have to (the test cannot pass because the watch saw nothing).
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
fail() {
    echo "FAIL h$h: $*"
    wfsctl status || true
    exit 1
}
MARK=WFS-CLEAR-TEXT-MARK
PAGES=32
# fill NAME: a file of $PAGES pages of the marker, made whole before its
# name appears.
fill() {
    : > /export/.fill
    while [ "$(stat -c %s /export/.fill)" -lt $((PAGES * 4096)) ]; do
        printf '%s' "$MARK$MARK$MARK$MARK$MARK$MARK$MARK$MARK" >> /export/.fill
    done
    truncate -s $((PAGES * 4096)) /export/.fill
    mv /export/.fill "/export/$1"
}
# watch NAME: h2 reads /wfs/NAME whole while the wire is watched; sets
# $packets, $payload and $marked from sniff's line.
watch() {
    $H/sniff 7070 6 "$MARK" > /tmp/sniff.out &
    sp=$!
    sleep 1
    cmp "/wfs/$1" "/tmp/want" || fail "/wfs/$1 does not hold what h1 wrote"
    wait $sp || fail "sniff failed"
    cat /tmp/sniff.out
    set -- $(cat /tmp/sniff.out)
    [ "$1 $2" = "sniff: port" ] || fail "sniff said: $(cat /tmp/sniff.out)"
    packets=$5 payload=$7 marked=$9
}

wfsctl wait --peers --timeout 90 || fail "peers not connected"
wfsctl stats | grep -q '^transport: noise;' || fail "not the noise transport: $(wfsctl stats | grep transport)"
# What both files hold, for h2 to compare with (every host makes it).
: > /tmp/want
while [ "$(stat -c %s /tmp/want)" -lt $((PAGES * 4096)) ]; do
    printf '%s' "$MARK$MARK$MARK$MARK$MARK$MARK$MARK$MARK" >> /tmp/want
done
truncate -s $((PAGES * 4096)) /tmp/want
if [ "$h" = 1 ]; then
    dd if=/dev/zero of=/export/.ctl bs=4096 count=1 2>/dev/null
    mv /export/.ctl /export/ctl
    fill sealed
    fill open
fi
appear 60 ctl sealed open || fail "h1's files never appeared"
barrier 1

if [ "$h" = 2 ]; then
    watch sealed
    [ "$payload" -ge $((PAGES * 4096)) ] ||
        fail "only $payload payload bytes on port 7070 while $PAGES pages came over"
    [ "$marked" = 0 ] || fail "$marked packets carried page contents in the clear"
fi

# The same over the plain transport: the marker is seen. Both managers
# restart with it, h2 first (see restart_in_turn in lib.sh).
restart_in_turn /wfs/ctl 256 1 'transport = "plain"' || fail "the restart with the plain transport failed"
wfsctl stats | grep -q '^transport: plain' || fail "not the plain transport: $(wfsctl stats | grep transport)"
barrier 3
if [ "$h" = 2 ]; then
    watch open
    [ "$marked" -gt 0 ] || fail "the watch saw no marker over the plain transport ($packets packets, $payload bytes)"
fi
owner_last /wfs/ctl 32 1 || fail "a host did not finish"
echo "PASS h$h"
