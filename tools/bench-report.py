#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turns the RESULT/RAW lines of bench/guest.sh (stdin) into the tables of
`make bench`. argv[1] is the accelerator the guest ran under."""
import math
import os
import re
import sys

accel = sys.argv[1] if len(sys.argv) > 1 else "tcg"
rows = {}
# (kind, percent, who) -> [per-traversal ms]; kind: FIG4 (write sharing,
# single), FIG4R (read sharing, single), FIG4M and FIG4RM (the same, mrsw).
figs = {}
# (tag, host) -> {"READ" or a stage name: (count, total microseconds)}: the
# manager's `wfsctl stats` before and after a case ("STATS <tag> <host>
# <line>"), for the breakdowns.
snaps = {}
for line in sys.stdin:
    line = line.split("] ", 1)[-1] if line.startswith("[h") else line
    m = re.match(r"STATS (\S+) (h\d) (.*)", line.strip())
    if m:
        snap = snaps.setdefault((m.group(1), m.group(2)), {})
        f = m.group(3).split()
        if f[0] == "READ" and len(f) >= 4:
            snap["READ"] = (int(f[1]), int(f[1]) * float(f[3]))
        c = re.match(r"cost (\S+) count (\d+) mean_us \S+ total_us ([\d.]+)", m.group(3))
        if c:
            snap[c.group(1)] = (int(c.group(2)), float(c.group(3)))
        # The guest's CPU ticks (busy, all) and the manager's.
        if f[0] == "cpu" and len(f) == 3:
            snap["cpu"] = (int(f[1]), int(f[2]))
        if f[0] == "manager_cpu" and len(f) == 2:
            snap["manager_cpu"] = (int(f[1]), 0)
        continue
    m = re.match(r"(FIG4R?M?) (\S+) (h\d) \S+ total_ns=\d+ per_traversal_ns=(\d+)", line.strip())
    if m:
        figs.setdefault((m.group(1), m.group(2), m.group(3)), []).append(int(m.group(4)) / 1e6)
        continue
    m = re.match(r"RESULT (\S+) \S+ (.*)", line.strip())
    if m:
        rows[m.group(1)] = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", m.group(2))}
        continue
    m = re.match(r"RAW (\S+) (.*)", line.strip())
    if m:
        v = sorted(float(x) * 1000 for x in m.group(2).split())
        mean = sum(v) / len(v)
        sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1))
        rows[m.group(1)] = dict(n=len(v), mean_ns=mean, sd_ns=sd, min_ns=v[0], median_ns=v[len(v) // 2],
                                runs=1, run_sd_ns=0)

def table(title, base, entries):
    print(f"\n{title}")
    print(f"  {'case':<52} {'n':>6} {'runs':>4} {'mean_us':>9} {'sd_us':>8} {'run_sd_us':>9}"
          f" {'median_us':>10} {'x ' + base:>14}")
    b = rows.get(base)
    for key, label in entries:
        r = rows.get(key)
        if r is None:
            print(f"  {label:<52} (missing)")
            continue
        ratio = f"{r['mean_ns'] / b['mean_ns']:.2f}" if b else "-"
        print(f"  {label:<52} {int(r['n']):>6} {int(r.get('runs', 1)):>4} {r['mean_ns'] / 1000:>9.2f}"
              f" {r['sd_ns'] / 1000:>8.2f} {r.get('run_sd_ns', 0) / 1000:>9.2f}"
              f" {r['median_ns'] / 1000:>10.2f} {ratio:>14}")

if accel == "tcg":
    print("NOTE: the guest ran under TCG (software emulation, no KVM): absolute times are\n"
          "emulation times and mean little; compare the ratios, measured in the same guest\n"
          "in the same run.")
table("Table 1. Page faults, one per sample (first touch of a page mapped alone, MADV_RANDOM)",
      "local-cached",
      [("local-cached", "tmpfs, page cached: the local null fault"),
       ("wfs-cached", "WFS, page cached"),
       ("wfs-null", "WFS null fault: READ answered at once, no data"),
       ("wfs-miss", "WFS full fault: READ, page read from the export"),
       ("fuse-miss", "FUSE, page not cached: READ to a raw FUSE server"),
       ("uffd-miss", "userfaultfd, missing page: UFFDIO_COPY by a thread"),
       ("tcp-page", "raw TCP over loopback: 16 B request, 4 KB answer"),
       ("invalidate", "WFS INVALIDATE (DROP of a clean cached page)")])
def ratio(a, b):
    ra, rb = rows.get(a), rows.get(b)
    return f"{ra['mean_ns'] / rb['mean_ns']:.2f}" if ra and rb else "-"

print("\nRatios of mean times (WFS / peer)")
print(f"  {'':<34} {'x local':>9} {'x FUSE':>9} {'x uffd':>9} {'x TCP':>9}")
for key, label in (("wfs-null", "WFS null fault"), ("wfs-miss", "WFS full fault")):
    print(f"  {label:<34} {ratio(key, 'local-cached'):>9} {ratio(key, 'fuse-miss'):>9}"
          f" {ratio(key, 'uffd-miss'):>9} {ratio(key, 'tcp-page'):>9}")

table("Copy or remap: handing one 4 KB page across an address space boundary",
      "copy",
      [("copy", "memcpy of 4 KB (what READ does slot -> page cache)"),
       ("remap", "mremap of one page (PTE move + TLB flush)")])
table("Remote page faults between two guests (first touch of a page mapped alone, on h2; h1 owns the file)",
      "tcp-guests",
      [("tcp-guests", "raw TCP between the guests: 16 B request, 4 KB answer"),
       ("remote-held", "WFS remote fault: page held by the owner's kernel"),
       ("remote-disk", "WFS remote fault: page only on the owner's disk")])


def mib_s(key):
    r = rows.get(key)
    return 1e9 / r["mean_ns"] if r else None


print(f"\nSequential read of files another guest owns (on h2, read(2) of files on h1's disk)\n"
      f"next to the TCP bandwidth between the same guests; MiB/s of the mean time per MiB")
print(f"  {'case':<52} {'n':>6} {'MiB/s':>9} {'sd MiB/s':>9} {'x TCP':>9}")
for key, label in (("tcp-bw", "raw TCP between the guests, one connection"),
                   ("seq-remote", "WFS sequential read of a remote file (single)"),
                   ("seq-remote-mrsw", "WFS, the same files read-replicated (mrsw: prefetch)")):
    r = rows.get(key)
    if r is None:
        print(f"  {label:<52} (missing)")
        continue
    bw, tcp = mib_s(key), mib_s("tcp-bw")
    # (sd of the rate, to first order: sd of the time per MiB over its mean.)
    sd = bw * r["sd_ns"] / r["mean_ns"]
    ratio = f"{bw / tcp:.3f}" if tcp else "-"
    print(f"  {label:<52} {int(r['n']):>6} {bw:>9.1f} {sd:>9.1f} {ratio:>9}")


print("\nThe cost of encryption: the same runs over the default noise transport (authenticated,\n"
      "ChaCha20-Poly1305) and after both managers restarted with transport = \"plain\"")
print(f"  {'case':<52} {'noise':>10} {'plain':>10} {'noise/plain':>12}")
for key, label, unit in (("remote-disk", "WFS remote fault, owner's disk (mean us)", "us"),
                         ("seq-remote", "WFS sequential read, single (MiB/s)", "MiB/s")):
    a, b = rows.get(key), rows.get(key + "-plain")
    if a is None or b is None:
        print(f"  {label:<52} (missing)")
        continue
    if unit == "us":
        x, y = a["mean_ns"] / 1000, b["mean_ns"] / 1000
    else:
        x, y = mib_s(key), mib_s(key + "-plain")
    print(f"  {label:<52} {x:>10.1f} {y:>10.1f} {x / y:>12.2f}")


def stats(v):
    mean = sum(v) / len(v)
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return mean, sd, sorted(v)[len(v) // 2]


FIGURES = [
    ("FIG4", "Figure 4, write sharing, single copy (the paper's benchmark: the first byte of\n"
     "each visited page modified 1000 times per visit)"),
    ("FIG4M", "Figure 4, write sharing, read replication (coherence = \"mrsw\")"),
    ("FIG4R", "Figure 4, read sharing, single copy (each visit reads the first byte 1000\n"
     "times; h1 writes it at 1% of its visits)"),
    ("FIG4RM", "Figure 4, read sharing, read replication (coherence = \"mrsw\")"),
]


def figure(kind, title):
    """Prints one Figure 4 table; returns {pct: (h1 mean, h2 mean)} of the
    runs after the first (pages touched) and the local mean."""
    print(f"\n{title}; time per traversal in ms, mean +- sd over the runs (two hosts,\n"
          "a 64 KiB file h1 owns, each host visiting 8 pages, 800 visits per traversal).\n"
          "'local': h1 alone.")
    local = figs.get((kind, "local", "h1"))
    lm = stats(local)[0] if local else None
    print(f"  {'sharing':>8} {'runs':>5} {'owner h1':>18} {'non-owner h2':>18} {'h1 x local':>11} {'h2 x local':>11}")
    after = {}
    for pct in ("0", "25", "50", "75", "100"):
        a, b = figs.get((kind, pct, "h1")), figs.get((kind, pct, "h2"))
        if not a or not b:
            print(f"  {pct + '%':>8} (missing)")
            continue
        (ma, sa, _), (mb, sb, _) = stats(a), stats(b)
        ra = f"{ma / lm:.1f}" if lm else "-"
        rb = f"{mb / lm:.1f}" if lm else "-"
        print(f"  {pct + '%':>8} {len(a):>5} {ma:>9.2f} +- {sa:>5.2f} {mb:>9.2f} +- {sb:>5.2f} {ra:>11} {rb:>11}")
        later = (a[1:] or a, b[1:] or b)
        after[pct] = (stats(later[0])[0], stats(later[1])[0])
    if local:
        ml, sl, _ = stats(local)
        print(f"  {'local':>8} {len(local):>5} {ml:>9.2f} +- {sl:>5.2f}")
    return after, lm


results = {kind: figure(kind, title) for kind, title in FIGURES}

def mean_of(key):
    r = rows.get(key)
    return r["mean_ns"] if r else None


def target_row(label, value, goal, at_most, unit="x"):
    if value is None:
        print(f"  {label:<58} {'-':>9} {goal_text(goal, at_most, unit):>10}  (missing)")
        return
    met = value <= goal if at_most else value >= goal
    print(f"  {label:<58} {value:>8.2f}{unit} {goal_text(goal, at_most, unit):>10}  "
          f"{'met' if met else 'not met'}")


def goal_text(goal, at_most, unit):
    return f"{'<=' if at_most else '>='} {goal:g}{unit}"


def over(a, b):
    ma, mb = mean_of(a), mean_of(b)
    return ma / mb if ma and mb else None


def part_mean(case, host, what):
    """The mean in microseconds of `what` (READ service, or a stage) at
    `host` during `case`: the difference of its sums between the snapshots
    "<case>-before" and "<case>-after"."""
    a = snaps.get((f"{case}-before", host), {}).get(what)
    b = snaps.get((f"{case}-after", host), {}).get(what)
    if not a or not b or b[0] <= a[0]:
        return None, 0
    return (b[1] - a[1]) / (b[0] - a[0]), b[0] - a[0]


def delta(case, host, what):
    """(count, sum) of `what` at `host` over `case`, or None."""
    a = snaps.get((f"{case}-before", host), {}).get(what)
    b = snaps.get((f"{case}-after", host), {}).get(what)
    return (b[0] - a[0], b[1] - a[1]) if a and b else None


TICK_US = 10000  # USER_HZ is 100 on x86: a clock tick of /proc/stat is 10 ms


def cpu_line(case, per, n):
    """The guests' CPU use over `case`: how busy each was, and its
    manager's CPU time per `per` (n of them)."""
    out = []
    for host in ("h1", "h2"):
        c, mc = delta(case, host, "cpu"), delta(case, host, "manager_cpu")
        if not c or not c[1] or not mc or not n:
            continue
        out.append(f"{host} {100 * c[0] / c[1]:.0f}% busy, its manager {mc[0] * TICK_US / n:.0f} us of CPU per {per}")
    if out:
        print(f"  CPU over the run: {'; '.join(out)}")


