# SPDX-License-Identifier: GPL-2.0
# Shell functions shared by the QEMU tests, `make bench` and
# `make demo`; installed as /opt/helpers/lib.sh (`. /opt/helpers/lib.sh`).

# appear SECS NAME...: waits up to SECS seconds until /wfs/NAME exists and
# is not empty for every NAME, for files another host creates (a file is
# empty for a moment between its creation and its first write, and an
# empty file cannot be mapped). A name looked up too early is cached as
# missing (or empty), so each try first makes the kernel and the manager
# forget it.
appear() {
    _tries=$(($1 * 5))
    shift
    for _name in "$@"; do
        until [ -s "/wfs/$_name" ]; do
            _tries=$((_tries - 1))
            [ $_tries -gt 0 ] || return 1
            wfsctl forget "$_name" >/dev/null 2>&1 || true
            sleep 0.2
        done
    done
}

# stop_manager: waits for this host's manager to register, then stops it
# (SIGTERM) and waits until it is gone and the kernel no longer has it
# registered, for tests that register a manager of their own (wfsfuzz).
# Returns 1 if it never registered, or (saying so) if its registration
# outlives it by 30 s.
stop_manager() {
    wfsctl wait --timeout 60 || return 1
    _pid=$(pidof wfs-manager)
    kill -TERM "$_pid"
    while kill -0 "$_pid" 2>/dev/null; do sleep 0.1; done
    # The kernel drops the registration when the device file is released;
    # a test that registers next must not start before it has.
    _i=0
    until wfsctl kstatus | grep -q "no manager registered"; do
        _i=$((_i + 1))
        if [ $_i -ge 300 ]; then
            echo "stop_manager: the kernel still has the stopped manager registered: $(wfsctl kstatus)"
            return 1
        fi
        sleep 0.1
    done
}

# restart_manager_with LINE...: stops this host's manager (SIGTERM: it
# leaves the cluster) and starts a new one whose configuration is
# /etc/wfs/cluster.toml with the LINEs (top-level keys) added
# (/tmp/cluster.toml), for tests that need other time-outs.
restart_manager_with() {
    _pid=$(pidof wfs-manager)
    kill -TERM "$_pid"
    while kill -0 "$_pid" 2>/dev/null; do sleep 0.1; done
    { printf '%s\n' "$@"; cat /etc/wfs/cluster.toml; } > /tmp/cluster.toml
    # (Without the test's own descriptors: a manager that inherited a
    # /wfs file would hold it open, and mmaphold's input, for its life.)
    wfs-manager --config /tmp/cluster.toml 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
}

# restart_in_turn CTL OFF OWNER CONFIG...: every manager of the run
# restarts with the CONFIG lines added (restart_manager_with), the one of
# host OWNER, whose file CTL is, last: until the others have gone they
# must reach CTL, and a host restarted with a transport the others do not
# speak yet (transport = "plain") would cut them off it. Each other host
# says it is ready (the word at OFF + 4*h of CTL) and waits for the
# owner's go (OFF + 64 + 4*h), taken while its manager is surely the old
# one; then it restarts, and waits until the owner's manager is a new one
# (its own peers may first be the owner's old one, about to go). The
# owner waits, host by host, for the word,
# notes that host's incarnation, gives the go, and waits until that
# incarnation has gone (left: dead here, or replaced); then it restarts
# too. Everyone then waits for its peers. Uses 128 bytes of CTL from OFF.
restart_in_turn() {
    _ctl=$1 _off=$2 _owner=$3
    shift 3
    if [ "$h" != "$_owner" ]; then
        /opt/helpers/dsm set "$_ctl" $((_off + 4 * h)) 1 || return 1
        /opt/helpers/dsm wait "$_ctl" $((_off + 64 + 4 * h)) 1 600 || return 1
        _inc=$(wfsctl status | sed -n "s/^peer h$_owner .*(incarnation \(0x[0-9a-f]*\)).*/\1/p")
        [ -n "$_inc" ] || return 1
        restart_manager_with "$@"
        # (Its peers may connect to the owner's old manager, which is
        # about to go: CTL is the owner's, so wait for its new one.)
        within 300 incarnation_new "$_owner" "$_inc" || return 1
    else
        _o=1
        while [ $_o -le "$WFS_HOSTS" ]; do
            if [ $_o != "$h" ]; then
                /opt/helpers/dsm wait "$_ctl" $((_off + 4 * _o)) 1 600 || return 1
                _inc=$(wfsctl status | sed -n "s/^peer h$_o .*(incarnation \(0x[0-9a-f]*\)).*/\1/p")
                [ -n "$_inc" ] || return 1
                /opt/helpers/dsm set "$_ctl" $((_off + 64 + 4 * _o)) 1 || return 1
                within 120 incarnation_gone $_o "$_inc" || return 1
            fi
            _o=$((_o + 1))
        done
        restart_manager_with "$@"
    fi
    wfsctl wait --peers --timeout 90
}

