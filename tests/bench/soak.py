#!/usr/bin/env python3
"""tests/bench/soak.py: the measuring half of `make soak` (stdlib only).

Subcommands:

  measure  where guests run (directly, or inside ONE nested test host
           session): a look at the machine's global state, then RUNS
           sequential `husk run JOB --json --result FILE`, then PARALLEL at
           once, then the global state again. Writes the raw figures.
  report   turns them into build/bench/soak.json, prints a table, and
           fails when the start and the end differ.

What is measured:
  - each husk run, from outside (/proc/PID every SAMPLE_MS while it runs,
    os.wait4 at its end): its open descriptors (the count most samples saw,
    the steady state with the VM up; and the largest), its threads, its
    VmRSS and VmHWM (its peak RSS, guest RAM included), CPU time, wall
    time, verdict and exit code (wait4's ru_maxrss too, for information: it
    also holds the harness's RSS, which the child shared before its exec);
    after it ended: husk-vm-* folders and husk processes left;
  - the machine, at the start, every CHECK_EVERY runs and at the end: every
    entry under the private dir root ($TMPDIR, else /tmp) and /dev/shm,
    processes older than 3 s, looked at 3 s after the last run (kernel
    threads only when they are KVM's own, not kworkers), mounts, bound Unix
    sockets, this harness's own descriptors; for information MemAvailable
    and the time of a fixed piece of CPU work (how fast the machine is
    then: the nested test host slows down when its host is busy).
The verdict (in `report`): the global state at the end equals the start,
every run was OK and left nothing, and the last EDGE runs' descriptor
counts (steady and largest) and threads equal the first EDGE runs' (medians),
and so does the floor (the least of those runs) of husk's own memory (RSS
less the guest's RAM, the median of a run's looks, within RSS_TOLERANCE_KIB)
and of its peak RSS with the guest's RAM (VmHWM, within HWM_TOLERANCE_KIB:
each boot touches a slightly different set of pages). Floors, not medians:
a run's memory is one of two levels 2 MiB apart, at random.
"""

import argparse
import collections
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback


def write_json(path, data):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(path + ".tmp", path)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


# ------------------------------------------------------------ global state
def tree(root, skip=()):
    """Every path under root (relative), not following symlinks."""
    out = []
    if not os.path.isdir(root):
        return out
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        dirs[:] = [x for x in dirs if os.path.join(d, x) not in skip]
        for name in dirs + files:
            out.append(os.path.normpath(os.path.join(rel, name)))
    return sorted(out)


def ancestors():
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        stat = read("/proc/%d/stat" % pid)
        if not stat:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return pids


def processes(exclude):
    """{(pid, starttime): "comm cmdline"} of user processes, and of kernel
    threads whose name says KVM (a VM that was not closed keeps them)."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) in exclude:
            continue
        stat = read("/proc/%s/stat" % p)
        cmd = read("/proc/%s/cmdline" % p, "rb")
        if stat is None or cmd is None:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        flags, start = int(fields[6]), fields[19]
        kthread = flags & 0x00200000 != 0  # PF_KTHREAD
        # kworkers take the name of the work they run (kworker/0:1-kvm-irqfd-
        # cleanup) and come and go: only KVM's own threads count.
        if kthread and ("kvm" not in comm or comm.startswith("kworker")):
            continue
        out[(int(p), start)] = ("[%s]" % comm) if kthread else "%s: %s" % (
            comm, cmd.replace(b"\0", b" ").decode("utf-8", "replace").strip()[:200])
    return out


def long_lived_processes(exclude, min_age_s=3.0):
    """Processes started at least min_age_s ago, looked at min_age_s after
    the caller's last run ended (so anything that run left counts): the
    test host's heartbeat loop starts a `sleep 2` every 2 s, which is no
    leak."""
    time.sleep(min_age_s)
    tick = os.sysconf("SC_CLK_TCK")
    uptime = float(read("/proc/uptime").split()[0])
    return sorted(v for (pid, start), v in processes(exclude).items() if uptime - int(start) / tick >= min_age_s)


def calibration_ms():
    """The time of a fixed piece of CPU work here: how fast this machine is
    right now (the nested test host slows down when its host is busy), to
    read the runs' times against."""
    t0 = time.monotonic()
    x = 0
    for i in range(300000):
        x += i * i % 7
    return round((time.monotonic() - t0) * 1e3, 1)


