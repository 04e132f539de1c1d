#!/usr/bin/env python3
"""tests/bench/rate_bench.py: the timing half of `make bench-rate` (stdlib only).

VM creations per second: batches of --vms VMs, at most C of them alive at a
time for each C of --levels (1: back to back; 2: two at once, ...), each VM
started, run to "ready" and stopped. One batch per (level, mode); the modes of
a level run one after the other, and the order rotates from level to level so
that no mode always runs first.

Modes (--modes), the same kernel and initramfs for all three:
  husk-boot  `husk boot --no-input` with --husk-cmdline plus --append; ready
             is the guest's HUSK_READY line on husk's stdout (the console).
  qemu       QEMU microvm with -enable-kvm, the same kernel, initramfs and
             command line (`reboot=t` instead of `reboot=k`: microvm has no
             i8042, see tests/bench/boot_bench.py); ready is the same line.
  husk-exec  `husk exec -- true`, end to end: boot, the agent's handshake over
             vsock, `true`, the exit status back, the VM torn down; ready is
             husk's exit with status 0. husk exec uses its own kernel command
             line (the job runner's, plus husk.agent=1) and, as root, the jail.
A marker-mode VM is stopped with SIGTERM as soon as its marker line has been
read (--stop term; --stop exit lets the guest reset by itself: the plain
initramfs runs `reboot -f` right after the marker). A VM that is not ready
after --timeout seconds, or not gone --grace seconds after SIGTERM, gets
SIGKILL. Every VM's process is reaped with os.wait4 (its CPU time includes
every descendant it reaped), and each batch also records this process's
RUSAGE_CHILDREN delta.

Per batch: wall time from the first spawn to the last reap (so a slot is free
again only once its VM is gone, teardown included), VMs per second (VMs that
reached ready / wall), the same per core of the machine the VMs ran on, VMs
per CPU second of the VMMs and everything they reaped (the rate each core
could sustain if it did nothing else), and the distribution of each VM's time
from its spawn to ready.

Subcommands: `measure` runs the batches where guests run (directly, or in the
nested test host) and writes the raw results; `report` derives the figures,
writes $HUSK_BUILD/bench/rate.json and prints a table. `measure --dry-run`
prints the plan and the command lines without starting anything.

A benchmark: it prints numbers and never judges them. The exit code says only
whether the measurements could be made (every VM of every batch reached ready).
"""

import argparse
import datetime
import os
import platform
import re
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import time

from bench_stats import percentile, read_json, stage_paths, write_json

MARKER = b"HUSK_READY"
MARKER_RE = re.compile(rb"HUSK_READY uptime=([0-9.]+)")
MODES = ("husk-boot", "husk-exec", "qemu")
MODE_LABEL = {"husk-boot": "husk boot", "husk-exec": "husk exec", "qemu": "qemu microvm"}
# docs/design.md of firecracker-microvm/firecracker, "Host Integration" (4).
FIRECRACKER_PUBLISHED = (
    "Firecracker (published, not measured here): \"a steady mutation rate of 5 microVMs per "
    "host core per second\" with a minimal kernel, 1 vCPU and 128 MiB, on hardware "
    "(firecracker docs/design.md)")
TCG_NOTE = ("the nested test host is QEMU TCG with emulated AMD-V: absolute rates are not "
            "hardware figures; compare husk and QEMU within one run")


# ---------------------------------------------------------------- statistics
def summary(values):
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return {"n": 0, "median": None, "min": None, "max": None, "p90": None, "mean": None}
    return {"n": len(vals), "median": round(percentile(vals, 0.5), 3),
            "min": round(vals[0], 3), "max": round(vals[-1], 3),
            "p90": round(percentile(vals, 0.9), 3),
            "mean": round(sum(vals) / len(vals), 3)}


def cpu_s(ru):
    return ru.ru_utime + ru.ru_stime


