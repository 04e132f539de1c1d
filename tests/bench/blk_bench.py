#!/usr/bin/env python3
"""tests/bench/blk_bench.py: the timing half of `make bench-blk` (stdlib only).

Subcommands (tests/bench/blk runs them in this order):

  run     boots the same kernel + initramfs (with tests/bench/blk_tool.c added
          as /bin/blk_tool) with husk and with QEMU microvm, alternating, each
          with the same raw disk image as its only virtio-blk disk. The guest's
          init is a shell script that measures /dev/vda with O_DIRECT:
          sequential write and read of --mib MiB in 1 MiB requests and 4 KiB
          random reads at queue depth 1 for --seconds (all with blk_tool). Run where /dev/kvm runs Linux guests
          (directly, or inside the nested test host).
  report  merges the runs into build/bench/blk.json and prints a table.

Both VMMs get the disk the same way: husk `--disk IMG,rw` (buffered host
I/O, fdatasync on FLUSH) and QEMU `cache=writeback` by default (the same
policy). This is a benchmark: it prints numbers and never judges them; the
exit code says only whether every run produced its results.
"""

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

RESULT_RE = re.compile(r"BLK_RESULT test=(\w+) bytes=(\d+) ops=(\d+) seconds=([0-9.]+) "
                       r"mib_s=([0-9.]+) iops=([0-9.]+)")
METRICS = (("seqwrite", "mib_s", "seq write MiB/s"),
           ("seqread", "mib_s", "seq read MiB/s"),
           ("randread", "iops", "4K rand read IOPS"))


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


def guest_script(mib, seconds):
    # The guest's init (rdinit=/bin/blk_run), a file rather than
    # `rdinit=/bin/sh -- -c ...`: QEMU appends its virtio_mmio.device=
    # entries to the command line, and after `--` the kernel would hand them
    # to init instead of parsing them.
    return ("#!/bin/sh\n"
            "mount -t devtmpfs d /dev; mount -t proc p /proc; mount -t sysfs s /sys\n"
            "echo BLK_BEGIN sectors=$(cat /sys/block/vda/size)\n"
            "/bin/blk_tool seqwrite /dev/vda %(mib)d\n/bin/blk_tool seqread /dev/vda %(mib)d\n"
            "/bin/blk_tool randread /dev/vda %(sec)s\n"
            "echo BLK_END\nreboot -f\n" % {"mib": mib, "sec": seconds})


def parse_console(text):
    text = text.replace("\r", "")
    res = {}
    for m in RESULT_RE.finditer(text):
        res[m.group(1)] = {"bytes": int(m.group(2)), "ops": int(m.group(3)),
                           "seconds": float(m.group(4)), "mib_s": float(m.group(5)),
                           "iops": float(m.group(6))}
    res["complete"] = "BLK_END" in text
    return res


def make_initrd(base, tool, script, out):
    """base initramfs + a second archive with /bin/blk_tool and /bin/blk_run
    (the kernel unpacks concatenated cpio archives as one)."""
    stage = out + ".stage"
    subprocess.run(["rm", "-rf", stage], check=True)
    os.makedirs(stage + "/bin")
    subprocess.run(["cp", tool, stage + "/bin/blk_tool"], check=True)
    with open(stage + "/bin/blk_run", "w") as f:
        f.write(script)
    os.chmod(stage + "/bin/blk_run", 0o755)
    with open(out + ".tools", "wb") as f:
        find = subprocess.Popen(["find", "."], cwd=stage, stdout=subprocess.PIPE)
        cpio = subprocess.Popen(["cpio", "-o", "-H", "newc", "--quiet"], cwd=stage,
                                stdin=find.stdout, stdout=subprocess.PIPE)
        gz = subprocess.Popen(["gzip", "-9"], stdin=cpio.stdout, stdout=f)
        find.stdout.close()
        cpio.stdout.close()
        if gz.wait() or cpio.wait() or find.wait():
            raise RuntimeError("packing the bench tool failed")
    with open(out, "wb") as f:
        for part in (base, out + ".tools"):
            with open(part, "rb") as p:
                f.write(p.read())
    subprocess.run(["rm", "-rf", stage, out + ".tools"], check=True)


