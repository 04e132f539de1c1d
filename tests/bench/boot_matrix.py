"""tests/bench/boot_matrix.py: the jail and seccomp cost of `make bench-boot`
(boot_bench.py's `matrix` step and its report). Stdlib only.

`husk run JOB --json --result FILE` of a tiny job for each of {--jail,
--no-jail} x {--seccomp=enforce, off}, --runs rounds, the four cells
round-robin (each round starts at the next cell). Per run: the result's
timeline (vmm_start_cpu_ms: the VMM process's CPU time from its fork to its
first KVM_RUN; kernel_entry_ms and agent_ready_ms), wall time from spawn to
exit and the CPU time of husk and every process it reaped (os.wait4). Needs
root for the jail; run where guests run.
"""

import os
import platform
import resource
import signal
import subprocess
import threading
import time

from bench_stats import TCG_NOTE, delta, ratio, read_json, summary, write_json

# ---------------------------------------------------------------- matrix
# The jail and seccomp cells, in the order of a round; the last one is the
# baseline the deltas are taken against.
MATRIX_CELLS = (
    ("jail-enforce", True, "enforce"),
    ("jail-off", True, "off"),
    ("nojail-enforce", False, "enforce"),
    ("nojail-off", False, "off"),
)
MATRIX_BASELINE = "nojail-off"
MATRIX_TIMELINE = ("vmm_start_cpu_ms", "kernel_entry_ms", "agent_ready_ms", "end_ms")


def rusage_run(argv, stdout_log, stderr_log, timeout_s):
    """Runs argv to its end; wall ms from just before the spawn to the reap,
    and the CPU time of the process and of every descendant it reaped
    (os.wait4), cross-checked with this process's RUSAGE_CHILDREN delta."""
    res = {"exit_code": None, "timed_out": False}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(stdout_log, "wb") as out, open(stderr_log, "wb") as err:
        t0 = time.monotonic_ns()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        reaped = threading.Event()

        def guard():
            # os.kill rather than proc.send_signal: the latter polls (reaps)
            # the process behind the main thread's wait4.
            if reaped.wait(timeout_s):
                return
            res["timed_out"] = True
            os.kill(proc.pid, signal.SIGTERM)
            if not reaped.wait(20):
                os.kill(proc.pid, signal.SIGKILL)

        watchdog = threading.Thread(target=guard, daemon=True)
        watchdog.start()
        _, status, ru = os.wait4(proc.pid, 0)
        t1 = time.monotonic_ns()
        reaped.set()
        watchdog.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    res["exit_code"] = proc.returncode
    res["wall_ms"] = (t1 - t0) / 1e6
    res["user_ms"] = ru.ru_utime * 1e3
    res["sys_ms"] = ru.ru_stime * 1e3
    res["cpu_ms"] = (ru.ru_utime + ru.ru_stime) * 1e3
    res["children_cpu_delta_ms"] = ((after.ru_utime - before.ru_utime)
                                    + (after.ru_stime - before.ru_stime)) * 1e3
    res["max_rss_kib"] = ru.ru_maxrss
    return res