# ------------------------------------------------------------ command lines
def command_lines(a):
    ab = os.path.abspath
    extra = (" " + a.append.strip()) if a.append.strip() else ""
    return {
        "husk-boot": [ab(a.husk), "boot", "--kernel", ab(a.kernel), "--initrd", ab(a.initrd),
                      "--cmdline", a.husk_cmdline + extra, "--vcpus", str(a.vcpus),
                      "--memory", str(a.memory), "--no-input"],
        # Absolute paths: the jail does not resolve relative ones (husk chdirs to /).
        "husk-exec": [ab(a.husk), "exec", "--kernel", ab(a.kernel), "--initrd", ab(a.initrd),
                      "--vcpus", str(a.vcpus), "--memory", str(a.memory),
                      "--boot-timeout", str(a.timeout)] + a.exec_flags.split() + ["--", "true"],
        "qemu": [a.qemu, "-M", a.qemu_machine, "-enable-kvm", "-cpu", "host",
                 "-m", str(a.memory), "-smp", str(a.vcpus), "-nodefaults", "-no-user-config",
                 "-nographic", "-serial", "stdio", "-no-reboot", "-kernel", ab(a.kernel),
                 "-initrd", ab(a.initrd), "-append", a.qemu_cmdline + extra],
    }


# ------------------------------------------------------------- one batch
class Vm:
    """One VM process of a batch and what was seen of it."""

    def __init__(self, index, log_base):
        self.index = index
        self.log_base = log_base
        self.proc = None
        self.pidfd = -1
        self.out = None          # stdout pipe (marker modes)
        self.console = None      # file the console bytes are copied to
        self.pending = b""
        self.t0 = 0
        self.ready_ns = None
        self.stop_ns = None
        self.deadline_ns = 0
        self.killed = False
        self.rec = {"vm": index, "ready_ms": None, "reap_ms": None, "exit_code": None,
                    "timed_out": False, "needed_sigkill": False, "ok": False,
                    "guest_uptime_s": None, "cpu_ms": None, "max_rss_kib": None}


def spawn(vm, argv, marker, timeout_s, sel):
    err = open(vm.log_base + ".stderr", "wb")
    vm.console = open(vm.log_base + (".console" if marker else ".stdout"), "wb")
    vm.t0 = time.monotonic_ns()
    try:
        vm.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE if marker else vm.console, stderr=err)
    finally:
        err.close()
    vm.deadline_ns = vm.t0 + int(timeout_s * 1e9)
    # A pidfd turns the child's exit into a selector event, next to its stdout.
    vm.pidfd = os.pidfd_open(vm.proc.pid)
    sel.register(vm.pidfd, selectors.EVENT_READ, (vm, "exit"))
    if marker:
        vm.out = vm.proc.stdout
        os.set_blocking(vm.out.fileno(), False)
        sel.register(vm.out.fileno(), selectors.EVENT_READ, (vm, "out"))


def read_console(vm, sel, stop):
    """Copies what is in the pipe to the console log and notes the marker
    line; stop == "term" sends SIGTERM once it has been seen."""
    while True:
        try:
            chunk = os.read(vm.out.fileno(), 65536)
        except BlockingIOError:
            return
        if not chunk:
            sel.unregister(vm.out.fileno())
            vm.out.close()
            vm.out = None
            return
        now = time.monotonic_ns()
        vm.console.write(chunk)
        if vm.ready_ns is not None:
            continue
        vm.pending += chunk
        # The marker counts once its whole line has been read.
        while b"\n" in vm.pending:
            line, vm.pending = vm.pending.split(b"\n", 1)
            if MARKER in line:
                vm.ready_ns = now
                m = MARKER_RE.search(line)
                if m:
                    vm.rec["guest_uptime_s"] = float(m.group(1))
                if stop == "term":
                    os.kill(vm.proc.pid, signal.SIGTERM)
                    vm.stop_ns = now
                vm.pending = b""
                break
        # A console that never ends a line must not grow without bound.
        if len(vm.pending) > 65536:
            vm.pending = vm.pending[-256:]


