#!/bin/sh
# Runs on every demo guest.
set -eu
h=$WFS_HOST
echo "== h$h: kernel $(uname -r), module: $(grep '^wfs ' /proc/modules | cut -d' ' -f1-3)"
echo "== h$h: $(grep ' /wfs ' /proc/mounts)"
wfsctl wait --peers --timeout 90
echo "== h$h: manager status"
wfsctl status
echo "== h$h: exported here: $(ls /export 2>/dev/null | tr '\n' ' ')"
echo "== h$h: ls -l /wfs (files this host's manager serves)"
ls -l /wfs
if [ -e /wfs/shared ]; then
    echo "== h$h: the first line of /wfs/shared, read through a shared mapping (page faults served by the manager):"
    /opt/helpers/mmapcat /wfs/shared | head -n 1
    echo "== h$h: a write through a shared mapping, then msync: putpages reaches /export"
    /opt/helpers/mmapwrite /wfs/shared 65536 0 "written through /wfs by host $h" sync
    echo "   /export/shared now starts with: $(head -c 30 /export/shared)"
    echo "== h$h: the manager takes the page back (INVALIDATE), then it is faulted in again:"
    wfsctl invalidate shared 0
    /opt/helpers/mmapcat /wfs/shared | head -c 30; echo
    echo "== h$h: upcalls served:"
    wfsctl stats
else
    echo "== h$h: /wfs/shared is owned by host 1; serving it to other hosts is the next step (issue 4)"
fi
# Keep everyone up until all have printed their status.
wfsctl wait --peers --timeout 30
sleep 3
