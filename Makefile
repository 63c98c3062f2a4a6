# SPDX-License-Identifier: GPL-2.0
#
# WFS top-level build. Every target installs what it is missing (through
# tools/setup.sh) and rebuilds only what is stale.
#
#   make demo      boot a cluster of guests sharing memory (the main job)
#   make test      run every test: lint, cargo, install, KUnit and QEMU tests
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
#   make install   install wfs.ko, the programs, man pages, completions, an
#                  example /etc/wfs/cluster.toml and the systemd units
#                  (DESTDIR, PREFIX=/usr/local; after make modules manager)
#   make uninstall remove them again (keeps /etc/wfs)
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

.PHONY: all setup kernel kernel-debug modules modules-debug manager helpers test sim mutants demo bench lint \
	install uninstall clean

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
	@mkdir -p build/bin && cp user/target/release/wfs-manager user/target/release/wfsctl \
		user/target/release/wfs-gen-docs build/bin/

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

# The demo builds what it needs itself (tools/demo.py: its output to
# build/logs/demo/build.log, a progress line on the terminal).
demo:
	@tools/demo.py

# Benchmark programs run in the guest by make bench (build/bench/).
BENCH := $(patsubst bench/%.c,build/bench/%,$(wildcard bench/*.c))
build/bench/%: bench/%.c
	@mkdir -p build/bench
	@gcc -O2 -Wall -Werror -pthread -o $@ $< -lm

bench: kernel modules manager $(BENCH)
	@tools/bench.sh

# make install puts what make modules manager built in place; it builds
# nothing (so that `make all && sudo make install` leaves no root-owned
# build products). wfs.ko goes to /lib/modules of the kernel it was built
# against (build/kdir, the patched 6.12 of make kernel), where modprobe
# finds it whatever PREFIX is; the units to PREFIX/lib/systemd/system,
# which systemd reads both for /usr (on Debian, /lib is /usr/lib) and for
# /usr/local (units installed by the administrator).
PREFIX ?= /usr/local
DESTDIR ?=
UNITDIR ?= $(PREFIX)/lib/systemd/system
# What is installed: the module and the programs make modules manager
# built (tools/wfs-vm installs the debug kernel's module, or another,
# into its guests with INSTALL_MODULE and KREL, the release it is for).
INSTALL_MODULE ?= build/wfs.ko
INSTALL_BIN ?= build/bin
KREL ?= $(shell cat $(KDIR)/include/config/kernel.release 2>/dev/null)
MODDIR = $(DESTDIR)/lib/modules/$(KREL)/extra
MAN8DIR := $(DESTDIR)$(PREFIX)/share/man/man8
BASHDIR := $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHDIR := $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHDIR := $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
INSTALL_NEEDS := $(INSTALL_MODULE) $(INSTALL_BIN)/wfs-manager $(INSTALL_BIN)/wfsctl \
	$(INSTALL_BIN)/wfs-gen-docs

install:
	@for f in $(INSTALL_NEEDS); do [ -e $$f ] || { \
		echo "[install] $$f is missing: run make modules manager first" >&2; exit 1; }; done
	@[ -n "$(KREL)" ] || { echo "[install] no kernel release ($(KDIR)/include/config/kernel.release):" \
		"run make kernel first" >&2; exit 1; }
	@echo "[install] wfs.ko for $(KREL) in $(MODDIR)"
	@install -D -m 0644 $(INSTALL_MODULE) $(MODDIR)/wfs.ko
	@if [ -z "$(DESTDIR)" ]; then echo "[install] depmod $(KREL)"; depmod -a $(KREL); fi
	@echo "[install] wfs-manager in $(DESTDIR)$(PREFIX)/sbin, wfsctl in $(DESTDIR)$(PREFIX)/bin"
	@install -D -m 0755 $(INSTALL_BIN)/wfs-manager $(DESTDIR)$(PREFIX)/sbin/wfs-manager
	@install -D -m 0755 $(INSTALL_BIN)/wfsctl $(DESTDIR)$(PREFIX)/bin/wfsctl
	@echo "[install] man pages in $(MAN8DIR), completions for bash, zsh and fish"
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
		$(INSTALL_BIN)/wfs-gen-docs --man $$tmp/man8 --completions $$tmp/comp > /dev/null && \
		install -d -m 0755 $(MAN8DIR) $(BASHDIR) $(ZSHDIR) $(FISHDIR) && \
		install -m 0644 $$tmp/man8/*.8 $(MAN8DIR)/ && \
		for p in wfs-manager wfsctl; do \
			install -m 0644 $$tmp/comp/$$p.bash $(BASHDIR)/$$p && \
			install -m 0644 $$tmp/comp/_$$p $(ZSHDIR)/_$$p && \
			install -m 0644 $$tmp/comp/$$p.fish $(FISHDIR)/$$p.fish || exit 1; \
		done
	@install -d -m 0755 $(DESTDIR)/etc/wfs
	@if [ -e $(DESTDIR)/etc/wfs/cluster.toml ]; then \
		echo "[install] $(DESTDIR)/etc/wfs/cluster.toml exists: the example goes to cluster.toml.example"; \
		install -m 0644 dist/cluster.toml $(DESTDIR)/etc/wfs/cluster.toml.example; \
	else \
		echo "[install] example configuration $(DESTDIR)/etc/wfs/cluster.toml"; \
		install -m 0644 dist/cluster.toml $(DESTDIR)/etc/wfs/cluster.toml; \
	fi
	@echo "[install] wfs-manager.service and wfs.mount in $(DESTDIR)$(UNITDIR)"
	@install -d -m 0755 $(DESTDIR)$(UNITDIR)
	@sed 's|@SBINDIR@|$(PREFIX)/sbin|g' dist/wfs-manager.service.in > $(DESTDIR)$(UNITDIR)/wfs-manager.service
	@chmod 0644 $(DESTDIR)$(UNITDIR)/wfs-manager.service
	@install -m 0644 dist/wfs.mount $(DESTDIR)$(UNITDIR)/wfs.mount
	@install -D -m 0644 dist/README $(DESTDIR)$(PREFIX)/share/doc/wfs/README
	@if [ -z "$(DESTDIR)" ]; then echo "[install] done: edit /etc/wfs/cluster.toml, then" \
		"systemctl daemon-reload && systemctl enable --now wfs-manager.service" \
		"(wfs.ko loads only on the kernel $(KREL): $(PREFIX)/share/doc/wfs/README)"; fi

uninstall:
	@echo "[install] removing what make install put in $(DESTDIR)$(PREFIX) and $(MODDIR) (/etc/wfs stays)"
	@rm -f $(MODDIR)/wfs.ko $(DESTDIR)$(PREFIX)/sbin/wfs-manager $(DESTDIR)$(PREFIX)/bin/wfsctl \
		$(MAN8DIR)/wfs-manager.8 $(MAN8DIR)/wfsctl.8 $(MAN8DIR)/wfsctl-*.8 \
		$(BASHDIR)/wfs-manager $(BASHDIR)/wfsctl $(ZSHDIR)/_wfs-manager $(ZSHDIR)/_wfsctl \
		$(FISHDIR)/wfs-manager.fish $(FISHDIR)/wfsctl.fish \
		$(DESTDIR)$(UNITDIR)/wfs-manager.service $(DESTDIR)$(UNITDIR)/wfs.mount
	@rm -rf $(DESTDIR)$(PREFIX)/share/doc/wfs
	@if [ -z "$(DESTDIR)" ] && [ -n "$(KREL)" ]; then echo "[install] depmod $(KREL)"; depmod -a $(KREL); fi

clean:
	-@[ -e $(KDIR)/Makefile ] && $(KMAKE) clean
	rm -rf build
	cd user && $(CARGO) clean
