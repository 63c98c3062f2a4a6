#!/bin/sh
# Runs on every demo guest. Host 1 owns /export/shared (64 KiB); every
# host maps it through /wfs and they share one memory: host 2 writes a
# line that host 3 reads, hosts 2 and 3 (or 1 and 2, with two guests)
# increment a counter guarded by a spin lock in the shared page, and at
# the end host 1's /export holds it all. Then ordinary programs share a
# file one of them creates: host 2 makes /wfs/guestbook with a shell
# redirection (it owns it), host 3 (or 1) appends to it and reads it
# with cat, and host 2's /export holds both lines. The hosts step
# together through flags in page 2 of the shared file.
set -eu
h=$WFS_HOST
n=$WFS_HOSTS
H=/opt/helpers
F=/wfs/shared
LOCK=4096        # page 1: the spin lock, then the counter
COUNTER=4100
STEP=8192        # page 2: + 4*h, the step host h has finished
say() { echo "== h$h: $*"; }
step() { $H/dsm set $F $((STEP + 4 * h)) "$1"; }
await() { $H/dsm wait $F $((STEP + 4 * $1)) "$2" 120; }
if [ "$n" -ge 3 ]; then counters="2 3" appender=3; else counters="1 2" appender=1; fi

say "kernel $(uname -r), module: $(grep '^wfs ' /proc/modules | cut -d' ' -f1-3)"
wfsctl wait --peers --timeout 90
say "managers connected: $(wfsctl status | grep -c ' connected') peers"
say "exported here: $(ls /export 2>/dev/null | tr '\n' ' ')"
say "ls -l /wfs (every host's files):"
ls -l /wfs
if [ "$h" = 1 ]; then
    say "I own /wfs/shared; its first line, read through a shared mapping:"
    $H/mmapcat $F | head -n 1
    step 1
fi
await 1 1
if [ "$h" = 2 ]; then
    say "the owner's first line, as this host sees it through its own mapping:"
    $H/mmapcat $F | head -n 1
    say "writing a line at offset 64 through the mapping (no msync: the page carries it)"
    $H/mmapwrite $F 65536 64 "host 2 was here"
    step 2
fi
if [ "$h" = 3 ] || { [ "$n" = 2 ] && [ "$h" = 1 ]; }; then
    await 2 2
    say "reading host 2's line from offset 64 (the page comes straight from host 2):"
    $H/mmapcat $F | head -c 79 | tail -c 15; echo
fi
for c in $counters; do
    if [ "$h" = "$c" ]; then
        say "incrementing the shared counter 1000 times under a spin lock in the same page"
        v=$($H/dsm count $F $LOCK 1000 300)
        say "done; the counter read $v when this host finished"
        step 3
    fi
done
for c in $counters; do await "$c" 3; done
say "the counter is now $($H/dsm get $F $COUNTER) (2 hosts x 1000)"
if [ "$h" = 2 ]; then
    say "creating /wfs/guestbook with a shell redirection (this host owns what it creates)"
    echo "signed on host 2" > /wfs/guestbook
    step 4
fi
await 2 4
if [ "$h" = "$appender" ]; then
    say "appending to host 2's new file (>>), then reading it with cat:"
    echo "signed on host $h" >> /wfs/guestbook
    cat /wfs/guestbook
    step 5
fi
await "$appender" 5
sync
step 6
for i in $(seq 1 "$n"); do await "$i" 6; done
if [ "$h" = 1 ]; then
    say "after every host synced, /export/shared on the owner holds it all:"
    echo "   offset 64: $(dd if=/export/shared bs=1 skip=64 count=15 2>/dev/null)"
    echo "   counter:   $($H/dsm get /export/shared $COUNTER)"
    step 7
fi
if [ "$h" = 2 ]; then
    say "and /export/guestbook here, on the host that created it:"
    sed 's/^/   /' /export/guestbook
fi
await 1 7
say "upcalls this host's manager served:"
wfsctl stats
# Whoever wrote last holds the page: stay up while the others read it.
sleep 3
