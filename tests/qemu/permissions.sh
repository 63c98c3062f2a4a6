#!/bin/sh
# hosts: 2
# root-squash
# timeout: 300
#
# Permissions under /wfs (issue 13): a file's owner, group and mode are
# those of its owner's export file, on every host, and enforced there.
# The run squashes root (wfs-vm --root-squash: the manager's default,
# root_squash = true). h1 exports secret (root, 0600), public (root,
# 0644), open (root, 0666) and mine (nobody:nogroup, 0600).
# - Both hosts show the owner's uid, gid and mode.
# - The unprivileged user nobody, on either host, cannot read secret nor
#   write or truncate public, but reads public and writes open and mine;
#   it cannot open /dev/wfs either.
# - Root on h1, the owner, is root for its own files.
# - Root on h2 is squashed: nobody for h1's files. It cannot read secret,
#   write or truncate public, set public's times; it writes open, and
#   mine (nobody's).
#   Nor may it remove or rename h1's files, or rename over them.
# - Nor may it make names at h1: a name h2's placement rule sends to h1
#   (*.sq) is refused to h2's root (EACCES), and h1's export has none; a
#   name made at home is root's, and may not be renamed over h1's file.
# - chmod and chown under /wfs fail with EPERM on both hosts; a chmod at
#   the owner's export is enforced on h2 from its next open (no stat).
# - What was written is what the owner's export holds.
# The hosts step together through flags in /wfs/ctl (h1's, mode 0666, so
# that h2's squashed root may write it).
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
    for o in 1 2; do
        $H/dsm wait $CTL $((4 * o)) "$1" 200 || fail "h$o never reached step $1"
    done
}
# nobody CMD: CMD run by sh as the unprivileged user nobody.
nobody() { su -s /bin/sh nobody -c "$1"; }
# refused WHAT ERROR CMD: the shell command CMD must fail, saying ERROR
# ("Permission denied": EACCES; "Operation not permitted": EPERM).
refused() {
    if sh -c "$3" > /tmp/out 2>&1; then
        cat /tmp/out
        fail "$1 was allowed"
    fi
    grep -q "$2" /tmp/out || { cat /tmp/out; fail "$1 failed, but not with \"$2\""; }
}
# mode_is FILE UID:GID:MODE: stat's word for FILE under /wfs.
mode_is() { [ "$(stat -c '%u:%g:%a' "/wfs/$1")" = "$2" ]; }

wfsctl wait --peers --timeout 90 || fail "peers not connected"
if [ "$h" = 2 ]; then
    # Names *.sq made here are made at h1.
    restart_manager_with 'place = [{ names = "*.sq", host = "h1" }]'
    wfsctl wait --peers --timeout 90 || fail "peers not connected after the restart"
fi
if [ "$h" = 1 ]; then
    # (Made 0666 from the start: a host that looked it up in between would
    # hold another mode until its next open.)
    (umask 0 && dd if=/dev/zero of=/export/ctl bs=4096 count=1 2>/dev/null)
    printf 's1\n' > /export/secret
    chmod 600 /export/secret
    printf 'p1\n' > /export/public
    chmod 644 /export/public
    printf 'o1\n' > /export/open
    chmod 666 /export/open
    printf 'n1\n' > /export/mine
    chown 65534:65534 /export/mine
    chmod 600 /export/mine
fi
appear 60 ctl || fail "/wfs/ctl never appeared"
flag 1
await 1

# Both hosts: the owner's ids and modes.
for f in secret:0:0:600 public:0:0:644 open:0:0:666 mine:65534:65534:600; do
    mode_is "${f%%:*}" "${f#*:}" || fail "${f%%:*}: $(stat -c '%u:%g:%a' "/wfs/${f%%:*}"), the owner says ${f#*:}"
done
ls -ln /wfs

# Both hosts: nobody is held to the modes.
refused "nobody reading secret" "Permission denied" "su -s /bin/sh nobody -c 'cat /wfs/secret'"
refused "nobody writing public" "Permission denied" "su -s /bin/sh nobody -c 'echo x >> /wfs/public'"
refused "nobody truncating public" "Permission denied" "su -s /bin/sh nobody -c 'truncate -s 0 /wfs/public'"
refused "nobody opening /dev/wfs" "Permission denied" "su -s /bin/sh nobody -c 'cat /dev/wfs'"
[ "$(nobody 'cat /wfs/public')" = p1 ] || fail "nobody cannot read public"
# Both hosts: nobody may not change what is the owner's to say.
refused "chmod under /wfs" "Operation not permitted" "chmod 600 /wfs/public"
refused "chown under /wfs" "Operation not permitted" "chown 65534 /wfs/public"
mode_is public 0:0:644 || fail "a refused chmod or chown changed public"

