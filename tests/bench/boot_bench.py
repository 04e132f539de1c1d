#!/usr/bin/env python3
"""tests/bench/boot_bench.py: the timing half of `make bench-boot` (stdlib only).

Subcommands (tests/bench/boot runs them in this order):

  host     husk's host-side figures on this machine's own /dev/kvm: process start
           to the first KVM_RUN (wall ms from the timeline's CLOCK_MONOTONIC stamp,
           CPU ms as husk measured it) and resident memory beyond guest RAM
           (/proc/PID/smaps of a running husk). The guest does not need to get far:
           every run is stopped with SIGTERM after --sample-after seconds.
  boots    side-by-side boots of one kernel + initramfs, husk and QEMU microvm
           alternating, timed from just before spawn to the marker line on stdout
           and to process exit. Run where /dev/kvm runs Linux guests (directly, or
           inside the nested test host).
  report   merges the two into build/bench/boot.json and prints a table.

This is a benchmark: it prints numbers and never judges them. The exit code
says only whether the measurements could be made (the marker was seen, the
timeline was written).
"""

import argparse
import datetime
import json
import os
import platform
import re
import selectors
import signal
import subprocess
import sys
import time

MARKER = b"HUSK_READY"
MARKER_RE = re.compile(rb"HUSK_READY uptime=([0-9.]+) cpus=([0-9]+)")
HUSK_AFTER_RE = re.compile(r"after ([0-9.]+) s")