def reap(vm, sel, marker):
    _, status, ru = os.wait4(vm.proc.pid, 0)
    now = time.monotonic_ns()
    vm.proc.returncode = os.waitstatus_to_exitcode(status)
    sel.unregister(vm.pidfd)
    os.close(vm.pidfd)
    if vm.out is not None:
        # Output still in the pipe (a marker in the last chunk counts at reap).
        read_console(vm, sel, "none")
        if vm.out is not None:
            sel.unregister(vm.out.fileno())
            vm.out.close()
    vm.console.close()
    r = vm.rec
    r["exit_code"] = vm.proc.returncode
    r["reap_ms"] = (now - vm.t0) / 1e6
    r["cpu_ms"] = cpu_s(ru) * 1e3
    r["max_rss_kib"] = ru.ru_maxrss
    if marker:
        r["ok"] = vm.ready_ns is not None and not r["timed_out"]
    else:
        # husk exec: ready is the end of the round trip, `true`'s status 0.
        r["ok"] = vm.proc.returncode == 0 and not r["timed_out"]
        if r["ok"]:
            vm.ready_ns = now
    if vm.ready_ns is not None:
        r["ready_ms"] = (vm.ready_ns - vm.t0) / 1e6


def run_batch(argv, marker, n, concurrency, a, log_prefix):
    """Starts n VMs of argv, at most concurrency alive at once; returns the
    batch record."""
    sel = selectors.DefaultSelector()
    waiting = list(range(n))
    running = {}
    done = []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t_first = None
    t_last_ready = None
    while waiting or running:
        while waiting and len(running) < concurrency:
            i = waiting.pop(0)
            vm = Vm(i + 1, "%s-%02d" % (log_prefix, i + 1))
            spawn(vm, argv, marker, a.timeout, sel)
            t_first = t_first or vm.t0
            running[vm.index] = vm
        now = time.monotonic_ns()
        nearest = min(min(vm.deadline_ns for vm in running.values()),
                      min((vm.stop_ns + int(a.grace * 1e9) for vm in running.values()
                           if vm.stop_ns is not None), default=now + int(1e9)))
        for key, _ in sel.select(timeout=max(0.0, min(1.0, (nearest - now) / 1e9))):
            vm, kind = key.data
            if vm.index not in running:
                continue
            if kind == "out":
                read_console(vm, sel, a.stop)
            else:
                reap(vm, sel, marker)
                del running[vm.index]
                done.append(vm.rec)
                if vm.rec["ok"]:
                    t_last_ready = max(t_last_ready or 0, vm.ready_ns)
        now = time.monotonic_ns()
        for vm in running.values():
            if vm.killed:
                continue
            late = vm.ready_ns is None and now >= vm.deadline_ns
            stuck = vm.stop_ns is not None and now >= vm.stop_ns + int(a.grace * 1e9)
            if late or stuck:
                vm.rec["timed_out"] = vm.rec["timed_out"] or late
                vm.rec["needed_sigkill"] = True
                vm.killed = True
                os.kill(vm.proc.pid, signal.SIGKILL)
    t_end = time.monotonic_ns()
    sel.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    done.sort(key=lambda r: r["vm"])
    return {
        "concurrency": concurrency,
        "vms": n,
        "ok": sum(1 for r in done if r["ok"]),
        "wall_s": (t_end - t_first) / 1e9,
        "to_last_ready_s": None if t_last_ready is None else (t_last_ready - t_first) / 1e9,
        "children_cpu_s": cpu_s(after) - cpu_s(before),
        "children_user_s": after.ru_utime - before.ru_utime,
        "children_sys_s": after.ru_stime - before.ru_stime,
        "wait4_cpu_s": sum((r["cpu_ms"] or 0) for r in done) / 1e3,
        "runs": done,
    }


# ------------------------------------------------------------------ measure
def plan(a):
    """(level, mode) pairs in run order: the mode order rotates per level."""
    out = []
    for k, level in enumerate(a.levels):
        for j in range(len(a.modes)):
            out.append((level, a.modes[(j + k) % len(a.modes)]))
    return out