def cmd_run(a):
    os.makedirs(a.log_dir, exist_ok=True)
    os.makedirs(a.image_dir, exist_ok=True)
    initrd = os.path.join(a.image_dir, "blk-initrd.cpio.gz")
    make_initrd(a.initrd, a.tool, guest_script(a.mib, a.seconds), initrd)
    image = os.path.join(a.image_dir, "blk-disk.img")
    # Allocated, not sparse: reads must hit real pages on the host side too.
    with open(image, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, a.disk_mib << 20)
    husk_cmdline = a.husk_cmdline + " rdinit=/bin/blk_run"
    qemu_cmdline = a.qemu_cmdline + " rdinit=/bin/blk_run"
    husk_argv = [a.husk, "boot", "--no-input", "--kernel", a.kernel, "--initrd", initrd,
                 "--memory", str(a.memory), "--vcpus", "1", "--disk", image + ",rw",
                 "--cmdline", husk_cmdline]
    qemu_argv = [a.qemu, "-M", a.qemu_machine, "-enable-kvm", "-cpu", "host",
                 "-m", str(a.memory), "-smp", "1", "-nodefaults", "-no-user-config",
                 "-nographic", "-serial", "stdio", "-no-reboot",
                 "-kernel", a.kernel, "-initrd", initrd, "-append", qemu_cmdline,
                 "-drive", "id=d0,file=%s,format=raw,if=none,cache=%s" % (image, a.qemu_cache),
                 "-device", "virtio-blk-device,drive=d0"]
    runs = {"husk": [], "qemu": []}
    ok = True
    for i in range(a.runs):
        order = ("husk", "qemu") if i % 2 == 0 else ("qemu", "husk")
        for vmm in order:
            argv = husk_argv if vmm == "husk" else qemu_argv
            base = os.path.join(a.log_dir, "blk-%s-%02d" % (vmm, i + 1))
            t0 = time.monotonic()
            try:
                p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=a.timeout)
                out, err, code, timed_out = p.stdout, p.stderr, p.returncode, False
            except subprocess.TimeoutExpired as e:
                out, err, code, timed_out = e.stdout or b"", e.stderr or b"", None, True
            wall = time.monotonic() - t0
            with open(base + ".console", "wb") as f:
                f.write(out)
            with open(base + ".stderr", "wb") as f:
                f.write(err)
            r = parse_console(out.decode(errors="replace"))
            r.update({"run": i + 1, "exit_code": code, "timed_out": timed_out,
                      "wall_s": round(wall, 3)})
            runs[vmm].append(r)
            ok = ok and r["complete"] and all(k in r for k in ("seqwrite", "seqread", "randread"))
            g = lambda k, f: ("%.1f" % r[k][f]) if k in r and r[k].get(f) is not None else "-"
            print("bench: run %d %-4s write %s MiB/s, read %s MiB/s, 4K random read %s IOPS; "
                  "exit %s, %.0f s%s" % (
                      i + 1, vmm, g("seqwrite", "mib_s"), g("seqread", "mib_s"),
                      g("randread", "iops"), code, wall, " TIMEOUT" if timed_out else ""),
                  flush=True)
            write_json(a.out, {"runs": runs, "complete": False})
    os.unlink(image)
    os.unlink(initrd)
    write_json(a.out, {
        "runs": runs, "complete": True,
        "argv": {"husk": husk_argv, "qemu": qemu_argv},
        "image": {"dir": a.image_dir, "mib": a.disk_mib,
                  "filesystem": fs_type(a.image_dir)},
        "machine": {"kernel_release": platform.release(), "nproc": os.cpu_count(),
                    "loadavg_after": os.getloadavg()},
    })
    return 0 if ok else 1


def fs_type(path):
    try:
        out = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
        return out.stdout.strip()
    except OSError:
        return None


def median_of(runs, test, field):
    vals = [r[test][field] for r in runs if test in r and r[test].get(field) is not None]
    if not vals:
        return None, 0
    return round(statistics.median(vals), 2), len(vals)


