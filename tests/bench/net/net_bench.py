#!/usr/bin/env python3
"""tests/bench/net/net_bench.py: the measuring half of `make bench-net` (stdlib only).

Subcommands (tests/bench/net/run runs them in this order):

  measure  everything that needs a guest, in ONE session where guests run
           (directly, or inside the nested test host; as root). Sets up the
           host's side (lo up; when the host has no IPv4 default route, a dummy
           interface with one, which passt needs to start; a tap for the QEMU
           tap cell), starts the server (`net_probe serve PORT` on 0.0.0.0),
           then --runs rounds of the cells round-robin (each round starts one
           cell later):
             husk-passt  `husk run JOB`, [network] mode="open" backend="passt"
             husk-tap    the same with backend="tap"
             qemu-passt  QEMU microvm, -netdev stream to a passt of its own
             qemu-tap    QEMU microvm, -netdev tap on a tap made here
             husk-passt-egress, husk-tap-egress (only when asked for)
                         husk in mode="egress", allow = the server's port
             qemu-tap-nooffload (only when asked for)
                         qemu-tap with vnet_hdr=off: no offloads, as husk
           Same kernel, initramfs, memory and vCPUs in every cell. In each
           guest: `net_probe all HOST PORT N SECONDS` (connect, rr, send,
           recv; tests/bench/net/net_probe.c), one boot per run. A cell that
           cannot run here (no passt, a husk without [network], not root) is
           recorded as skipped with the reason; no number is made up.
  report   merges the runs into build/bench/net.json and prints a table.

A benchmark: it prints numbers and judges none of them. The exit code says
whether every run that was tried produced its results.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

CELLS = ("husk-passt", "husk-tap", "qemu-passt", "qemu-tap")
# Optional: husk in [network] mode = "egress" with the server's port as the
# only allowed destination (the allow-list's cost against "open").
EGRESS_CELLS = ("husk-passt-egress", "husk-tap-egress")
# Optional: QEMU's tap without the virtio-net header (vnet_hdr=off), so
# without checksum and segmentation offloads, as husk's device (no offloads).
NOOFFLOAD_CELLS = ("qemu-tap-nooffload",)
TESTS = ("connect", "rr", "send", "recv")
PROBE_RE = re.compile(r"NETPROBE (\{.*\})")
IF_RE = re.compile(r"NETBENCH_IF mtu=(\d+)")
TCP_RE = re.compile(r"NETBENCH_TCP ((?:\w+=-?\d+ ?)+)")
# The guest's TCP counters after the probe (all four tests together):
# segments in and out, its own retransmissions, and the old (duplicate)
# segments it received, i.e. the backend's retransmissions (DelayedACKLost;
# passt negotiates no SACK, so there are no D-SACKs to count).
TCP_KEYS = ("InSegs", "OutSegs", "RetransSegs", "DelayedACKLost", "TCPDSACKOldSent", "TCPTimeouts",
            "TCPOFOQueue", "TCPRcvQDrop", "EstabResets")
GUEST_TCP_COUNTERS = ("awk '/^Tcp(Ext)?:/ { if (seen[$1]++) { for (i = 2; i <= NF; i++) printf \"%s=%s \", "
                      "h[$1, i], $i } else for (i = 2; i <= NF; i++) h[$1, i] = $i } "
                      "END { print \"\" }' /proc/net/snmp /proc/net/netstat")
# The passt side, as husk's passt backend sets it up (issue 14): the guest is
# 10.0.2.15/24, its gateway 10.0.2.2 is the host's loopback (passt maps it).
PASST_GUEST, PASST_PREFIX, PASST_GW, PASST_DNS = "10.0.2.15", 24, "10.0.2.2", "10.0.2.3"
# The QEMU tap cell's /30 (husk's tap backend picks its own).
TAP_NAME, TAP_HOST, TAP_GUEST, TAP_PREFIX = "husknb0", "172.30.99.1", "172.30.99.2", 30
# passt wants a host interface with an IPv4 default route to copy.
DUMMY_NAME, DUMMY_ADDR, DUMMY_GW = "husknbd0", "192.168.250.1/24", "192.168.250.254"
TCG_NOTE = ("absolute numbers from the nested test host are TCG-nested, not hardware figures: the "
            "test host has one emulated CPU shared by the guest's vCPU, the VMM, passt and the "
            "server; compare side by side, the ratios count")


# ---------------------------------------------------------------- helpers
def percentile(sorted_vals, q):
    if not sorted_vals:
        return None
    pos = (len(sorted_vals) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def median(values):
    vals = sorted(v for v in values if v is not None)
    return round(percentile(vals, 0.5), 3) if vals else None


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


def sh(argv, check=True):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.decode(errors="replace").strip()
    if check and p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), p.returncode, out))
    return p.returncode, out


def tail(text, n=8):
    return [l for l in text.replace("\r", "").splitlines() if l.strip()][-n:]


def parse_output(text):
    """NETPROBE lines (one per test) and the guest's MTU from a console or stdout."""
    res = {}
    for m in PROBE_RE.finditer(text):
        try:
            d = json.loads(m.group(1))
        except ValueError:
            continue
        res[d.get("test", "?")] = d
    m = IF_RE.search(text)
    if m:
        res["mtu"] = int(m.group(1))
    m = TCP_RE.search(text)
    if m:
        counters = dict(kv.split("=") for kv in m.group(1).split())
        res["guest_tcp"] = {k: int(counters[k]) for k in TCP_KEYS if k in counters}
    return res


