#!/bin/sh
# hosts: 3
# timeout: 600
# coherence: single mrsw
# debug-coherence: mrsw
#
# SQLite (Debian's, linked into sqlx) on one database from three hosts at
# once. For steps 1-4 h1 owns the files, made (empty) in its export first:
# the databases, the first one's rollback journal (kept between
# transactions: journal_mode=PERSIST) and the second one's -wal and -shm
# files (the WAL kept too: SQLITE_FCNTL_PERSIST_WAL). Step 5 runs
# DELETE mode, where the journal is made and removed through /wfs by
# every transaction.
#
# 1. Every host inserts 20 transactions of 5 rows at once (busy timeout
#    60 s, fcntl locks across hosts): each host then finds every row
#    exactly once and PRAGMA integrity_check ok, and the owner's export
#    holds the same database (opened there as an immutable copy).
# 2. Readers beside a writer: h3 inserts 40 batches of 5 rows while h1 and
#    h2 read in transactions, over and over: no reader ever sees a batch in
#    part, or fewer rows than it saw before; afterwards every host sees
#    all 500 rows.
# 3. WAL mode, on a second database: the -shm file is mapped by all three
#    hosts as shared memory and locked with fcntl (what SQLite says network
#    file systems cannot do); the first connection truncates it to 3 bytes
#    (a shrink across hosts). Every host inserts 20 transactions of 5 rows
#    at once, each then finds every row once and integrity_check ok; h2
#    checkpoints (FULL: the WAL is all in the database), and the owner's
#    export, opened as an immutable copy, holds the 300 rows. The owner
#    counts the shrinks (the -shm file's truncations).
# 4. WAL readers beside a writer: h3 inserts 40 batches of 5 rows while
#    h1 and h2 read in transactions over and over, as in step 2; every
#    host ends with all 500 rows.
# 5. Rollback-journal DELETE mode, on a third database that h2 makes
#    through /wfs (O_CREAT): every transaction's writer makes the
#    -journal file (it owns it) and removes it at commit, from three hosts
#    at once; every row arrives once, integrity_check ok everywhere, the
#    owner's (h2's) export holds the same database, and no journal is
#    left.
set -eu
h=$WFS_HOST
H=/opt/helpers
. $H/lib.sh
X=$H/sqlx
fail() {
    echo "FAIL h$h: $*"
    wfsctl status || true
    wfsctl stats || true
    exit 1
}

if [ "$h" = 1 ]; then
    for f in db db-journal w w-wal w-shm; do : > /export/$f; done
    dd if=/dev/zero of=/export/ctl bs=4096 count=1 2>/dev/null
fi
wfsctl wait --peers --timeout 90 || fail "peers not connected"
appear 30 ctl || fail "/wfs/ctl never appeared"
for f in db db-journal w w-wal w-shm; do
    within 30 sh -c "wfsctl forget $f >/dev/null 2>&1; test -e /wfs/$f" || fail "/wfs/$f never appeared"
done

# export_holds DB: (on DB's owner) the export's copy of DB, opened as an
# immutable file, holds every row once and the same dump as /wfs/DB.
export_holds() {
    out=$($X "file:/export/$1?immutable=1" check 3 20 5) || fail "the owner's export of $1: $out"
    $X /wfs/$1 dump > /tmp/wfs.dump
    $X "file:/export/$1?immutable=1" dump > /tmp/export.dump
    cmp /tmp/wfs.dump /tmp/export.dump || fail "the owner's export holds another $1"
}

# -- 1. rollback journal --------------------------------------------------------
if [ "$h" = 1 ]; then
    out=$($X /wfs/db init persist) || fail "init: $out"
fi
barrier 1
out=$($X /wfs/db insert persist $h 20 5) || fail "inserts (rollback journal): $out"
barrier 2
out=$($X /wfs/db check 3 20 5) || fail "check (rollback journal): $out"
[ "$h" != 1 ] || export_holds db
echo "h$h: step 1: 300 rows from three hosts, each once; integrity ok"
barrier 4

# -- 2. readers beside a writer -------------------------------------------------
# beside_writer DB MODE BARRIER: h3 inserts 40 batches of 5 rows (host 4)
# while the others read over and over; then every host reads all 500.
beside_writer() {
    if [ "$h" = 3 ]; then
        out=$($X "$1" insert "$2" 4 40 5) || fail "the writer ($2): $out"
    else
        out=$($X "$1" read "$2" 20 5) || fail "a reader ($2): $out"
        echo "h$h: $out"
    fi
    barrier "$3"
    out=$($X "$1" read "$2" 1 5) || fail "a last read ($2): $out"
    case "$out" in *"last 500 rows") ;; *) fail "the last read ($2) did not see all 500 rows: $out" ;; esac
}
beside_writer /wfs/db persist 5
echo "h$h: step 2: readers saw committed batches only"

barrier 6
# -- 3. WAL mode --------------------------------------------------------------
if [ "$h" = 1 ]; then
    out=$($X /wfs/w init wal) || fail "init (WAL): $out"
fi
barrier 7
out=$($X /wfs/w insert wal $h 20 5) || fail "inserts (WAL): $out"
barrier 8
out=$($X /wfs/w check 3 20 5) || fail "check (WAL): $out"
barrier 9
if [ "$h" = 2 ]; then
    out=$($X /wfs/w checkpoint) || fail "checkpoint: $out"
    sync
fi
barrier 10
if [ "$h" = 1 ]; then
    out=$($X "file:/export/w?immutable=1" check 3 20 5) || fail "the owner's export after the checkpoint: $out"
fi
if [ "$h" = 1 ]; then
    st=$(wfsctl stats | grep "^sizes")
    n=$(echo "$st" | sed -n "s/.*shrinks of this owner's files \([0-9]*\).*/\1/p")
    [ "${n:-0}" -gt 0 ] || fail "no shrink of the owner's files counted (the -shm truncation): $st"
fi
echo "h$h: step 3: WAL mode from three hosts (-shm shared and locked): 300 rows, each once; checkpointed; integrity ok"

barrier 11
# -- 4. WAL readers beside a writer ------------------------------------------
beside_writer /wfs/w wal 12
echo "h$h: step 4: WAL readers saw committed batches only"

barrier 13
# -- 5. DELETE mode, on a database made through /wfs -------------------------
if [ "$h" = 2 ]; then
    : > /wfs/d || fail "cannot make /wfs/d"
    out=$($X /wfs/d init delete) || fail "init (DELETE): $out"
fi
barrier 14
out=$($X /wfs/d insert delete $h 20 5) || fail "inserts (DELETE): $out"
barrier 15
out=$($X /wfs/d check 3 20 5) || fail "check (DELETE): $out"
[ ! -e /wfs/d-journal ] || fail "a rollback journal was left behind"
[ "$h" != 2 ] || export_holds d
echo "h$h: step 5: DELETE mode from three hosts, journals made and removed: 300 rows, each once; integrity ok"
wfsctl stats | grep "^locks\|^sizes\|^names" || true
sleep 3
echo "PASS h$h"