# ---------------------------------------------------------------- statistics
def percentile(sorted_vals, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_vals:
        return None
    if len(sorted_vals) == 1:
        return sorted_vals[0]
    pos = (len(sorted_vals) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def summary(values):
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return {"runs": 0, "median": None, "min": None, "max": None, "p90": None}
    return {
        "runs": len(vals),
        "median": round(percentile(vals, 0.5), 3),
        "min": round(vals[0], 3),
        "max": round(vals[-1], 3),
        "p90": round(percentile(vals, 0.9), 3),
    }


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def write_json(path, data):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# --------------------------------------------------------- one timed process
def timed_run(argv, console_log, stderr_log, timeout_s):
    """Spawns argv, reads its stdout until EOF and waits for it.

    Times (ms) are measured from just before the spawn to the moment the line
    holding the marker was read, and to the process's exit."""
    res = {"marker_ms": None, "exit_ms": None, "exit_code": None,
           "timed_out": False, "guest_uptime_s": None, "guest_cpus": None}
    with open(console_log, "wb") as con, open(stderr_log, "wb") as err:
        t0 = time.monotonic_ns()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=err)
        res["spawn_monotonic_ns"] = t0
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        deadline = t0 + int(timeout_s * 1e9)
        pending = b""
        eof = False
        while not eof:
            left = (deadline - time.monotonic_ns()) / 1e9
            if left <= 0:
                res["timed_out"] = True
                break
            if not sel.select(timeout=min(left, 1.0)):
                continue
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if not chunk:
                    eof = True
                    break
                now = time.monotonic_ns()
                con.write(chunk)
                if res["marker_ms"] is None:
                    pending += chunk
                    # The marker counts once its whole line has been read.
                    m = MARKER_RE.search(pending)
                    if m and b"\n" in pending[m.start():]:
                        res["marker_ms"] = (now - t0) / 1e6
                        res["guest_uptime_s"] = float(m.group(1))
                        res["guest_cpus"] = int(m.group(2))
                        pending = b""
                    else:
                        nl = pending.rfind(b"\n")
                        if nl >= 0 and MARKER not in pending[nl:]:
                            pending = pending[nl + 1:]
        sel.close()
        if res["timed_out"]:
            proc.kill()
            proc.wait()
        else:
            left = max(0.1, (deadline - time.monotonic_ns()) / 1e9)
            try:
                proc.wait(timeout=left)
                res["exit_ms"] = (time.monotonic_ns() - t0) / 1e6
            except subprocess.TimeoutExpired:
                res["timed_out"] = True
                proc.kill()
                proc.wait()
        res["exit_code"] = proc.returncode
        proc.stdout.close()
    return res


# ----------------------------------------------------------------- boots
def cmd_boots(a):
    os.makedirs(a.log_dir, exist_ok=True)
    runs = {"husk": [], "qemu": []}
    husk_argv = [a.husk, "boot", "--kernel", a.kernel, "--initrd", a.initrd,
                 "--cmdline", a.husk_cmdline, "--vcpus", str(a.vcpus),
                 "--memory", str(a.memory), "--no-input"]
    qemu_argv = [a.qemu, "-M", a.qemu_machine, "-enable-kvm", "-cpu", "host",
                 "-m", str(a.memory), "-smp", str(a.vcpus), "-nodefaults",
                 "-no-user-config", "-nographic", "-serial", "stdio", "-no-reboot",
                 "-kernel", a.kernel, "-initrd", a.initrd, "-append", a.qemu_cmdline]
    for i in range(a.runs):
        # Alternate which VMM goes first so neither always runs on a warmer cache.
        order = ("husk", "qemu") if i % 2 == 0 else ("qemu", "husk")
        for vmm in order:
            base = os.path.join(a.log_dir, "%s-%02d" % (vmm, i + 1))
            if vmm == "husk":
                timeline = base + ".timeline.json"
                if os.path.exists(timeline):
                    os.unlink(timeline)
                argv = husk_argv + ["--timeline-json", timeline]
            else:
                argv = qemu_argv
            r = timed_run(argv, base + ".console", base + ".stderr", a.timeout)
            r["run"] = i + 1
            if vmm == "husk":
                tl = read_json(timeline)
                if tl:
                    r["timeline"] = tl
                    fk = tl.get("first_kvm_run_monotonic_ns")
                    if fk:
                        r["first_kvm_run_ms"] = (fk - r["spawn_monotonic_ns"]) / 1e6
                try:
                    with open(base + ".stderr", errors="replace") as f:
                        m = HUSK_AFTER_RE.search(f.read())
                    if m:
                        r["husk_reported_s"] = float(m.group(1))
                except OSError:
                    pass
            runs[vmm].append(r)
            fmt = lambda v: "-" if v is None else "%.0f ms" % v
            print("bench: run %2d %-4s marker %-10s exit %-10s code %s%s" % (
                i + 1, vmm, fmt(r["marker_ms"]), fmt(r["exit_ms"]), r["exit_code"],
                " TIMEOUT" if r["timed_out"] else ""), flush=True)
            # Partial results survive an interrupted session.
            write_json(a.out, {"runs": runs, "argv": {"husk": husk_argv, "qemu": qemu_argv},
                               "complete": False})
    # Resident memory of both VMMs in this same environment, 1 vCPU: the guest
    # runs with husk.test=shell so that it idles in a shell after its marker;
    # smaps is read --sample-after seconds after the marker. No timing here.
    mem = {"husk": [], "qemu": []}
    for i in range(a.mem_runs):
        h_argv = [a.husk, "boot", "--kernel", a.kernel, "--initrd", a.initrd,
                  "--cmdline", a.husk_cmdline + " husk.test=shell", "--vcpus", "1",
                  "--memory", str(a.mem_memory), "--no-input"]
        q_argv = [a.qemu, "-M", a.qemu_machine, "-enable-kvm", "-cpu", "host",
                  "-m", str(a.mem_memory), "-smp", "1", "-nodefaults", "-no-user-config",
                  "-nographic", "-serial", "stdio", "-no-reboot",
                  "-kernel", a.kernel, "-initrd", a.initrd,
                  "-append", a.qemu_cmdline + " husk.test=shell"]
        for vmm, argv in (("husk", h_argv), ("qemu", q_argv)):
            base = os.path.join(a.log_dir, "mem-%s-%02d" % (vmm, i + 1))
            r = sample_at_marker(argv, a.mem_memory, a.sample_after, a.timeout, base + ".console")
            mem[vmm].append(r)
            print("bench: memory run %d %-4s RSS beyond guest RAM %s KiB (total %s KiB)"
                  % (i + 1, vmm, r.get("overhead_rss_kib", "-"), r.get("total_rss_kib", "-")),
                  flush=True)
    write_json(a.out, {
        "runs": runs,
        "memory_samples": mem,
        "memory_samples_guest_mib": a.mem_memory,
        "argv": {"husk": husk_argv, "qemu": qemu_argv},
        "complete": True,
        "machine": {"kernel_release": platform.release(), "nproc": os.cpu_count(),
                    "loadavg_after": os.getloadavg()},
    })
    return 0


# ------------------------------------------------------------------ host
def smaps_figures(pid, guest_bytes):
    """Sums Rss (and private pages) of all mappings of pid, guest RAM apart.

    Guest RAM is the anonymous mapping whose size equals the guest memory size."""
    total_rss = guest_rss = 0
    total_priv = guest_priv = 0
    guest_found = False
    cur_is_guest = False
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            first = line.split(None, 1)[0]
            if not first.endswith(":"):
                # A mapping header: start-end perms offset dev inode [path]
                fields = line.split()
                start, end = (int(x, 16) for x in fields[0].split("-"))
                anonymous = len(fields) < 6 or fields[5] == ""
                cur_is_guest = (anonymous and end - start == guest_bytes and not guest_found)
                if cur_is_guest:
                    guest_found = True
                continue
            if first in ("Rss:", "Private_Clean:", "Private_Dirty:"):
                kib = int(line.split()[1])
                if first == "Rss:":
                    total_rss += kib
                    if cur_is_guest:
                        guest_rss += kib
                else:
                    total_priv += kib
                    if cur_is_guest:
                        guest_priv += kib
    return {
        "guest_mapping_found": guest_found,
        "total_rss_kib": total_rss,
        "guest_ram_rss_kib": guest_rss,
        "overhead_rss_kib": total_rss - guest_rss,
        "overhead_private_kib": total_priv - guest_priv,
    }


def sample_process(argv, memory_mib, sample_after, want_timeline=None):
    t0 = time.monotonic_ns()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    r = {"spawn_monotonic_ns": t0}
    time.sleep(sample_after)
    if proc.poll() is None:
        try:
            r.update(smaps_figures(proc.pid, memory_mib << 20))
        except OSError as e:
            r["smaps_error"] = str(e)
        proc.send_signal(signal.SIGTERM)
    else:
        r["exited_early"] = True
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        r["needed_sigkill"] = True
    r["exit_code"] = proc.returncode
    if want_timeline:
        tl = read_json(want_timeline)
        r["timeline"] = tl
        if tl and tl.get("first_kvm_run_monotonic_ns"):
            r["first_kvm_run_wall_ms"] = (tl["first_kvm_run_monotonic_ns"] - t0) / 1e6
            r["first_kvm_run_cpu_ms"] = tl.get("first_kvm_run_cpu_ms")
            r["build_ms"] = tl.get("build_ms")
    return r


def sample_at_marker(argv, memory_mib, settle_s, timeout_s, console_log):
    """Starts argv, waits for HUSK_SHELL on its stdout, then settle_s more,
    samples /proc/PID/smaps and stops it."""
    r = {}
    with open(console_log, "wb") as con:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        seen = b""
        sample_at = None
        while True:
            now = time.monotonic()
            if sample_at is not None and now >= sample_at:
                break
            if now >= deadline or proc.poll() is not None:
                r["marker_missing"] = True
                break
            sel.select(timeout=0.1)
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                chunk = None
            if chunk:
                con.write(chunk)
                if sample_at is None:
                    seen = (seen + chunk)[-4096:]
                    if b"HUSK_SHELL" in seen:
                        sample_at = time.monotonic() + settle_s
        sel.close()
        if proc.poll() is None and not r.get("marker_missing"):
            try:
                r.update(smaps_figures(proc.pid, memory_mib << 20))
            except OSError as e:
                r["smaps_error"] = str(e)
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    r["exit_code"] = proc.returncode
    return r


def cmd_host(a):
    os.makedirs(a.log_dir, exist_ok=True)
    husk_runs, qemu_runs = [], []
    for i in range(a.runs):
        timeline = os.path.join(a.log_dir, "host-husk-%02d.timeline.json" % (i + 1))
        if os.path.exists(timeline):
            os.unlink(timeline)
        argv = [a.husk, "boot", "--kernel", a.kernel, "--initrd", a.initrd,
                "--vcpus", "1", "--memory", str(a.memory), "--no-input",
                "--timeline-json", timeline]
        r = sample_process(argv, a.memory, a.sample_after, timeline)
        husk_runs.append(r)
        fmt = lambda v: "-" if v is None else "%.1f" % v
        print("bench: host run %2d husk first KVM_RUN %s ms wall, %s ms CPU; RSS beyond guest RAM %s KiB"
              % (i + 1, fmt(r.get("first_kvm_run_wall_ms")), fmt(r.get("first_kvm_run_cpu_ms")),
                 r.get("overhead_rss_kib", "-")), flush=True)
    if a.qemu:
        # QEMU's memory overhead, for reference: same guest size, same sampling.
        for i in range(a.qemu_runs):
            argv = [a.qemu, "-M", a.qemu_machine, "-enable-kvm", "-cpu", "host",
                    "-m", str(a.memory), "-smp", "1", "-nodefaults", "-no-user-config",
                    "-display", "none", "-serial", "null", "-no-reboot",
                    "-kernel", a.kernel, "-initrd", a.initrd, "-append", a.qemu_cmdline]
            r = sample_process(argv, a.memory, a.sample_after)
            qemu_runs.append(r)
            print("bench: host run %2d qemu RSS beyond guest RAM %s KiB (guest mapping found: %s)"
                  % (i + 1, r.get("overhead_rss_kib", "-"), r.get("guest_mapping_found")),
                  flush=True)
    write_json(a.out, {"husk": husk_runs, "qemu": qemu_runs, "memory_mib": a.memory,
                       "sample_after_s": a.sample_after})
    ok = any(r.get("first_kvm_run_wall_ms") is not None for r in husk_runs)
    return 0 if ok else 1


# ---------------------------------------------------------------- report
def cmd_report(a):
    boots = read_json(a.boots) or {}
    host = read_json(a.host) or {}
    out = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "environment": {
               "side_by_side_in": a.where,
               "host_side_in": "this machine's own /dev/kvm",
               "kernel": os.path.abspath(a.kernel),
               "initrd": os.path.abspath(a.initrd),
               "runs": a.runs,
               "vcpus": a.vcpus,
               "memory_mib": a.memory,
               "host_kernel": platform.release(),
               "host_nproc": os.cpu_count(),
               "argv": boots.get("argv"),
               "side_by_side_machine": boots.get("machine"),
               "note": "times in ms from just before spawn; absolute times from a nested "
                       "test host are not hardware figures, compare the ratio",
           }}
    failed = []
    vmms = {}
    for vmm in ("husk", "qemu"):
        runs = (boots.get("runs") or {}).get(vmm, [])
        markers = [r["marker_ms"] for r in runs]
        exits = [r["exit_ms"] for r in runs]
        entry = {
            "runs": len(runs),
            "marker_missing": sum(1 for v in markers if v is None),
            "nonzero_exit": sum(1 for r in runs if r.get("exit_code") not in (0,)),
            "time_to_marker_ms": summary(markers),
            "time_to_exit_ms": summary(exits),
            "guest_uptime_at_marker_s": summary([r.get("guest_uptime_s") for r in runs]),
        }
        if vmm == "husk":
            entry["first_kvm_run_ms"] = summary([r.get("first_kvm_run_ms") for r in runs])
            entry["build_ms"] = summary([(r.get("timeline") or {}).get("build_ms") for r in runs])
        vmms[vmm] = entry
        if entry["marker_missing"] or len(runs) < a.runs:
            failed.append("%s: marker seen in %d of %d runs" % (
                vmm, len(runs) - entry["marker_missing"], a.runs))
    if not boots.get("complete"):
        failed.append("the side-by-side step did not finish (%s)"
                      % ("no results" if not boots else "partial results"))
    out["vmms"] = vmms
    med = lambda v, k: vmms[v][k]["median"]
    out["ratio_husk_over_qemu"] = {
        "time_to_marker": ratio(med("husk", "time_to_marker_ms"), med("qemu", "time_to_marker_ms")),
        "time_to_exit": ratio(med("husk", "time_to_exit_ms"), med("qemu", "time_to_exit_ms")),
    }

    hr = host.get("husk", [])
    mem = lambda runs, k: summary([r.get(k) for r in runs if r.get("guest_mapping_found")])
    host_out = {
        "runs": len(hr),
        "memory_mib": host.get("memory_mib"),
        "sampled_after_s": host.get("sample_after_s"),
        "start_to_first_kvm_run_wall_ms": summary([r.get("first_kvm_run_wall_ms") for r in hr]),
        "start_to_first_kvm_run_cpu_ms": summary([r.get("first_kvm_run_cpu_ms") for r in hr]),
        "build_ms": summary([r.get("build_ms") for r in hr]),
        "husk_overhead_rss_kib": mem(hr, "overhead_rss_kib"),
        "husk_overhead_private_kib": mem(hr, "overhead_private_kib"),
        "husk_total_rss_kib": mem(hr, "total_rss_kib"),
        "husk_guest_ram_rss_kib": mem(hr, "guest_ram_rss_kib"),
        "note": "RSS summed over /proc/PID/smaps, except the anonymous mapping of "
                "exactly the guest memory size",
    }
    qr = host.get("qemu", [])
    if qr:
        host_out["qemu_overhead_rss_kib"] = mem(qr, "overhead_rss_kib")
        host_out["qemu_total_rss_kib"] = mem(qr, "total_rss_kib")
    ms_ = boots.get("memory_samples") or {}
    if ms_.get("husk") or ms_.get("qemu"):
        host_out["side_by_side_memory"] = {
            "where": a.where,
            "guest_mib": boots.get("memory_samples_guest_mib"),
            "husk_overhead_rss_kib": mem(ms_.get("husk", []), "overhead_rss_kib"),
            "husk_total_rss_kib": mem(ms_.get("husk", []), "total_rss_kib"),
            "qemu_overhead_rss_kib": mem(ms_.get("qemu", []), "overhead_rss_kib"),
            "qemu_total_rss_kib": mem(ms_.get("qemu", []), "total_rss_kib"),
            "qemu_guest_mapping_found": [r.get("guest_mapping_found") for r in ms_.get("qemu", [])],
        }
    if not any(r.get("first_kvm_run_wall_ms") is not None for r in hr):
        failed.append("host-side: no husk run wrote a first KVM_RUN time")
    out["host_side"] = host_out
    out["failures"] = failed
    write_json(a.out, out)

    # ---- the human table
    def ms(v):
        return "-" if v is None else ("%.0f" % v if v >= 100 else "%.1f" % v)

    print()
    print("boot benchmark: %s, %d runs each, %d vCPU, %d MiB; side by side in %s"
          % (os.path.basename(a.kernel), a.runs, a.vcpus, a.memory, a.where))
    print("%-6s %-16s %8s %8s %8s %8s" % ("vmm", "ms from spawn", "median", "min", "p90", "max"))
    for vmm in ("husk", "qemu"):
        for key, label in (("time_to_marker_ms", "to HUSK_READY"), ("time_to_exit_ms", "to exit")):
            s = vmms[vmm][key]
            print("%-6s %-16s %8s %8s %8s %8s" % (vmm, label, ms(s["median"]), ms(s["min"]),
                                                  ms(s["p90"]), ms(s["max"])))
    r = out["ratio_husk_over_qemu"]
    print("ratio husk/qemu of medians: to HUSK_READY %s, to exit %s"
          % (r["time_to_marker"], r["time_to_exit"]))
    w = host_out["start_to_first_kvm_run_wall_ms"]["median"]
    c = host_out["start_to_first_kvm_run_cpu_ms"]["median"]
    o = host_out["husk_overhead_rss_kib"]["median"]
    p = host_out["husk_overhead_private_kib"]["median"]
    t = host_out["husk_total_rss_kib"]["median"]
    print("husk host side (own /dev/kvm, median of %d): spawn to first KVM_RUN %s ms wall, %s ms CPU"
          % (len(hr), ms(w), ms(c)))
    if o is not None:
        print("husk memory beyond guest RAM (%s MiB guest): RSS %.0f KiB (%.2f MiB), private %.0f KiB; "
              "total RSS %.0f KiB" % (host_out["memory_mib"], o, o / 1024, p, t))
    q = host_out.get("qemu_overhead_rss_kib", {}).get("median")
    if q is not None:
        print("qemu memory beyond guest RAM, same sampling: RSS %.0f KiB (%.2f MiB)" % (q, q / 1024))
    sm = host_out.get("side_by_side_memory")
    if sm:
        hm = sm["husk_overhead_rss_kib"]["median"]
        qm = sm["qemu_overhead_rss_kib"]["median"]
        f = lambda v: "-" if v is None else "%.0f KiB (%.2f MiB)" % (v, v / 1024)
        print("memory beyond guest RAM in %s (%s MiB guest): husk %s, qemu %s"
              % (a.where, sm["guest_mib"], f(hm), f(qm)))
    print("written: %s" % a.out)
    for f in failed:
        print("bench: FAILED: %s" % f, file=sys.stderr)
    return 1 if failed else 0