def cmd_measure(a):
    stage = None
    if a.stage and not a.dry_run:
        stage, copies = stage_paths([a.husk, a.kernel, a.initrd])
        a.husk, a.kernel, a.initrd = copies[a.husk], copies[a.kernel], copies[a.initrd]
    try:
        return measure(a)
    finally:
        if stage:
            shutil.rmtree(stage, ignore_errors=True)


def measure(a):
    argvs = command_lines(a)
    steps = plan(a)
    if a.dry_run:
        for mode in a.modes:
            print("%-10s %s" % (mode, " ".join(argvs[mode])))
        for level, mode in steps:
            print("batch: %d x %s at concurrency %d" % (a.vms, mode, level))
        return 0
    os.makedirs(a.log_dir, exist_ok=True)
    machine = {"kernel_release": platform.release(), "nproc": os.cpu_count(),
               "loadavg_before": os.getloadavg()}
    result = {"argv": {m: argvs[m] for m in a.modes}, "vms": a.vms, "levels": a.levels,
              "modes": a.modes, "vcpus": a.vcpus, "memory_mib": a.memory, "stop": a.stop,
              "warmup": a.warmup, "timeout_s": a.timeout, "machine": machine,
              "batches": [], "warmups": {}, "complete": False}
    # One unmeasured batch per mode first: page cache, the first jail set-up,
    # QEMU's shared libraries.
    for mode in a.modes:
        if a.warmup > 0:
            b = run_batch(argvs[mode], mode != "husk-exec", a.warmup, 1, a,
                          os.path.join(a.log_dir, "warmup-%s" % mode))
            result["warmups"][mode] = {"ok": b["ok"], "vms": b["vms"], "wall_s": b["wall_s"]}
            print("bench: warm-up %-9s %d/%d ready in %.1f s" % (mode, b["ok"], b["vms"],
                                                                 b["wall_s"]), flush=True)
    for level, mode in steps:
        b = run_batch(argvs[mode], mode != "husk-exec", a.vms, level, a,
                      os.path.join(a.log_dir, "%s-c%d" % (mode, level)))
        b["mode"] = mode
        result["batches"].append(b)
        lat = summary([r["ready_ms"] for r in b["runs"]])
        f = lambda v: "-" if v is None else "%.0f" % v
        print("bench: %-9s concurrency %d: %d/%d ready, %.2f s wall, %.3f VMs/s, %.0f CPU ms/VM; "
              "ready ms median %s p90 %s max %s" % (
                  mode, level, b["ok"], b["vms"], b["wall_s"], b["ok"] / b["wall_s"],
                  b["children_cpu_s"] * 1e3 / b["vms"], f(lat["median"]), f(lat["p90"]),
                  f(lat["max"])), flush=True)
        # Partial results survive an interrupted session.
        write_json(a.out, result)
    machine["loadavg_after"] = os.getloadavg()
    result["complete"] = True
    write_json(a.out, result)
    return 0 if all(b["ok"] == b["vms"] for b in result["batches"]) else 1


# ------------------------------------------------------------------ report
def derive(b, cores):
    ok = b["ok"]
    wall = b["wall_s"]
    cpu = b["children_cpu_s"]
    rate = ok / wall if wall > 0 else None
    return {
        "mode": b["mode"],
        "concurrency": b["concurrency"],
        "vms": b["vms"],
        "ready": ok,
        "wall_s": round(wall, 3),
        "to_last_ready_s": None if b["to_last_ready_s"] is None else round(b["to_last_ready_s"], 3),
        "vms_per_s": None if rate is None else round(rate, 4),
        "vms_per_core_per_s": None if rate is None else round(rate / cores, 4),
        "vms_per_cpu_s": round(ok / cpu, 4) if cpu > 0 else None,
        "cpu_ms_per_vm": round(cpu * 1e3 / b["vms"], 1),
        "children_cpu_s": round(cpu, 3),
        "wait4_cpu_s": round(b["wait4_cpu_s"], 3),
        "ready_ms": summary([r["ready_ms"] for r in b["runs"]]),
        "exit_ms": summary([r["reap_ms"] for r in b["runs"]]),
        "timed_out": sum(1 for r in b["runs"] if r["timed_out"]),
        "needed_sigkill": sum(1 for r in b["runs"] if r["needed_sigkill"]),
    }


