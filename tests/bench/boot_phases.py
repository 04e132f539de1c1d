"""tests/bench/boot_phases.py: where a boot's time goes, for `make bench-boot`.

Guest side: the guest agent, booted with `husk.boot_marks=1`, prints one
console line when it listens (guest-agent/src/server.cpp):

    husk-agent: boot marks (ms): kernel_start=0.000 memory_ready=3.120 ... agent_listening=812.345

the kernel's moments from its own log (guest-agent/src/boot_marks.h names
them) and the agent's, on the guest's clock. Both VMMs boot the same kernel,
initramfs and command line, so the same line splits QEMU's boot too.

Host side (husk only): `husk boot --timeline-json` stamps the VMM's own
phases from process start to the first KVM_RUN ("phases_ms"); this module
prints whatever phases it finds there, in time order, and then what lies
between the first KVM_RUN and the guest's clock starting (clock_gap).

Stdlib only.
"""

import re

from bench_stats import summary

MARKS_RE = re.compile(rb"husk-agent: boot marks \(ms\):((?: [a-z0-9_]+=[0-9]+(?:\.[0-9]+)?)*)\r?\n")
# The kernel's and the agent's moments, in boot order (boot_marks.h).
GUEST_MARKS = ("kernel_start", "memory_ready", "cpus_up", "devtmpfs", "clocksource",
               "initcalls_done", "init_start", "agent_mounts", "agent_loopback", "agent_cgroups",
               "agent_listening")


def parse_marks(console):
    """The last boot-marks line of a console (bytes) as {name: ms}, or {}."""
    found = None
    for m in MARKS_RE.finditer(console):
        found = m
    if not found:
        return {}
    marks = {}
    for item in found.group(1).split():
        name, _, value = item.decode().partition("=")
        marks[name] = float(value)
    return marks


def guest_phases(marks):
    """[(label, ms)] between consecutive known marks present in `marks`, and
    the guest's total from kernel_start to agent_listening."""
    present = [n for n in GUEST_MARKS if n in marks]
    out = [("%s -> %s" % (a, b), marks[b] - marks[a]) for a, b in zip(present, present[1:])]
    if "kernel_start" in marks and "agent_listening" in marks:
        out.append(("guest total: kernel_start -> agent_listening",
                    marks["agent_listening"] - marks["kernel_start"]))
    return out


def host_phases(timeline):
    """[(label, ms)] of the VMM's own phases, each from the one before (the
    first from process start), in time order; [] without them."""
    phases = (timeline or {}).get("phases_ms") or {}
    ordered = sorted(((v, k) for k, v in phases.items() if isinstance(v, (int, float))))
    out, last = [], 0.0
    for v, k in ordered:
        out.append(("%s" % k, v - last))
        last = v
    return out


def clock_gap(run):
    """[(label, ms)]: what husk's timeline and the guest's clock leave out
    between them, the first KVM_RUN to the guest's clock starting (the
    early boot: entry, page tables, the kernel's set-up before kvm-clock),
    derived as spawn to the agent's line minus spawn to the first KVM_RUN
    minus the guest's own kernel_start -> agent_listening. It includes the
    console's latency for the line, a few ms."""
    marks = run.get("marks") or {}
    fk, agent = run.get("first_kvm_run_ms"), run.get("agent_ms")
    if fk is None or agent is None or "agent_listening" not in marks or "kernel_start" not in marks:
        return []
    guest = marks["agent_listening"] - marks["kernel_start"]
    return [("first_kvm_run -> guest clock start (derived)", agent - fk - guest)]


def split_summary(runs, phases_of):
    """{label: summary} over runs, labels in the first run's order."""
    order, values = [], {}
    for r in runs:
        for label, ms in phases_of(r):
            if label not in values:
                order.append(label)
                values[label] = []
            values[label].append(ms)
    return {label: summary(values[label]) for label in order}


def report(runs_by_vmm):
    """The guest split for each VMM and husk's host split, as JSON."""
    out = {"guest_clock_ms": {}, "husk_host_ms": {}}
    for vmm, runs in runs_by_vmm.items():
        out["guest_clock_ms"][vmm] = split_summary(runs, lambda r: guest_phases(r.get("marks") or {}))
    out["husk_host_ms"] = split_summary(runs_by_vmm.get("husk", []),
                                        lambda r: host_phases(r.get("timeline")) + clock_gap(r))
    return out


def print_split(split):
    def f(s):
        v = (s or {}).get("median")
        return "-" if v is None else ("%.0f" % v if abs(v) >= 100 else "%.1f" % v)

    guest = split["guest_clock_ms"]
    husk, qemu = guest.get("husk", {}), guest.get("qemu", {})
    labels = list(husk) + [k for k in qemu if k not in husk]
    if labels:
        print("guest phases on the guest's clock (the agent's boot marks line), ms, median:")
        print("  %-52s %9s %9s" % ("", "husk", "qemu"))
        for label in labels:
            print("  %-52s %9s %9s" % (label, f(husk.get(label)), f(qemu.get(label))))
    host = split["husk_host_ms"]
    if host:
        print("husk host phases (husk boot --timeline-json phases_ms), ms since the one before, median:")
        for label, s in host.items():
            print("  %-52s %9s" % (label, f(s)))