def mounts():
    out = []
    for line in (read("/proc/self/mountinfo") or "").splitlines():
        f = line.split()
        sep = f.index("-")
        out.append("%s %s" % (f[4], f[sep + 1]))
    return sorted(out)


def unix_sockets():
    out = []
    for line in (read("/proc/net/unix") or "").splitlines()[1:]:
        f = line.split()
        if len(f) >= 8:
            out.append(f[7])
    return sorted(out)


def mem_available_kib():
    for line in (read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return None


def global_state(tmp_root, skip, exclude):
    return {
        "tmp_root": tmp_root,
        "tmp_entries": tree(tmp_root, skip),
        "dev_shm_entries": tree("/dev/shm"),
        "processes": long_lived_processes(exclude),
        "mounts": mounts(),
        "unix_sockets": unix_sockets(),
        "harness_fds": len(os.listdir("/proc/self/fd")),
        "mem_available_kib": mem_available_kib(),
        "calibration_ms": calibration_ms(),
        "when": time.time(),
    }


COMPARED = ("tmp_entries", "dev_shm_entries", "processes", "mounts", "unix_sockets", "harness_fds")


def state_diff(a, b):
    """What differs between two global states, as text lines."""
    out = []
    for k in COMPARED:
        x, y = a.get(k), b.get(k)
        if x == y:
            continue
        if isinstance(x, list):
            cx, cy = collections.Counter(x), collections.Counter(y)
            gone, new = sorted((cx - cy).elements()), sorted((cy - cx).elements())
            out.append("%s: %d -> %d; new: %s; gone: %s" % (k, len(x), len(y), new[:20], gone[:20]))
        else:
            out.append("%s: %s -> %s" % (k, x, y))
    return out


# ------------------------------------------------------------------- runs
def median(values):
    v = [x for x in values if x is not None]
    return statistics.median(v) if v else None


def own_rss_kib(pid, guest_kib):
    """husk's own memory: the RSS of all its mappings but the guest's RAM
    (one anonymous mapping of exactly the guest's size), from one read of
    /proc/PID/smaps; None when it cannot be read."""
    text = read("/proc/%d/smaps" % pid)
    if not text:
        return None
    total = guest = 0
    in_guest = False
    for line in text.splitlines():
        f = line.split()
        if not f:
            continue
        if "-" in f[0] and len(f) >= 5 and not f[0].endswith(":"):
            lo, _, hi = f[0].partition("-")
            try:
                size_kib = (int(hi, 16) - int(lo, 16)) // 1024
            except ValueError:
                continue
            in_guest = size_kib == guest_kib and len(f) == 5
        elif f[0] == "Rss:":
            total += int(f[1])
            if in_guest:
                guest += int(f[1])
    return total - guest


def sample(pid, guest_kib=None):
    """(fds, threads, VmRSS KiB, VmHWM KiB, own RSS KiB or None) of a live
    process, or None."""
    status = read("/proc/%d/status" % pid)
    if status is None:
        return None
    v = {}
    for line in status.splitlines():
        k, _, rest = line.partition(":")
        if k in ("VmRSS", "VmHWM", "Threads", "State"):
            v[k] = rest.split()[0] if rest.split() else ""
    if v.get("State") == "Z" or "VmRSS" not in v:
        return None
    try:
        fds = len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None
    own = own_rss_kib(pid, guest_kib) if guest_kib else None
    return fds, int(v.get("Threads", 0)), int(v["VmRSS"]), int(v.get("VmHWM", 0)), own


def husk_processes(husk):
    """Processes running the husk binary (none should outlive its run)."""
    out = []
    real = os.path.realpath(husk)
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if os.path.realpath("/proc/%s/exe" % p) == real:
                out.append(int(p))
        except OSError:
            pass
    return out


class Run:
    def __init__(self, a, index, label):
        self.index, self.label = index, label
        self.result_path = os.path.join(a.log_dir, "result-%s.json" % label)
        self.err_path = os.path.join(a.log_dir, "husk-%s.stderr" % label)
        if os.path.exists(self.result_path):
            os.unlink(self.result_path)
        self.argv = [a.husk, "run", a.job, "--json", "--result", self.result_path]
        self.samples = []
        self.guest_kib = a.guest_mib * 1024
        self.start = time.monotonic()
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err, close_fds=True)
        self.done = None

    def poll(self, timeout):
        """Samples once; returns True when the run has ended (reaped)."""
        if self.done is not None:
            return True
        pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
        if pid == 0:
            # smaps (husk's own memory) every second look: it costs more.
            s = sample(self.proc.pid, self.guest_kib if len(self.samples) % 2 == 0 else None)
            if s:
                self.samples.append(s)
            if time.monotonic() - self.start > timeout:
                self.proc.kill()
            return False
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.done = {"ms": round((time.monotonic() - self.start) * 1e3, 1), "ru": ru}
        return True

    def figures(self):
        ru = self.done["ru"]
        fds = [s[0] for s in self.samples]
        r = read_json(self.result_path) or {}
        out = {
            "run": self.label,
            "exit_code": self.proc.returncode,
            "verdict": r.get("verdict"),
            "message": r.get("message"),
            "wall_ms": self.done["ms"],
            "cpu_ms": round((ru.ru_utime + ru.ru_stime) * 1e3, 1),
            # Not husk's alone: Linux keeps in it the RSS of the memory the
            # child had before its exec (the harness's, shared by vfork).
            "ru_maxrss_kib": ru.ru_maxrss,
            "samples": len(self.samples),
            # The count most samples saw: the steady state with the VM up.
            "fds_steady": collections.Counter(fds).most_common(1)[0][0] if fds else None,
            "fds_max": max(fds) if fds else None,
            "threads_max": max((s[1] for s in self.samples), default=None),
            "vmrss_max_kib": max((s[2] for s in self.samples), default=None),
            "vmhwm_kib": self.samples[-1][3] if self.samples else None,
            # husk's own memory: the median of the looks (the VM up, the job
            # running: what a long-lived husk would hold), and the largest
            # (the kernel image is read in at the start; a look may miss it).
            "own_rss_kib": median(s[4] for s in self.samples if s[4] is not None),
            "own_rss_max_kib": max((s[4] for s in self.samples if s[4] is not None), default=None),
            "boot_ms": (r.get("timeline") or {}).get("agent_ready_ms"),
        }
        if out["verdict"] != "OK" or out["exit_code"] != 0:
            tail = (read(self.err_path) or "").strip().splitlines()[-4:]
            out["stderr_tail"] = tail
        return out


