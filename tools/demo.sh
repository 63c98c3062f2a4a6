#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make demo: boots a cluster of guests (3 unless WFS_DEMO_HOSTS says
# otherwise) running WFS: every guest loads wfs.ko, starts its manager and
# mounts /wfs; host 1 exports /export/shared, and every host maps
# /wfs/shared and shares its memory with the others (see
# tools/demo/guest.sh for the steps).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HOSTS=${WFS_DEMO_HOSTS:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'hello from the owner, host 1\n' > "$tmp/shared"
truncate -s 64K "$tmp/shared"
echo "[demo] booting $HOSTS guests on a private network (10.0.0.1..10.0.0.$HOSTS)"
exec "$ROOT/tools/wfs-vm" run --hosts "$HOSTS" --timeout 300 \
    --export "1:$tmp/shared:shared" \
    --add "$ROOT/tools/demo/guest.sh:/opt/demo.sh" \
    --add "$ROOT/build/test-helpers:/opt/helpers" -- /bin/sh /opt/demo.sh
