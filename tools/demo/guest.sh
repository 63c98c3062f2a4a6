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
# Keep everyone up until all have printed their status.
wfsctl wait --peers --timeout 30
sleep 3