def cmd_report(a):
    data = read_json(a.runs_file)
    if not data:
        print("bench: no results in %s" % a.runs_file, file=sys.stderr)
        return 1
    runs = data.get("runs", {})
    summary = {}
    for test, field, label in METRICS:
        h, hn = median_of(runs.get("husk", []), test, field)
        q, qn = median_of(runs.get("qemu", []), test, field)
        summary[test] = {"unit": "IOPS" if field == "iops" else "MiB/s", "husk_median": h,
                         "qemu_median": q, "husk_runs": hn, "qemu_runs": qn,
                         "ratio_husk_over_qemu": round(h / q, 3) if h and q else None}
    out = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "environment": {
            "where": a.where,
            "kernel": os.path.abspath(a.kernel),
            "initrd": os.path.abspath(a.initrd),
            "guest": "1 vCPU, %d MiB, O_DIRECT on /dev/vda" % a.memory,
            "sequential_mib": a.mib, "random_read_seconds": a.seconds,
            "image": data.get("image"), "machine": data.get("machine"),
            "note": "absolute figures from a nested test host are not hardware figures; "
                    "compare the two VMMs side by side (ratio)",
        },
        "summary": summary,
        "runs": runs,
        "argv": data.get("argv"),
        "complete": data.get("complete", False),
    }
    write_json(a.out, out)
    print()
    print("virtio-blk, side by side in %s" % a.where)
    print("guest: 1 vCPU, %d MiB; disk image on %s; %d MiB sequential in 1 MiB requests, "
          "4 KiB random reads QD1 for %s s" % (a.memory, (data.get("image") or {}).get("filesystem"),
                                                a.mib, a.seconds))
    print("%-20s %12s %12s %10s" % ("median", "husk", "qemu", "husk/qemu"))
    fmt = lambda v: "-" if v is None else ("%.1f" % v)
    for test, _, label in METRICS:
        s = summary[test]
        print("%-20s %12s %12s %10s" % (label, fmt(s["husk_median"]), fmt(s["qemu_median"]),
                                        "-" if s["ratio_husk_over_qemu"] is None
                                        else "%.2f" % s["ratio_husk_over_qemu"]))
    print("runs: husk %d, qemu %d; written %s" % (len(runs.get("husk", [])),
                                                  len(runs.get("qemu", [])), a.out))
    return 0 if data.get("complete") else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("run", "report"):
        sp = sub.add_parser(name)
        sp.add_argument("--kernel", default="build/guest/vmlinux")
        sp.add_argument("--initrd", default="build/guest/initramfs.cpio")
        sp.add_argument("--memory", type=int, default=512)
        sp.add_argument("--mib", type=int, default=256, help="MiB per sequential pass")
        sp.add_argument("--seconds", type=float, default=10.0, help="random-read duration")
        sp.add_argument("--out", required=True)
    r = sub.choices["run"]
    r.add_argument("--husk", default="build/bin/husk")
    r.add_argument("--qemu", default="qemu-system-x86_64")
    r.add_argument("--qemu-machine", default="microvm,x-option-roms=off,rtc=off,acpi=off,pcie=off")
    r.add_argument("--qemu-cache", default="writeback")
    r.add_argument("--husk-cmdline", default="console=ttyS0 reboot=k panic=-1 quiet")
    # QEMU microvm has no i8042: a triple fault (reboot=t) with -no-reboot ends it.
    r.add_argument("--qemu-cmdline", default="console=ttyS0 reboot=t panic=-1 quiet")
    r.add_argument("--tool", required=True, help="the static blk_tool binary")
    r.add_argument("--image-dir", required=True, help="where the disk image lives during the runs")
    r.add_argument("--disk-mib", type=int, default=512)
    r.add_argument("--runs", type=int, default=3)
    r.add_argument("--timeout", type=float, default=600.0)
    r.add_argument("--log-dir", default="build/bench/logs")
    rp = sub.choices["report"]
    rp.add_argument("--runs-file", required=True)
    rp.add_argument("--where", default="")
    a = p.parse_args()
    if a.cmd == "run" and a.disk_mib < a.mib:
        p.error("--disk-mib must be at least --mib")
    return cmd_run(a) if a.cmd == "run" else cmd_report(a)


if __name__ == "__main__":
    sys.exit(main())
