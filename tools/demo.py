#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""make demo: builds what is missing, boots a cluster of guests (3 unless
WFS_DEMO_HOSTS says 2 or 4) running WFS, and tells what happens as they
share one memory: who owns what, each step with the value each host sees,
the counter, what the owners' disks hold, and a summary table.

Everything else goes to files under build/logs/demo/: the build's output
(build.log) and each guest's whole console (hN.log). They are shown, the
part that matters, only when something fails. WFS_DEMO_VERBOSE=1 streams
it all as it comes instead (the build's output and wfs-vm --verbose).

The guests run tools/demo/guest.sh, whose `@...` lines are the story (see
there). Python 3 standard library only.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
LOGS = os.path.join(ROOT, "build", "logs", "demo")
TTY = sys.stdout.isatty()


def out(text=""):
    print(text, flush=True)


class Progress:
    """One line that says what is going on and for how long: rewritten in
    place on a terminal, printed once (and its end once) otherwise."""

    def __init__(self, what):
        self.what = what
        self.t0 = time.monotonic()
        self.detail = ""
        self.lock = threading.Lock()
        self.done = threading.Event()
        if TTY:
            self.thread = threading.Thread(target=self._tick, daemon=True)
            self.thread.start()
        else:
            out(f"[demo] {what} ...")

    def _line(self):
        secs = int(time.monotonic() - self.t0)
        return f"[demo] {self.what} ... {secs // 60}:{secs % 60:02d}" + \
            (f"  {self.detail}" if self.detail else "")

    def _tick(self):
        while not self.done.wait(0.5):
            with self.lock:
                if self.done.is_set():
                    break
                width = shutil.get_terminal_size().columns - 1
                sys.stdout.write("\r" + self._line()[:width].ljust(width))
                sys.stdout.flush()

    def set(self, detail):
        with self.lock:
            self.detail = detail

    def end(self, result):
        with self.lock:
            self.done.set()
            secs = time.monotonic() - self.t0
            if TTY:
                width = shutil.get_terminal_size().columns - 1
                sys.stdout.write("\r" + " " * width + "\r")
            out(f"[demo] {self.what}: {result} ({secs:.0f} s)")


def build():
    """make kernel modules manager helpers, its output in build.log; the
    log's tail on failure."""
    log = os.path.join(LOGS, "build.log")
    verbose = os.environ.get("WFS_DEMO_VERBOSE") == "1"
    cmd = [os.environ.get("MAKE", "make"), "--no-print-directory", "-C", ROOT,
           "kernel", "modules", "manager", "helpers"]
    if verbose:
        return subprocess.call(cmd) == 0
    p = Progress("building the kernel, wfs.ko, wfs-manager and wfsctl (what is missing)")
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors="replace")
        for line in proc.stdout:
            f.write(line)
            f.flush()
            if line.strip():
                p.set(line.strip()[:60])
        rc = proc.wait()
    if rc != 0:
        p.end(f"FAILED (make exit {rc})")
        with open(log, errors="replace") as f:
            tail = f.read().splitlines()[-25:]
        for l in tail:
            out(f"  build| {l}")
        out(f"[demo] the whole build log: {os.path.relpath(log)}")
        return False
    p.end(f"done; its output is in {os.path.relpath(log)}")
    return True


def ms_of_us(us):
    try:
        v = float(us)
    except ValueError:
        return "?"
    return f"{v / 1e3:.1f} ms" if v else "-"


