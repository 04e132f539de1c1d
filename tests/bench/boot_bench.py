#!/usr/bin/env python3
"""tests/bench/boot_bench.py: the timing half of `make bench-boot` (stdlib only).

Subcommands (tests/bench/boot runs them in this order):

  host     husk's host-side figures on this machine's own /dev/kvm: process start
           to the first KVM_RUN (wall ms from the timeline's CLOCK_MONOTONIC stamp,
           CPU ms as husk measured it) and resident memory beyond guest RAM
           (/proc/PID/smaps of a running husk), --runs times for each of
           --seccomp-modes (default enforce and off), alternating. The guest does
           not need to get far: every run is stopped with SIGTERM after
           --sample-after seconds.
  boots    side-by-side boots of one kernel + initramfs + command line, husk and
           QEMU microvm alternating, each with a vsock device (QEMU: vhost-vsock,
           loaded if need be), timed from just before spawn to the init's
           HUSK_READY line and to the agent's "listening" line on the console;
           the agent's boot marks line (husk.boot_marks=1) splits the guest's
           time for both (boot_phases.py), husk's timeline splits its own. Each
           boot is stopped with SIGTERM after that line. Run where /dev/kvm runs
           Linux guests (directly, or inside the nested test host).
  matrix   the jail and seccomp cost (boot_matrix.py). `boots --matrix-out
           FILE` runs it after the boots, in the same (test host) session.
  report   merges them into build/bench/boot.json and prints a table.

This is a benchmark: it prints numbers and never judges them. The exit code
says only whether the measurements could be made (the marker was seen, the
timeline was written).
"""

import argparse
import datetime
import os
import platform
import re
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

from bench_stats import TCG_NOTE, delta, ratio, read_json, recycle_pages, stage_paths, summary, write_json
from boot_matrix import cmd_matrix, matrix_report, print_matrix
from boot_phases import MARKS_RE, parse_marks, print_split
from boot_phases import report as phases_report

MARKER = b"HUSK_READY"
# What husk exec boots without a root disk (runtime/agent/vm_session.cpp,
# runtime/job/job_runner.cpp), plus the agent's boot marks line.
BOOT_CMDLINE = ("console=ttyS0 reboot=k panic=-1 quiet husk.agent=1 rdinit=/sbin/husk-agent "
                "husk.boot_marks=1")


def shell_cmdline(cmdline):
    """The command line with the initramfs's shell (husk.test=shell) as init."""
    words = [w for w in cmdline.split() if not w.startswith("rdinit=")]
    return " ".join(words + ["husk.test=shell"])
AGENT_RE = re.compile(rb"husk-agent: listening on vsock port")
MARKER_RE = re.compile(rb"HUSK_READY uptime=([0-9.]+) cpus=([0-9]+)")


