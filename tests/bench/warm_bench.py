#!/usr/bin/env python3
"""tests/bench/warm_bench.py: the timing half of `make bench-warm` (stdlib only).

Subcommands (tests/bench/warm runs them in this order):

  measure  everything that needs a guest, in ONE session where guests run
           (directly, or inside the nested test host), parts in this order:
    runs     cold against warm: `husk run JOB --input FILE --json --result R`
             booted (cold), restored from the snapshot cache (`--warm
             --snapshot-cache DIR`) and, when `husk snapshot create` exists,
             from an explicit snapshot (`--snapshot DIR`); the snapshots are
             made first, outside the timing (their making is timed apart).
             --runs rounds, the cells round-robin (each round starts one cell
             later). Per run: wall time from just before the spawn to the
             reap; spawn to the first exec result (the process's end_ms,
             counted from the VMM start, plus the VMM start's offset from the
             spawn); the result's timeline (agent_ready_ms: VMM start to the
             agent answering, i.e. to a running job; vmm_start_cpu_ms: the
             VMM process's CPU to its first KVM_RUN); the CPU time of husk
             and every process it reaped (os.wait4), and their peak RSS.
    sweep    restore against guest memory: for each of --memories, the
             snapshot made first (the first `--warm` run of that size,
             timed apart), then --runs rounds of `husk run --warm --memory M`,
             the sizes round-robin; the same figures, and each snapshot's
             size on disk.
    serve    `husk serve JOB --listen unix:SOCK --pool P --max-concurrent C
             --start MODE` for each of --serve-modes (snapshot: restored VMs,
             the default; boot: cold VMs, for context): after a warm-up and
             once the pool is full again, --serve-requests requests at each
             of --serve-concurrency levels, closed loop (each client sends
             its next request when the last one is answered), a new
             connection per request as curl makes; latency from connect to
             the whole answer, p50/p99, throughput, husk serve's own log
             time per request, and serve's CPU (itself and the VMMs it
             reaped) per request.
  report   merges the parts into $HUSK_BUILD/bench/warm.json (raw samples
           and summaries) and prints a table.

A part that cannot run (the build has no snapshots, no serve) is recorded as
skipped with the reason; no numbers are made up. A benchmark: it prints
numbers and judges none of them, except that it says whether the goal (a
restore to a running job at least 10 times faster than a cold boot) is met.
The exit code says whether the measurements could be made.
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

REQUEST = b"hello from the warm benchmark\n"
EXPECTED = REQUEST.upper()
GOAL_RATIO = 10.0
TCG_NOTE = ("absolute numbers from the nested test host are TCG-nested, not hardware figures "
            "(../shared/docs/host-kvm.md: a VM exit costs ~47 us there, a page first-touch ~43 us, "
            "CPU-bound code runs ~10x slower): compare side by side, the ratios count")
SNAPSHOT_READY_RE = re.compile(r"snapshot ready in ([0-9.]+) ms")
SERVE_LOG_RE = re.compile(r"^husk serve: POST \S* (\d{3}) .*?([0-9.]+) ms$", re.M)
POOL_RE = re.compile(r"pool: (\d+) ready, (\d+) request\(s\) waiting for a VM( \(one starting\))?")


# ---------------------------------------------------------------- statistics
def percentile(sorted_vals, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_vals:
        return None
    pos = (len(sorted_vals) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def summary(values):
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return {"n": 0, "median": None, "p90": None, "p99": None, "min": None, "max": None, "mean": None}
    r = lambda v: round(v, 3)
    return {"n": len(vals), "median": r(percentile(vals, 0.5)), "p90": r(percentile(vals, 0.9)),
            "p99": r(percentile(vals, 0.99)), "min": r(vals[0]), "max": r(vals[-1]),
            "mean": r(sum(vals) / len(vals))}


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 2)


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


def tail(path, n=6):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return [l for l in lines if l.strip()][-n:]
    except OSError:
        return []


def machine():
    info = {"kernel_release": platform.release(), "nproc": os.cpu_count(), "loadavg": os.getloadavg()}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["mem_total_mib"] = int(line.split()[1]) // 1024
    except OSError:
        pass
    return info


# --------------------------------------------------------- one timed process
def rusage_run(argv, stdout_log, stderr_log, timeout_s, env=None, stdin_path=None):
    """Runs argv to its end: wall ms from just before the spawn to the reap,
    the CPU time of the process and of every descendant it reaped (wait4),
    their peak RSS, and the spawn's CLOCK_REALTIME in ms (the result's
    timeline counts from the VMM's start, stamped in the same clock)."""
    res = {"exit_code": None, "timed_out": False}
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        with open(stdout_log, "wb") as out, open(stderr_log, "wb") as err:
            t_unix = time.time_ns()
            t0 = time.monotonic_ns()
            proc = subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=err, env=env)
            reaped = threading.Event()

            def guard():
                # os.kill, not proc.send_signal: that one polls (reaps) behind wait4.
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
    finally:
        if stdin_path:
            stdin.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    res.update({
        "exit_code": proc.returncode,
        "spawn_unix_ms": t_unix / 1e6,
        "wall_ms": round((t1 - t0) / 1e6, 3),
        "user_ms": round(ru.ru_utime * 1e3, 3),
        "sys_ms": round(ru.ru_stime * 1e3, 3),
        "cpu_ms": round((ru.ru_utime + ru.ru_stime) * 1e3, 3),
        "max_rss_kib": ru.ru_maxrss,
    })
    return res


