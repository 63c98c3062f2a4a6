#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Mutation check of the page protocol's rules against its simulation.

Each mutation below breaks one rule of user/wfs-manager/src/protocol.rs
(the recovery rules, the epochs, the operator's evictions...). For each,
the script builds a copy of the workspace with that one change and runs
the protocol's tests: the simulation (tests/sim.rs) and the scenarios
driven by hand (tests/recovery.rs, evict.rs, writeback.rs: those the
simulation reaches too rarely). They must catch it ("killed": a seed to
replay, or a failing scenario). A mutation they pass ("SURVIVED") is a
rule nothing checks, and fails this script, as does a mutation whose
text is no longer in protocol.rs (the rule moved: the mutation must move
with it).

  tools/mutants.py [--schedules N] [--only NAME...] [--list]

Run by `make mutants` (and `make sim`). The copy and its build live in
build/mutants/.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = "wfs-manager/src/protocol.rs"

# (name, the rule it breaks, text in protocol.rs, what it becomes)
MUTANTS = [
    ("home-write-covers",
     "a failed disk write of a page nobody holds is not taken as lost while its writer's home write of the same data is under way",
     "                    None if covered => {}\n",
     ""),
    ("dead-writer-live-holder",
     "a failed write of a writer that died is not taken as lost while a live host holds the page (its newer copy may still be on its way home)",
     "if d.holder.is_some_and(|h| h != to && !dead.contains(&h)) {",
     "if false && dead.is_empty() {"),
    ("orphan-unsent-only",
     "only data never handed to a connection to an owner that died goes to its next incarnation",
     "if never.contains(&seq) && self.leaving.is_none() =>",
     "if self.leaving.is_none() =>"),
    ("orphan-sole-only",
     "data sent on to a requester that died is not kept for the owner's next incarnation (the requester may have written newer data home)",
     "                    sole: true,\n                }) if never.contains(&seq)",
     "                    sole: _,\n                }) if never.contains(&seq)"),
    ("orphan-previous-only",
     "an owner takes only data meant for the incarnation right before its own",
     "if self.previous == Some(owner)\n                    && self.rebuild.contains(&from)",
     "if self.rebuild.contains(&from)"),
    ("orphan-while-waiting",
     "an owner takes data its earlier incarnation never had only while its directory waits for the sender",
     "&& self.rebuild.contains(&from)\n                    && d.holder.is_none()",
     "&& d.holder.is_none()"),
    ("put-epoch",
     "the owner writes a Put only if its epoch is not older than the disk's",
     "} else if epoch >= d.disk_epoch {",
     "} else if true {"),
    ("handover-owed",
     "a holder whose Puts are not all acknowledged hands the page over dirty",
     "unsynced || self.unacked.get(&page).is_some_and(|&n| n > 0)",
     "unsynced"),
    ("read-waits-for-writes",
     "a disk read waits for the page's unreported or failed writes",
     "if self.writing > 0 || self.unwritten.is_some() {",
     "if false {"),
    ("superseded-ack",
     "a superseded Put whose newer data is not durable is not acknowledged as written",
     "let error = if d.durable_epoch > epoch {",
     "let error = if true {"),
    ("bring-home-undelivered",
     "a page sent to a host that died, unacknowledged, comes home",
     "                self.return_page(page, txn, data, dirty, epoch, true, out, local)?;\n            }\n        }\n        // Owner side.",
     "                let _ = (txn, data, epoch);\n            }\n        }\n        // Owner side."),
    ("home-epoch",
     "data brought home goes with the epoch before the move's",
     "epoch.saturating_sub(1).max(1)",
     "epoch"),
    ("recovered-waits",
     "Recovered is not answered while a page is still on its way to the dead host",
     "            if moving {\n                self.to_answer.push(a);",
     "            if false {\n                self.to_answer.push(a);"),
    ("rebuild-holds-back",
     "a restarted owner serves nothing until every peer said what it holds",
     "        if !self.rebuild.is_empty() {\n            // A Put of a known epoch",
     "        if false {\n            // A Put of a known epoch"),
    ("fence-drops-pages",
     "a host whose lease on an owner's pages ran out takes them out of its kernel",
     "                    held.sort();\n                    for &page in &held {\n                        out.push(Output::Invalidate { page });\n                    }\n                    self.fencing.extend(held);",
     "                    held.sort();\n                    let _ = held;"),
    ("fenced-data-goes-home",
     "a page that arrives while its owner's lease is out is not installed",
     "                if self.fenced.contains(&owner)\n",
     "                if false\n"),
    ("refused-grant-goes-home",
     "a dirty page that no READ installed goes home",
     "                out.push(Output::WentHome { page });\n                self.put_home(owner, page, epoch, data, true, out, local);",
     "                out.push(Output::WentHome { page });\n                let _ = data;"),
    ("old-owner-data-lost",
     "data moved for an owner incarnation that died is not written to its next one",
     "if owner != self.owner_incarnation(page.file)? {",
     "if false {"),
    ("downgrade-not-over-newer",
     "a failed downgrade's data is not sent again over newer data",
     ".is_some_and(|&(n, e)| n > r.seq && e >= r.epoch)",
     ".is_some_and(|_| false)"),
    ("lost-downgrade-copy-dropped",
     "a clean copy of downgraded data lost with its owner leaves the kernel",
     "    fn drop_lost_copy(&mut self, page: PageId, out: &mut Vec<Output>) {\n",
     "    fn drop_lost_copy(&mut self, page: PageId, out: &mut Vec<Output>) {\n        return;\n"),
    ("late-drop-released",
     "a late DROP that took a copy this host holds releases it home",
     "} else if contents.is_some() && self.epochs.contains_key(&page) {",
     "} else if false {"),
    ("late-downgrade-home",
     "a late DOWNGRADE that cleaned a copy this host holds sends its data home",
     "                            self.send_home(owner, page, epoch, data, true, false, out, local);\n                        }\n                    }\n                    return Ok(());",
     "                            let _ = (epoch, data);\n                        }\n                    }\n                    return Ok(());"),
    ("resend-later",
     "data that failed to reach the disk is sent again at the next Retry, not at once",
     "                    Some(PutFor::Home { epoch, data, .. }) => {\n                        self.retry.push(Resend {",
     "                    Some(PutFor::Home { epoch, data, .. }) => {\n                        let owner = self.owner(page.file)?;\n                        self.put_home(owner, page, epoch, data.clone(), false, out, local);\n                        return Ok(());\n                        #[allow(unreachable_code)]\n                        self.retry.push(Resend {"),
    ("data-ends-eviction",
     "a page that arrives ends an eviction of it still under way",
     "                if self.evicting.remove(&page).is_some() {\n                    out.push(Output::not_written(",
     "                if false {\n                    out.push(Output::not_written("),
    ("busy-own-read",
     "an invalidation the kernel answers busy for this host's own READ hands the page over as absent",
     "        self.faulting(page)\n            .then(|| Input::taken(page, downgrade, None))",
     "        let _ = (page, downgrade);\n        None"),
    ("busy-retried",
     "an invalidation the kernel answers busy for another reason is tried again, not taken as absent",
     "        self.faulting(page)\n            .then(|| Input::taken(page, downgrade, None))",
     "        Some(Input::taken(page, downgrade, None))"),
    # Leaves (protocol.md, "A host that leaves on purpose"): killed by
    # protocol_simulation_leaves.
    ("released-crossing-a-move",
     "a page whose holder released it (its dirty data home first) while a move asked it for the page is served from the owner's disk when the holder dies, not reported lost",
     "d.busy.is_some() && d.holder == Some(x) && d.released == Some(x);",
     "d.busy.is_some() && d.holder == Some(x) && d.released == Some(x) && false;"),
    ("upgrade-of-released",
     "an UPGRADE whose requester released its read copy while revocations were under way is answered `Stale`, not granted (the owner would take a host that holds nothing for the writer)",
     "            if !d.readers.contains(&to) {\n                // It released its copy meanwhile",
     "            if false {\n                // It released its copy meanwhile"),
    ("owner-gathers-on-leave",
     "an owner that leaves recalls every page of its files other hosts hold (their dirty data to its disk) before it says `Leaving`",
     "        let gathered = out_there.is_empty();",
     "        out_there.clear();\n        let gathered = true;"),
    ("recover-says-left",
     "a `Recover` about a host that said `Leaving` says so (its peers wait for its own word rather than cut off what it sent before)",
     "                    dead: x,\n                    incarnation,\n                    left,",
     "                    dead: x,\n                    incarnation,\n                    left: left && false,"),
    # Read replication (Documentation/mrsw.md, section 7.5): killed by
    # protocol_simulation_mrsw and tests/mrsw.rs.
    ("mrsw-revoke-before-write",
     "every read-only copy is revoked before a writable one is served",
     "        if (!d.readers.is_empty() || !d.revoking.is_empty()) && d.holder.is_none_or(|h| h == to) {",
     "        if false {"),
    ("mrsw-read-copy-from-sharing",
     "a read copy is read from the disk once the writer's data, sent home before `Kept`, is written",
     "                } else {\n                    d.read_disk(page, out);\n                }\n            }\n            Msg::Revoked",
     "                } else {\n                    d.reading = true;\n                    out.push(Output::DiskRead { page });\n                }\n            }\n            Msg::Revoked"),
    ("mrsw-share-put-first",
     "a writer that shares sends its dirty data home before `Kept`",
     "        self.readonly.insert(page);\n        self.send(owner, Msg::Kept { txn, page }, out, local);\n        self.report_holdings(out, local);",
     "        self.readonly.insert(page);\n        let at = out.iter().position(|o| matches!(o, Output::Send { msg: Msg::Put { .. }, .. })).unwrap_or(out.len());\n        out.insert(at, Output::Send { to: owner, msg: Msg::Kept { txn, page } });\n        self.report_holdings(out, local);"),
    ("mrsw-stale-at-once",
     "an UPGRADE from a host that is no reader (revoked: its kernel cannot drop the copy until answered) is answered `Stale` at once, not queued",
     "                } else if !d.readers.contains(&from) {\n",
     "                } else if !d.readers.contains(&from) && d.revoking.is_empty() && false {\n"),
    ("mrsw-stale-queued",
     "an UPGRADE queued by a host that a write revokes is answered `Stale` then",
     "                .filter(|&&(_, h, w)| w == Want::Upgrade && readers.contains(&h))",
     "                .filter(|&&(_, h, w)| w == Want::Upgrade && readers.contains(&h) && false)"),
    ("mrsw-upgrade-member",
     "an UPGRADE is granted only to a host still holding a read copy",
     "        if want == Want::Upgrade && !d.readers.contains(&to) {",
     "        if want == Want::Upgrade && !d.readers.contains(&to) && false {"),
    ("mrsw-dead-reader-unblocks",
     "a write waiting for a reader's `Revoked` goes on once that reader is taken for dead",
     "            let unblocked = d.revoking.remove(&x);",
     "            let unblocked = false;"),
    ("mrsw-fence-drops-readers",
     "a fence takes read copies out of the kernel too",
     "                                && !self.leaving_with(*p)\n                        })",
     "                                && !self.leaving_with(*p)\n                                && !self.readonly.contains(p)\n                        })"),
    ("mrsw-holding-waits-drop",
     "a host reports what it holds to an owner's next incarnation only once no read copy of that owner's is still being dropped",
     "                    && !self.dropping_copies_of(*h)\n",
     "\n"),
    ("mrsw-holding-kind",
     "read copies are reported to an owner's next incarnation as read copies",
     "                    let held = if self.readonly.contains(&p) {",
     "                    let held = if self.readonly.contains(&p) && false {"),
    ("mrsw-upgrade-sole-copy",
     "a reader upgraded in place is the page's only copy: no reader is left listed beside it",
     "            d.readers.clear();\n            d.holder = Some(to);",
     "            d.holder = Some(to);"),
    ("mrsw-stale-refault",
     "an UPGRADE answered `Stale` is refaulted, never granted",
     "                self.answer_upgrade(page, Some(txn), UpgradeAnswer::Refault, out);\n",
     "                self.answer_upgrade(page, Some(txn), UpgradeAnswer::Granted { dirty: false }, out);\n"),
    ("prefetch-mrsw-only",
     "an owner never serves a prefetch of a `single` file's page (it would be the writable copy, lost with its prefetcher)",
     "                    && (want == Want::Write\n                        || d.busy.is_some()",
     "                    && (d.busy.is_some()"),
    ("prefetch-only-idle",
     "an owner serves a prefetch only of a page nobody holds writable and no transaction moves",
     "                        || d.holder.is_some()\n",
     "\n"),
    ("prefetch-joined-asks-again",
     "a fault that joined a prefetch the owner refused asks for the page again",
     "                if p.prefetch && p.access == Access::Read && error == PREFETCH_REFUSED {",
     "                if false {"),
    ("unused-same-grant",
     "a copy fetched ahead and dropped unread is given back only if held under the grant it came with",
     "                    && self.grant_of(page) == Some(grant)\n",
     "                    && self.grant_of(page).is_some()\n"),
    ("unused-not-under-revocation",
     "a copy fetched ahead and dropped unread is not given back while its revocation waits",
     "                    && !self.revokes.contains_key(&page)\n                    && !self.taking(page)\n                    && !self.shares",
     "                    && !self.shares"),
]


def run(cmd, cwd, env, log):
    with open(log, "w") as f:
        return subprocess.run(cmd, cwd=cwd, env=env, stdout=f,
                              stderr=subprocess.STDOUT).returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schedules", type=int, default=20000)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        for name, rule, _, _ in MUTANTS:
            print(f"{name}: {rule}")
        return 0
    names = [m[0] for m in MUTANTS]
    for n in a.only or []:
        if n not in names:
            sys.exit(f"mutants: no mutation {n!r} (see --list)")
    work = os.path.join(ROOT, "build", "mutants")
    # (The ABI crate includes the kernel's abi.rs from ../rust.)
    tree = os.path.join(work, "tree")
    copy = os.path.join(tree, "user")
    if os.path.exists(tree):
        shutil.rmtree(tree)
    os.makedirs(tree)
    os.symlink(os.path.join(ROOT, "rust"), os.path.join(tree, "rust"))
    shutil.copytree(os.path.join(ROOT, "user"), copy,
                    ignore=shutil.ignore_patterns("target"))
    path = os.path.join(copy, SRC)
    with open(path) as f:
        original = f.read()
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(work, "target"),
               WFS_SIM_SCHEDULES=str(a.schedules))
    env.pop("WFS_SIM_SEED", None)
    bad = []
    for name, rule, old, new in MUTANTS:
        if a.only and name not in a.only:
            continue
        n = original.count(old)
        if n != 1:
            print(f"[mutants] {name}: its text is in protocol.rs {n} times, not once: move the mutation with the rule")
            bad.append(name)
            continue
        with open(path, "w") as f:
            f.write(original.replace(old, new))
        log = os.path.join(work, f"{name}.log")
        started = time.time()
        rc = run(["cargo", "test", "--release", "--quiet", "-p", "wfs-manager",
                  "--no-fail-fast", "--test", "sim", "--test", "recovery",
                  "--test", "evict", "--test", "writeback", "--test", "mrsw"], copy, env, log)
        took = time.time() - started
        with open(log, errors="replace") as f:
            text = f.read()
        seed = re.search(r"simulation failed with seed (\d+)", text)
        failed = [t for t in re.findall(r"^(\S+) --- FAILED", text, re.M)
                  if t != "protocol_simulation"]
        why = ([f"seed {seed.group(1)}"] if seed else []) + failed
        if rc != 0 and why:
            print(f"[mutants] {name}: killed ({', '.join(why)}; {took:.0f} s): {rule}")
        elif rc != 0:
            print(f"[mutants] {name}: the build or the run failed otherwise ({log})")
            bad.append(name)
        else:
            print(f"[mutants] {name}: SURVIVED {a.schedules} schedules: the simulation does not check that {rule}")
            bad.append(name)
    with open(path, "w") as f:
        f.write(original)
    if bad:
        print(f"[mutants] FAILED: {' '.join(bad)}")
        return 1
    print("[mutants] every mutation was caught")
    return 0


if __name__ == "__main__":
    sys.exit(main())