def leftovers(a, tmp_root):
    """husk-vm-* folders and husk processes present now."""
    dirs = sorted(d for d in os.listdir(tmp_root) if d.startswith("husk-vm-")) if os.path.isdir(tmp_root) else []
    return {"vm_dirs": dirs, "husk_processes": husk_processes(a.husk)}


def cmd_measure(a):
    os.makedirs(a.log_dir, exist_ok=True)
    tmp_root = os.environ.get("TMPDIR") or "/tmp"
    skip = {os.path.abspath(a.log_dir)}
    exclude = ancestors()
    interval = a.sample_ms / 1e3
    res = {"settings": {"runs": a.runs, "parallel": a.parallel, "job": a.job, "sample_ms": a.sample_ms,
                        "check_every": a.check_every, "husk": a.husk, "tmp_root": tmp_root},
           "errors": [], "sequential": [], "parallel": [], "checks": []}
    res["start"] = global_state(tmp_root, skip, exclude)

    def check(label):
        s = global_state(tmp_root, skip, exclude)
        diff = state_diff(res["start"], s)
        res["checks"].append({"after": label, "diff": diff, "tmp_entries": len(s["tmp_entries"]),
                              "processes": len(s["processes"]), "mounts": len(s["mounts"]),
                              "unix_sockets": len(s["unix_sockets"]), "harness_fds": s["harness_fds"],
                              "mem_available_kib": s["mem_available_kib"], "calibration_ms": s["calibration_ms"]})
        print("soak: after %s: %s" % (label, "; ".join(diff) if diff else "global state as at the start"), flush=True)
        write_json(a.out, res)  # what is measured so far, should the session end early

    t0 = time.monotonic()
    for i in range(a.runs):
        run = Run(a, i, "seq-%03d" % (i + 1))
        while not run.poll(a.timeout):
            time.sleep(interval)
        f = run.figures()
        f["left"] = leftovers(a, tmp_root)
        res["sequential"].append(f)
        bad = f["verdict"] != "OK" or f["exit_code"] != 0 or f["left"]["vm_dirs"] or f["left"]["husk_processes"]
        if bad:
            res["errors"].append("sequential run %d: exit %s, verdict %s: %s; left %s %s" % (
                i + 1, f["exit_code"], f["verdict"], f["message"], f["left"], f.get("stderr_tail", "")))
        if (i + 1) % 10 == 0 or bad:
            print("soak: run %d/%d: %s, %.0f ms, fds %s (max %s), VmHWM %s KiB" % (
                i + 1, a.runs, f["verdict"], f["wall_ms"], f["fds_steady"], f["fds_max"], f["vmhwm_kib"]),
                flush=True)
        if (i + 1) % a.check_every == 0:
            check("sequential run %d" % (i + 1))
    res["sequential_s"] = round(time.monotonic() - t0, 1)

    t0 = time.monotonic()
    runs = [Run(a, i, "par-%d" % (i + 1)) for i in range(a.parallel)]
    while not all([r.poll(a.timeout) for r in runs]):
        time.sleep(interval)
    res["parallel_s"] = round(time.monotonic() - t0, 1)
    left = leftovers(a, tmp_root)
    for i, run in enumerate(runs):
        f = run.figures()
        res["parallel"].append(f)
        if f["verdict"] != "OK" or f["exit_code"] != 0:
            res["errors"].append("parallel run %d: exit %s, verdict %s: %s %s" % (
                i + 1, f["exit_code"], f["verdict"], f["message"], f.get("stderr_tail", "")))
    res["parallel_left"] = left
    if left["vm_dirs"] or left["husk_processes"]:
        res["errors"].append("after the parallel runs: left %s" % left)
    print("soak: %d at once: %s in %.1f s" % (a.parallel, [f["verdict"] for f in res["parallel"]], res["parallel_s"]),
          flush=True)
    res["end"] = global_state(tmp_root, skip, exclude)
    res["end_diff"] = state_diff(res["start"], res["end"])
    write_json(a.out, res)
    return 0