def cmd_report(a):
    m = read_json(a.measure)
    failed = []
    if not m:
        print("bench: FAILED: no measurements (%s)" % a.measure, file=sys.stderr)
        return 1
    machine = m.get("machine") or {}
    cores = a.cores or machine.get("nproc") or 1
    rows = [derive(b, cores) for b in m.get("batches", [])]
    if not m.get("complete"):
        failed.append("the measuring session did not finish (partial results)")
    for r in rows:
        if r["ready"] != r["vms"]:
            failed.append("%s at concurrency %d: %d of %d VMs reached ready"
                          % (r["mode"], r["concurrency"], r["ready"], r["vms"]))
    by = {(r["mode"], r["concurrency"]): r for r in rows}
    ratios = {}
    for level in m.get("levels", []):
        h = by.get(("husk-boot", level))
        q = by.get(("qemu", level))
        if h and q and h["vms_per_s"] and q["vms_per_s"]:
            ratios[str(level)] = {
                "vms_per_s": round(h["vms_per_s"] / q["vms_per_s"], 3),
                "ready_ms_median": (round(h["ready_ms"]["median"] / q["ready_ms"]["median"], 3)
                                    if h["ready_ms"]["median"] and q["ready_ms"]["median"] else None),
                "cpu_ms_per_vm": (round(h["cpu_ms_per_vm"] / q["cpu_ms_per_vm"], 3)
                                  if q["cpu_ms_per_vm"] else None),
            }
    out = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "environment": {
            "where": a.where, "cores": cores, "machine": machine, "argv": m.get("argv"),
            "vms_per_batch": m.get("vms"), "levels": m.get("levels"),
            "vcpus": m.get("vcpus"), "memory_mib": m.get("memory_mib"),
            "stop": m.get("stop"), "warmup": m.get("warmup"), "load": a.load,
            "note": "wall from the first spawn to the last reap; VMs/s counts VMs that "
                    "reached ready; per core divides by the cores of the machine the VMs "
                    "ran on; VMs per CPU second divides by the CPU time of the VMMs and "
                    "everything they reaped (RUSAGE_CHILDREN); ready ms from each VM's spawn",
        },
        "warmups": m.get("warmups"),
        "batches": rows,
        "ratio_husk_boot_over_qemu": ratios,
        "published_reference": {
            "firecracker_vms_per_core_per_s": 5,
            "source": "firecracker-microvm/firecracker docs/design.md: a steady mutation rate "
                      "of 5 microVMs per host core per second (minimal kernel, 1 vCPU, 128 MiB)",
            "measured": False,
        },
        "failures": failed,
    }
    write_json(a.out, out)

    f0 = lambda v: "-" if v is None else "%.0f" % v
    f3 = lambda v: "-" if v is None else "%.3f" % v
    print()
    print("VM creation rate: %s VMs per batch, %s vCPU, %s MiB, stop at ready: %s; in %s, "
          "%d core%s there" % (m.get("vms"), m.get("vcpus"), m.get("memory_mib"), m.get("stop"),
                               a.where, cores, "" if cores == 1 else "s"))
    if "test host" in a.where:
        print("NOTE: " + TCG_NOTE)
    print("%-14s %4s %6s %7s %7s %10s %9s %9s | %-27s" % (
        "mode", "conc", "ready", "wall s", "VMs/s", "VMs/core/s", "VMs/CPU-s", "CPU ms/VM",
        "spawn to ready, ms"))
    print("%-14s %4s %6s %7s %7s %10s %9s %9s | %6s %6s %6s %6s" % (
        "", "", "", "", "", "", "", "", "median", "p90", "min", "max"))
    for r in sorted(rows, key=lambda r: (r["concurrency"], MODES.index(r["mode"]))):
        s = r["ready_ms"]
        print("%-14s %4d %6s %7.2f %7s %10s %9s %9s | %6s %6s %6s %6s" % (
            MODE_LABEL[r["mode"]], r["concurrency"], "%d/%d" % (r["ready"], r["vms"]),
            r["wall_s"], f3(r["vms_per_s"]), f3(r["vms_per_core_per_s"]), f3(r["vms_per_cpu_s"]),
            f0(r["cpu_ms_per_vm"]), f0(s["median"]), f0(s["p90"]), f0(s["min"]), f0(s["max"])))
    for level, rr in ratios.items():
        print("husk boot / qemu at concurrency %s: VMs/s %.2fx, median ready %sx, CPU per VM %sx"
              % (level, rr["vms_per_s"], f3(rr["ready_ms_median"]), f3(rr["cpu_ms_per_vm"])))
    print("reference: " + FIRECRACKER_PUBLISHED)
    print("written: %s" % a.out)
    for f in failed:
        print("bench: FAILED: %s" % f, file=sys.stderr)
    return 1 if failed else 0


