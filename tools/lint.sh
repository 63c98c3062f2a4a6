#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Lint of kernel and userspace Rust. Prints one "[lint] ok NAME" or
# "[lint] FAILED NAME" line per check; exits non-zero if any failed.
# Kernel code: rustfmt with the kernel's .rustfmt.toml, and clippy through
# Kbuild (CLIPPY=1) with Debian's clippy 1.85 matching the kernel's rustc.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/tools/env.sh"
KDIR=$ROOT/build/kdir
rc=0
check() {
    local name=$1; shift
    local out
    if out=$("$@" 2>&1); then
        echo "[lint] ok $name"
    else
        printf '%s\n' "$out" | tail -n 40
        echo "[lint] FAILED $name"
        rc=1
    fi
}

check "rustfmt kernel module" rustfmt --check --edition 2021 \
    --config-path "$KDIR/source/.rustfmt.toml" "$ROOT/rust/wfs_main.rs"
# Clippy: force the module's crate to be checked again with clippy-driver.
clippy_kernel() {
    rm -f "$ROOT/rust/wfs_main.o"
    local out
    out=$(make -C "$KDIR" M="$ROOT" "${KMAKE_ARGS[@]}" CLIPPY=1 \
        CLIPPY_DRIVER=/usr/bin/clippy-driver modules 2>&1) || { echo "$out"; return 1; }
    if grep -E "^(warning|error)" <<<"$out"; then return 1; fi
}
check "clippy kernel module" clippy_kernel
check "rustfmt workspace" bash -c "cd '$ROOT/user' && cargo fmt --check"
check "clippy workspace" bash -c "cd '$ROOT/user' && cargo clippy --quiet --all-targets -- -D warnings"
# No unwrap() or panic!() in kernel paths.
no_panics() {
    ! grep -rnE '\.unwrap\(\)|\bpanic!|\.expect\(' "$ROOT/rust" --include='*.rs'
}
check "no unwrap/expect/panic in kernel code" no_panics
exit $rc