def make_initrd(base, probe, init, out):
    """The initramfs + a second archive with /bin/net_probe and
    /bin/net_bench_init (the kernel unpacks concatenated cpio archives as one)."""
    stage = tempfile.mkdtemp(prefix="netbench-stage.")
    try:
        os.makedirs(stage + "/bin")
        shutil.copy(probe, stage + "/bin/net_probe")
        shutil.copy(init, stage + "/bin/net_bench_init")
        os.chmod(stage + "/bin/net_probe", 0o755)
        os.chmod(stage + "/bin/net_bench_init", 0o755)
        with open(out + ".tools", "wb") as f:
            find = subprocess.Popen(["find", "."], cwd=stage, stdout=subprocess.PIPE)
            cpio = subprocess.Popen(["cpio", "-o", "-H", "newc", "--quiet"], cwd=stage,
                                    stdin=find.stdout, stdout=subprocess.PIPE)
            gz = subprocess.Popen(["gzip", "-9"], stdin=cpio.stdout, stdout=f)
            find.stdout.close()
            cpio.stdout.close()
            if gz.wait() or cpio.wait() or find.wait():
                raise RuntimeError("packing the probe into an initramfs failed")
        with open(out, "wb") as f:
            for part in (base, out + ".tools"):
                with open(part, "rb") as p:
                    shutil.copyfileobj(p, f)
        os.unlink(out + ".tools")
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def run_limited(argv, timeout, stdout_path, stderr_path=None):
    """Runs argv to its end (SIGTERM, then SIGKILL past timeout): exit code,
    timed out, wall seconds; stdout (and stderr, or into stdout) to files."""
    t0 = time.monotonic()
    with open(stdout_path, "wb") as out:
        err = open(stderr_path, "wb") if stderr_path else subprocess.STDOUT
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                 start_new_session=True)
            timed_out = False
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        finally:
            if stderr_path:
                err.close()
    return p.returncode, timed_out, round(time.monotonic() - t0, 3)


