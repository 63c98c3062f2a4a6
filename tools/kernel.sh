#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds the patched WFS guest kernel, or reuses a cached build.
#
#   tools/kernel.sh [--debug] [--print-key] [--force]
#
# Inputs: Debian's linux-source-6.12, kernel/patches/series (applied in
# order), kernel/wfs.config (merged on top of tinyconfig), and the toolchain
# (rustc-web, clang-19, bindgen). The build is cached under
# $WFS_CACHE/kernel/<key>/ (default WFS_CACHE=~/.cache/wfs), where <key> is
# a hash of all of those, so an unchanged kernel is never rebuilt. On
# success build/kdir and build/bzImage in the repo point at the cache.
#
# --debug builds the debug variant: kernel/debug.config (KASAN, lockdep)
# merged on top, cached under its own key, linked as build/kdir-debug and
# build/bzImage-debug.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/env.sh
. "$ROOT/tools/env.sh"

PIPELINE_VERSION=2   # bump when this script changes what it produces
KEEP=4               # cached kernels kept (normal and debug, and the last ones)

say() { printf '[kernel] %s\n' "$*"; }
die() { printf '[kernel] error: %s\n' "$*" >&2; exit 1; }

force=0 print_key=0 debug=0
for a in "$@"; do
    case $a in
        --force) force=1 ;;
        --debug) debug=1 ;;
        --print-key) print_key=1 ;;
        *) die "unknown argument $a" ;;
    esac
done

[ -f "$KSRC_TARBALL" ] || die "$KSRC_TARBALL missing: run 'make setup'"
[ -x "$BINDGEN" ] || die "$BINDGEN missing: run 'make setup'"

# Every input of the build, one per line; the key is their hash.
inputs() {
    echo "pipeline $PIPELINE_VERSION"
    echo "linux-source $(dpkg-query -W -f='${Version}' linux-source-6.12)"
    echo "rustc $($KRUSTC --version)"
    echo "clang $(clang-19 --version | head -n1)"
    echo "bindgen $($BINDGEN --version)"
    echo "config $(sha256sum < "$ROOT/kernel/wfs.config" | cut -c1-16)"
    if [ $debug = 1 ]; then
        echo "debug-config $(sha256sum < "$ROOT/kernel/debug.config" | cut -c1-16)"
    fi
    echo "series $(sha256sum < "$ROOT/kernel/patches/series" | cut -c1-16)"
    while read -r p; do
        case $p in ''|'#'*) continue ;; esac
        [ -f "$ROOT/kernel/patches/$p" ] || die "patch $p listed in series is missing"
        echo "patch $p $(sha256sum < "$ROOT/kernel/patches/$p" | cut -c1-16)"
    done < "$ROOT/kernel/patches/series"
}

INPUTS=$(inputs)
KEY=$(printf '%s\n' "$INPUTS" | sha256sum | cut -c1-16)
if [ $print_key = 1 ]; then echo "$KEY"; exit 0; fi

DIR="$WFS_CACHE/kernel/$KEY"
SUFFIX=
[ $debug = 0 ] || SUFFIX=-debug
FRAGMENTS=("$ROOT/kernel/wfs.config")
[ $debug = 0 ] || FRAGMENTS+=("$ROOT/kernel/debug.config")
link_result() {
    mkdir -p "$ROOT/build"
    ln -sfn "$DIR/build" "$ROOT/build/kdir$SUFFIX"
    ln -sfn "$DIR/build/arch/x86/boot/bzImage" "$ROOT/build/bzImage$SUFFIX"
    touch "$DIR/used"
}

if [ $force = 0 ] && [ -f "$DIR/done" ]; then
    say "up to date: cached kernel $KEY"
    link_result
    exit 0
fi

# Say why we build: compare with the inputs of the newest cached kernel.
last=$(ls -t "$WFS_CACHE"/kernel/*/inputs 2>/dev/null | head -n1 || true)
if [ $force = 1 ]; then
    say "rebuilding $KEY (--force)"
elif [ -n "$last" ]; then
    say "building $KEY; inputs changed since $(basename "$(dirname "$last")"):"
    diff <(cat "$last") <(printf '%s\n' "$INPUTS") | sed -n 's/^> /    now: /p; s/^< /    was: /p' || true
else
    say "building $KEY: no cached kernel yet (a cold build takes about 8 minutes on 2 cores)"
fi

rm -rf "$DIR"
mkdir -p "$DIR"
start=$(date +%s)

say "step 1/5: extracting $(basename "$KSRC_TARBALL")"
tar -C "$DIR" -xf "$KSRC_TARBALL"
mv "$DIR/linux-source-6.12" "$DIR/src"

say "step 2/5: applying patch series"
while read -r p; do
    case $p in ''|'#'*) continue ;; esac
    say "    $p"
    patch -d "$DIR/src" -p1 --quiet --forward < "$ROOT/kernel/patches/$p" \
        || die "patch $p does not apply"
done < "$ROOT/kernel/patches/series"

say "step 3/5: configuring (tinyconfig + ${FRAGMENTS[*]#"$ROOT/"})"
mkdir -p "$DIR/build"
kmake() { make -C "$DIR/src" O="$DIR/build" "${KMAKE_ARGS[@]}" "$@"; }
kmake -s tinyconfig
"$DIR/src/scripts/kconfig/merge_config.sh" -m -O "$DIR/build" \
    "$DIR/build/.config" "${FRAGMENTS[@]}" > "$DIR/merge.log" 2>&1
kmake -s olddefconfig
# Every option of the fragment must survive olddefconfig: a dropped one
# means a missing dependency, which would otherwise surface much later.
missing=0
while read -r line; do
    case $line in CONFIG_*=*) ;; *) continue ;; esac
    grep -qxF "$line" "$DIR/build/.config" || { say "    not set: $line"; missing=1; }
done < <(cat "${FRAGMENTS[@]}")
[ $missing = 0 ] || die "config fragment options were dropped (see above)"
kmake -s rustavailable > /dev/null || die "Rust is not available to the kernel build"

say "step 4/5: compiling (make -j$(nproc)), Rust through clippy"
# The kernel crate, our patches included, is compiled by clippy-driver: any
# clippy warning fails the build, as does rustfmt on the Rust sources.
if ! kmake -j"$(nproc)" CLIPPY=1 CLIPPY_DRIVER=/usr/bin/clippy-driver > "$DIR/build.log" 2>&1; then
    tail -n 40 "$DIR/build.log" >&2
    die "kernel build failed; full log: $DIR/build.log"
fi
if grep -n -E '^(warning|error)' "$DIR/build.log" >&2; then
    die "the kernel's Rust code has clippy or compiler warnings (see above; log: $DIR/build.log)"
fi
if ! kmake -s rustfmtcheck > "$DIR/rustfmt.log" 2>&1; then
    head -n 40 "$DIR/rustfmt.log" >&2
    die "the kernel's Rust code is not rustfmt-clean (log: $DIR/rustfmt.log)"
fi

say "step 5/5: recording the result"
printf '%s\n' "$INPUTS" > "$DIR/inputs"
touch "$DIR/done"
link_result
say "built $KEY in $(( $(date +%s) - start )) s"

# Keep only the most recently used kernels.
ls -t "$WFS_CACHE"/kernel/*/used 2>/dev/null | tail -n +$((KEEP + 1)) | while read -r old; do
    old=$(dirname "$old")
    say "evicting old cached kernel $(basename "$old")"
    rm -rf "$old"
done