def cmd_matrix(a):
    os.makedirs(a.log_dir, exist_ok=True)
    cells = {name: [] for name, _, _ in MATRIX_CELLS}
    # Absolute paths: the jail's bind mounts do not resolve relative ones
    # (husk chdirs to / first).
    ab = os.path.abspath
    argv0 = [ab(a.husk), "run", ab(a.matrix_job), "--json", "--kernel", ab(a.kernel),
             "--initrd", ab(a.initrd), "--vcpus", str(a.vcpus), "--memory", str(a.memory)]
    errors = []

    def save(complete):
        write_json(a.matrix_out, {
            "cells": cells, "argv": argv0, "job": a.matrix_job, "runs": a.matrix_runs,
            "errors": errors, "complete": complete, "euid": os.geteuid(),
            "machine": {"kernel_release": platform.release(), "nproc": os.cpu_count(),
                        "loadavg_after": os.getloadavg()}})

    for i in range(a.matrix_runs):
        # Round-robin; each round starts one cell later, so that no cell
        # always follows the same one.
        for k in range(len(MATRIX_CELLS)):
            name, jail, seccomp = MATRIX_CELLS[(i + k) % len(MATRIX_CELLS)]
            base = os.path.join(a.log_dir, "matrix-%s-%02d" % (name, i + 1))
            result_file = base + ".result.json"
            if os.path.exists(result_file):
                os.unlink(result_file)
            argv = argv0 + ["--result", result_file, "--jail" if jail else "--no-jail",
                            "--seccomp=" + seccomp]
            try:
                r = rusage_run(argv, base + ".stdout", base + ".stderr", a.timeout)
            except OSError as e:
                r = {"error": str(e)}
            r["run"] = i + 1
            res = read_json(result_file)
            if res is None:
                r["verdict"] = None
                errors.append("%s run %d: no result (exit %s, %s)"
                              % (name, i + 1, r.get("exit_code"), base + ".stderr"))
            else:
                r["verdict"] = res.get("verdict")
                r["message"] = res.get("message")
                tl = res.get("timeline") or {}
                for key in MATRIX_TIMELINE:
                    r[key] = tl.get(key)
                if r["verdict"] != "OK":
                    errors.append("%s run %d: verdict %s: %s"
                                  % (name, i + 1, r["verdict"], r.get("message")))
            cells[name].append(r)
            fmt = lambda v: "-" if v is None else "%.1f" % v
            print("bench: matrix run %2d %-14s VMM start %s CPU ms, kernel entry %s ms, "
                  "agent ready %s ms; husk+children %s CPU ms, %s ms wall; %s%s"
                  % (i + 1, name, fmt(r.get("vmm_start_cpu_ms")), fmt(r.get("kernel_entry_ms")),
                     fmt(r.get("agent_ready_ms")), fmt(r.get("cpu_ms")), fmt(r.get("wall_ms")),
                     r.get("verdict"), " TIMEOUT" if r.get("timed_out") else ""), flush=True)
            save(False)
    save(True)
    return 1 if errors else 0



MATRIX_METRICS = (
    ("vmm_start_cpu_ms", "VMM start CPU"),
    ("kernel_entry_ms", "kernel entry"),
    ("agent_ready_ms", "agent ready"),
    ("cpu_ms", "husk+children CPU"),
    ("wall_ms", "wall"),
)

