#!/bin/sh
# hosts: 3
# timeout: 400
#
# One namespace across the cluster. h1 exports a1 and dup, h2 exports b2
# and dup too, h3 exports nothing. On every host:
# - /wfs lists every host's files, sorted, each name once (getdents64;
#   `ls` leaves out dup, whose stat fails);
# - sizes and modes are the owner's, and the bytes are the owner's;
# - dup, exported by two hosts, is refused with ENOTUNIQ everywhere, its
#   owners included: neither serves it;
# - once h2 removes its dup, dup is h1's alone and resolves to h1's bytes.
# The hosts step together through flags in /wfs/ctl (h1's).
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
fail() {
    echo "FAIL h$h: $*"
    wfsctl status || true
    exit 1
}
CTL=/wfs/ctl
# flag STEP: this host reached STEP; await STEP: every host did.
flag() { $H/dsm set $CTL $((4 * h)) "$1" || fail "cannot set flag $1"; }
await() {
    for o in 1 2 3; do
        $H/dsm wait $CTL $((4 * o)) "$1" 300 || fail "h$o never reached step $1"
    done
}

wfsctl wait --peers --timeout 90 || fail "peers not connected"
case $h in
1)
    dd if=/dev/zero of=/export/ctl bs=4096 count=1 2>/dev/null
    printf 'file a1 of h1\n' > /export/a1
    truncate -s 8192 /export/a1
    printf 'dup of h1\n' > /export/dup
    ;;
2)
    printf 'b2!' > /export/b2
    chmod 640 /export/b2
    printf 'dup of h2\n' > /export/dup
    ;;
esac
appear 60 ctl || fail "$CTL never appeared"
flag 1
await 1

names=$($H/lsdir /wfs | tr '\n' ' ')
[ "$names" = ". .. a1 b2 ctl dup " ] || fail "getdents64 of /wfs gives '$names'"
[ "$(stat -c '%s %a' /wfs/a1)" = "8192 644" ] || fail "a1: $(stat -c '%s %a' /wfs/a1)"
[ "$(stat -c '%s %a' /wfs/b2)" = "3 640" ] || fail "b2: $(stat -c '%s %a' /wfs/b2)"
[ "$(head -n 1 /wfs/a1)" = "file a1 of h1" ] || fail "a1 reads '$(head -n 1 /wfs/a1)'"
[ "$(cat /wfs/b2)" = "b2!" ] || fail "b2 reads '$(cat /wfs/b2)'"
# Exported twice: refused, on the owners too.
if out=$(cat /wfs/dup 2>&1); then fail "dup was served: $out"; fi
echo "$out" | grep -qi "not unique" || fail "dup: expected ENOTUNIQ, got: $out"
echo "h$h: dup refused ($out)"
flag 2
await 2

# h2 withdraws its copy: dup is h1's alone.
if [ "$h" = 2 ]; then rm /export/dup; fi
flag 3
await 3
wfsctl forget dup >/dev/null 2>&1 || true
[ "$(cat /wfs/dup)" = "dup of h1" ] || fail "dup reads '$(cat /wfs/dup 2>&1)' once only h1 exports it"
names=$(ls /wfs | tr '\n' ' ')
[ "$names" = "a1 b2 ctl dup " ] || fail "ls /wfs shows '$names' after the removal"
flag 4
await 4
# The last host to set its flag holds the page: stay up while the others
# fetch it to see that flag.
sleep 3
echo "PASS h$h"