# ------------------------------------------------------------------ main
def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--husk", default="build/bin/husk")
        sp.add_argument("--qemu", default="qemu-system-x86_64")
        sp.add_argument("--qemu-machine",
                        default="microvm,x-option-roms=off,rtc=off,acpi=off,pcie=off")
        sp.add_argument("--kernel", default="build/guest/vmlinux")
        sp.add_argument("--initrd", default="build/guest/initramfs.cpio.gz")
        sp.add_argument("--husk-cmdline", default="console=ttyS0 reboot=k panic=-1")
        # QEMU microvm has no i8042: `reboot=k` never resets it (the kernel falls
        # through to a BIOS restart that reboots the guest). A triple fault with
        # -no-reboot makes QEMU exit.
        sp.add_argument("--qemu-cmdline", default="console=ttyS0 reboot=t panic=-1")
        sp.add_argument("--runs", type=int, default=10)
        sp.add_argument("--vcpus", type=int, default=1)
        sp.add_argument("--log-dir", default="build/bench/logs")
        sp.add_argument("--out", required=True)

    b = sub.add_parser("boots")
    common(b)
    b.add_argument("--memory", type=int, default=256)
    b.add_argument("--timeout", type=float, default=300.0, help="seconds per boot")
    b.add_argument("--mem-runs", type=int, default=2,
                   help="memory samples of each VMM after the timed boots (0: none)")
    b.add_argument("--mem-memory", type=int, default=128)
    b.add_argument("--sample-after", type=float, default=1.0)

    h = sub.add_parser("host")
    common(h)
    h.add_argument("--memory", type=int, default=128)
    h.add_argument("--sample-after", type=float, default=1.0)
    # QEMU 7.2 aborts on a kvm_pvm /dev/kvm (failed to set MSR 0x10a), so its
    # memory figure comes from the side-by-side environment instead (boots).
    h.add_argument("--qemu-runs", type=int, default=0, help="0: skip QEMU's memory figure")

    r = sub.add_parser("report")
    common(r)
    r.add_argument("--memory", type=int, default=256)
    r.add_argument("--boots", required=True)
    r.add_argument("--host", required=True)
    r.add_argument("--where", required=True)

    a = p.parse_args()
    if a.cmd == "host" and a.qemu_runs == 0:
        a.qemu = None
    return {"boots": cmd_boots, "host": cmd_host, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