def husk_run(a, name, extra, env=None, start=None):
    """One `husk run JOB --input FILE --json --result R EXTRA...`, timed, with
    the result's figures merged in. Never raises for a failed run: the
    failure is in r["error"]. `start`: how the VM must have started (the
    result's timeline.start, boot or snapshot, where the build writes it)."""
    base = os.path.join(a.log_dir, name)
    result_path = base + ".result.json"
    if os.path.exists(result_path):
        os.unlink(result_path)
    argv = [a.husk, "run", a.job, "--input", a.input, "--json", "--result", result_path] + extra + a.husk_flags
    try:
        r = rusage_run(argv, base + ".stdout", base + ".stderr", a.timeout, env=env)
    except OSError as e:
        return {"name": name, "argv": argv, "error": "cannot run husk: %s" % e}
    r["name"] = name
    r["argv"] = argv
    res = read_json(result_path)
    if res is None:
        r["error"] = "no JSON result (husk exit %s%s): %s" % (
            r["exit_code"], ", timed out" if r["timed_out"] else "", " | ".join(tail(base + ".stderr")))
        return r
    tl = res.get("timeline") or {}
    r["verdict"] = res.get("verdict")
    r["timeline"] = tl
    for key in ("agent_ready_ms", "kernel_entry_ms", "vmm_start_cpu_ms", "end_ms"):
        r[key] = tl.get(key)
    steps = res.get("steps") or []
    proc = next((s for s in steps if s.get("kind") == "process"), steps[0] if steps else None)
    if proc is not None:
        r["result_ms"] = proc.get("end_ms")           # since the VMM start
        r["exec_ms"] = round(proc["end_ms"] - proc["start_ms"], 3)
        r["stdout"] = proc.get("stdout", "")[:200]
        vs = tl.get("vmm_start_unix_ms")
        if vs:
            r["spawn_to_vmm_start_ms"] = round(vs - r["spawn_unix_ms"], 3)
            r["spawn_to_result_ms"] = round(vs - r["spawn_unix_ms"] + proc["end_ms"], 3)
    r["start"] = tl.get("start")
    if r["verdict"] != "OK":
        r["error"] = "verdict %s: %s" % (r["verdict"], res.get("message"))
    elif start and r["start"] is not None and r["start"] != start:
        r["error"] = "the VM started by %s, not %s (timeline.start)" % (r["start"], start)
    elif r.get("stdout", "").encode() != EXPECTED:
        r["error"] = "stdout %r, expected %r" % (r.get("stdout"), EXPECTED.decode())
    return r


def line(r):
    f = lambda k: "-" if r.get(k) is None else "%.0f" % r[k]
    return ("agent ready %s ms, first result %s ms from spawn, wall %s ms, VMM start CPU %s ms, "
            "husk+children CPU %s ms%s" % (f("agent_ready_ms"), f("spawn_to_result_ms"), f("wall_ms"),
                                           f("vmm_start_cpu_ms"), f("cpu_ms"),
                                           "; ERROR " + r["error"] if r.get("error") else ""))


def disk_usage(path):
    """Apparent and allocated bytes of every file under path."""
    apparent = allocated = files = 0
    for root, _, names in os.walk(path):
        for n in names:
            try:
                st = os.lstat(os.path.join(root, n))
            except OSError:
                continue
            files += 1
            apparent += st.st_size
            allocated += st.st_blocks * 512
    return {"files": files, "apparent_bytes": apparent, "allocated_bytes": allocated}


def cache_entries(cache):
    try:
        return {e: disk_usage(os.path.join(cache, e)) for e in sorted(os.listdir(cache))
                if os.path.isdir(os.path.join(cache, e)) and not e.startswith(".")}
    except OSError:
        return {}


# ------------------------------------------------------------- capabilities
def capabilities(husk):
    """What this husk build offers: the `run --warm` flag, `snapshot create`,
    `serve`. Each a reason string when missing, else None."""
    def helptext(*args):
        try:
            p = subprocess.run([husk, *args, "--help"], stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=30)
            return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")
        except (OSError, subprocess.TimeoutExpired) as e:
            return -1, str(e)
    caps = {}
    rc, text = helptext("run")
    caps["warm"] = None if rc == 0 and "--warm" in text else "`husk run` has no --warm flag in this build"
    caps["snapshot_dir"] = (None if rc == 0 and re.search(r"--snapshot\b(?!-)", text)
                            else "`husk run` has no --snapshot flag in this build")
    rc, text = helptext("snapshot", "create")
    caps["snapshot_create"] = (None if rc == 0 and "--out" in text
                               else "`husk snapshot create` is not in this build")
    rc, text = helptext("serve")
    caps["serve"] = None if rc == 0 and "--listen" in text else "`husk serve` is not in this build"
    caps["serve_start"] = None if rc == 0 and "--start" in text else "`husk serve` has no --start flag"
    return caps


