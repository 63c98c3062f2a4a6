#!/bin/sh
# hosts: 3
# timeout: 600
# cut: 2@20+30
#
# A host that heals after a cut longer than its own failure time-out (but
# shorter than the others', who never take it for dead) takes nobody for
# dead when it is back, though one peer answers it well before another:
# the time it spent cut off from most of the cluster counts towards nobody's
# time-out. (It used to: back with h1, h2 took h3, which it had not reached
# again yet, for dead at once; h3's manager, refused, had to restart.)
#
# h1 and h3 restart their managers with failure_timeout = 60, h2 with 20.
# h2 is cut off the network 20 s into its command, for 30 s: h1 and h3 are
# gone for longer than its time-out, while it is in the minority. h3 stops
# its manager (SIGSTOP) from 20 s after it saw h2 go (about 5 s after the
# cut) until 33 s after (about 8 s after the heal), so that h1 is back with
# h2 well before h3 is.
#
# - nobody takes anybody for dead (`wfsctl stats`), no manager restarts,
#   and every host knows each peer by the incarnation it had before the cut;
# - the page protocol works across all three after it (h2 writes a page of
#   h3's file, h1 and h3 read it).
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
# Words of /wfs/flags (h1's file).
READY=0          # + 4*h: host h restarted its manager, saw both peers
WROTE=16         # h2 wrote h3's page after the heal
READ=20          # + 4*h: host h read it
fail() { fail_with_state "$@"; }
peer_line() { wfsctl status | grep "^peer $1 "; }
incarnation_of() { peer_line "$1" | sed -n 's/.*(incarnation \(0x[0-9a-f]*\)).*/\1/p'; }
health_of() { peer_line "$1" | sed -n 's/.*; \([a-z]*\) (incarnation.*/\1/p'; }
others() { for o in 1 2 3; do [ $o = $h ] || echo $o; done; }

echo 0 > /proc/sys/vm/dirty_writeback_centisecs
case $h in
2) restart_manager_with "failure_timeout = 20" ;;
*) restart_manager_with "failure_timeout = 60" ;;
esac
wfsctl wait --peers --timeout 90 || fail "peers not connected"
case $h in
1) dd if=/dev/zero of=/export/flags bs=4096 count=1 2>/dev/null ;;
3) dd if=/dev/zero of=/export/page bs=4096 count=1 2>/dev/null ;;
esac
appear 60 page flags || fail "/wfs/page or /wfs/flags never appeared"
$H/dsm set /wfs/flags $((READY + 4 * h)) 1
for o in $(others); do
    $H/dsm wait /wfs/flags $((READY + 4 * o)) 1 90 || fail "h$o never restarted its manager"
done
# Every peer's new manager, as this host knows it.
back() { case $(health_of $1) in alive | rejoined) ;; *) return 1 ;; esac; }
for o in $(others); do
    within 30 back h$o || fail "h$o not back after its restart: $(peer_line h$o)"
done
pid=$(pidof wfs-manager)
dead=$(failures 1)
for o in $(others); do eval "inc$o=$(incarnation_of h$o)"; done
echo "h$h: ready $(cut -d' ' -f1 /proc/uptime) s after boot; peers taken for dead so far: $dead"

# Wait for the cut (the host cut off sees both peers go).
gone=h2
[ $h = 2 ] && gone="h1 h3"
suspected() { [ "$(health_of $1)" = suspected ]; }
for g in $gone; do
    within 120 suspected $g || fail "$g never went: $(peer_line $g)"
done
echo "h$h: the cut: $gone gone"
if [ $h = 3 ]; then
    sleep 20
    kill -STOP "$pid"
    sleep 13
    kill -CONT "$pid"
    echo "h3: this manager stopped from 20 s to 33 s after h2 went"
fi
# Back together: every peer alive in its old incarnation.
for o in $(others); do
    within 120 back h$o || fail "h$o is not back: $(peer_line h$o)"
done
echo "h$h: both peers back"
for o in $(others); do
    [ "$(incarnation_of h$o)" = "$(eval echo \$inc$o)" ] ||
        fail "h$o is back as another incarnation: $(peer_line h$o)"
done
[ "$(pidof wfs-manager)" = "$pid" ] || fail "this host's manager restarted"
[ "$(failures 1)" = "$dead" ] || fail "this host took a peer for dead"

case $h in
2)
    $H/mmapwrite /wfs/page 4096 0 h2-healed sync || fail "writing h3's page"
    $H/dsm set /wfs/flags $WROTE 1
    ;;
*)
    $H/dsm wait /wfs/flags $WROTE 1 120 || fail "h2 never wrote"
    [ "$(dd if=/wfs/page bs=1 count=9 2>/dev/null)" = h2-healed ] ||
        fail "the page reads $(dd if=/wfs/page bs=1 count=9 2>/dev/null | od -c | head -1)"
    ;;
esac
$H/dsm set /wfs/flags $((READ + 4 * h)) 1
for o in $(others); do
    $H/dsm wait /wfs/flags $((READ + 4 * o)) 1 120 || fail "h$o never finished"
done
# Nobody was taken for dead since, either.
[ "$(failures 1)" = "$dead" ] || fail "this host took a peer for dead"
for o in $(others); do
    [ "$(incarnation_of h$o)" = "$(eval echo \$inc$o)" ] ||
        fail "h$o is another incarnation now: $(peer_line h$o)"
done
echo "h$h: nobody taken for dead; the page crossed all three hosts"
echo "PASS h$h"