# ------------------------------------------------------------ host side
class Host:
    """The host's network for the session: what was set up, to undo it."""

    def __init__(self, a):
        self.a = a
        self.notes = []
        self.undo = []
        self.server = None

    def setup(self, want_tap):
        sh(["ip", "link", "set", "lo", "up"], check=False)
        _, routes = sh(["ip", "-4", "route", "show", "default"], check=False)
        if not routes.strip():
            sh(["ip", "link", "add", DUMMY_NAME, "type", "dummy"])
            self.undo.append(["ip", "link", "del", DUMMY_NAME])
            sh(["ip", "addr", "add", DUMMY_ADDR, "dev", DUMMY_NAME])
            sh(["ip", "link", "set", DUMMY_NAME, "up"])
            sh(["ip", "route", "add", "default", "via", DUMMY_GW, "dev", DUMMY_NAME])
            self.notes.append("no IPv4 default route on this host: made a dummy interface %s %s with a "
                              "default route via %s (passt copies its addresses from the interface of "
                              "the default route and exits without one: 'External interface not usable')"
                              % (DUMMY_NAME, DUMMY_ADDR, DUMMY_GW))
        if want_tap:
            sh(["ip", "tuntap", "add", "dev", TAP_NAME, "mode", "tap"])
            self.undo.append(["ip", "link", "del", TAP_NAME])
            sh(["ip", "addr", "add", "%s/%d" % (TAP_HOST, TAP_PREFIX), "dev", TAP_NAME])
            sh(["ip", "link", "set", TAP_NAME, "up"])

    def start_server(self):
        self.server = subprocess.Popen([self.a.probe, "serve", str(self.a.port)], stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        line = self.server.stderr.readline().decode(errors="replace")
        if "NETPROBE_SERVING" not in line:
            raise RuntimeError("the server did not start: %s" % line.strip())

    def teardown(self):
        if self.server:
            self.server.kill()
            self.server.wait()
        for argv in reversed(self.undo):
            sh(argv, check=False)


# ------------------------------------------------------------------ cells
def husk_job(a, backend, path, mode="open"):
    run = ("echo \"NETBENCH_IF mtu=$(cat /sys/class/net/eth0/mtu)\"; "
           "/bin/net_probe all host.husk.internal %d %d %d; rc=$?; echo \"NETBENCH_TCP $(%s)\"; exit $rc"
           % (a.port, a.n, a.seconds, GUEST_TCP_COUNTERS))
    with open(path, "w") as f:
        f.write("# written by tests/bench/net/net_bench.py for `make bench-net`\n"
                "version = 1\n\n"
                "[vm]\nmemory = \"%dMiB\"\nvcpus = %d\n\n"
                "[[files]]\nsource = %s\ndestination = \"/bin/net_probe\"\nmode = \"0755\"\n\n"
                "[network]\nmode = \"%s\"\nbackend = \"%s\"\n%s\n"
                "[process]\nrun = %s\ntimeout = \"%ds\"\n"
                % (a.memory, a.vcpus, json.dumps(os.path.abspath(a.probe)), mode, backend,
                   "allow = [\"host.husk.internal:%d\"]\n" % a.port if mode == "egress" else "",
                   json.dumps(run), a.timeout))


def husk_support(a, mode):
    """'' when this husk takes a [network] job, else why not."""
    if not a.husk or not os.access(a.husk, os.X_OK):
        return "no husk binary (%s)" % a.husk
    job = os.path.join(a.log_dir, "probe-validate-%s.toml" % mode)
    husk_job(a, "passt", job, mode)
    rc, out = sh([a.husk, "validate", job], check=False)
    if rc != 0:
        return "this husk refuses a [network] job (issue 14 not in this build): %s" % " ".join(tail(out, 2))
    return ""


def run_husk(a, backend, base, mode):
    job = base + ".toml"
    husk_job(a, backend, job, mode)
    argv = [a.husk, "run", job, "--json", "--result", base + ".result.json",
            "--kernel", a.kernel, "--initrd", a.initrd] + a.husk_flags
    rc, timed_out, wall = run_limited(argv, a.timeout + 60, base + ".stdout", base + ".stderr")
    with open(base + ".stdout", errors="replace") as f:
        text = f.read()
    r = parse_output(text)
    result = read_json(base + ".result.json") or {}
    r.update({"argv": argv, "exit_code": rc, "timed_out": timed_out, "wall_s": wall,
              "verdict": result.get("verdict")})
    if not all(t in r for t in TESTS):
        with open(base + ".stderr", errors="replace") as f:
            r["error"] = tail(f.read(), 6) or tail(text, 6)
    return r


def qemu_argv(a, cmdline, netdev):
    return [a.qemu, "-M", a.qemu_machine, "-enable-kvm", "-cpu", "host", "-m", str(a.memory),
            "-smp", str(a.vcpus), "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio",
            "-no-reboot", "-kernel", a.kernel, "-initrd", a.qemu_initrd, "-append", cmdline,
            "-netdev", netdev, "-device", "virtio-net-device,netdev=n0"]


def guest_cmdline(a, addr, gw, host, mtu):
    return ("console=ttyS0 quiet reboot=t panic=-1 rdinit=/bin/net_bench_init netbench.addr=%s "
            "netbench.gw=%s netbench.mtu=%d netbench.host=%s netbench.port=%d netbench.n=%d "
            "netbench.seconds=%d" % (addr, gw, mtu, host, a.port, a.n, a.seconds))


def run_qemu(a, backend, base, offload=True):
    passt = None
    sockdir = None
    extra = {}
    try:
        if backend == "passt":
            # passt drops to nobody before it binds its socket: the folder must
            # be writable by nobody. -1: it exits when QEMU disconnects.
            sockdir = tempfile.mkdtemp(prefix="netbench-passt.")
            os.chmod(sockdir, 0o777)
            sock = os.path.join(sockdir, "passt.sock")
            # The options of husk's passt (runtime/net/passt.cpp), but a
            # socket file (-s, one-off) where husk passes a socketpair (-F).
            pargv = [a.passt, "--foreground", "--quiet", "--one-off", "--socket", sock, "--ipv4-only",
                     "--address", PASST_GUEST, "--netmask", str(PASST_PREFIX), "--gateway", PASST_GW,
                     "--dns-forward", PASST_DNS, "--mtu", str(a.passt_mtu or 1500),
                     "--tcp-ports", "none", "--udp-ports", "none"]
            extra["passt_argv"] = pargv
            plog = open(base + ".passt.log", "wb")
            passt = subprocess.Popen(pargv, stdin=subprocess.DEVNULL, stdout=plog, stderr=plog)
            plog.close()
            deadline = time.monotonic() + 10
            while not os.path.exists(sock) and passt.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if not os.path.exists(sock):
                with open(base + ".passt.log", errors="replace") as f:
                    return {"error": ["passt did not start (exit %s): %s" % (passt.poll(), " | ".join(tail(f.read(), 4)))],
                            **extra}
            netdev = "stream,id=n0,server=off,addr.type=unix,addr.path=%s" % sock
            cmdline = guest_cmdline(a, "%s/%d" % (PASST_GUEST, PASST_PREFIX), PASST_GW, PASST_GW, a.passt_mtu)
        else:
            netdev = "tap,id=n0,ifname=%s,script=no,downscript=no%s" % (
                TAP_NAME, "" if offload else ",vnet_hdr=off")
            cmdline = guest_cmdline(a, "%s/%d" % (TAP_GUEST, TAP_PREFIX), TAP_HOST, TAP_HOST, a.tap_mtu)
        argv = qemu_argv(a, cmdline, netdev)
        rc, timed_out, wall = run_limited(argv, a.timeout + 60, base + ".console")
        with open(base + ".console", errors="replace") as f:
            text = f.read()
        r = parse_output(text)
        r.update({"argv": argv, "exit_code": rc, "timed_out": timed_out, "wall_s": wall, **extra})
        if not all(t in r for t in TESTS):
            r["error"] = tail(text, 8)
        return r
    finally:
        if passt:
            try:
                passt.wait(5)
            except subprocess.TimeoutExpired:
                passt.kill()
                passt.wait()
        if sockdir:
            shutil.rmtree(sockdir, ignore_errors=True)


def cmd_measure(a):
    os.makedirs(a.log_dir, exist_ok=True)
    a.husk_flags = a.husk_flags.split() if a.husk_flags else []
    cells = [c for c in a.cells.split(",") if c]
    skipped = {}
    if os.geteuid() != 0:
        for c in cells:
            if c.split("-")[1] == "tap":
                skipped[c] = "not root: cannot make a tap"
    if not a.passt:
        for c in cells:
            if c.split("-")[1] == "passt":
                skipped[c] = "passt not found (Debian package passt)"
    for mode in ("open", "egress"):
        mine = [c for c in cells if c.startswith("husk-") and c.endswith("-egress") == (mode == "egress")]
        why = husk_support(a, mode) if mine else ""
        for c in mine:
            if why:
                skipped.setdefault(c, why)
    if any(c.startswith("qemu-") for c in cells):
        if not shutil.which(a.qemu):
            for c in cells:
                if c.startswith("qemu-"):
                    skipped.setdefault(c, "%s not found" % a.qemu)
        else:
            a.qemu_initrd = os.path.join(a.log_dir, "qemu-initrd.cpio.gz")
            make_initrd(a.initrd, a.probe, a.guest_init, a.qemu_initrd)
    active = [c for c in cells if c not in skipped]
    host = Host(a)
    data = {"cells": cells, "skipped": skipped, "runs": {c: [] for c in active}, "complete": False,
            "settings": {"runs": a.runs, "n": a.n, "seconds": a.seconds, "port": a.port, "memory_mib": a.memory,
                         "vcpus": a.vcpus, "qemu_passt_mtu": a.passt_mtu, "qemu_tap_mtu": a.tap_mtu,
                         "qemu_machine": a.qemu_machine,
                         "kernel": a.kernel, "initrd": a.initrd, "husk_flags": a.husk_flags},
            "machine_inside": {"kernel_release": platform.release(), "nproc": os.cpu_count(),
                               "hostname": socket.gethostname()}}
    ok = True
    try:
        host.setup(want_tap=any(c.startswith("qemu-tap") for c in active))
        host.start_server()
        data["host_notes"] = host.notes
        for note in host.notes:
            print("bench: " + note, flush=True)
        if any(c.split("-")[1] == "passt" for c in active):
            data["passt_version"] = sh([a.passt, "--version"], check=False)[1].splitlines()[:1]
        for i in range(a.runs):
            order = active[i % len(active):] + active[:i % len(active)] if active else []
            for cell in order:
                vmm, backend = cell.split("-")[:2]
                mode = "egress" if cell.endswith("-egress") else "open"
                base = os.path.join(a.log_dir, "%s-%02d" % (cell, i + 1))
                r = (run_husk(a, backend, base, mode) if vmm == "husk"
                     else run_qemu(a, backend, base, offload=not cell.endswith("-nooffload")))
                r["run"] = i + 1
                data["runs"][cell].append(r)
                good = all(t in r for t in TESTS)
                ok = ok and good
                g = lambda t, k, fmt: (fmt % r[t][k]) if t in r and r[t].get(k) is not None else "-"
                print("bench: run %d %-17s connect %s us (p90 %s), rr %s us, send %s MB/s, recv %s MB/s; "
                      "%s s%s" % (i + 1, cell, g("connect", "median_us", "%.0f"), g("connect", "p90_us", "%.0f"),
                                  g("rr", "median_us", "%.0f"), g("send", "mb_s", "%.1f"),
                                  g("recv", "mb_s", "%.1f"), r.get("wall_s", "-"),
                                  "" if good else "  FAILED: " + " | ".join(r.get("error") or [])),
                      flush=True)
                write_json(a.out, data)
    except Exception as e:  # recorded, then the session ends cleanly
        data["error"] = "%s: %s" % (type(e).__name__, e)
        print("bench: error: " + data["error"], file=sys.stderr, flush=True)
        ok = False
    finally:
        host.teardown()
    data["complete"] = True
    data["machine_inside"]["loadavg_after"] = os.getloadavg()
    write_json(a.out, data)
    return 0 if ok else 1


# ----------------------------------------------------------------- report
def summarize(runs):
    good = [r for r in runs if all(t in r for t in TESTS)]
    s = {"runs": len(runs), "ok": len(good)}
    for t, keys in (("connect", ("median_us", "p90_us", "max_us")), ("rr", ("median_us", "p90_us")),
                    ("send", ("mb_s",)), ("recv", ("mb_s",))):
        for k in keys:
            s["%s_%s" % (t, k)] = median(r[t].get(k) for r in good)
    s["connect_failures"] = sum(r["connect"].get("failures", 0) for r in good)
    s["mtu"] = sorted({r.get("mtu") for r in good if r.get("mtu")})
    s["mss"] = sorted({r["send"].get("mss") for r in good if r["send"].get("mss")})
    for k in ("InSegs", "RetransSegs", "DelayedACKLost", "TCPOFOQueue"):
        s["guest_tcp_" + k] = median((r.get("guest_tcp") or {}).get(k) for r in good)
    return s


def cmd_report(a):
    data = read_json(a.measure) or {}
    cells = data.get("cells") or list(CELLS)
    summary = {c: summarize(data.get("runs", {}).get(c, [])) for c in cells if c not in data.get("skipped", {})}
    ratios = {}
    pairs = [("husk/qemu " + b, "husk-" + b, "qemu-" + b) for b in ("passt", "tap")]
    pairs += [("husk/qemu tap, QEMU without offloads", "husk-tap", "qemu-tap-nooffload")]
    pairs += [("husk egress/open " + b, "husk-%s-egress" % b, "husk-" + b) for b in ("passt", "tap")]
    for name, x, y in pairs:
        h, q = summary.get(x), summary.get(y)
        if not h or not q:
            continue
        rr = {}
        for k in ("connect_median_us", "connect_p90_us", "rr_median_us", "send_mb_s", "recv_mb_s"):
            rr[k] = round(h[k] / q[k], 2) if h.get(k) and q.get(k) else None
        ratios[name] = rr
    status = a.inner_status or ("" if data.get("complete") else "the measuring session did not finish")
    report = {
        "benchmark": "bench-net",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "where": a.where,
        "note": TCG_NOTE if "test host" in a.where else "",
        "status": status or "ok",
        "load_before": a.load[0] if a.load else None,
        "load_after": a.load[1] if a.load else None,
        "machine": {"kernel_release": platform.release(), "nproc": os.cpu_count(), "loadavg": os.getloadavg()},
        "fault_sessions": [d for d in a.fault_dirs.split(",") if d],
        "settings": data.get("settings"),
        "host_notes": data.get("host_notes", []),
        "passt_version": data.get("passt_version"),
        "skipped": data.get("skipped", {}),
        "error": data.get("error"),
        "summary": summary,
        "ratios": ratios,
        "runs": data.get("runs", {}),
    }
    write_json(a.out, report)

    cols = [c for c in cells if c in summary]
    w = "%" + str(max([13] + [len(c) for c in cols]) + 2) + "s"
    print()
    print("== bench-net: %s ==" % a.where)
    st = report["settings"] or {}
    print("guest: %s MiB, %s vCPU; %s connects and round trips, %s s per stream direction; "
          "medians over %s runs" % (st.get("memory_mib"), st.get("vcpus"), st.get("n"), st.get("seconds"),
                                    st.get("runs")))
    rows = (("connect median (us)", "connect_median_us", "%.0f"), ("connect p90 (us)", "connect_p90_us", "%.0f"),
            ("round trip median (us)", "rr_median_us", "%.0f"), ("send guest->host (MB/s)", "send_mb_s", "%.1f"),
            ("recv host->guest (MB/s)", "recv_mb_s", "%.1f"))
    if cols:
        print("%-26s" % "" + "".join(w % c for c in cols))
        for label, key, fmt in rows:
            print("%-26s" % label + "".join(w % ((fmt % summary[c][key]) if summary[c].get(key) is not None
                                                     else "-") for c in cols))
        print("%-26s" % "guest MTU / MSS" + "".join(w % ("%s/%s" % (
            ",".join(map(str, summary[c]["mtu"])) or "-", ",".join(map(str, summary[c]["mss"])) or "-"))
            for c in cols))
        if any(summary[c].get("guest_tcp_InSegs") is not None for c in cols):
            for label, key in (("guest TCP segments in", "guest_tcp_InSegs"),
                               ("guest retransmissions", "guest_tcp_RetransSegs"),
                               ("duplicate segments in", "guest_tcp_DelayedACKLost"),
                               ("out-of-order segments in", "guest_tcp_TCPOFOQueue")):
                print("%-26s" % label + "".join(w % ("%.0f" % summary[c][key] if summary[c].get(key) is not None
                                                          else "-") for c in cols))
        print("%-26s" % "runs ok" + "".join(w % ("%d/%d" % (summary[c]["ok"], summary[c]["runs"])) for c in cols))
    for name, rr in ratios.items():
        print("%s: " % name + ", ".join("%s %s" % (k, v if v is not None else "-") for k, v in rr.items()))
    for c, why in report["skipped"].items():
        print("skipped %s: %s" % (c, why))
    for note in report["host_notes"]:
        print("note: " + note)
    if report["load_before"]:
        print("this machine's load average: %s before, %s after" % (report["load_before"], report["load_after"]))
    if report["fault_sessions"]:
        print("sessions lost to a test host fault (logs kept): " + ", ".join(report["fault_sessions"]))
    if report["note"]:
        print("note: " + report["note"])
    if status:
        print("status: " + status)
    print("written: %s" % a.out)
    bad = status or not cols or any(summary[c]["ok"] < summary[c]["runs"] or summary[c]["runs"] == 0 for c in cols)
    return 1 if bad else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--probe", required=True)
    m.add_argument("--guest-init", required=True)
    m.add_argument("--kernel", required=True)
    m.add_argument("--initrd", required=True)
    m.add_argument("--husk", default="")
    m.add_argument("--husk-flags", default="")
    m.add_argument("--qemu", default="qemu-system-x86_64")
    m.add_argument("--qemu-machine", default="microvm,x-option-roms=off,rtc=off,acpi=off,pcie=off")
    m.add_argument("--passt", default=shutil.which("passt") or "")
    m.add_argument("--cells", default=",".join(CELLS))
    m.add_argument("--runs", type=int, default=3)
    m.add_argument("--n", type=int, default=100)
    m.add_argument("--seconds", type=int, default=3)
    m.add_argument("--port", type=int, default=5201)
    m.add_argument("--memory", type=int, default=256)
    m.add_argument("--vcpus", type=int, default=1)
    # husk's passt MTU (runtime/net/passt.h: 1500); passt's own maximum,
    # 65520, is several times faster through passt (README.md).
    m.add_argument("--passt-mtu", type=int, default=65520)
    m.add_argument("--tap-mtu", type=int, default=0)
    m.add_argument("--timeout", type=int, default=300)
    m.add_argument("--log-dir", required=True)
    m.add_argument("--out", required=True)
    r = sub.add_parser("report")
    r.add_argument("--measure", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--where", default="")
    r.add_argument("--inner-status", default="")
    r.add_argument("--load", nargs=2)
    r.add_argument("--fault-dirs", default="")
    a = p.parse_args()
    return cmd_measure(a) if a.cmd == "measure" else cmd_report(a)


if __name__ == "__main__":
    sys.exit(main())