# ----------------------------------------------------------- measure: runs
def part_runs(a, parts, caps, env, cache, save):
    p = parts["runs"] = {"memory_mib": a.memory, "runs": a.runs, "cells": {}, "errors": [], "skipped": {},
                         "snapshot_making": {}}
    mem = ["--memory", str(a.memory)]
    cells = [("cold", mem)]
    expect = {"cold": "boot", "warm": "snapshot", "snapshot_dir": "snapshot"}
    # The snapshots, made before any timed run.
    if caps["warm"]:
        p["skipped"]["warm"] = caps["warm"]
    else:
        r = husk_run(a, "runs-warm-make", mem + ["--warm", "--snapshot-cache", cache], env=env)
        r["snapshot_ready_ms"] = snapshot_ready_ms(os.path.join(a.log_dir, "runs-warm-make.stderr"))
        p["snapshot_making"]["first_warm_run"] = r
        print("bench: first `husk run --warm` (makes the cache entry): " + line(r), flush=True)
        if r.get("error"):
            p["skipped"]["warm"] = "the first `husk run --warm` failed: " + r["error"]
        else:
            cells.append(("warm", mem + ["--warm", "--snapshot-cache", cache]))
    snap_dir = os.path.join(a.work, "snapshot-%d" % a.memory)
    if caps["snapshot_create"] or caps["snapshot_dir"]:
        p["skipped"]["snapshot_dir"] = caps["snapshot_create"] or caps["snapshot_dir"]
    else:
        shutil.rmtree(snap_dir, ignore_errors=True)
        base = os.path.join(a.log_dir, "snapshot-create")
        argv = [a.husk, "snapshot", "create", a.job, "--out", snap_dir] + mem + a.husk_flags
        try:
            c = rusage_run(argv, base + ".stdout", base + ".stderr", a.timeout, env=env)
        except OSError as e:
            c = {"error": str(e), "exit_code": None}
        c["argv"] = argv
        c["snapshot_ready_ms"] = snapshot_ready_ms(base + ".stderr")
        c["disk"] = disk_usage(snap_dir)
        p["snapshot_making"]["snapshot_create"] = c
        print("bench: husk snapshot create: exit %s, %s ms wall, stderr says ready in %s ms"
              % (c.get("exit_code"), c.get("wall_ms"), c["snapshot_ready_ms"]), flush=True)
        if c.get("exit_code") != 0:
            p["skipped"]["snapshot_dir"] = "`husk snapshot create` failed (exit %s): %s" % (
                c.get("exit_code"), " | ".join(tail(base + ".stderr")))
        else:
            cells.append(("snapshot_dir", mem + ["--snapshot", snap_dir]))
    # The floor of "husk, before the VMM": starting the husk binary at all.
    p["husk_version_wall_ms"] = []
    for i in range(max(5, a.runs)):
        v = rusage_run([a.husk, "--version"], os.devnull, os.devnull, 60)
        p["husk_version_wall_ms"].append(v["wall_ms"])
    print("bench: `husk --version`, spawn to exit: median %.1f ms"
          % summary(p["husk_version_wall_ms"])["median"], flush=True)
    # One untimed run of each cell: the binaries and files in the page cache.
    for name, extra in cells:
        r = husk_run(a, "runs-warmup-%s" % name, extra, env=env, start=expect[name])
        p.setdefault("warmup", {})[name] = r
        print("bench: warm-up %-12s %s" % (name, line(r)), flush=True)
    for name, _ in cells:
        p["cells"][name] = []
    for i in range(a.runs):
        for k in range(len(cells)):
            name, extra = cells[(i + k) % len(cells)]
            r = husk_run(a, "runs-%s-%02d" % (name, i + 1), extra, env=env, start=expect[name])
            r["round"] = i + 1
            p["cells"][name].append(r)
            if r.get("error"):
                p["errors"].append("%s run %d: %s" % (name, i + 1, r["error"]))
            print("bench: run %2d %-12s %s" % (i + 1, name, line(r)), flush=True)
            save()
    p["cache_entries"] = cache_entries(cache)
    p["complete"] = True
    save()


def snapshot_ready_ms(stderr_path):
    try:
        with open(stderr_path, errors="replace") as f:
            m = SNAPSHOT_READY_RE.findall(f.read())
        return float(m[-1]) if m else None
    except OSError:
        return None


# ---------------------------------------------------------- measure: sweep
def part_sweep(a, parts, caps, env, cache, save):
    p = parts["sweep"] = {"memories_mib": a.memories, "runs": a.runs, "sizes": {}, "errors": [], "skipped": {}}
    if caps["warm"]:
        p["skipped"]["all"] = caps["warm"]
        save()
        return
    sizes = []
    for m in a.memories:
        # Each size is its own configuration with its own snapshot, made
        # first (timed apart): by `husk snapshot create` into the cache
        # when this build has it, else by the first --warm run. Then one
        # untimed warm-up run.
        before = set(cache_entries(cache))
        extra = ["--memory", str(m), "--warm", "--snapshot-cache", cache]
        name = "sweep-%d-make" % m
        if not caps["snapshot_create"]:
            base = os.path.join(a.log_dir, name)
            argv = [a.husk, "snapshot", "create", a.job, "--memory", str(m), "--snapshot-cache", cache] + a.husk_flags
            try:
                r = rusage_run(argv, base + ".stdout", base + ".stderr", a.timeout, env=env)
            except OSError as e:
                r = {"exit_code": None, "error": str(e)}
            r.update({"name": name, "argv": argv, "how": "husk snapshot create"})
            # It prints the snapshot's folder (in the cache) on stdout, also
            # when the snapshot was there already.
            printed = [l.strip() for l in tail(base + ".stdout", 1)]
            if printed and os.path.isdir(printed[0]):
                r["dir"] = printed[0]
                r["disk"] = {os.path.basename(printed[0]): disk_usage(printed[0])}
            if r.get("exit_code") != 0 and not r.get("error"):
                r["error"] = "exit %s: %s" % (r.get("exit_code"), " | ".join(tail(base + ".stderr")))
        else:
            r = husk_run(a, name, extra, env=env)
            r["how"] = "first husk run --warm"
        r["snapshot_ready_ms"] = snapshot_ready_ms(os.path.join(a.log_dir, name + ".stderr"))
        new = {k: v for k, v in cache_entries(cache).items() if k not in before}
        # The size of the cold/warm runs has its snapshot already.
        r["already_cached"] = not new
        s = p["sizes"][str(m)] = {"memory_mib": m, "making": r, "new_cache_entries": new, "runs": []}
        print("bench: sweep %4d MiB, snapshot made by %s: exit %s, %s ms wall%s" % (
            m, r["how"], r.get("exit_code"), r.get("wall_ms"),
            "" if r["snapshot_ready_ms"] is None else " (ready in %.0f ms)" % r["snapshot_ready_ms"]), flush=True)
        if r.get("error"):
            s["skipped"] = "making its snapshot failed: " + r["error"]
            p["errors"].append("%d MiB: %s" % (m, s["skipped"]))
            continue
        w = husk_run(a, "sweep-%d-warmup" % m, extra, env=env, start="snapshot")
        s["warmup"] = w
        sizes.append((m, extra))
        save()
    for i in range(a.runs):
        for k in range(len(sizes)):
            m, extra = sizes[(i + k) % len(sizes)]
            r = husk_run(a, "sweep-%d-%02d" % (m, i + 1), extra, env=env, start="snapshot")
            r["round"] = i + 1
            p["sizes"][str(m)]["runs"].append(r)
            if r.get("error"):
                p["errors"].append("%d MiB run %d: %s" % (m, i + 1, r["error"]))
            print("bench: sweep run %2d %4d MiB: %s" % (i + 1, m, line(r)), flush=True)
            save()
    p["cache_entries"] = cache_entries(cache)
    p["complete"] = True
    save()


