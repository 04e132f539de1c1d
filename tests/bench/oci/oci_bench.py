#!/usr/bin/env python3
"""tests/bench/oci/oci_bench.py: `ctr run --rm` of a trivial container, runtime against runtime.

Runs where containerd can run containers (inside the nested test host: tests/bench/oci/run
starts it there). One containerd (root, state and socket in a temporary folder, the native
snapshotter, the CRI plugin off), the image from tests/e2e/oci/make_image.py imported once,
then for each of N rounds one `ctr run --rm --runc-binary WRAPPER IMAGE ID true` per runtime,
the runtimes in turn (round-robin, so a slow spell of the machine hits them all alike). Then
one detached `sleep` container per runtime, whose runtime-side processes' resident memory is
read from /proc while it runs. Prints a table and writes a JSON file. It judges nothing.

Usage: oci_bench.py --image TAR --out JSON --runtime NAME=WRAPPER... [--runs N] [--logs DIR]
A WRAPPER is an executable with runc's command line (runc itself, or a script that runs the
runtime with the flags it needs). --exe NAME=PATH,PATH names the executables whose processes
are that runtime's (for the memory figure).
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

IMAGE = "localhost/husk-busybox:latest"


def ctr(sock, *args, timeout=300, check=True):
    r = subprocess.run(["ctr", "-a", sock, *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"ctr {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def start_containerd(work):
    sock = os.path.join(work, "containerd.sock")
    config = os.path.join(work, "config.toml")
    with open(config, "w") as f:
        f.write(f'version = 2\nroot = "{work}/root"\nstate = "{work}/state"\n'
                f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "{sock}"\n')
    log = open(os.path.join(work, "containerd.log"), "w")
    proc = subprocess.Popen(["containerd", "--config", config], stdout=log, stderr=log,
                            start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"containerd exited ({proc.returncode}); see {work}/containerd.log")
        if os.path.exists(sock) and ctr(sock, "version", timeout=30, check=False).returncode == 0:
            return proc, sock
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("containerd did not answer within 90 s")


def rss_of(exes):
    """Sum of VmRSS and of VmHWM (peak) in KiB over the processes whose executable is one
    of `exes`, and their count."""
    rss = hwm = n = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
            if exe not in exes:
                continue
            with open(f"/proc/{pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        rss += int(fields.get("VmRSS", "0 kB").split()[0])
        hwm += int(fields.get("VmHWM", "0 kB").split()[0])
        n += 1
    return rss, hwm, n


def memory(sock, name, wrapper, exes, settle_s):
    """A detached `sleep 120` container: the runtime's processes' memory once it runs."""
    cid = f"mem-{name}"
    ctr(sock, "run", "-d", "--snapshotter", "native", "--runc-binary", wrapper, IMAGE, cid, "sleep", "120")
    try:
        time.sleep(settle_s)
        rss, hwm, n = rss_of(exes)
        shim_rss, shim_hwm, _ = rss_of({"/usr/bin/containerd-shim-runc-v2"})
        return {"processes": n, "rss_kib": rss, "peak_rss_kib": hwm, "shim_rss_kib": shim_rss,
                "shim_peak_rss_kib": shim_hwm}
    finally:
        ctr(sock, "task", "kill", "-s", "SIGKILL", cid, check=False)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "RUNNING" in ctr(sock, "task", "ls", check=False).stdout:
            time.sleep(0.5)
        ctr(sock, "task", "delete", cid, check=False)
        ctr(sock, "containers", "rm", cid, check=False)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--runtime", action="append", default=[], help="NAME=WRAPPER")
    p.add_argument("--exe", action="append", default=[], help="NAME=PATH[,PATH]")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--settle", type=float, default=3.0, help="seconds before reading memory")
    p.add_argument("--logs", default="")
    args = p.parse_args()
    runtimes = [tuple(r.split("=", 1)) for r in args.runtime]
    exes = {k: set(v.split(",")) for k, v in (e.split("=", 1) for e in args.exe)}

    work = tempfile.mkdtemp(prefix="husk-bench-oci-")
    daemon, sock = start_containerd(work)
    results = {name: {"wrapper": w, "wall_s": [], "failures": [], "memory": None} for name, w in runtimes}
    try:
        ctr(sock, "image", "import", "--snapshotter", "native", args.image)
        for name, wrapper in runtimes:  # one untimed warm-up each (caches, page cache)
            r = ctr(sock, "run", "--rm", "--snapshotter", "native", "--runc-binary", wrapper, IMAGE,
                    f"warm-{name}", "true", check=False)
            if r.returncode != 0:
                results[name]["failures"].append(f"warm-up: exit {r.returncode}: {r.stderr.strip()[-500:]}")
        for i in range(args.runs):
            for name, wrapper in runtimes:
                if results[name]["failures"] and not results[name]["wall_s"]:
                    continue  # never worked: not worth N timeouts
                start = time.monotonic()
                r = ctr(sock, "run", "--rm", "--snapshotter", "native", "--runc-binary", wrapper, IMAGE,
                        f"b-{name}-{i}", "true", check=False)
                wall = time.monotonic() - start
                if r.returncode == 0:
                    results[name]["wall_s"].append(round(wall, 3))
                else:
                    results[name]["failures"].append(f"run {i}: exit {r.returncode}: {r.stderr.strip()[-500:]}")
                print(f"oci-bench: {name} run {i + 1}/{args.runs}: {wall:.2f} s"
                      + ("" if r.returncode == 0 else f" FAILED ({r.returncode})"), file=sys.stderr, flush=True)
        for name, wrapper in runtimes:
            if results[name]["wall_s"]:
                try:
                    results[name]["memory"] = memory(sock, name, wrapper, exes.get(name, set()), args.settle)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    results[name]["failures"].append(f"memory: {e}")
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            daemon.kill()
        if args.logs:
            os.makedirs(args.logs, exist_ok=True)
            shutil.copy(os.path.join(work, "containerd.log"), args.logs)
        shutil.rmtree(work, ignore_errors=True)

    for name, res in results.items():
        w = res["wall_s"]
        res["summary"] = {"runs": len(w), "median_s": statistics.median(w) if w else None,
                          "min_s": min(w) if w else None, "max_s": max(w) if w else None}
    with open(args.out, "w") as f:
        json.dump({"runs": args.runs, "image": args.image, "runtimes": results}, f, indent=1)

    print(f"\nctr run --rm IMAGE ID true, {args.runs} runs per runtime (wall seconds); memory: a running "
          "`sleep` container, the runtime's own processes (not the shim)")
    print(f"{'runtime':<10} {'ok':>4} {'median':>8} {'min':>8} {'max':>8} {'procs':>6} {'RSS MiB':>8} "
          f"{'peak MiB':>9} {'shim MiB':>9}")
    for name, res in results.items():
        s, m = res["summary"], res["memory"] or {}
        fmt = lambda v: f"{v:.2f}" if v is not None else "-"
        mib = lambda k: f"{m[k] / 1024:.1f}" if k in m else "-"
        print(f"{name:<10} {s['runs']:>4} {fmt(s['median_s']):>8} {fmt(s['min_s']):>8} {fmt(s['max_s']):>8} "
              f"{m.get('processes', '-'):>6} {mib('rss_kib'):>8} {mib('peak_rss_kib'):>9} {mib('shim_rss_kib'):>9}")
        for failure in res["failures"][:3]:
            print(f"  {name} failure: {failure}")
    return 0 if all(r["wall_s"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