# ----------------------------------------------------------------- report
def cmd_report(a):
    m = read_json(a.measured)
    failures = []
    if m is None:
        failures.append("no measurements (%s)" % (a.inner_status or "the measuring step did not write them"))
        m = {}
    failures += m.get("errors", [])
    seq, par = m.get("sequential", []), m.get("parallel", [])
    n = a.edge
    first, last = seq[:n], seq[-n:]
    edges = {}
    for key in ("fds_steady", "fds_max", "threads_max", "own_rss_kib", "own_rss_max_kib", "vmhwm_kib",
                "ru_maxrss_kib", "cpu_ms", "wall_ms", "boot_ms"):
        edges[key] = {"first": median(r.get(key) for r in first), "last": median(r.get(key) for r in last),
                      "first_floor": min((r.get(key) for r in first if r.get(key) is not None), default=None),
                      "last_floor": min((r.get(key) for r in last if r.get(key) is not None), default=None),
                      "min": min((r.get(key) for r in seq if r.get(key) is not None), default=None),
                      "max": max((r.get(key) for r in seq if r.get(key) is not None), default=None),
                      "parallel_median": median(r.get(key) for r in par)}
    if seq:
        if len(seq) < a.runs:
            failures.append("only %d of %d sequential runs were measured" % (len(seq), a.runs))
        # Descriptors: the last runs hold as many as the first ones (medians,
        # so that one sample that caught a descriptor in passing is no leak).
        for key in ("fds_steady", "fds_max", "threads_max"):
            if edges[key]["last"] != edges[key]["first"]:
                failures.append("%s: median of the first %d runs %s, of the last %d runs %s" % (
                    key, n, edges[key]["first"], n, edges[key]["last"]))
        # Memory: the floor (the least of the runs at each end). A run's
        # memory is one of two levels 2 MiB apart (measured: 6.1 or 8.1 MiB
        # of husk's own, at random), so medians of 10 flip between them;
        # what grows with use raises the floor.
        for key, tolerance in (("own_rss_kib", a.rss_tolerance_kib), ("vmhwm_kib", a.hwm_tolerance_kib)):
            e = edges[key]
            if e["first_floor"] is None or e["last_floor"] is None:
                failures.append("%s: not measured" % key)
            elif abs(e["last_floor"] - e["first_floor"]) > tolerance:
                failures.append("%s: least of the first %d runs %s KiB, of the last %d %s KiB (tolerance %d KiB)" % (
                    key, n, e["first_floor"], n, e["last_floor"], tolerance))
    if m.get("end_diff"):
        failures.append("the global state at the end differs from the start: %s" % "; ".join(m["end_diff"]))
    for c in m.get("checks", []):
        if c["diff"]:
            failures.append("after %s: %s" % (c["after"], "; ".join(c["diff"])))
    start, end = m.get("start") or {}, m.get("end") or {}
    # The long view: medians over each block of runs, in order.
    block = max(1, len(seq) // 10)
    blocks = []
    for i in range(0, len(seq), block):
        b = seq[i:i + block]
        blocks.append({"runs": "%d-%d" % (i + 1, i + len(b)),
                       **{k: median(r.get(k) for r in b) for k in ("fds_steady", "fds_max", "threads_max",
                                                                  "own_rss_kib", "vmhwm_kib", "cpu_ms",
                                                                  "wall_ms", "boot_ms")}})

    def counts(s):
        return {k: (len(s[k]) if isinstance(s.get(k), list) else s.get(k))
                for k in COMPARED + ("mem_available_kib", "calibration_ms")}

    out = {
        "benchmark": "soak",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "where": a.where,
        "settings": m.get("settings", {}),
        "note": "Each husk run sampled from /proc every sample_ms; fds_steady is the descriptor count most "
                "samples of a run saw (the VM up), fds_max the largest; own_rss_kib is husk's own memory (RSS less the "
                "guest RAM mapping, from smaps every 2nd sample), the median of a run's looks, own_rss_max_kib "
                "the largest look (the kernel image read in at the start: a look may miss it); vmhwm_kib is its peak RSS "
                "(VmHWM, guest RAM included, which varies by the pages a boot touches); ru_maxrss from wait4 also holds the harness's RSS (shared before exec). 'first' and "
                "'last' are medians over the first and last %d sequential runs. The global state (entries "
                "under the private dir root and /dev/shm, long-lived processes, mounts, Unix sockets, the "
                "harness's descriptors) is compared at the start, every check_every runs and at the end." % n,
        "edges": edges,
        "blocks": blocks,
        "global_start": counts(start),
        "global_end": counts(end),
        "end_diff": m.get("end_diff"),
        "checks": m.get("checks", []),
        "sequential_s": m.get("sequential_s"),
        "parallel_s": m.get("parallel_s"),
        "sequential": seq,
        "parallel": par,
        "failures": failures,
    }
    if a.inner_status:
        out["inner_status"] = a.inner_status
    write_json(a.out, out)

    def f(v):
        return "-" if v is None else ("%.0f" % v if abs(v) >= 100 else "%.1f" % v)

    print()
    print("soak, %s" % a.where)
    print("%d sequential husk runs of %s (%s s), then %d at once (%s s)" % (
        len(seq), (m.get("settings") or {}).get("job"), f(m.get("sequential_s")), len(par), f(m.get("parallel_s"))))
    print("%-28s %10s %10s %10s %10s %10s" % ("per run (medians)", "first %d" % n, "last %d" % n, "min", "max",
                                               "parallel"))
    labels = [("fds, steady state", "fds_steady"), ("fds, largest", "fds_max"), ("threads, largest", "threads_max"),
              ("own RSS, median, KiB", "own_rss_kib"), ("own RSS, largest, KiB", "own_rss_max_kib"), ("VmHWM (peak RSS), KiB", "vmhwm_kib"),
              ("ru_maxrss, KiB (see note)", "ru_maxrss_kib"), ("CPU, ms", "cpu_ms"),
              ("wall, ms", "wall_ms"), ("boot (agent ready), ms", "boot_ms")]
    for label, key in labels:
        e = edges[key]
        print("%-28s %10s %10s %10s %10s %10s" % (label, f(e["first"]), f(e["last"]), f(e["min"]), f(e["max"]),
                                                   f(e["parallel_median"])))
    for label, key in (("own RSS, least, KiB", "own_rss_kib"), ("VmHWM, least, KiB", "vmhwm_kib")):
        e = edges[key]
        print("%-28s %10s %10s" % (label, f(e["first_floor"]), f(e["last_floor"])))
    print("medians by block of runs: fds steady/largest, threads, own RSS KiB, VmHWM KiB, CPU ms, wall ms, boot ms")
    for b in blocks:
        print("  %-9s %4s %4s %3s %8s %8s %7s %7s %7s" % (
            b["runs"], f(b["fds_steady"]), f(b["fds_max"]), f(b["threads_max"]), f(b["own_rss_kib"]),
            f(b["vmhwm_kib"]), f(b["cpu_ms"]), f(b["wall_ms"]), f(b["boot_ms"])))
    cal = [(c["after"], c.get("calibration_ms")) for c in m.get("checks", [])]
    if cal:
        print("machine speed (a fixed piece of CPU work, ms): start %s; %s; end %s" % (
            f(start.get("calibration_ms")), ", ".join("after %s: %s" % (w.replace("sequential ", ""), f(v)) for w, v in cal),
            f(end.get("calibration_ms"))))
    print("%-28s %10s %10s" % ("machine", "start", "end"))
    cs, ce = counts(start), counts(end)
    for k in COMPARED + ("mem_available_kib", "calibration_ms"):
        print("%-28s %10s %10s" % (k, f(cs.get(k)), f(ce.get(k))))
    print("verdicts: sequential %s, parallel %s" % (
        dict(collections.Counter(r.get("verdict") for r in seq)), dict(collections.Counter(r.get("verdict") for r in par))))
    print("written: %s" % a.out)
    for x in failures:
        print("soak: FAILED: %s" % x, file=sys.stderr)
    if not failures:
        print("soak: PASSED: the end equals the start")
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    me = sub.add_parser("measure")
    me.add_argument("--husk", required=True)
    me.add_argument("--job", required=True)
    me.add_argument("--out", required=True)
    me.add_argument("--log-dir", required=True)
    me.add_argument("--runs", type=int, default=200)
    me.add_argument("--parallel", type=int, default=8)
    me.add_argument("--timeout", type=float, default=300.0, help="seconds per husk run")
    me.add_argument("--sample-ms", type=float, default=50.0)
    me.add_argument("--check-every", type=int, default=25)
    me.add_argument("--guest-mib", type=int, default=256, help="the job's guest memory (to tell it from husk's own)")
    r = sub.add_parser("report")
    r.add_argument("--measured", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--where", required=True)
    r.add_argument("--runs", type=int, default=200)
    r.add_argument("--edge", type=int, default=10)
    r.add_argument("--rss-tolerance-kib", type=int, default=1024, help="for husk's own RSS")
    r.add_argument("--hwm-tolerance-kib", type=int, default=4096, help="for VmHWM, guest RAM included")
    r.add_argument("--inner-status", default="")
    a = ap.parse_args()
    if a.cmd == "report":
        return cmd_report(a)
    try:
        return cmd_measure(a)
    except Exception as e:  # a surprise here is a failure in the report, not lost figures
        traceback.print_exc()
        write_json(a.out, {"errors": ["measure failed: %s: %s" % (type(e).__name__, e)]})
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