# ---------------------------------------------------------- measure: serve
class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def one_request(sock_path, timeout_s):
    """POST / with the request body on a new connection: ms from connect to
    the whole answer read, the status and whether the body is right."""
    t0 = time.monotonic_ns()
    r = {"t0_ns": t0}
    conn = UnixHTTPConnection(sock_path, timeout_s)
    try:
        conn.request("POST", "/", body=REQUEST, headers={"Content-Type": "application/octet-stream"})
        resp = conn.getresponse()
        body = resp.read()
        r["ms"] = round((time.monotonic_ns() - t0) / 1e6, 3)
        r["status"] = resp.status
        r["ok"] = resp.status == 200 and body == EXPECTED
        r["husk_start"] = resp.getheader("X-Husk-Start")
        try:
            r["husk_request_ms"] = float(resp.getheader("X-Husk-Request-Ms"))
        except (TypeError, ValueError):
            r["husk_request_ms"] = None
        if not r["ok"]:
            r["body"] = body[:200].decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as e:
        r["ms"] = round((time.monotonic_ns() - t0) / 1e6, 3)
        r["status"] = None
        r["ok"] = False
        r["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        conn.close()
    return r


def proc_cpu_ms(pid):
    """utime + stime + cutime + cstime of pid (itself and the children it
    has reaped), in ms."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        hz = os.sysconf("SC_CLK_TCK")
        return sum(int(fields[i]) for i in (11, 12, 13, 14)) * 1000.0 / hz
    except (OSError, IndexError, ValueError):
        return None


def read_from(path, offset):
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
        return data.decode("utf-8", "replace"), offset + len(data)
    except OSError:
        return "", offset


def file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def pool_status(proc, log_path, timeout_s=10.0):
    """SIGQUIT makes husk serve log its pool; the (ready, waiting, starting)
    of the line it writes, or None."""
    off = file_size(log_path)
    try:
        proc.send_signal(signal.SIGQUIT)
    except OSError:
        return None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.05)
        text, _ = read_from(log_path, off)
        m = POOL_RE.search(text)
        if m:
            return int(m.group(1)), int(m.group(2)), bool(m.group(3))
        if proc.poll() is not None:
            return None
    return None


def wait_pool_full(proc, log_path, pool, timeout_s):
    """Until the pool holds `pool` ready VMs and starts none (SIGQUIT's log
    line); seconds waited and whether it got there."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        st = pool_status(proc, log_path)
        if st is None:
            return round(time.monotonic() - t0, 3), False
        ready, waiting, starting = st
        if ready >= pool and not starting and waiting == 0:
            return round(time.monotonic() - t0, 3), True
        time.sleep(0.5)
    return round(time.monotonic() - t0, 3), False


def serve_level(sock, concurrency, total, timeout_s):
    per = [total // concurrency + (1 if k < total % concurrency else 0) for k in range(concurrency)]
    out = [[] for _ in range(concurrency)]

    def client(k):
        for _ in range(per[k]):
            r = one_request(sock, timeout_s)
            r["client"] = k
            out[k].append(r)

    t0 = time.monotonic_ns()
    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = (time.monotonic_ns() - t0) / 1e6
    reqs = sorted((r for rs in out for r in rs), key=lambda r: r["t0_ns"])
    for r in reqs:
        r["start_offset_ms"] = round((r.pop("t0_ns") - t0) / 1e6, 3)
    return reqs, elapsed


def part_serve(a, parts, caps, env, save):
    p = parts["serve"] = {"modes": {}, "errors": [], "skipped": {}, "concurrency": a.serve_concurrency,
                          "requests_per_level": a.serve_requests, "pool": a.serve_pool,
                          "max_concurrent": a.serve_max_concurrent, "memory_mib": a.memory,
                          "client": "python http.client over the unix socket, a new connection per request "
                                    "(what `curl --unix-socket` does), closed loop"}
    if caps["serve"]:
        p["skipped"]["all"] = caps["serve"]
        save()
        return
    for mode in a.serve_modes:
        if caps["serve_start"] and mode != "snapshot":
            p["skipped"][mode] = caps["serve_start"]
            continue
        if mode == "snapshot" and caps["warm"]:
            # serve's default start is a restored VM: without snapshots in
            # this build it would not start, or not as what it says.
            p["skipped"][mode] = caps["warm"]
            continue
        try:
            p["modes"][mode] = serve_mode(a, mode, caps, env, p["errors"])
        except Exception as e:  # a harness bug must not lose the other parts
            p["errors"].append("%s: harness error %s" % (mode, traceback.format_exc()))
            p["modes"].setdefault(mode, {})["error"] = repr(e)
        save()
    p["complete"] = True
    save()


def serve_mode(a, mode, caps, env, errors):
    sock = os.path.join(a.work, "serve-%s.sock" % mode)
    if os.path.exists(sock):
        os.unlink(sock)
    log_path = os.path.join(a.log_dir, "serve-%s.stderr" % mode)
    argv = [a.husk, "serve", a.job, "--listen", "unix:" + sock, "--pool", str(a.serve_pool),
            "--max-concurrent", str(a.serve_max_concurrent), "--memory", str(a.memory)] + a.husk_flags
    if not caps["serve_start"]:
        argv += ["--start", mode]
    m = {"argv": argv, "levels": {}}
    t0 = time.monotonic()
    with open(log_path, "wb") as err, open(os.path.join(a.log_dir, "serve-%s.stdout" % mode), "wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
    try:
        # Its "listening on" line comes once its first VM is ready (husk
        # serve starts that one before it serves).
        listening = False
        while time.monotonic() - t0 < a.timeout:
            if proc.poll() is not None:
                break
            text, _ = read_from(log_path, 0)
            if "listening on" in text and os.path.exists(sock):
                listening = True
                break
            time.sleep(0.05)
        m["time_to_listen_s"] = round(time.monotonic() - t0, 3)
        if not listening:
            m["error"] = "husk serve did not listen (exit %s): %s" % (proc.poll(), " | ".join(tail(log_path)))
            errors.append("%s: %s" % (mode, m["error"]))
            return m
        print("bench: serve --start %s listening after %.1f s" % (mode, m["time_to_listen_s"]), flush=True)
        warm = [one_request(sock, a.timeout) for _ in range(a.serve_pool + 1)]
        m["warmup"] = warm
        bad = [r for r in warm if not r["ok"]]
        if bad:
            m["error"] = "warm-up requests failed: %s" % bad[:2]
            errors.append("%s: %s" % (mode, m["error"]))
            return m
        for c in a.serve_concurrency:
            waited, full = wait_pool_full(proc, log_path, a.serve_pool, a.timeout)
            cpu0 = proc_cpu_ms(proc.pid)
            off = file_size(log_path)
            reqs, elapsed = serve_level(sock, c, a.serve_requests, a.timeout)
            cpu1 = proc_cpu_ms(proc.pid)
            text, _ = read_from(log_path, off)
            server_ms = [float(x[1]) for x in SERVE_LOG_RE.findall(text)]
            ok = [r["ms"] for r in reqs if r["ok"]]
            lv = {
                "concurrency": c, "requests": len(reqs), "ok": len(ok),
                "statuses": sorted({str(r["status"]) for r in reqs}),
                "pool_full_before": full, "pool_wait_s": waited,
                "elapsed_ms": round(elapsed, 3),
                "throughput_rps": round(len(ok) / (elapsed / 1e3), 3) if elapsed > 0 else None,
                "latency_ms": summary(ok),
                "server_logged_ms": summary(server_ms),
                "husk_request_ms": summary([r.get("husk_request_ms") for r in reqs if r["ok"]]),
                "husk_start_headers": sorted({str(r.get("husk_start")) for r in reqs}),
                "serve_cpu_ms": None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 1),
                "samples": reqs,
                "server_logged_samples_ms": server_ms,
            }
            if lv["serve_cpu_ms"] is not None and reqs:
                lv["serve_cpu_ms_per_request"] = round(lv["serve_cpu_ms"] / len(reqs), 1)
            m["levels"][str(c)] = lv
            other = [r.get("husk_start") for r in reqs if r["ok"] and r.get("husk_start") not in (None, mode)]
            if other:
                errors.append("%s, %d clients: %d answers say X-Husk-Start %s" % (mode, c, len(other), sorted(set(other))))
            if len(ok) != len(reqs):
                errors.append("%s, %d clients: %d of %d requests failed (statuses %s)"
                              % (mode, c, len(reqs) - len(ok), len(reqs), lv["statuses"]))
            ls = lv["latency_ms"]
            print("bench: serve --start %s, %d client(s): %d/%d OK, p50 %s ms, p99 %s ms, %s req/s%s"
                  % (mode, c, len(ok), len(reqs), ls["median"], ls["p99"], lv["throughput_rps"],
                     "" if full else " (the pool was not full before this level)"), flush=True)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                errors.append("%s: husk serve did not stop within 60 s of SIGTERM" % mode)
        m["exit_code"] = proc.returncode
        m["log_tail"] = tail(log_path, 4)
    return m


# ---------------------------------------------------------------- measure
def cmd_measure(a):
    os.makedirs(a.log_dir, exist_ok=True)
    a.work = tempfile.mkdtemp(prefix="husk-bench-warm-")
    # The request, as `husk run --input` reads it and serve gets it.
    a.input = os.path.join(a.work, "request.txt")
    with open(a.input, "wb") as f:
        f.write(REQUEST)
    cache = os.path.join(a.work, "snapshots")
    env = dict(os.environ)
    # Every snapshot of this session in one cache on the work folder (a
    # tmpfs in the test host), for `run --warm` and for serve alike.
    env["HUSK_SNAPSHOT_CACHE"] = cache
    parts = {"machine": machine(), "work": a.work, "job": a.job, "euid": os.geteuid(), "complete": False}
    caps = parts["capabilities"] = capabilities(a.husk)
    print("bench: this build: " + ", ".join("%s %s" % (k, "yes" if v is None else "no")
                                           for k, v in caps.items()), flush=True)
    save = lambda: write_json(a.out, parts)
    save()
    rc = 0
    try:
        for name, fn in (("runs", lambda: part_runs(a, parts, caps, env, cache, save)),
                         ("sweep", lambda: part_sweep(a, parts, caps, env, cache, save)),
                         ("serve", lambda: part_serve(a, parts, caps, env, save))):
            if name not in a.parts:
                parts[name] = {"skipped": {"all": "not asked for (BENCH_PARTS)"}}
                continue
            print("bench: part %s" % name, flush=True)
            try:
                fn()
            except Exception:
                parts.setdefault(name, {}).setdefault("errors", []).append(
                    "harness error: " + traceback.format_exc())
                traceback.print_exc()
                rc = 1
            save()
        parts["machine_after"] = machine()
        parts["complete"] = True
        save()
    finally:
        shutil.rmtree(a.work, ignore_errors=True)
    return rc


# ----------------------------------------------------------------- report
RUN_METRICS = (("agent_ready_ms", "agent ready"), ("spawn_to_result_ms", "first result"),
               ("wall_ms", "wall"), ("vmm_start_cpu_ms", "VMM start CPU"), ("cpu_ms", "CPU husk+ch."))


PHASES = (("husk_before_vmm", "husk start to Runner::run"), ("vmm_to_first_kvm_run", "VMM start to 1st KVM_RUN"),
          ("to_agent_ready", "to agent ready"), ("to_first_result", "to the exec result"),
          ("to_vm_gone", "to the VM gone"), ("to_husk_exit", "to husk's exit"))


def phases(r):
    """Where one run's time goes, spawn to exit, in consecutive phases (ms)."""
    tl = r.get("timeline") or {}
    ke, ar, end = tl.get("kernel_entry_ms"), tl.get("agent_ready_ms"), tl.get("end_ms")
    pre, res = r.get("spawn_to_vmm_start_ms"), r.get("result_ms")
    if None in (ke, ar, end, pre, res, r.get("wall_ms")):
        return {}
    return {"husk_before_vmm": pre, "vmm_to_first_kvm_run": ke, "to_agent_ready": ar - ke,
            "to_first_result": res - ar, "to_vm_gone": end - res, "to_husk_exit": r["wall_ms"] - pre - end}


def run_summaries(runs):
    ok = [r for r in runs if not r.get("error")]
    s = {key: summary([r.get(key) for r in ok]) for key, _ in RUN_METRICS}
    s.update({k: summary([r.get(k) for r in ok]) for k in ("kernel_entry_ms", "result_ms", "exec_ms",
                                                          "spawn_to_vmm_start_ms", "user_ms", "sys_ms",
                                                          "max_rss_kib")})
    ph = [phases(r) for r in ok]
    s["phases_ms"] = {k: summary([p.get(k) for p in ph]) for k, _ in PHASES}
    s["runs"] = len(runs)
    s["ok"] = len(ok)
    return s


def cmd_report(a):
    parts = read_json(a.parts) or {}
    out = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "environment": {"where": a.where, "job": a.job_name, "memory_mib": a.memory, "runs": a.runs,
                           "husk_flags": a.husk_flags,
                           "outer_loadavg_before_after": a.load,
                           "machine": parts.get("machine"), "machine_after": parts.get("machine_after"),
                           "host_kernel": platform.release(), "euid": parts.get("euid"),
                           "note": "ms; timeline figures count from the VMM's start, wall and first "
                                   "result from just before husk's spawn"},
           "capabilities": parts.get("capabilities"), "failures": [], "raw": parts}
    if a.inner_status:
        out["failures"].append(a.inner_status)
    if not parts:
        out["failures"].append("no measurements were written (%s)" % a.parts)
    elif not parts.get("complete"):
        out["failures"].append("the measuring session did not finish (partial results)")
    skipped = out["skipped"] = {}
    # Sessions lost to a test host fault before the one measured here.
    out["testhost_faults"] = []
    for d in [x for x in a.fault_dirs.split(",") if x]:
        reason = [l for l in tail(os.path.join(d, "testhost.stderr"), 400) if "test host fault" in l]
        part = read_json(os.path.join(d, "measure.json")) or {}
        out["testhost_faults"].append({"logs": d, "reason": reason[:1],
                                       "parts_done": [k for k in ("runs", "sweep", "serve")
                                                      if (part.get(k) or {}).get("complete")]})

    # ---- cold against warm
    runs = parts.get("runs") or {}
    cells = {name: run_summaries(rs) for name, rs in (runs.get("cells") or {}).items()}
    out["runs"] = {"memory_mib": runs.get("memory_mib"), "cells": cells,
                   "husk_version_wall_ms": summary(runs.get("husk_version_wall_ms") or [])}
    for k, v in (runs.get("skipped") or {}).items():
        skipped["runs." + k] = v
    out["failures"] += ["runs: " + e for e in runs.get("errors", [])]
    med = lambda cell, key: (cells.get(cell) or {}).get(key, {}).get("median")
    ratios = {}
    for warm in ("warm", "snapshot_dir"):
        if warm in cells and "cold" in cells:
            ratios[warm] = {key: ratio(med("cold", key), med(warm, key))
                            for key in ("agent_ready_ms", "spawn_to_result_ms", "wall_ms", "cpu_ms",
                                        "vmm_start_cpu_ms")}
    out["runs"]["ratio_cold_over_warm"] = ratios
    making = runs.get("snapshot_making") or {}
    out["snapshot_making"] = {
        "first_warm_run_wall_ms": (making.get("first_warm_run") or {}).get("wall_ms"),
        "first_warm_run_snapshot_ready_ms": (making.get("first_warm_run") or {}).get("snapshot_ready_ms"),
        "snapshot_create_wall_ms": (making.get("snapshot_create") or {}).get("wall_ms"),
        "snapshot_create_ready_ms": (making.get("snapshot_create") or {}).get("snapshot_ready_ms"),
        "snapshot_create_disk": (making.get("snapshot_create") or {}).get("disk"),
    }
    goal = None
    if "warm" in ratios:
        r = ratios["warm"]["agent_ready_ms"]
        goal = {"metric": "median agent_ready_ms, cold over warm (VMM start to a running job)",
                "ratio": r, "goal": GOAL_RATIO, "met": None if r is None else r >= GOAL_RATIO,
                "ratio_first_result_from_spawn": ratios["warm"]["spawn_to_result_ms"],
                "ratio_wall": ratios["warm"]["wall_ms"]}
    out["goal_10x"] = goal

    # ---- memory sweep
    sweep = parts.get("sweep") or {}
    for k, v in (sweep.get("skipped") or {}).items():
        skipped["sweep." + k] = v
    out["failures"] += ["sweep: " + e for e in sweep.get("errors", [])]
    sizes = {}
    for m, s in sorted((sweep.get("sizes") or {}).items(), key=lambda kv: int(kv[0])):
        entry = run_summaries(s.get("runs") or [])
        mk = s.get("making") or {}
        entry["snapshot_made_by"] = mk.get("how")
        entry["snapshot_making_wall_ms"] = mk.get("wall_ms")
        entry["snapshot_ready_ms"] = mk.get("snapshot_ready_ms")
        entry["snapshot_already_cached"] = mk.get("already_cached")
        entry["snapshot_disk"] = mk.get("disk") or s.get("new_cache_entries")
        if s.get("skipped"):
            entry["skipped"] = s["skipped"]
        sizes[m] = entry
    out["sweep"] = {"sizes": sizes}
    meds = [(int(m), e["agent_ready_ms"]["median"]) for m, e in sizes.items()
            if e["agent_ready_ms"]["median"] is not None]
    if len(meds) >= 2:
        lo, hi = meds[0], meds[-1]
        out["sweep"]["agent_ready_largest_over_smallest"] = ratio(hi[1], lo[1])
        walls = [(int(m), e["wall_ms"]["median"]) for m, e in sizes.items() if e["wall_ms"]["median"]]
        out["sweep"]["wall_largest_over_smallest"] = ratio(walls[-1][1], walls[0][1]) if len(walls) >= 2 else None

    # ---- serve
    serve = parts.get("serve") or {}
    for k, v in (serve.get("skipped") or {}).items():
        skipped["serve." + k] = v
    out["failures"] += ["serve: " + e for e in serve.get("errors", [])]
    sv = {}
    for mode, m in (serve.get("modes") or {}).items():
        sv[mode] = {"time_to_listen_s": m.get("time_to_listen_s"), "error": m.get("error"), "levels": {}}
        for c, lv in (m.get("levels") or {}).items():
            sv[mode]["levels"][c] = {k: lv.get(k) for k in (
                "concurrency", "requests", "ok", "statuses", "latency_ms", "throughput_rps", "server_logged_ms",
                "husk_request_ms", "husk_start_headers",
                "serve_cpu_ms_per_request", "pool_full_before", "elapsed_ms")}
    out["serve"] = {"pool": serve.get("pool"), "max_concurrent": serve.get("max_concurrent"),
                    "requests_per_level": serve.get("requests_per_level"), "client": serve.get("client"),
                    "modes": sv}
    write_json(a.out, out)
    print_report(out, a)
    for f in out["failures"]:
        print("bench: FAILED: %s" % f.splitlines()[0], file=sys.stderr)
    return 1 if out["failures"] else 0


def print_report(out, a):
    f = lambda v: "-" if v is None else ("%.0f" % v if abs(v) >= 100 else "%.1f" % v)
    env = out["environment"]
    print()
    print("warm-start benchmark: `husk run %s --input FILE%s`, %s MiB, 1 vCPU, %s rounds, in %s"
          % (env["job"], " " + env["husk_flags"] if env["husk_flags"] else "", env["memory_mib"], env["runs"],
             env["where"]))
    if "test host" in env["where"]:
        print("NOTE: " + TCG_NOTE)
    if env.get("outer_loadavg_before_after"):
        print("this machine's load average (1, 5, 15 min) before the session: %s; after: %s"
              % tuple(env["outer_loadavg_before_after"]))
    cells = out["runs"]["cells"]
    label = {"cold": "cold (booted)", "warm": "warm (--warm, cache)", "snapshot_dir": "warm (--snapshot DIR)"}
    if cells:
        print("ms, median (min-max) of the OK runs; agent ready and VMM start CPU from the timeline, "
              "first result and wall from husk's spawn")
        head = "%-22s %5s" % ("", "ok")
        for _, title in RUN_METRICS:
            head += " %19s" % title
        print(head)
        for name in ("cold", "warm", "snapshot_dir"):
            if name not in cells:
                continue
            c = cells[name]
            row = "%-22s %5s" % (label[name], "%d/%d" % (c["ok"], c["runs"]))
            for key, _ in RUN_METRICS:
                s = c[key]
                row += " %19s" % ("%s (%s-%s)" % (f(s["median"]), f(s["min"]), f(s["max"])))
            print(row)
        for warm, r in out["runs"]["ratio_cold_over_warm"].items():
            row = "%-22s %5s" % ("cold / " + label[warm].split(" ", 1)[1], "")
            for key, _ in RUN_METRICS:
                row += " %19s" % ("-" if r.get(key) is None else "%.2fx" % r[key])
            print(row)
    if cells:
        print("where the time goes, spawn to exit, medians of each phase (ms):")
        head = "%-26s" % "phase"
        order = [n for n in ("cold", "warm", "snapshot_dir") if n in cells]
        for name in order:
            head += " %22s" % label[name]
        print(head)
        for key, title in PHASES:
            row = "%-26s" % title
            for name in order:
                row += " %22s" % f(cells[name]["phases_ms"][key]["median"])
            print(row)
        hv = out["runs"]["husk_version_wall_ms"]["median"]
        if hv is not None:
            print("(`husk --version`, spawn to exit: %s ms: the cost of starting the husk binary here)" % f(hv))
    g = out.get("goal_10x")
    if g:
        print("goal: restore to a running job >= %.0fx faster than a cold boot (agent ready, medians): %sx, %s"
              " (first exec result from spawn: %sx; wall: %sx)"
              % (g["goal"], g["ratio"], {True: "MET", False: "NOT MET", None: "unknown"}[g["met"]],
                 g["ratio_first_result_from_spawn"], g["ratio_wall"]))
    sm = out["snapshot_making"]
    if any(v is not None for v in sm.values()):
        print("making the snapshot (outside the timing): first `husk run --warm` %s ms wall (stderr: ready in %s ms);"
              " `husk snapshot create` %s ms wall (stderr: ready in %s ms)"
              % (f(sm["first_warm_run_wall_ms"]), f(sm["first_warm_run_snapshot_ready_ms"]),
                 f(sm["snapshot_create_wall_ms"]), f(sm["snapshot_create_ready_ms"])))
    sizes = out["sweep"]["sizes"]
    if sizes:
        print()
        print("restore against guest memory: `husk run --warm --memory M`, ms, median (min-max); "
              "peak RSS of one of husk's reaped processes;\n"
              "the snapshot's files, allocated/apparent; making it: `husk snapshot create`'s \"ready in\" "
              "(else the first --warm run's wall), ms")
        print("%6s %5s %19s %19s %19s %15s %11s %20s %12s" % (
            "MiB", "ok", "agent ready", "first result", "wall", "CPU husk+ch.", "max RSS", "snapshot on disk",
            "making it"))
        for m, e in sizes.items():
            disk = e.get("snapshot_disk") or {}
            app = sum(d["apparent_bytes"] for d in disk.values())
            alloc = sum(d["allocated_bytes"] for d in disk.values())
            mr = lambda k: "%s (%s-%s)" % (f(e[k]["median"]), f(e[k]["min"]), f(e[k]["max"]))
            print("%6s %5s %19s %19s %19s %15s %11s %20s %12s" % (
                m, "%d/%d" % (e["ok"], e["runs"]), mr("agent_ready_ms"), mr("spawn_to_result_ms"),
                mr("wall_ms"), f(e["cpu_ms"]["median"]),
                "-" if e["max_rss_kib"]["median"] is None else "%.0f MiB" % (e["max_rss_kib"]["median"] / 1024),
                "%.0f/%.0f MiB" % (alloc / 2**20, app / 2**20) if disk else "-",
                "cached" if e.get("snapshot_already_cached") else
                f(e["snapshot_ready_ms"] if e["snapshot_ready_ms"] is not None else e["snapshot_making_wall_ms"])))
        if "agent_ready_largest_over_smallest" in out["sweep"]:
            print("largest over smallest memory, medians: agent ready %sx, wall %sx (snapshot on disk: allocated/apparent)"
                  % (out["sweep"]["agent_ready_largest_over_smallest"], out["sweep"].get("wall_largest_over_smallest")))
    sv = out["serve"]["modes"]
    if sv:
        print()
        print("husk serve: pool %s, max-concurrent %s, %s requests per level, closed loop, a new connection each;"
              " ms" % (out["serve"]["pool"], out["serve"]["max_concurrent"], out["serve"]["requests_per_level"]))
        print("%-10s %7s %7s %9s %9s %9s %9s %15s %12s" % ("start", "clients", "ok", "p50", "p99", "max", "req/s",
                                                            "server p50", "CPU/request"))
        for mode, m in sorted(sv.items(), key=lambda kv: kv[0] != "snapshot"):
            if m.get("error"):
                print("%-10s %s" % (mode, m["error"]))
            for c, lv in sorted(m["levels"].items(), key=lambda kv: int(kv[0])):
                ls = lv["latency_ms"]
                print("%-10s %7s %7s %9s %9s %9s %9s %15s %12s" % (
                    mode, c, "%d/%d" % (lv["ok"], lv["requests"]), f(ls["median"]), f(ls["p99"]), f(ls["max"]),
                    "-" if lv["throughput_rps"] is None else "%.2f" % lv["throughput_rps"],
                    f(lv["server_logged_ms"]["median"]), f(lv.get("serve_cpu_ms_per_request"))))
    for k, v in out["skipped"].items():
        print("skipped %s: %s" % (k, v))
    for fault in out["testhost_faults"]:
        print("an earlier session was lost to a test host fault (logs in %s): %s"
              % (fault["logs"], " ".join(fault["reason"]) or "see its testhost.stderr"))
    print("written: %s" % a.out)


# ------------------------------------------------------------------- main
def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    csv_int = lambda s: [int(x) for x in s.split(",") if x]

    m = sub.add_parser("measure")
    m.add_argument("--husk", required=True)
    m.add_argument("--job", required=True)
    m.add_argument("--runs", type=int, default=10)
    m.add_argument("--memory", type=int, default=256)
    m.add_argument("--memories", type=csv_int, default=[128, 256, 512, 1024, 2048])
    m.add_argument("--serve-requests", type=int, default=40, help="requests per concurrency level")
    m.add_argument("--serve-concurrency", type=csv_int, default=[1, 4])
    m.add_argument("--serve-pool", type=int, default=4)
    m.add_argument("--serve-max-concurrent", type=int, default=4)
    m.add_argument("--serve-modes", type=lambda s: [x for x in s.split(",") if x], default=["snapshot", "boot"])
    m.add_argument("--parts", type=lambda s: [x for x in s.split(",") if x], default=["runs", "sweep", "serve"])
    m.add_argument("--timeout", type=float, default=300.0, help="seconds per husk run or request")
    m.add_argument("--husk-flags", type=shlex.split, default=[],
                   help="more flags for every husk run, snapshot create and serve (e.g. --no-jail)")
    m.add_argument("--log-dir", required=True)
    m.add_argument("--out", required=True)

    r = sub.add_parser("report")
    r.add_argument("--parts", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--where", required=True)
    r.add_argument("--job-name", required=True)
    r.add_argument("--memory", type=int, required=True)
    r.add_argument("--runs", type=int, required=True)
    r.add_argument("--inner-status", default="")
    r.add_argument("--husk-flags", default="")
    r.add_argument("--load", nargs=2, default=None, metavar=("BEFORE", "AFTER"),
                   help="this machine's load averages (1, 5, 15 min) before and after the session")
    r.add_argument("--fault-dirs", default="", help="logs of sessions lost to a test host fault, comma-separated")

    a = p.parse_args()
    if a.cmd == "measure":
        a.husk = os.path.abspath(a.husk)
        a.job = os.path.abspath(a.job)
        a.log_dir = os.path.abspath(a.log_dir)
        # Each request as a client, and each VM, holds one thing at a time:
        # the serve pool and limit must allow the highest level.
        if max(a.serve_concurrency) > a.serve_max_concurrent:
            p.error("--serve-max-concurrent must be at least the highest --serve-concurrency")
        return cmd_measure(a)
    return cmd_report(a)


if __name__ == "__main__":
    sys.exit(main())