def breakdown(title, total_key, parts, peer=None, case=None, host="h1"):
    """Prints where a fault's mean time goes: `parts` is a list of
    (label, microseconds or None); the fault's own mean is rows[total_key].
    With `case`, also the CPU use over it, per READ answered at `host`."""
    r = rows.get(total_key)
    print(f"\n{title}")
    if r is None or any(v is None for _, v in parts):
        print("  (missing: the run printed no manager statistics for it)")
        return
    total = r["mean_ns"] / 1000
    print(f"  {'part':<66} {'mean_us':>9} {'share':>6}")
    for label, v in parts:
        print(f"  {label:<66} {v:>9.1f} {100 * v / total:>5.0f}%")
    print(f"  {'the fault, as the program measured it':<66} {total:>9.1f}  100%")
    if peer:
        label, key = peer
        p = rows.get(key)
        if p:
            print(f"  {label:<66} {p['mean_ns'] / 1000:>9.1f}")
    if case:
        answered = delta(case, host, "answer")
        cpu_line(case, "fault", answered[0] if answered else 0)


# What each fault is made of: the fault as wfsbench timed it, and the
# stages the managers timed (user/wfs-manager/src/costs.rs): "answer", a
# READ from its upcall read to its reply ready; "disk_read"; at the
# requester "fetch" (WhereIs out, Data in) and at the owner "serve"
# (WhereIs in, Data out) and "invalidate" (the ioctl). The kernel's part is
# the rest: the fault, the upcall's way to the manager, the reply's write
# and the page's installation.
def minus(a, b):
    return a - b if a is not None and b is not None else None


