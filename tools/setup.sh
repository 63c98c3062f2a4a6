#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Installs what building and testing WFS needs, and nothing when it is all
# there already: Debian packages through apt-get, bindgen-cli through cargo.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/tools/env.sh"

say() { printf '[setup] %s\n' "$*"; }

RUST_WEB=1.85.0+dfsg3-1~deb12u3
PACKAGES=(
    linux-source-6.12
    "rustc-web=$RUST_WEB" "libstd-rust-web-dev=$RUST_WEB" "rust-web-src=$RUST_WEB" "rust-web-clippy=$RUST_WEB"
    clang-19 lld-19 llvm-19 libclang-19-dev
    flex bison bc libelf-dev libssl-dev cpio patch make gcc lz4
    qemu-system-x86 busybox-static python3
    libsqlite3-dev
    kmod  # depmod for make install, modinfo for its test
)

missing=()
for p in "${PACKAGES[@]}"; do
    name=${p%%=*}
    want=${p#*=}
    have=$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$name" 2>/dev/null || true)
    case $have in
        "ii  "*) [ "$want" = "$p" ] || [ "${have#ii  }" = "$want" ] || missing+=("$p") ;;
        *) missing+=("$p") ;;
    esac
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { say "need root to install: ${missing[*]}"; exit 1; }
    say "installing: ${missing[*]}"
    mkdir -p "$WFS_CACHE"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --allow-downgrades \
        "${missing[@]}" > "$WFS_CACHE/apt.log" 2>&1 || {
        tail -n 30 "$WFS_CACHE/apt.log" >&2; exit 1; }
else
    say "Debian packages: all present"
fi

if [ -x "$BINDGEN" ] && "$BINDGEN" --version | grep -q "$BINDGEN_VERSION"; then
    say "bindgen $BINDGEN_VERSION: present"
else
    say "installing bindgen-cli $BINDGEN_VERSION with cargo (about 2 minutes)"
    mkdir -p "$WFS_CACHE/tools"
    cargo install --locked --quiet bindgen-cli --version "$BINDGEN_VERSION" \
        --root "$WFS_CACHE/tools/bindgen-$BINDGEN_VERSION"
fi
