"""tests/bench/boot_ab.py: an interleaved A/B of boot variants, for
tests/bench/boot-ab. Each variant is a VMM with a kernel, an initramfs and
words added to the command line; every round boots each variant once, in an
order that rotates from round to round, so a drift of the machine (other
builds, a warmer cache) falls on all of them alike. A boot is timed from the
spawn to the agent's "listening" line, as in `make bench-boot`.

The report gives each variant's median and spread, and for every variant
against the first: the median of the per-round differences and in how many
rounds it was the faster one. Then, for husk's variants, husk's own start
by its timeline (`husk boot --timeline-json`): main's first line to the
first KVM_RUN and the process's CPU then, against the first husk variant
the same way. Then the guest's phases (the agent's boot marks line),
median per variant: where a difference comes from.

    boot_ab.py --husk PATH --runs N --log-dir DIR --out FILE VARIANT...

VARIANT: NAME[:vmm=husk|qemu][:husk=PATH][:kernel=PATH][:initrd=PATH]
[:append=WORDS][:memory=MIB]; husk=PATH is the husk binary of that
variant (default --husk: one build against another). Stdlib only."""

import argparse
import os
import shutil
import sys
import tempfile

from bench_stats import read_json, recycle_pages, stage_paths, summary, write_json
from boot_bench import AGENT_RE, BOOT_CMDLINE, load_vhost_vsock, timed_run
from boot_phases import MARKS_RE, guest_phases, parse_marks, split_summary

KEYS = ("vmm", "husk", "kernel", "initrd", "append", "memory")


def parse_variant(spec, defaults):
    """{"name", "vmm", "husk", "kernel", "initrd", "append", "memory"} or ValueError."""
    name, *items = spec.split(":")
    if not name or "=" in name:
        raise ValueError("variant %r: starts with a name (NAME[:key=value]...)" % spec)
    v = dict(defaults, name=name)
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or key not in KEYS:
            raise ValueError("variant %r: %r is not one of %s=VALUE" % (spec, item, "|".join(KEYS)))
        v[key] = value
    if v["vmm"] not in ("husk", "qemu"):
        raise ValueError("variant %r: vmm is husk or qemu, not %r" % (spec, v["vmm"]))
    if not v["memory"].isdigit():
        raise ValueError("variant %r: memory is MiB, not %r" % (spec, v["memory"]))
    for key in ("kernel", "initrd"):
        if not os.path.isfile(v[key]):
            raise ValueError("variant %r: %s %s does not exist" % (spec, key, v[key]))
    if v["vmm"] == "husk" and not (os.path.isfile(v["husk"]) and os.access(v["husk"], os.X_OK)):
        raise ValueError("variant %r: husk %s is not an executable file" % (spec, v["husk"]))
    return v


def argv_of(v, a, vsock, cid, vhost, timeline):
    cmdline = " ".join(w for w in (BOOT_CMDLINE, v["append"]) if w)
    if v["vmm"] == "husk":
        return [v["husk"], "boot", "--kernel", v["kernel"], "--initrd", v["initrd"], "--cmdline", cmdline,
                "--vcpus", "1", "--memory", v["memory"], "--no-input", "--vsock", vsock,
                "--timeline-json", timeline]
    return ([a.qemu, "-M", "microvm", "-enable-kvm", "-cpu", "host", "-m", v["memory"], "-smp", "1",
             "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio", "-no-reboot",
             "-kernel", v["kernel"], "-initrd", v["initrd"], "-append", cmdline] +
            (["-device", "vhost-vsock-device,guest-cid=%d" % cid] if vhost else []))


def cmd_run(a, variants):
    os.makedirs(a.log_dir, exist_ok=True)
    vhost = any(v["vmm"] == "qemu" for v in variants) and not load_vhost_vsock()
    sock_dir = tempfile.mkdtemp(prefix="husk-ab-")
    results = {v["name"]: [] for v in variants}
    stage, run_as = None, variants
    if a.stage:
        stage, copies = stage_paths([v[k] for v in variants for k in ("husk", "kernel", "initrd")])
        run_as = [dict(v, **{k: copies[v[k]] for k in ("husk", "kernel", "initrd")}) for v in variants]
    for i in range(a.runs):
        # Rotate the order, and reverse it every other round: with two
        # variants this is ABBA, so neither always follows the other.
        order = run_as[i % len(run_as):] + run_as[:i % len(run_as)]
        if i % 2:
            order = order[::-1]
        for v in order:
            base = os.path.join(a.log_dir, "%s-%02d" % (v["name"], i + 1))
            vsock = os.path.join(sock_dir, "%s-%02d.vsock" % (v["name"], i + 1))
            timeline = base + ".timeline.json"
            if a.recycle_mib:
                recycle_pages(a.recycle_mib)
            r = timed_run(argv_of(v, a, vsock, 1000 + i, vhost, timeline), base + ".console", base + ".stderr",
                          a.timeout, stop_re=MARKS_RE, agent_re=AGENT_RE)
            with open(base + ".console", "rb") as f:
                r["marks"] = parse_marks(f.read())
            r.update(host_start(timeline))
            r["round"] = i + 1
            if os.path.exists(vsock):
                os.unlink(vsock)
            results[v["name"]].append(r)
            print("ab: round %2d %-16s agent listening %s" % (
                i + 1, v["name"], "-" if r["agent_ms"] is None else "%.0f ms" % r["agent_ms"]), flush=True)
        write_json(a.out, {"variants": variants, "runs": results})
    shutil.rmtree(sock_dir, ignore_errors=True)
    if stage:
        shutil.rmtree(stage, ignore_errors=True)
    return results


