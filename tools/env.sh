# SPDX-License-Identifier: GPL-2.0
# Shared settings of the build scripts; sourced, not run.
#
# The kernel and wfs.ko are built with Debian's rustc-web 1.85 (the version
# Debian pairs with Linux 6.12, and one that ships the library source the
# kernel needs), clang/LLVM 19 and bindgen-cli 0.69.5. The userspace
# workspace keeps using the machine's cargo.

WFS_CACHE=${WFS_CACHE:-$HOME/.cache/wfs}
KSRC_TARBALL=/usr/src/linux-source-6.12.tar.xz
KRUSTC=/usr/bin/rustc
KRUSTDOC=/usr/bin/rustdoc
BINDGEN_VERSION=0.69.5
BINDGEN=$WFS_CACHE/tools/bindgen-$BINDGEN_VERSION/bin/bindgen
KMAKE_ARGS=(LLVM=-19 RUSTC="$KRUSTC" RUSTDOC="$KRUSTDOC" BINDGEN="$BINDGEN")