def kernel_part(key, answer):
    f = mean_of(key)
    return minus(f / 1000 if f else None, answer)


n_ans, _ = part_mean("null", "h1", "answer")
breakdown("What a null fault is made of (one guest)", "wfs-null",
          [("kernel: the fault, the READ's way to the manager and back", kernel_part("wfs-null", n_ans)),
           ("manager: the READ, from reading it to its reply ready", n_ans)],
          ("(a FUSE READ, for comparison)", "fuse-miss"), "null")
m_ans, _ = part_mean("miss", "h1", "answer")
m_disk, _ = part_mean("miss", "h1", "disk_read")
breakdown("What a full single-host fault is made of (one guest)", "wfs-miss",
          [("kernel: the fault, the READ's way to the manager and back", kernel_part("wfs-miss", m_ans)),
           ("manager: the READ, beside the page's read from the export", minus(m_ans, m_disk)),
           ("manager: the page's read from the export (pread)", m_disk)],
          ("(a FUSE READ, for comparison)", "fuse-miss"), "miss")
a2, _ = part_mean("held", "h2", "answer")
fe, _ = part_mean("held", "h2", "fetch")
sv, _ = part_mean("held", "h1", "serve")
inv, _ = part_mean("held", "h1", "invalidate")
breakdown("What a remote fault is made of (page in the owner's kernel; h2 faults, h1 owns)",
          "remote-held",
          [("h2 kernel: the fault, the READ's way to the manager and back", kernel_part("remote-held", a2)),
           ("h2 manager: the READ, beside waiting for the page", minus(a2, fe)),
           ("network and both managers' sessions: WhereIs out, Data back", minus(fe, sv)),
           ("h1 manager: serving the page, beside the INVALIDATE", minus(sv, inv)),
           ("h1 kernel: the INVALIDATE ioctl (the page out of its page cache)", inv)],
          ("(a raw TCP round trip between the guests, for comparison)", "tcp-guests"), "held", "h2")