if [ "$h" = 1 ]; then
    # The owner's root is root for its own files.
    [ "$(cat /wfs/secret)" = s1 ] || fail "root on the owner cannot read secret"
    # nobody writes its own file and the open one, on the owner.
    nobody 'printf "n-h1\n" > /wfs/mine' || fail "nobody cannot write mine on h1"
    nobody 'printf "o-h1\n" > /wfs/open' || fail "nobody cannot write open on h1"
    sync
fi
flag 2
await 2

if [ "$h" = 2 ]; then
    [ "$(cat /wfs/mine)" = n-h1 ] || fail "mine: $(cat /wfs/mine), h1's nobody wrote n-h1"
    # Root here is nobody for h1's files.
    refused "squashed root reading secret" "Permission denied" "cat /wfs/secret"
    refused "squashed root writing public" "Permission denied" "echo x >> /wfs/public"
    refused "squashed root truncating public" "Permission denied" "truncate -s 0 /wfs/public"
    refused "squashed root setting public's time" "Operation not permitted" "touch -d '2001-01-01 00:00' /wfs/public"
    refused "squashed root touching public" "Permission denied" "touch /wfs/public"
    # Nor may it change h1's names: nobody may not write h1's directory.
    refused "squashed root removing secret" "Permission denied" "rm -f /wfs/secret"
    refused "squashed root renaming over public" "Permission denied" "mv /wfs/open /wfs/public"
    refused "squashed root renaming secret" "Permission denied" "mv /wfs/secret /wfs/secret2"
    [ "$(cat /wfs/public)" = p1 ] || fail "squashed root cannot read public"
    # ... and nobody's file is its own.
    [ "$(cat /wfs/mine)" = n-h1 ] || fail "squashed root cannot read mine"
    printf 'r-h2\n' > /wfs/mine || fail "squashed root cannot write mine"
    printf 'o-h2\n' > /wfs/open || fail "squashed root cannot write open"
    # Nor make a name at h1 (the rule places *.sq there).
    refused "squashed root making made.sq at h1" "Permission denied" "printf 'c-h2\n' > /wfs/made.sq"
    [ ! -e /wfs/made.sq ] || fail "made.sq exists after its refused create"
    [ ! -e /export/made.sq ] || fail "made.sq is in h2's export, though the rule places it at h1"
    # What it makes at home is root's, and is not renamed over h1's file.
    (umask 022 && printf 'h-h2\n' > /wfs/home.txt) || fail "root cannot make home.txt at home"
    mode_is home.txt 0:0:644 || fail "home.txt: $(stat -c '%u:%g:%a' /wfs/home.txt), made by h2's root at h2"
    refused "squashed root renaming its own file over public" "Permission denied" "mv /wfs/home.txt /wfs/public"
    [ "$(cat /wfs/home.txt)" = h-h2 ] || fail "home.txt changed by a refused rename"
    nobody 'printf "p-h2\n" > /wfs/public' 2>/dev/null && fail "nobody wrote public on h2"
    sync
fi
flag 3
await 3

if [ "$h" = 1 ]; then
    # What h2 wrote is at the owner, and nothing else changed.
    [ "$(cat /export/mine)" = r-h2 ] || fail "the export's mine: $(cat /export/mine)"
    [ "$(cat /export/open)" = o-h2 ] || fail "the export's open: $(cat /export/open)"
    [ "$(cat /export/public)" = p1 ] || fail "the export's public: $(cat /export/public)"
    [ "$(cat /export/secret)" = s1 ] || fail "the export's secret: $(cat /export/secret)"
    [ ! -e /export/made.sq ] || fail "the export has made.sq, which h2's squashed root was refused"
    # A chmod where the file lives is the file's new mode everywhere,
    # from the next open on (no stat needed).
    chmod 644 /export/secret
    chmod 600 /export/open
fi
flag 4
await 4

if [ "$h" = 2 ]; then
    # (The attributes an open asks for may be a second old.)
    sleep 1.5
    [ "$(cat /wfs/secret)" = s1 ] || fail "squashed root cannot read secret once it is 0644"
    refused "squashed root writing open once it is 0600" "Permission denied" "echo x >> /wfs/open"
    refused "squashed root writing secret" "Permission denied" "echo x >> /wfs/secret"
    mode_is secret 0:0:644 || fail "h1's chmod of secret not seen: $(stat -c '%u:%g:%a' /wfs/secret)"
    mode_is open 0:0:600 || fail "h1's chmod of open not seen: $(stat -c '%u:%g:%a' /wfs/open)"
fi
flag 5
owner_last $CTL 64 1 || fail "a host did not finish"
echo "PASS h$h"
