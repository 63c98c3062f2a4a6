#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make demo: boots a cluster of guests running WFS and shows what works.
# Today: every guest loads wfs.ko, starts its manager, mounts /wfs, and the
# managers register with their kernels and connect to each other; host 1
# exports a file, maps it through /wfs (every page fetched from its
# manager), writes to it through the mapping and msyncs it to /export, and
# its manager takes the page back (INVALIDATE) before it is faulted in
# again. Serving the file to the other hosts comes with the page protocol.
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