def host_start(path):
    """husk's own start from its timeline file: main to the first KVM_RUN
    and the CPU then, in ms; None for each without the file (QEMU)."""
    t = read_json(path) if os.path.exists(path) else None
    try:
        return {"start_ms": (t["first_kvm_run_monotonic_ns"] - t["process_start_monotonic_ns"]) / 1e6,
                "start_cpu_ms": t["first_kvm_run_cpu_ms"]}
    except (TypeError, KeyError):
        return {"start_ms": None, "start_cpu_ms": None}


def compare(base_runs, runs, key="agent_ms"):
    """Median per-round difference (ms) of runs against base_runs in `key`,
    and how many rounds of those both finished were lower."""
    pairs = [(r.get(key), b.get(key)) for r, b in zip(runs, base_runs)
             if r.get(key) is not None and b.get(key) is not None]
    diffs = summary([x - y for x, y in pairs])
    return diffs["median"], sum(1 for x, y in pairs if x < y), len(pairs)


def report(variants, results):
    names = [v["name"] for v in variants]
    base = names[0]
    print("ab: spawn to agent listening, ms (rounds interleaved; differences against %s, per round)" % base)
    print("  %-16s %5s %8s %8s %8s %10s %8s" % ("variant", "runs", "median", "min", "max", "diff", "faster"))
    ok = True
    for name in names:
        s = summary(r["agent_ms"] for r in results[name])
        ok = ok and s["runs"] == len(results[name])
        diff, faster, pairs = compare(results[base], results[name])
        print("  %-16s %5d %8s %8s %8s %10s %8s" % (
            name, s["runs"], s["median"], s["min"], s["max"],
            "" if name == base else "%+.0f" % diff if diff is not None else "-",
            "" if name == base else "%d of %d" % (faster, pairs)))
    husks = [v["name"] for v in variants if v["vmm"] == "husk"]
    if husks:
        print("ab: husk's own start (--timeline-json), main to the first KVM_RUN and CPU then, ms "
              "(differences against %s, per round)" % husks[0])
        print("  %-16s %8s %10s %8s %10s" % ("variant", "wall", "diff", "CPU", "diff"))
        for name in husks:
            cells = []
            for key in ("start_ms", "start_cpu_ms"):
                diff, _, _ = compare(results[husks[0]], results[name], key)
                cells += [summary(r.get(key) for r in results[name])["median"],
                          "" if name == husks[0] or diff is None else "%+.1f" % diff]
            print("  %-16s %8s %10s %8s %10s" % (name, *cells))
    print("ab: guest phases (boot marks), ms since the one before, median:")
    print("  %-46s" % "" + "".join(" %12s" % n[:12] for n in names))
    splits = {n: split_summary(results[n], lambda r: guest_phases(r.get("marks") or {})) for n in names}
    labels = [label for n in names for label in splits[n]]
    for label in dict.fromkeys(labels):
        cells = [(splits[n].get(label) or {}).get("median") for n in names]
        print("  %-46s" % label[:46] + "".join(" %12s" % ("-" if c is None else "%.1f" % c) for c in cells))
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--husk", required=True)
    p.add_argument("--qemu", default="qemu-system-x86_64")
    p.add_argument("--kernel", required=True, help="default kernel of the variants")
    p.add_argument("--initrd", required=True, help="default initramfs of the variants")
    p.add_argument("--memory", default="256", help="default guest MiB of the variants")
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--log-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--stage", action="store_true",
                   help="run every variant's husk, kernel and initrd from copies in the local /tmp "
                        "(the test host: its repository share caches no file pages)")
    p.add_argument("--recycle-mib", type=int, default=0,
                   help="before each boot, write and free this many MiB of fresh memory "
                        "(the test host: bench_stats.py recycle_pages); 0: not")
    p.add_argument("--report-only", action="store_true", help="print the table of an earlier --out")
    p.add_argument("--check-only", action="store_true", help="check the variants and exit (0, or 2)")
    p.add_argument("variants", nargs="*")
    a = p.parse_args()
    if a.report_only:
        data = read_json(a.out)
        if not data:
            print("ab: no results in %s" % a.out, file=sys.stderr)
            return 2
        return 0 if report(data["variants"], data["runs"]) else 1
    defaults = {"vmm": "husk", "husk": a.husk, "kernel": a.kernel, "initrd": a.initrd, "append": "", "memory": a.memory}
    try:
        variants = [parse_variant(s, defaults) for s in a.variants]
    except ValueError as e:
        print("ab: %s" % e, file=sys.stderr)
        return 2
    if len(variants) < 2 or len({v["name"] for v in variants}) != len(variants):
        print("ab: give two or more variants with different names", file=sys.stderr)
        return 2
    if a.check_only:
        return 0
    results = cmd_run(a, variants)
    return 0 if report(variants, results) else 1


if __name__ == "__main__":
    sys.exit(main())