# --------------------------------------------------------- one timed process
def tree_cpu_ms(pid):
    """CPU time (ms) so far of pid and every process under it, each of
    their threads (/proc/PID/task/TID/schedstat: ns on a CPU); None when
    pid is gone. A jailed husk runs its VMM in a child."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            tids = os.listdir("/proc/%d/task" % p)
        except OSError:
            if p == pid:
                return None
            continue
        for tid in tids:
            try:
                with open("/proc/%d/task/%s/schedstat" % (p, tid)) as f:
                    total += int(f.read().split()[0])
                with open("/proc/%d/task/%s/children" % (p, tid)) as f:
                    todo.extend(int(c) for c in f.read().split())
            except (OSError, ValueError, IndexError):
                pass
    return total / 1e6


def timed_run(argv, console_log, stderr_log, timeout_s, stop_re=None, agent_re=None):
    """Spawns argv, reads its stdout until EOF and waits for it.

    Times (ms) are measured from just before the spawn to the moment the line
    holding the marker was read, the line matching agent_re (agent_ms), and
    the process's exit. Once a line matching stop_re has been read the
    process gets SIGTERM (a VM whose agent never exits)."""
    res = {"marker_ms": None, "agent_ms": None, "agent_cpu_ms": None, "exit_ms": None, "exit_code": None,
           "timed_out": False, "guest_uptime_s": None, "guest_cpus": None}
    seen = b""
    stopped = False
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
                if agent_re or stop_re:
                    seen = (seen + chunk)[-65536:]
                    if agent_re and res["agent_ms"] is None and agent_re.search(seen):
                        res["agent_ms"] = (now - t0) / 1e6
                        # The VMM's own CPU to this point, every thread:
                        # start-up, the vCPU's exits, the devices.
                        res["agent_cpu_ms"] = tree_cpu_ms(proc.pid)
                    if stop_re and not stopped and stop_re.search(seen):
                        stopped = True
                        proc.send_signal(signal.SIGTERM)
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
def load_vhost_vsock():
    """"" when /dev/vhost-vsock is there (loaded if need be), else why not."""
    here = os.path.dirname(os.path.abspath(__file__))
    p = subprocess.run(["bash", "-c", 'source "$1" && load_vhost_vsock', "bash",
                        os.path.join(here, "vhost_vsock.sh")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return "" if p.returncode == 0 else (p.stdout.strip() or "load_vhost_vsock failed")


def stage_files(a):
    """stage_paths of husk, the kernel and the initrd, `a` pointed at the copies."""
    stage, copies = stage_paths([a.husk, a.kernel, a.initrd])
    for attr in ("husk", "kernel", "initrd"):
        setattr(a, attr, copies[getattr(a, attr)])
    return stage


def cmd_boots(a):
    os.makedirs(a.log_dir, exist_ok=True)
    stage = stage_files(a) if a.stage else None
    runs = {"husk": [], "qemu": []}
    # Both VMMs boot the same kernel, initramfs and command line, each with a
    # vsock device for the agent; a boot is over when the agent listens and
    # has printed its boot marks (boot_phases.py).
    husk_argv = [a.husk, "boot", "--kernel", a.kernel, "--initrd", a.initrd,
                 "--cmdline", a.cmdline, "--vcpus", str(a.vcpus),
                 "--memory", str(a.memory), "--no-input"]
    qemu_argv = [a.qemu, "-M", a.qemu_machine, "-enable-kvm", "-cpu", "host",
                 "-m", str(a.memory), "-smp", str(a.vcpus), "-nodefaults",
                 "-no-user-config", "-nographic", "-serial", "stdio", "-no-reboot",
                 "-kernel", a.kernel, "-initrd", a.initrd, "-append", a.cmdline]
    sock_dir = tempfile.mkdtemp(prefix="husk-bench-")
    no_vhost = load_vhost_vsock()
    if no_vhost:
        print("bench: QEMU gets no vsock device (%s): its agent cannot listen" % no_vhost, flush=True)
    for i in range(a.runs):
        # Alternate which VMM goes first so neither always runs on a warmer cache.
        order = ("husk", "qemu") if i % 2 == 0 else ("qemu", "husk")
        for vmm in order:
            base = os.path.join(a.log_dir, "%s-%02d" % (vmm, i + 1))
            # Not beside the logs: the test host's repository is a 9p mount,
            # where a Unix socket cannot be bound.
            vsock = os.path.join(sock_dir, "%s-%02d.vsock" % (vmm, i + 1))
            if vmm == "husk":
                timeline = base + ".timeline.json"
                for f in (timeline, vsock):
                    if os.path.exists(f):
                        os.unlink(f)
                argv = husk_argv + ["--vsock", vsock, "--timeline-json", timeline]
            else:
                argv = qemu_argv + ([] if no_vhost else
                                    ["-device", "vhost-vsock-device,guest-cid=%d" % (1000 + i)])
            recycled_ms = recycle_pages(a.recycle_mib) if a.recycle_mib else None
            r = timed_run(argv, base + ".console", base + ".stderr", a.timeout,
                          stop_re=MARKS_RE, agent_re=AGENT_RE)
            r["run"] = i + 1
            r["recycled_mib"], r["recycled_ms"] = a.recycle_mib, recycled_ms
            with open(base + ".console", "rb") as f:
                r["marks"] = parse_marks(f.read())
            if os.path.exists(vsock):
                os.unlink(vsock)
            if vmm == "husk":
                tl = read_json(timeline)
                if tl:
                    r["timeline"] = tl
                    fk = tl.get("first_kvm_run_monotonic_ns")
                    if fk:
                        r["first_kvm_run_ms"] = (fk - r["spawn_monotonic_ns"]) / 1e6
            runs[vmm].append(r)
            fmt = lambda v: "-" if v is None else "%.0f ms" % v
            print("bench: run %2d %-4s HUSK_READY %-10s agent listening %-10s CPU %-10s code %s%s%s" % (
                i + 1, vmm, fmt(r["marker_ms"]), fmt(r["agent_ms"]), fmt(r["agent_cpu_ms"]), r["exit_code"],
                " TIMEOUT" if r["timed_out"] else "",
                "" if recycled_ms is None else " (recycled %d MiB in %.0f ms first)" % (a.recycle_mib, recycled_ms)),
                flush=True)
            # Partial results survive an interrupted session.
            write_json(a.out, {"runs": runs, "argv": {"husk": husk_argv, "qemu": qemu_argv},
                               "complete": False})
    shutil.rmtree(sock_dir, ignore_errors=True)
    # Resident memory of both VMMs in this same environment, 1 vCPU: the guest
    # runs with husk.test=shell so that it idles in a shell after its marker;
    # smaps is read --sample-after seconds after the marker. No timing here.
    mem = {"husk": [], "qemu": []}
    for i in range(a.mem_runs):
        h_argv = [a.husk, "boot", "--kernel", a.kernel, "--initrd", a.initrd,
                  "--cmdline", shell_cmdline(a.cmdline), "--vcpus", "1",
                  "--memory", str(a.mem_memory), "--no-input"]
        q_argv = [a.qemu, "-M", a.qemu_machine, "-enable-kvm", "-cpu", "host",
                  "-m", str(a.mem_memory), "-smp", "1", "-nodefaults", "-no-user-config",
                  "-nographic", "-serial", "stdio", "-no-reboot",
                  "-kernel", a.kernel, "-initrd", a.initrd,
                  "-append", shell_cmdline(a.cmdline)]
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
        "staged": stage,
        "recycled_mib_before_each_boot": a.recycle_mib,
        "complete": True,
        "machine": {"kernel_release": platform.release(), "nproc": os.cpu_count(),
                    "loadavg_after": os.getloadavg()},
    })
    rc = 0
    if a.matrix_out and a.matrix_runs > 0:
        print("bench: jail x seccomp matrix: %d rounds of `husk run %s`, 4 cells each"
              % (a.matrix_runs, a.matrix_job), flush=True)
        rc = cmd_matrix(a)
    if stage:
        shutil.rmtree(stage, ignore_errors=True)
    return rc



# ------------------------------------------------------------------ host
def smaps_figures(pid, guest_bytes):
    """Sums Rss (and private pages) of all mappings of pid, guest RAM apart.

    Guest RAM: husk marks every mapping of it MADV_DONTDUMP ("dd" in
    VmFlags: its RAM, a memfd or anonymous, and the kernel's text mapped
    over it from its file); QEMU's is the anonymous mapping of exactly
    the guest's size."""
    maps = []  # [start, end, path, rss, private, vmflags]
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            first = line.split(None, 1)[0]
            if not first.endswith(":"):
                # A mapping header: start-end perms offset dev inode [path]
                fields = line.split()
                start, end = (int(x, 16) for x in fields[0].split("-"))
                maps.append([start, end, fields[5] if len(fields) > 5 else "", 0, 0, ""])
            elif first == "Rss:":
                maps[-1][3] += int(line.split()[1])
            elif first in ("Private_Clean:", "Private_Dirty:"):
                maps[-1][4] += int(line.split()[1])
            elif first == "VmFlags:":
                maps[-1][5] = line
    guest = [m for m in maps if " dd" in m[5]]
    if sum(m[1] - m[0] for m in guest) < guest_bytes:
        anon = [m for m in maps if m[2] == "" and m[1] - m[0] == guest_bytes]
        guest = anon[:1]
    total_rss = sum(m[3] for m in maps)
    total_priv = sum(m[4] for m in maps)
    guest_rss = sum(m[3] for m in guest)
    guest_priv = sum(m[4] for m in guest)
    return {
        "guest_mapping_found": bool(guest),
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


def bare_images(folder):
    """A kernel of 7 bytes (an ELF whose one segment resets the VM through
    the i8042 at once) and an initrd of 4 KiB, written into `folder`: husk's
    start with next to nothing to copy, so that the bench can tell the
    VMM's own cost from the cost of the guest's images."""
    code = bytes([0xb0, 0xfe, 0xe6, 0x64, 0xf4, 0xeb, 0xfd])  # mov al,0xfe; out 0x64,al; hlt; jmp hlt
    paddr = 0x1000000
    ehdr = (b"\x7fELF" + bytes([2, 1, 1]) + bytes(9) +
            struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, paddr, 64, 0, 0, 64, 56, 1, 0, 0, 0))
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0x1000, paddr, paddr, len(code), len(code), 0x1000)
    elf = bytearray(0x1000 + len(code))
    elf[:len(ehdr)] = ehdr
    elf[len(ehdr):len(ehdr) + len(phdr)] = phdr
    elf[0x1000:] = code
    kernel, initrd = os.path.join(folder, "bare-kernel.elf"), os.path.join(folder, "bare-initrd.cpio")
    with open(kernel, "wb") as f:
        f.write(elf)
    with open(initrd, "wb") as f:
        f.write(bytes(4096))
    return kernel, initrd