# -------------------------------------------------------------------- main
def int_list(text):
    vals = [int(v) for v in text.split(",") if v.strip()]
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError("a comma-separated list of positive numbers")
    return vals


def mode_list(text):
    vals = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in vals if v not in MODES]
    if not vals or bad:
        raise argparse.ArgumentTypeError("modes are %s, not %s" % (", ".join(MODES), bad or text))
    return vals


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    ms = sub.add_parser("measure")
    ms.add_argument("--husk", default="build/bin/husk")
    ms.add_argument("--stage", action="store_true",
                    help="run husk, the kernel and the initrd from copies in the local /tmp "
                         "(the test host: its repository share caches no file pages)")
    ms.add_argument("--qemu", default="qemu-system-x86_64")
    ms.add_argument("--qemu-machine", default="microvm,x-option-roms=off,rtc=off,acpi=off,pcie=off")
    ms.add_argument("--kernel", default="build/guest/vmlinux")
    ms.add_argument("--initrd", default="build/guest/initramfs.cpio")
    ms.add_argument("--husk-cmdline", default="console=ttyS0 reboot=k panic=-1")
    ms.add_argument("--qemu-cmdline", default="console=ttyS0 reboot=t panic=-1")
    ms.add_argument("--append", default="",
                    help="more kernel arguments for husk-boot and qemu (e.g. quiet)")
    ms.add_argument("--exec-flags", default="", help="more `husk exec` flags, space-separated")
    ms.add_argument("--modes", type=mode_list, default=list(MODES))
    ms.add_argument("--vms", type=int, default=10, help="VMs per batch")
    ms.add_argument("--levels", type=int_list, default=[1, 2], help="concurrency levels")
    ms.add_argument("--vcpus", type=int, default=1)
    ms.add_argument("--memory", type=int, default=128)
    ms.add_argument("--stop", choices=("term", "exit"), default="term")
    ms.add_argument("--warmup", type=int, default=1, help="unmeasured VMs per mode first")
    ms.add_argument("--timeout", type=float, default=300.0, help="seconds per VM to ready")
    ms.add_argument("--grace", type=float, default=20.0, help="seconds from SIGTERM to SIGKILL")
    ms.add_argument("--log-dir", default="build/bench/rate-logs")
    ms.add_argument("--out", default="build/bench/rate-logs/measure.json")
    ms.add_argument("--dry-run", action="store_true", help="print the plan, start nothing")
    rp = sub.add_parser("report")
    rp.add_argument("--measure", required=True)
    rp.add_argument("--out", required=True)
    rp.add_argument("--where", default="this machine")
    rp.add_argument("--cores", type=int, default=0, help="0: the nproc the VMs saw")
    rp.add_argument("--load", default="", help="this machine's loadavg around the session")
    a = p.parse_args()
    if a.cmd == "measure" and (a.vms < 1 or a.timeout <= 0):
        p.error("--vms and --timeout must be positive")
    return {"measure": cmd_measure, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
