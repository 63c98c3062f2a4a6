#!/bin/sh
# hosts: 2
# timeout: 300
#
# Every guest: wfs.ko is loaded, /wfs is mounted and empty, the manager is
# registered with the kernel, and its handshake with every peer completed
# over the virtual network, over the noise transport (keys made by
# wfs-vm). h1 then plays a rogue dialer to every other host (an HTTP
# request, a blob the size of a key exchange's first message): nothing comes back, each refusal is
# counted there, and the real connections stay up. A second registration gets EBUSY, a wrong ABI
# version EPROTO; an unprivileged user cannot open /dev/wfs (mode 0600:
# EACCES) and, given a node it can open, is refused registration (EPERM);
# nor reach the manager's control socket.
set -eu
h=$WFS_HOST
fail() { echo "FAIL h$h: $*"; exit 1; }

grep -q '^wfs ' /proc/modules || fail "wfs.ko is not loaded"
[ -c /dev/wfs ] || fail "/dev/wfs is missing"
grep -q '^none /wfs wfs ' /proc/mounts || fail "/wfs is not a wfs mount"
[ -z "$(ls -A /wfs)" ] || fail "/wfs is not empty"
stat -f -c %t /wfs | grep -qi '^57465321$' || fail "wrong f_type on /wfs: $(stat -f -c %t /wfs)"

wfsctl wait --peers --timeout 90 || { wfsctl status; fail "manager not registered or peers not connected"; }
wfsctl status
# The kernel's own view agrees: one manager, one mount.
k=$(wfsctl kstatus)
echo "$k"
echo "$k" | grep -q "manager registered pid" || fail "kernel has no registered manager"
echo "$k" | grep -q "mounts 1" || fail "kernel does not count the mount"
# Every peer is connected (the handshake completed over 10.0.0.0/24).
i=1
while [ $i -le "$WFS_HOSTS" ]; do
    if [ $i != "$h" ]; then
        wfsctl status | grep -q "peer h$i 10.0.0.$i:7070 connected" || fail "peer h$i not connected"
    fi
    i=$((i + 1))
done

# Noise, with the key wfs-vm made. (h1 dials everyone, so nobody dials
# it: it has refused nothing; the others count h1's rogue dials below.)
wfsctl stats | grep -q '^transport: noise; key exchanges refused ' \
    || { wfsctl stats; fail "not on the noise transport"; }
ls -l /etc/wfs/host.key | grep -q '^-rw-------' || fail "host.key is not mode 0600"
if [ "$h" = 1 ]; then
    wfsctl stats | grep -q '^transport: noise; key exchanges refused 0,' \
        || { wfsctl stats; fail "h1 refused key exchanges nobody made"; }
    i=2
    while [ $i -le "$WFS_HOSTS" ]; do
        for probe in 'GET / HTTP/1.0\r\n\r\n' '\000\140HELLO-from-nobody-in-particular-HELLO-from-nobody-in-particular-HELLO-from-nobody-in-particular-'; do
            # shellcheck disable=SC2059
            said=$(printf "$probe" | nc -w 5 10.0.0.$i 7070 | od -An -c)
            [ -z "$said" ] || fail "h$i answered a rogue dialer: $said"
        done
        i=$((i + 1))
    done
else
    # (At least h1's two: a real handshake cut short under a slow
    # emulator would count too.)
    refused() { wfsctl stats | sed -n 's/^transport: noise; key exchanges refused \([0-9]*\),.*/\1/p'; }
    n=0
    until [ "$(refused)" -ge 2 ] 2>/dev/null; do
        n=$((n + 1))
        [ $n -lt 60 ] || { wfsctl stats | grep '^transport'; fail "h1's rogue dials were not counted"; }
        sleep 0.5
    done
fi
wfsctl status | grep -q "peer h1 10.0.0.1:7070 connected" || [ "$h" = 1 ] \
    || fail "the rogue dials disturbed the connection to h1"

wfsctl probe-register --expect EBUSY || fail "second registration was not refused with EBUSY"
wfsctl probe-register --abi 999 --expect EPROTO || fail "wrong ABI version was not refused with EPROTO"
wfsctl probe-register --as-uid 65534 --expect EACCES || fail "an unprivileged user could open /dev/wfs"
# Nor can it reach the manager's control socket (mode 0600 in a 0700
# directory): not even the read-only status.
if su -s /bin/sh nobody -c 'wfsctl status' > /tmp/nobody.out 2>&1; then
    cat /tmp/nobody.out; fail "an unprivileged user reached the control socket"
fi
grep -q "Permission denied" /tmp/nobody.out || { cat /tmp/nobody.out; fail "nobody's wfsctl status failed otherwise"; }
ls -ld /run/wfs | grep -q '^drwx------' || fail "/run/wfs is not mode 0700: $(ls -ld /run/wfs)"
ls -l /run/wfs/manager.sock | grep -q '^srw-------' || fail "the control socket is not mode 0600"
# The capability check behind the mode: a node nobody restricts.
mknod -m 666 /tmp/wfs-open c $((0x$(stat -c %t /dev/wfs))) $((0x$(stat -c %T /dev/wfs)))
wfsctl probe-register --device /tmp/wfs-open --as-uid 65534 --expect EPERM || fail "unprivileged registration was not refused with EPERM"
rm /tmp/wfs-open
# The refused attempts did not disturb the registered manager.
wfsctl kstatus | grep -q "manager registered pid" || fail "manager lost its registration"

# Stay up until every peer has finished its checks too.
wfsctl wait --peers --timeout 30 || fail "peers went away"
sleep 3
echo "PASS h$h"