class Story:
    """Reads wfs-vm's output and tells the story of the guests' `@` lines
    (tools/demo/guest.sh); keeps everything else for a failure."""

    def __init__(self, hosts):
        self.hosts = hosts
        self.steps = 0
        self.each = {}          # key -> (label, {host: value})
        self.owns = {}
        self.stats = {}
        self.other = []         # lines not of the story
        self.summary = []       # wfs-vm's summary and what follows it
        self.booted = {}
        self.accel = None
        self.boot = None
        self.in_summary = False
        self.held = []          # the story until the cluster is ready

    def line(self, line):
        line = line.rstrip("\n")
        if self.in_summary or line.startswith("== wfs-vm summary"):
            self.in_summary = True
            self.summary.append(line)
            return
        m = re.match(r"\[wfs-vm\] (\d+) guest\(s\), (\w+),", line)
        if m:
            self.accel = m.group(2)
            self.boot = Progress(f"booting {self.hosts} guests under QEMU ({self.accel}), "
                                 "each loads wfs.ko, starts its manager and mounts /wfs")
            return
        m = re.match(r"\[wfs-vm\] h(\d+): booted in ([\d.]+) s", line)
        if m:
            self.booted[int(m.group(1))] = float(m.group(2))
            if self.boot:
                self.boot.set(", ".join(f"h{h} up in {t:.1f} s"
                                        for h, t in sorted(self.booted.items())))
            return
        m = re.match(r"\[h(\d+)\] @(\w+) ?(.*)$", line)
        if not m:
            self.other.append(line)
            return
        h, kind, rest = int(m.group(1)), m.group(2), m.group(3)
        if kind == "step":
            self.steps += 1
            self.tell("")
            self.tell(f" {self.steps}. {rest}")
        elif kind == "say":
            self.tell(f"    {rest}")
        elif kind == "each":
            key, _, labeled = rest.partition(" ")
            label, _, value = labeled.partition("::")
            entry = self.each.setdefault(key, (label, {}))
            entry[1][h] = value
            if len(entry[1]) == self.hosts:
                self.each_done(key, label, entry[1])
        elif kind == "owns":
            self.owns[h] = rest.split()
        elif kind == "table":
            # reads P50_US P99_US PAGES_IN PAGES_OUT PAGES_WRITTEN
            f = rest.split()
            if len(f) == 6:
                self.stats[h] = f
            else:
                self.other.append(line)
        else:
            self.other.append(line)

    def tell(self, text):
        """A line of the story; held until every host is ready (a host
        may begin its part before the last one says it is)."""
        if self.held is not None:
            self.held.append(text)
        else:
            out(text)

    def each_done(self, key, label, values):
        if key == "ready":
            if self.boot:
                self.boot.end("every manager registered with its kernel and connected to "
                              f"its {self.hosts - 1} peers")
                self.boot = None
            out()
            out(f"{self.hosts} hosts, one memory: h1 exports /export/shared (64 KiB), and "
                "every host maps /wfs/shared.")
            held, self.held = self.held, None
            for text in held:
                out(text)
            return
        self.tell(f"    {label}: " + " | ".join(f"h{h} {v or '(nothing)'}"
                                               for h, v in sorted(values.items())))

    def table(self):
        out()
        out(" Summary, from each host's manager (wfsctl stats)")
        rows = [("host", "owns", "READs", "READ p50", "READ p99", "pages in / out",
                 "pages written")]
        for h in range(1, self.hosts + 1):
            s = self.stats.get(h)
            if not s:  # (a line of it lost, cut by a kernel message)
                rows.append((f"h{h}", ", ".join(self.owns.get(h, [])) or "-",
                             "?", "?", "?", "?", "?"))
                continue
            reads, p50, p99, pin, pout, written = s
            rows.append((f"h{h}", ", ".join(self.owns.get(h, [])) or "-", reads,
                         ms_of_us(p50), ms_of_us(p99), f"{pin} / {pout}", written))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            out("   " + "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                                  for i, (c, w) in enumerate(zip(r, widths))))
        out("   READ: a page this host's kernel asked its manager for (a fault or a read), "
            "p50/p99 the manager's")
        out("   time to serve it; pages in / out: pages that came from / went to another "
            "host; pages written: by")
        out("   the owner, to its disk (its /export).")
        if self.accel == "tcg":
            out("   (TCG emulates the CPU: times are many times a real machine's, only ratios "
                "mean anything;")
            out("   make bench measures WFS beside the page cache, FUSE, userfaultfd and TCP "
                "in the same guest.)")

    def flush(self):
        """Whatever is still held or running (the ready line may have been
        lost, cut by a kernel message)."""
        if self.boot:
            self.boot.end("the cluster's readiness was not heard of")
            self.boot = None
        held, self.held = self.held, None
        for text in held or []:
            out(text)

    def failure(self, rc):
        self.flush()
        out()
        if self.accel is None:
            out(f"[demo] FAILED: wfs-vm stopped before any guest booted (exit {rc}):")
            for l in self.other + self.summary:
                out(f"  {l}")
            return
        out("[demo] FAILED. What the guests printed besides the story, and how each ended:")
        for l in self.other[-40:]:
            out(f"  {l}")
        # (wfs-vm's tails of the consoles of guests whose command ran are
        # left out: the lines above are those commands' output, kernel
        # problems included. A guest that never got to its command, set-up
        # failed or boot hung, keeps its tail: nothing else shows why.)
        keep = False
        for l in self.summary:
            m = re.match(r"== h(\d+)'s console", l)
            if m:
                keep = int(m.group(1)) not in self.booted
            elif not l.startswith("  h"):
                keep = not l.startswith("== consoles: ")
            if keep or re.match(r"== (wfs-vm summary|result)|h\d+: ", l):
                out(l)


def main():
    hosts = int(os.environ.get("WFS_DEMO_HOSTS", "3"))
    if not 2 <= hosts <= 4:
        sys.exit("demo: WFS_DEMO_HOSTS must be 2, 3 or 4")
    os.makedirs(LOGS, exist_ok=True)
    for old in os.listdir(LOGS):  # (a run that fails early names no stale console)
        if re.fullmatch(r"h\d+\.log", old):
            os.remove(os.path.join(LOGS, old))
    out("WFS demo: programs on several hosts map the same file under /wfs and share one "
        "memory.")
    if not build():
        return 1
    verbose = os.environ.get("WFS_DEMO_VERBOSE") == "1"
    with tempfile.TemporaryDirectory(prefix="wfs-demo-") as tmp:
        shared = os.path.join(tmp, "shared")
        with open(shared, "wb") as f:
            f.write(b"hello from the owner, host 1\n")
            f.truncate(64 * 1024)
        cmd = [os.path.join(ROOT, "tools", "wfs-vm"), "run", "--hosts", str(hosts),
               "--timeout", "300", "--logs", LOGS,
               "--export", f"1:{shared}:shared",
               "--add", f"{os.path.join(ROOT, 'tools', 'demo', 'guest.sh')}:/opt/demo.sh",
               "--add", f"{os.path.join(ROOT, 'build', 'test-helpers')}:/opt/helpers",
               "--", "/bin/sh", "/opt/demo.sh"]
        if verbose:
            return subprocess.call(cmd[:2] + ["--verbose"] + cmd[2:])
        t0 = time.monotonic()
        story = Story(hosts)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors="replace")
        for line in proc.stdout:
            story.line(line)
        rc = proc.wait()
    logs = os.path.relpath(LOGS)
    if rc != 0:
        story.failure(rc)
        if story.accel is not None:
            out(f"[demo] every guest's whole console: {logs}/h1.log .. h{hosts}.log")
        return rc
    story.flush()
    story.table()
    out()
    out(f"PASS: {hosts} hosts shared one memory ({time.monotonic() - t0:.0f} s). Every guest's "
        f"whole console: {logs}/h1.log .. h{hosts}.log")
    return 0


if __name__ == "__main__":
    sys.exit(main())