def cmd_host(a):
    os.makedirs(a.log_dir, exist_ok=True)
    husk_runs, qemu_runs = [], []
    modes = [m for m in a.seccomp_modes.split(",") if m]
    bare_kernel, bare_initrd = bare_images(a.log_dir)
    fmt = lambda v: "-" if v is None else "%.1f" % v
    for i in range(a.runs):
        # Alternate which mode goes first so neither always runs on a warmer cache.
        order = modes if i % 2 == 0 else list(reversed(modes))
        for mode in order:
            timeline = os.path.join(a.log_dir, "host-husk-%s-%02d.timeline.json" % (mode, i + 1))
            if os.path.exists(timeline):
                os.unlink(timeline)
            argv = [a.husk, "boot", "--kernel", a.kernel, "--initrd", a.initrd,
                    "--vcpus", "1", "--memory", str(a.memory), "--no-input",
                    "--seccomp=" + mode, "--timeline-json", timeline]
            r = sample_process(argv, a.memory, a.sample_after, timeline)
            r["run"] = i + 1
            r["seccomp"] = mode
            husk_runs.append(r)
            print("bench: host run %2d husk --seccomp=%-7s first KVM_RUN %s ms wall, %s ms CPU; "
                  "RSS beyond guest RAM %s KiB"
                  % (i + 1, mode, fmt(r.get("first_kvm_run_wall_ms")),
                     fmt(r.get("first_kvm_run_cpu_ms")), r.get("overhead_rss_kib", "-")), flush=True)
        # The same start with the bare images (--seccomp=enforce): the VM
        # resets at its first instruction and husk exits.
        timeline = os.path.join(a.log_dir, "host-husk-bare-%02d.timeline.json" % (i + 1))
        if os.path.exists(timeline):
            os.unlink(timeline)
        argv = [a.husk, "boot", "--kernel", bare_kernel, "--initrd", bare_initrd, "--vcpus", "1",
                "--memory", str(a.memory), "--no-input", "--seccomp=enforce", "--timeline-json", timeline]
        r = sample_process(argv, a.memory, 0.3, timeline)
        r.update({"run": i + 1, "seccomp": "enforce", "bare": True})
        husk_runs.append(r)
        print("bench: host run %2d husk, bare images    first KVM_RUN %s ms wall, %s ms CPU"
              % (i + 1, fmt(r.get("first_kvm_run_wall_ms")), fmt(r.get("first_kvm_run_cpu_ms"))), flush=True)
    if a.qemu:
        # QEMU's memory overhead, for reference: same guest size, same sampling.
        for i in range(a.qemu_runs):
            argv = [a.qemu, "-M", a.qemu_machine, "-enable-kvm", "-cpu", "host",
                    "-m", str(a.memory), "-smp", "1", "-nodefaults", "-no-user-config",
                    "-display", "none", "-serial", "null", "-no-reboot",
                    "-kernel", a.kernel, "-initrd", a.initrd, "-append", a.cmdline]
            r = sample_process(argv, a.memory, a.sample_after)
            qemu_runs.append(r)
            print("bench: host run %2d qemu RSS beyond guest RAM %s KiB (guest mapping found: %s)"
                  % (i + 1, r.get("overhead_rss_kib", "-"), r.get("guest_mapping_found")),
                  flush=True)
    write_json(a.out, {"husk": husk_runs, "qemu": qemu_runs, "memory_mib": a.memory,
                       "sample_after_s": a.sample_after, "seccomp_modes": modes})
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
               "side_by_side_files_staged_in": boots.get("staged"),
               "side_by_side_recycled_mib_before_each_boot": boots.get("recycled_mib_before_each_boot"),
               "note": "times in ms from just before spawn; absolute times from a nested "
                       "test host are not hardware figures, compare the ratio",
           }}
    failed = []
    vmms = {}
    for vmm in ("husk", "qemu"):
        runs = (boots.get("runs") or {}).get(vmm, [])
        markers = [r["marker_ms"] for r in runs]
        agents = [r.get("agent_ms") for r in runs]
        entry = {
            "runs": len(runs),
            "marker_missing": sum(1 for v in markers if v is None),
            "time_to_marker_ms": summary(markers),
            "time_to_agent_ms": summary(agents),
            "cpu_to_agent_ms": summary([r.get("agent_cpu_ms") for r in runs]),
            "agent_missing": sum(1 for v in agents if v is None),
            "guest_uptime_at_marker_s": summary([r.get("guest_uptime_s") for r in runs]),
        }
        if vmm == "husk":
            entry["first_kvm_run_ms"] = summary([r.get("first_kvm_run_ms") for r in runs])
            entry["build_ms"] = summary([(r.get("timeline") or {}).get("build_ms") for r in runs])
        vmms[vmm] = entry
        if entry["marker_missing"] or entry["agent_missing"] or len(runs) < a.runs:
            failed.append("%s: marker seen in %d, agent listening in %d of %d runs" % (
                vmm, len(runs) - entry["marker_missing"], len(runs) - entry["agent_missing"], a.runs))
    if not boots.get("complete"):
        failed.append("the side-by-side step did not finish (%s)"
                      % ("no results" if not boots else "partial results"))
    out["vmms"] = vmms
    out["phases"] = phases_report((boots.get("runs") or {}))
    med = lambda v, k: vmms[v][k]["median"]
    out["ratio_husk_over_qemu"] = {
        "time_to_marker": ratio(med("husk", "time_to_marker_ms"), med("qemu", "time_to_marker_ms")),
        "time_to_agent": ratio(med("husk", "time_to_agent_ms"), med("qemu", "time_to_agent_ms")),
        "cpu_to_agent": ratio(med("husk", "cpu_to_agent_ms"), med("qemu", "cpu_to_agent_ms")),
    }

    bare = [r for r in host.get("husk", []) if r.get("bare")]
    host_all = [r for r in host.get("husk", []) if not r.get("bare")]
    # The figures of record are the default's (--seccomp=enforce); runs from
    # before the modes existed have no "seccomp" key and were the default.
    hr = [r for r in host_all if r.get("seccomp", "enforce") == "enforce"]
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
    if bare:
        host_out["bare_images"] = {
            "note": "husk boot --seccomp=enforce with a 7-byte kernel that resets the VM and a 4 KiB "
                    "initrd (boot_bench.py bare_images), runs interleaved with the others: the "
                    "VMM's own start, without the copy of this guest's kernel and initrd",
            "runs": len(bare),
            "start_to_first_kvm_run_wall_ms": summary([r.get("first_kvm_run_wall_ms") for r in bare]),
            "start_to_first_kvm_run_cpu_ms": summary([r.get("first_kvm_run_cpu_ms") for r in bare]),
        }
    modes = host.get("seccomp_modes") or ["enforce"]
    host_out["seccomp_modes"] = {}
    for mode in modes:
        mr = [r for r in host_all if r.get("seccomp", "enforce") == mode]
        host_out["seccomp_modes"][mode] = {
            "runs": len(mr),
            "start_to_first_kvm_run_wall_ms": summary([r.get("first_kvm_run_wall_ms") for r in mr]),
            "start_to_first_kvm_run_cpu_ms": summary([r.get("first_kvm_run_cpu_ms") for r in mr]),
            "build_ms": summary([r.get("build_ms") for r in mr]),
            "husk_overhead_rss_kib": mem(mr, "overhead_rss_kib"),
        }
    sm_ = host_out["seccomp_modes"]
    if "off" in sm_:
        host_out["seccomp_minus_off"] = {
            "note": "difference of the medians (ms; RSS in KiB), husk boot, the seccomp "
                    "filters compiled and installed (enforce; log: the same filters, a "
                    "forbidden call is logged, not fatal) or not (off), runs alternating"}
        for mode in sm_:
            if mode == "off":
                continue
            d = lambda k: delta(sm_[mode][k]["median"], sm_["off"][k]["median"])
            host_out["seccomp_minus_off"][mode] = {
                k: d(k) for k in ("start_to_first_kvm_run_cpu_ms", "start_to_first_kvm_run_wall_ms",
                                  "build_ms", "husk_overhead_rss_kib")}
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

    matrix = None
    if a.matrix:
        mx = read_json(a.matrix)
        if not mx:
            failed.append("jail x seccomp matrix: no results (%s)" % a.matrix)
        else:
            matrix = matrix_report(mx, a.where)
            out["jail_seccomp_matrix"] = matrix
            if not mx.get("complete"):
                failed.append("jail x seccomp matrix: did not finish (partial results)")
            for e in mx.get("errors", []):
                failed.append("jail x seccomp matrix: " + e)
    out["failures"] = failed
    write_json(a.out, out)

    # ---- the human table
    def ms(v):
        return "-" if v is None else ("%.0f" % v if v >= 100 else "%.1f" % v)

    print()
    print("boot benchmark: %s, %d runs each, %d vCPU, %d MiB; side by side in %s"
          % (os.path.basename(a.kernel), a.runs, a.vcpus, a.memory, a.where))
    if "test host" in a.where:
        print("NOTE: " + TCG_NOTE)
    if boots.get("recycled_mib_before_each_boot"):
        print("NOTE: %d MiB of fresh memory written and freed before each boot (bench_stats.recycle_pages: "
              "pages the previous VM's guest used are slow to write in the test host, once)"
              % boots["recycled_mib_before_each_boot"])
    print("%-6s %-16s %8s %8s %8s %8s" % ("vmm", "ms from spawn", "median", "min", "p90", "max"))
    for vmm in ("husk", "qemu"):
        for key, label in (("time_to_marker_ms", "to HUSK_READY"), ("time_to_agent_ms", "to agent")):
            s = vmms[vmm][key]
            print("%-6s %-16s %8s %8s %8s %8s" % (vmm, label, ms(s["median"]), ms(s["min"]),
                                                  ms(s["p90"]), ms(s["max"])))
    for vmm in ("husk", "qemu"):
        s = vmms[vmm]["cpu_to_agent_ms"]
        print("%-6s %-16s %8s %8s %8s %8s" % (vmm, "CPU to agent", ms(s["median"]), ms(s["min"]),
                                              ms(s["p90"]), ms(s["max"])))
    r = out["ratio_husk_over_qemu"]
    print("ratio husk/qemu of medians: to HUSK_READY %s, to agent listening %s, VMM CPU to agent listening %s"
          % (r["time_to_marker"], r["time_to_agent"], r["cpu_to_agent"]))
    print_split(out["phases"])
    o = host_out["husk_overhead_rss_kib"]["median"]
    p = host_out["husk_overhead_private_kib"]["median"]
    t = host_out["husk_total_rss_kib"]["median"]
    for mode, fig in host_out["seccomp_modes"].items():
        w = fig["start_to_first_kvm_run_wall_ms"]
        c = fig["start_to_first_kvm_run_cpu_ms"]
        rss = fig["husk_overhead_rss_kib"]["median"]
        print("husk host side (own /dev/kvm, husk boot --seccomp=%s, %d runs): spawn to first "
              "KVM_RUN %s ms wall (p90 %s), %s ms CPU (p90 %s); RSS beyond guest RAM %s KiB"
              % (mode, fig["runs"], ms(w["median"]), ms(w["p90"]), ms(c["median"]), ms(c["p90"]),
                 "-" if rss is None else "%.0f" % rss))
    bi = host_out.get("bare_images")
    if bi:
        w, c = bi["start_to_first_kvm_run_wall_ms"], bi["start_to_first_kvm_run_cpu_ms"]
        full = host_out["start_to_first_kvm_run_cpu_ms"]["median"]
        print("husk host side with bare images (a 7-byte kernel, a 4 KiB initrd; --seccomp=enforce, %d runs): "
              "spawn to first KVM_RUN %s ms wall (p90 %s), %s ms CPU (p90 %s); this guest's kernel and "
              "initrd add %s ms CPU" % (bi["runs"], ms(w["median"]), ms(w["p90"]), ms(c["median"]),
                                        ms(c["p90"]), ms(delta(full, c["median"]))))
    for mode, dd in host_out.get("seccomp_minus_off", {}).items():
        if mode == "note":
            continue
        sd = lambda v: "-" if v is None else "%+.1f" % v
        print("husk host side, seccomp %s minus off (medians): %s ms CPU, %s ms wall, %s KiB RSS"
              % (mode, sd(dd["start_to_first_kvm_run_cpu_ms"]), sd(dd["start_to_first_kvm_run_wall_ms"]),
                 sd(dd["husk_overhead_rss_kib"])))
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
    if matrix:
        print_matrix(matrix)
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
        sp.add_argument("--initrd", default="build/guest/initramfs.cpio")
        # The same for both VMMs: what husk exec boots (runtime/agent/
        # vm_session.cpp) and the agent's boot marks line. Every boot is
        # stopped with SIGTERM once that line is out, so reboot= never matters.
        sp.add_argument("--cmdline", default=BOOT_CMDLINE)
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
    b.add_argument("--matrix-out", help="after the boots, the jail x seccomp matrix into this file")
    b.add_argument("--matrix-runs", type=int, default=10, help="rounds of the matrix (0: none)")
    b.add_argument("--matrix-job", default="tests/bench/jobs/true.toml")
    b.add_argument("--stage", action="store_true",
                   help="run husk, the kernel and the initrd from copies in the local /tmp "
                        "(the test host: its repository share caches no file pages)")
    b.add_argument("--recycle-mib", type=int, default=0,
                   help="before each timed boot, write and free this many MiB of fresh memory "
                        "(the test host: bench_stats.recycle_pages); 0: not")

    m = sub.add_parser("matrix")
    common(m)
    m.add_argument("--memory", type=int, default=256)
    m.add_argument("--timeout", type=float, default=300.0, help="seconds per husk run")
    m.add_argument("--matrix-job", default="tests/bench/jobs/true.toml")

    h = sub.add_parser("host")
    common(h)
    h.add_argument("--memory", type=int, default=128)
    h.add_argument("--sample-after", type=float, default=1.0)
    # QEMU 7.2 aborts on a kvm_pvm /dev/kvm (failed to set MSR 0x10a), so its
    # memory figure comes from the side-by-side environment instead (boots).
    h.add_argument("--qemu-runs", type=int, default=0, help="0: skip QEMU's memory figure")
    h.add_argument("--seccomp-modes", default="enforce,off",
                   help="husk boot --seccomp modes, comma-separated, in the order of the "
                        "odd runs; --runs runs of each")

    r = sub.add_parser("report")
    common(r)
    r.add_argument("--memory", type=int, default=256)
    r.add_argument("--boots", required=True)
    r.add_argument("--host", required=True)
    r.add_argument("--where", required=True)
    r.add_argument("--matrix", help="the jail x seccomp matrix (boots --matrix-out)")

    a = p.parse_args()
    if a.cmd == "host" and a.qemu_runs == 0:
        a.qemu = None
    if a.cmd == "matrix":
        a.matrix_runs, a.matrix_out = a.runs, a.out
    return {"boots": cmd_boots, "host": cmd_host, "matrix": cmd_matrix,
            "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())

