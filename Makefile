# SPDX-License-Identifier: GPL-2.0
#
# WFS top-level build. Every target installs what it is missing (through
# tools/setup.sh) and rebuilds only what is stale.
#
#   make demo      boot a cluster of guests sharing memory (the main job)
#   make test      run every test: lint, cargo, KUnit and QEMU tests
#   make setup     install Debian packages and bindgen-cli
#   make kernel    build (or reuse from cache) the patched guest kernel
#   make kernel-debug   the same with KASAN and lockdep (kernel/debug.config)
#   make modules   build wfs.ko against that kernel
#   make manager   build wfs-manager and wfsctl
#   make helpers   build the C helpers the QEMU tests run in guests
#   make bench     run the benchmarks
#   make sim       the long protocol simulation, then make mutants
#   make mutants   break each rule of the page protocol: its tests must fail
#   make lint      rustfmt and clippy, kernel and userspace
#   make clean     remove build products from the tree (keeps the cache)

SHELL := /bin/bash
ROOT := $(CURDIR)
WFS_CACHE ?= $(HOME)/.cache/wfs
export WFS_CACHE

KDIR := $(ROOT)/build/kdir
BINDGEN := $(WFS_CACHE)/tools/bindgen-0.69.5/bin/bindgen
KMAKE := $(MAKE) -C $(KDIR) M=$(ROOT) LLVM=-19 RUSTC=/usr/bin/rustc \
	RUSTDOC=/usr/bin/rustdoc BINDGEN=$(BINDGEN)
CARGO := cargo
KERNEL_RS := $(shell find rust -name '*.rs')

.PHONY: all setup kernel kernel-debug modules modules-debug manager helpers test sim mutants demo bench lint clean

all: kernel modules manager

setup:
	@tools/setup.sh

kernel: setup
	@tools/kernel.sh

# The kernel build dir's key changes with the kernel, and Kbuild notices
# it, so wfs.ko is rebuilt whenever the kernel is.
modules: kernel
	@echo "[modules] building wfs.ko"
	@$(KMAKE) modules
	@mkdir -p build && cp wfs.ko build/wfs.ko

kernel-debug: setup
	@tools/kernel.sh --debug

# wfs.ko for the debug kernel, built from a copy of the sources so that its
# objects never mix with the normal build's (build/debug/wfs.ko).
DEBUG_SRC := $(ROOT)/build/debug-src
modules-debug: kernel-debug
	@echo "[modules] building wfs.ko for the debug kernel"
	@mkdir -p $(DEBUG_SRC) build/debug
	@cp -r --preserve=timestamps Kbuild rust $(DEBUG_SRC)/
	@$(MAKE) -C $(ROOT)/build/kdir-debug M=$(DEBUG_SRC) LLVM=-19 RUSTC=/usr/bin/rustc \
		RUSTDOC=/usr/bin/rustdoc BINDGEN=$(BINDGEN) modules
	@cp $(DEBUG_SRC)/wfs.ko build/debug/wfs.ko

manager: setup
	@echo "[manager] building wfs-manager and wfsctl"
	@cd user && $(CARGO) build --release --quiet
	@mkdir -p build/bin && cp user/target/release/wfs-manager user/target/release/wfsctl build/bin/

# Small C programs the QEMU tests run in the guests (build/test-helpers/).
# Shell functions they share (lib.sh) are copied alongside.
HELPERS := $(patsubst tests/qemu/helpers/%.c,build/test-helpers/%,$(wildcard tests/qemu/helpers/*.c)) \
	build/test-helpers/lib.sh
helpers: $(HELPERS)
build/test-helpers/%: tests/qemu/helpers/%.c
	@mkdir -p build/test-helpers
	@gcc -O2 -Wall -Werror -pthread -o $@ $<
# sqlx links Debian's SQLite statically (libsqlite3-dev's libsqlite3.a).
build/test-helpers/sqlx: tests/qemu/helpers/sqlx.c
	@mkdir -p build/test-helpers
	@gcc -O2 -Wall -Werror -pthread -o $@ $< -l:libsqlite3.a -lm
build/test-helpers/%.sh: tests/qemu/helpers/%.sh
	@mkdir -p build/test-helpers
	@cp $< $@

lint: modules
	@tools/lint.sh

test: kernel modules kernel-debug modules-debug manager helpers
	@tools/run-tests

# The long run of the page protocol's simulation (make test runs 2000
# schedules): SIM_SCHEDULES seeded schedules on 3 to 5 hosts, with dropped
# connections, crashes, disk errors and READs given up; a failure prints the
# seed to replay (WFS_SIM_SEED=N).
SIM_SCHEDULES ?= 20000
sim: setup
	@echo "[sim] $(SIM_SCHEDULES) schedules"
	@cd user && WFS_SIM_SCHEDULES=$(SIM_SCHEDULES) $(CARGO) test --release --quiet -p wfs-manager --test sim protocol_simulation -- --nocapture
	@$(MAKE) --no-print-directory mutants

# Each rule of the page protocol broken in turn must make its tests fail.
mutants: setup
	@echo "[mutants] breaking the page protocol's rules one at a time"
	@tools/mutants.py

demo: kernel modules manager helpers
	@tools/demo.sh

# Benchmark programs run in the guest by make bench (build/bench/).
BENCH := $(patsubst bench/%.c,build/bench/%,$(wildcard bench/*.c))
build/bench/%: bench/%.c
	@mkdir -p build/bench
	@gcc -O2 -Wall -Werror -pthread -o $@ $< -lm

bench: kernel modules manager $(BENCH)
	@tools/bench.sh

clean:
	-@[ -e $(KDIR)/Makefile ] && $(KMAKE) clean
	rm -rf build
	cd user && $(CARGO) clean