# incarnation_new H INC: host H is connected here in another incarnation
# than INC (it restarted since).
incarnation_new() {
    _l=$(wfsctl status 2>/dev/null | grep "^peer h$1 .* connected; .*(incarnation 0x") || return 1
    case $_l in
    *"(incarnation $2)"*) return 1 ;;
    *) return 0 ;;
    esac
}

# incarnation_gone H INC: host H's incarnation INC is over here: taken for
# dead (it left or died), or another one has taken its place.
incarnation_gone() {
    _l=$(wfsctl status | grep "^peer h$1 ") || return 1
    case $_l in
    *"dead (incarnation $2)"*) return 0 ;;
    *"(incarnation $2)"*) return 1 ;;
    *) return 0 ;;
    esac
}

# within SECS CMD...: runs CMD every 0.1 s until it succeeds; returns 1 if
# it has not after SECS seconds.
within() {
    _polls=$(($1 * 10))
    shift
    until "$@"; do
        _polls=$((_polls - 1))
        [ $_polls -gt 0 ] || return 1
        sleep 0.1
    done
}

# holds H N: whether this host's status says peer hH holds N of its pages
# (its directory's word: the peer got them, and no transaction moves them).
holds() { wfsctl status | grep -q "^peer h$1 .*, holds $2 of this host's pages$"; }

# stat_of OP: how many upcalls OP (READ, WRITE, UPGRADE...) the manager
# has served, from `wfsctl stats`.
stat_of() { wfsctl stats | awk -v op="$1" '$1 == op { print $2 }'; }

# invalidate_while PID NAME PAGES: while process PID runs, has the manager
# drop or downgrade (at random) random pages of /wfs/NAME, one of PAGES at
# a time, as fast as it can. Sets inv_n (invalidations run) and inv_dirty
# (how many took dirty data); returns 1 with inv_err set if one failed.
# Run it in the shell that started PID (not in $(...)): only that shell
# reaps PID when it exits.
invalidate_while() {
    inv_n=0 inv_dirty=0 inv_err=
    while kill -0 "$1" 2>/dev/null; do
        _p=$((RANDOM % $3))
        _mode=
        [ $((RANDOM % 2)) = 0 ] && _mode=--downgrade
        _out=$(wfsctl invalidate "$2" $_p $_mode) || { inv_err="invalidate $2 $_p $_mode failed: $_out"; return 1; }
        case $_out in *"dirty data written"*) inv_dirty=$((inv_dirty + 1)) ;; esac
        inv_n=$((inv_n + 1))
    done
}

# raced N DIRTY PAGES: whether N invalidations (DIRTY of them taking dirty
# data) of a PAGES-page file really raced writers: enough of them, enough
# meeting dirty pages, and the UPGRADEs, READs and WRITEs they cause. Says
# what fell short and returns 1 otherwise.
raced() {
    _why=
    [ "$1" -ge 20 ] || _why="only $1 invalidations raced the writers"
    [ "$2" -ge 5 ] || _why="only $2 invalidations met a dirty page: the race was not exercised"
    [ "$(stat_of UPGRADE)" -ge 5 ] || _why="downgrades caused too few UPGRADEs"
    [ "$(stat_of READ)" -gt "$3" ] || _why="drops caused no new READs"
    [ "$(stat_of WRITE)" -ge 5 ] || _why="too few WRITEs: writeback did not race"
    [ -z "$_why" ] || { echo "$_why"; return 1; }
}

# failures N: from `wfsctl stats`, how many peer managers this host took for
# dead (N=1), how many pages it reported lost with them (N=2), or how many
# times it fenced itself off a peer's pages, its lease run out (N=3).
failures() {
    wfsctl stats | sed -n "s/^failures: peers taken for dead \([0-9]*\), pages lost with them \([0-9]*\); fenced off a peer's pages \([0-9]*\) times$/\\$1/p"
}

# disk_stat N: from `wfsctl stats`, how many pages this owner wrote to its
# disk for the page protocol (N=1) and in how many flushes (N=2).
disk_stat() {
    wfsctl stats | sed -n "s/^owner's disk: pages written \([0-9]*\) in \([0-9]*\) flushes (fdatasync)$/\\$1/p"
}

