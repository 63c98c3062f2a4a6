#!/bin/sh
# Runs on every demo guest (tools/demo.py tells the story from what the
# guests print). Host 1 owns /export/shared (64 KiB); every host maps it
# through /wfs and they share one memory: host 2 writes a line that host 3
# reads, hosts 2 and 3 (or 1 and 2, with two guests) increment a counter
# guarded by a spin lock in the shared page, and at the end host 1's
# /export holds it all. Then ordinary programs share a file one of them
# creates: host 2 makes /wfs/guestbook with a shell redirection (it owns
# it), host 3 (or 1) appends to it and reads it with cat, and host 2's
# /export holds both lines. The hosts step together through flags in page
# 2 of the shared file.
#
# What the story is made of, one line each (anything else is shown only
# when the demo fails):
#   @step TITLE          a new step of the story
#   @say TEXT            a line of it, told by the host that did it
#   @each KEY LABEL::V   one host's V for KEY; shown once every host's is in
#   @owns FILES          what this host's /export holds (the summary table)
#   @table READS P50 P99 IN OUT WRITTEN   from wfsctl stats: READs, their
#                        median and 99th percentile (us), pages in and out,
#                        pages written to the owner's disk (the table)
set -eu
h=$WFS_HOST
n=$WFS_HOSTS
H=/opt/helpers
F=/wfs/shared
LOCK=4096        # page 1: the spin lock, then the counter
COUNTER=4100
STEP=8192        # page 2: + 4*h, the step host h has finished
story() { echo "@say $*"; }
step() { $H/dsm set $F $((STEP + 4 * h)) "$1"; }
await() { $H/dsm wait $F $((STEP + 4 * $1)) "$2" 120; }
# lines FILE: FILE's lines, quoted, joined by " / ".
lines() { sed 's/.*/"&"/' "$1" | sed ':a;N;$!ba;s/\n/ \/ /g'; }
if [ "$n" -ge 3 ]; then
    writer=2 reader=3 counters="2 3" appender=3
else
    writer=2 reader=1 counters="1 2" appender=1
fi
others=$(for o in $(seq 1 "$n"); do [ "$o" = "$h" ] || printf 'h%s ' "$o"; done | sed 's/ $//')

wfsctl wait --peers --timeout 90 > /dev/null
echo "@each ready cluster ready, peers connected::$(wfsctl status | grep -c ' connected')"
if [ "$h" = 1 ]; then
    echo "@step Who owns what"
fi
echo "@each ls every host lists /wfs::$(ls /wfs | tr '\n' ' ' | sed 's/ $//')"
if [ "$h" = 1 ]; then
    story "h1 owns /wfs/shared: the file is in h1's /export ($(stat -c %s /export/shared) bytes); $others hold none of it yet"
    step 1
fi
await 1 1
if [ "$h" = "$writer" ]; then
    echo "@step Reading another host's memory"
    story "h$h maps /wfs/shared and reads its first line: \"$($H/mmapcat $F | head -n 1)\" (the page came from h1)"
    echo "@step Writing it"
    $H/mmapwrite $F 65536 64 "host $h was here"
    story "h$h writes \"host $h was here\" at offset 64 through its mapping (a plain store, no msync)"
    step 2
fi
if [ "$h" = "$reader" ]; then
    await "$writer" 2
    story "h$h reads offset 64: \"$($H/mmapcat $F | head -c 79 | tail -c 15)\" (the page moved from h$writer, whose copy was invalidated)"
    step 2
fi
await "$reader" 2
for c in $counters; do
    if [ "$h" = "$c" ]; then
        if [ "$c" = "${counters%% *}" ]; then
            echo "@step A spin lock and a counter in one shared page"
            story "$(echo "$counters" | sed 's/\([0-9]\)/h\1/g; s/ / and /') each add 1 to a counter 1000 times, under a spin lock in the same page"
        fi
        v=$($H/dsm count $F $LOCK 1000 300)
        story "h$h is done; the counter read $v when it finished"
        step 3
    fi
done
for c in $counters; do await "$c" 3; done
echo "@each counter the counter on every host (2 hosts x 1000: no update lost)::$($H/dsm get $F $COUNTER)"
if [ "$h" = 2 ]; then
    echo "@step Ordinary programs on a file another host made"
    echo "signed on host 2" > /wfs/guestbook
    story "h2 creates /wfs/guestbook with a shell redirection (echo >): h2 owns it"
    step 4
fi
await 2 4
if [ "$h" = "$appender" ]; then
    echo "signed on host $h" >> /wfs/guestbook
    story "h$h appends with >> and reads it with cat: $(lines /wfs/guestbook)"
    step 5
fi
await "$appender" 5
sync
step 6
for i in $(seq 1 "$n"); do await "$i" 6; done
if [ "$h" = 1 ]; then
    echo "@step What the owners' disks hold, once every host ran sync"
    story "h1's /export/shared: offset 64 \"$(dd if=/export/shared bs=1 skip=64 count=15 2>/dev/null)\", counter $($H/dsm get /export/shared $COUNTER)"
    step 7
fi
await 1 7
if [ "$h" = 2 ]; then
    story "h2's /export/guestbook: $(lines /export/guestbook)"
fi
echo "@owns $(ls /export | tr '\n' ' ')"
wfsctl stats > /tmp/stats
echo "@table $(awk '$1 == "READ" { print $2, $6, $7 }' /tmp/stats)" \
    "$(sed -n 's/^pages: in \([0-9]*\), out \([0-9]*\),.*/\1 \2/p' /tmp/stats)" \
    "$(sed -n "s/^owner's disk: pages written \([0-9]*\) .*/\1/p" /tmp/stats)"
step 8
# Whoever wrote last holds the page: stay up while the others read it.
for i in $(seq 1 "$n"); do await "$i" 8; done
sleep 2
