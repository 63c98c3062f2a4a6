#!/bin/sh
# hosts: 1
# timeout: 300
#
# SIGKILL racing a dirty grant. 30 rounds: a reader faults a page in, the
# manager kills it and only then grants the page dirty (wfsfuzz killrace:
# it runs SCHED_FIFO on the reader's CPU, so the reader wakes with both
# the fatal signal and the accepted reply). The dirty grant is the page's
# only copy: once the manager's reply was accepted, the page must be in
# the page cache (a second reader gets it without a READ) and a final
# syncfs must write it back with its contents. The reader used to return
# EINTR and drop the page although its reply had been accepted.
set -eu
fail() { echo "FAIL: $*"; exit 1; }
. /opt/helpers/lib.sh
stop_manager || fail "manager did not register"
/opt/helpers/wfsfuzz killrace 30 || fail "a dirty grant was lost"
wfsctl kstatus | grep -q "inflight 0 " || fail "requests left in flight: $(wfsctl kstatus)"
echo PASS