# fail_with_state MSG...: the failure line of host $h, then this host's
# status and statistics; exits 1. (Tests of failures call it from fail.)
fail_with_state() {
    echo "FAIL h$h: $*"
    wfsctl status || true
    wfsctl stats || true
    exit 1
}

# together CTL OFF OTHER: says this host ($h) is ready (sets the word at
# OFF + 4*h of the shared file CTL) and waits up to 120 s until host OTHER
# says so too (its word at OFF + 4*OTHER); returns 1 if it never does.
together() {
    /opt/helpers/dsm set "$1" $(($2 + 4 * h)) 1 &&
        /opt/helpers/dsm wait "$1" $(($2 + 4 * $3)) 1 120
}

# read_copies H: how many read-only copies of this host's pages peer hH
# holds, as this host's directory says (`wfsctl status`).
read_copies() {
    wfsctl status | sed -n "s/^read-only copies of this host's pages: .*\bh$1 \([0-9]*\).*/\1/p"
}

# prefetch_stat N: from `wfsctl stats`, the pages this host's manager
# fetched ahead of a sequential scan (N=1), the READs answered from them
# (N=2), and those dropped unread (N=3).
prefetch_stat() {
    wfsctl stats | sed -n "s/^prefetch: pages fetched ahead of a sequential scan \([0-9]*\), READs answered from them \([0-9]*\), dropped unread \([0-9]*\)$/\\$1/p"
}

# cost_of STAGE FIELD: a field (count, mean_us, total_us, max_us, p50_us,
# p99_us) of a stage's line in `wfsctl stats` ("cost fetch count 4 mean_us
# 500.1 ...").
cost_of() { wfsctl stats | awk -v s="$1" -v f="$2" '$1 == "cost" && $2 == s { for (i = 3; i < NF; i++) if ($i == f) print $(i + 1) }'; }

# owner_last CTL OFF OWNER: the end of a test on several hosts. This host
# says it is done (sets the word at OFF + 4*h of CTL, a file host OWNER
# exports); the owner then waits up to 120 s until every other host of
# the run has said so, and returns 1 if one never does. A host that
# leaves hands the pages it holds back to their owners, so the others go
# as they finish; but once the owner has gone nobody reaches its files,
# so it must leave last. (A barrier that every host waits on cannot end
# a test: the last host to pass it may leave before the others have
# fetched the page holding its word.)
owner_last() {
    /opt/helpers/dsm set "$1" $(($2 + 4 * h)) 1 || return 1
    [ "$h" = "$3" ] || return 0
    _o=1
    while [ $_o -le "$WFS_HOSTS" ]; do
        if [ $_o != "$h" ]; then
            /opt/helpers/dsm wait "$1" $(($2 + 4 * _o)) 1 120 || return 1
        fi
        _o=$((_o + 1))
    done
}

# flag OFF, flagwait OFF [SECS]: the word at byte OFF of /wfs/ctl (a page
# one host exports; the test makes it) set to 1, or waited for (120 s at
# most by default; the test's fail() says which never came).
flag() { /opt/helpers/dsm set /wfs/ctl "$1" 1 || fail "cannot set flag $1"; }
flagwait() { /opt/helpers/dsm wait /wfs/ctl "$1" 1 "${2:-120}" || fail "flag $1 never set"; }

# barrier N: every host of the run has reached point N (one word per host
# from byte 64 + 16*N of /wfs/ctl on), waiting 400 s at most. Not the end
# of a test: see owner_last.
barrier() {
    flag $((64 + $1 * 16 + h * 4))
    _b=1
    while [ $_b -le "$WFS_HOSTS" ]; do
        flagwait $((64 + $1 * 16 + _b * 4)) 400
        _b=$((_b + 1))
    done
}

# hold FILE LEN: runs mmaphold on FILE (LEN bytes mapped, shared) in the
# background, its pid in $hold, its commands written to fd 3 (closing fd
# 3 ends it); cmd ARGS... runs one of its commands and leaves the answer
# in $R (call it in the test's own shell, not a subshell, so that the
# count of answers stays right).
hold() {
    mkfifo /tmp/in
    : > /tmp/out   # exists before mmaphold opens it (it first waits for /tmp/in)
    /opt/helpers/mmaphold "$1" "$2" < /tmp/in > /tmp/out &
    hold=$!
    exec 3> /tmp/in
    _answers=0
}
cmd() {
    echo "$*" >&3
    _answers=$((_answers + 1))
    _i=0
    while [ "$(wc -l < /tmp/out)" -lt $_answers ]; do
        _i=$((_i + 1)); [ $_i -lt 400 ] || fail "mmaphold did not answer '$*'"
        sleep 0.05
    done
    R=$(sed -n "${_answers}p" /tmp/out)
}
