#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench: the benchmarks of Documentation/benchmarks.md.
# None exist yet: the null and full page fault, invalidation and sharing
# benchmarks need the data path (issues 3 and 4). This prints nothing that
# looks like a measurement.
echo "[bench] no benchmarks yet: they arrive with the data path (page faults through the manager)."