# The scan with read replication: what each page costs, and where.
print("\nWhat a sequential read of a remote file is made of (mrsw, h2 reads, h1 owns)")
sent = delta("seq", "h1", "serve")
per_mib = mean_of("seq-remote-mrsw")
if not sent or not sent[0] or not per_mib:
    print("  (missing: the run printed no manager statistics for it)")
else:
    pages = sent[0]
    reads = delta("seq", "h2", "READ")
    print(f"  time per page (4 KiB) of the scan                                 {per_mib / 256 / 1000:>9.1f} us")
    for label, host, stage in (("h1: a page read from the export", "h1", "disk_read"),
                               ("h1: a page served (WhereIs in, Data out)", "h1", "serve"),
                               ("h2: a page fetched (WhereIs out, Data in)", "h2", "fetch")):
        m, _ = part_mean("seq", host, stage)
        if m is not None:
            print(f"  {label:<66} {m:>9.1f} us")
    if reads:
        print(f"  READs per page at h2: {reads[0] / pages:.2f} ({pages} pages sent by h1)")
    cpu_line("seq", "page", pages)

# What the fast path and read replication are to reach (issue 11), from
# this run's numbers.
print("\nTargets (ratios from this run; under TCG only ratios mean anything)")
print(f"  {'measure':<58} {'now':>9} {'target':>10}")
target_row("remote fault (page in the owner's kernel) / TCP round trip",
           over("remote-held", "tcp-guests"), 1.5, True)
target_row("full single-host fault / FUSE READ", over("wfs-miss", "fuse-miss"), 1.2, True)
target_row("null fault / FUSE READ", over("wfs-null", "fuse-miss"), 1.0, True)
# (The faster of the two modes: prefetch fetches read copies only.)
seq = min((t for t in (mean_of("seq-remote"), mean_of("seq-remote-mrsw")) if t), default=None)
bw = mean_of("tcp-bw")
target_row("sequential read of a remote file / TCP bandwidth",
           bw / seq if seq and bw else None, 0.7, False)