def matrix_report(mx, where):
    cells = mx.get("cells") or {}
    out = {
        "where": where,
        "job": mx.get("job"),
        "argv": mx.get("argv"),
        "rounds": mx.get("runs"),
        "machine": mx.get("machine"),
        "baseline": MATRIX_BASELINE,
        "note": ("husk run JOB --json --result FILE --jail|--no-jail --seccomp=enforce|off, "
                 "the four cells round-robin. vmm_start_cpu_ms: the VMM process's own CPU "
                 "time from its fork to its first KVM_RUN (with the jail: the jailed process, "
                 "so not husk's preparation of the jail folder and cgroup nor the "
                 "intermediate process that unshares the namespaces; those are in cpu_ms). "
                 "kernel_entry_ms, agent_ready_ms: ms since husk started. cpu_ms: user+system "
                 "time of husk and every process it reaped (os.wait4), guest time included. "
                 "wall_ms: spawn to exit. Times in ms. paired_delta_vs_baseline_ms: "
                 "summary of the per-round differences against the baseline (a round runs "
                 "the four cells back to back). " + TCG_NOTE),
        "cells": {},
    }
    for name, jail, seccomp in MATRIX_CELLS:
        runs = cells.get(name, [])
        entry = {"jail": jail, "seccomp": seccomp, "runs": len(runs),
                 "not_ok": sum(1 for r in runs if r.get("verdict") != "OK")}
        for key, _ in MATRIX_METRICS:
            entry[key] = summary([r.get(key) for r in runs if r.get("verdict") == "OK"])
        out["cells"][name] = entry
    base = out["cells"].get(MATRIX_BASELINE)
    # Each round runs the four cells back to back: the median of the
    # per-round differences is less moved by drift (other load on the
    # machine) than the difference of the medians.
    base_runs = {r["run"]: r for r in cells.get(MATRIX_BASELINE, []) if r.get("verdict") == "OK"}
    out["paired_delta_vs_baseline_ms"] = {}
    for name, _, _ in MATRIX_CELLS:
        if name == MATRIX_BASELINE:
            continue
        paired = {}
        for key, _ in MATRIX_METRICS:
            diffs = [r[key] - base_runs[r["run"]][key] for r in cells.get(name, [])
                     if r.get("verdict") == "OK" and r["run"] in base_runs
                     and r.get(key) is not None and base_runs[r["run"]].get(key) is not None]
            paired[key] = summary(diffs)
        out["paired_delta_vs_baseline_ms"][name] = paired
    out["delta_vs_baseline_ms"] = {}
    out["ratio_vs_baseline"] = {}
    for name, _, _ in MATRIX_CELLS:
        if name == MATRIX_BASELINE or not base:
            continue
        c = out["cells"][name]
        out["delta_vs_baseline_ms"][name] = {
            k: delta(c[k]["median"], base[k]["median"]) for k, _ in MATRIX_METRICS}
        out["ratio_vs_baseline"][name] = {
            k: ratio(c[k]["median"], base[k]["median"]) for k, _ in MATRIX_METRICS}
    return out


def print_matrix(m):
    def f(v):
        return "-" if v is None else ("%.0f" % v if abs(v) >= 100 else "%.1f" % v)

    def sd(v):
        return "-" if v is None else ("%+.0f" % v if abs(v) >= 100 else "%+.1f" % v)

    label = {"jail-enforce": "jail on,  seccomp enforce", "jail-off": "jail on,  seccomp off",
             "nojail-enforce": "jail off, seccomp enforce", "nojail-off": "jail off, seccomp off"}
    print()
    print("jail and seccomp cost: `husk run %s`, %s rounds of 4 cells round-robin, in %s"
          % (m["job"], m["rounds"], m["where"]))
    if "test host" in (m["where"] or ""):
        print("NOTE: " + TCG_NOTE)
    print("ms, median / p90 of the OK runs; kernel entry and agent ready count from husk's start")
    head = "%-26s %4s" % ("cell", "ok")
    for _, title in MATRIX_METRICS:
        head += " %17s" % title
    print(head)
    for name, _, _ in MATRIX_CELLS:
        c = m["cells"][name]
        line = "%-26s %4s" % (label[name], "%d/%d" % (c["runs"] - c["not_ok"], c["runs"]))
        for key, _ in MATRIX_METRICS:
            line += " %17s" % ("%s / %s" % (f(c[key]["median"]), f(c[key]["p90"])))
        print(line)
    print("delta against jail off, seccomp off, median / p90 of the per-round differences:")
    for name, d in m["paired_delta_vs_baseline_ms"].items():
        line = "%-26s %4s" % (label[name], "")
        for key, _ in MATRIX_METRICS:
            line += " %17s" % ("%s / %s" % (sd(d[key]["median"]), sd(d[key]["p90"])))
        print(line)
    print("delta of medians against jail off, seccomp off:")
    for name, d in m["delta_vs_baseline_ms"].items():
        line = "%-26s %4s" % (label[name], "")
        for key, _ in MATRIX_METRICS:
            line += " %17s" % sd(d[key])
        print(line)
    print("ratio of medians against jail off, seccomp off:")
    for name, r in m["ratio_vs_baseline"].items():
        line = "%-26s %4s" % (label[name], "")
        for key, _ in MATRIX_METRICS:
            line += " %17s" % ("-" if r[key] is None else "%.2fx" % r[key])
        print(line)


