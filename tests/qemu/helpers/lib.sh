# SPDX-License-Identifier: GPL-2.0
# Shell functions shared by the multi-guest QEMU tests, `make bench` and
# `make demo`; installed as /opt/helpers/lib.sh (`. /opt/helpers/lib.sh`).

# appear SECS NAME...: waits up to SECS seconds until /wfs/NAME exists for
# every NAME, for files another host creates. A name looked up too early is
# cached as missing, so each try first makes the kernel forget it.
appear() {
    _tries=$(($1 * 5))
    shift
    for _name in "$@"; do
        until [ -e "/wfs/$_name" ]; do
            _tries=$((_tries - 1))
            [ $_tries -gt 0 ] || return 1
            wfsctl forget "$_name" >/dev/null 2>&1 || true
            sleep 0.2
        done
    done
}