# Read sharing under mrsw, after the first touch (every run but each
# step's first): the slower host at the slowest sharing, against h1 alone.
after, local_r = results["FIG4RM"]
worst = max((max(v) for v in after.values()), default=None)
target_row("Figure 4, read sharing after the first touch / local",
           worst / local_r if worst and local_r else None, 1.1, True)
# Write sharing: the mean over every step and both hosts, mrsw against
# single.
def overall(kind):
    v = [x for (k, pct, _), runs in figs.items() if k == kind and pct != "local" for x in runs]
    return sum(v) / len(v) if v else None
ws, wm = overall("FIG4"), overall("FIG4M")
target_row("Figure 4, write sharing: mrsw / single", wm / ws if ws and wm else None, 1.0, True)

# The pictures (matplotlib, which tools/bench.sh installs): Figure 4's
# curves, single against mrsw, and the fault latencies' distributions.
QUANTILES = [10, 50, 100, 250, 500, 750, 900, 950, 990, 999]


def draw(out_dir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(no pictures: matplotlib is missing)", file=sys.stderr)
        return
    os.makedirs(out_dir, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    pcts = ["0", "25", "50", "75", "100"]
    for ax, (title, single, mrsw) in zip(axes, (("write sharing", "FIG4", "FIG4M"),
                                                ("read sharing (1% writes by h1)", "FIG4R", "FIG4RM"))):
        for kind, label, style in ((single, "single", "o-"), (mrsw, "mrsw", "s-")):
            xs, ys, es = [], [], []
            for pct in pcts:
                runs = (figs.get((kind, pct, "h1")) or []) + (figs.get((kind, pct, "h2")) or [])
                if runs:
                    m, sd, _ = stats(runs)
                    xs.append(int(pct)); ys.append(m); es.append(sd)
            if xs:
                ax.errorbar(xs, ys, yerr=es, fmt=style, capsize=3, label=label)
            local = figs.get((kind, "local", "h1"))
            if local:
                ax.axhline(stats(local)[0], linestyle=":", linewidth=1,
                           label=f"{label}: h1 alone")
        ax.set_title(f"Figure 4, {title}")
        ax.set_xlabel("pages shared by both hosts (%)")
        ax.set_ylabel("ms per traversal (mean +- sd, both hosts)")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.suptitle(f"WFS make bench ({accel}: only ratios mean anything)", fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "figure4.svg"))
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    drawn = False
    for key, label in (("wfs-null", "WFS null fault"), ("wfs-miss", "WFS full fault"),
                       ("fuse-miss", "FUSE READ"), ("uffd-miss", "userfaultfd"),
                       ("remote-held", "WFS remote fault (owner's kernel)"),
                       ("remote-disk", "WFS remote fault (owner's disk)"),
                       ("tcp-guests", "TCP round trip between guests")):
        r = rows.get(key)
        if not r or f"q{QUANTILES[0]}_ns" not in r:
            continue
        qs = [q for q in QUANTILES if f"q{q}_ns" in r or q == 500]
        xs = [r["median_ns" if q == 500 else f"q{q}_ns"] / 1000 for q in qs]
        ax.plot(xs, [q / 10 for q in qs], marker=".", label=label)
        drawn = True
    ax.set_xscale("log")
    ax.set_xlabel("latency (us)")
    ax.set_ylabel("samples at or below (%)")
    ax.set_title(f"Fault latencies, distribution ({accel}: only ratios mean anything)", fontsize=9)
    if drawn:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "fault-latency.svg"))
    plt.close(fig)
    print(f"\npictures: {out_dir}/figure4.svg, {out_dir}/fault-latency.svg")


draw(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build", "bench"))

missing = [k for k in ("local-cached", "wfs-null", "wfs-miss", "fuse-miss", "uffd-miss", "invalidate",
                       "copy", "tcp-guests", "remote-held", "remote-disk", "seq-remote",
                       "seq-remote-mrsw", "tcp-bw", "remote-disk-plain", "seq-remote-plain")
           if k not in rows]
for kind, _ in FIGURES:
    if sum(1 for k in figs if k[0] == kind) < 11:
        missing.append(kind.lower())
if missing:
    print(f"\nmissing results: {' '.join(missing)}", file=sys.stderr)
    sys.exit(1)
