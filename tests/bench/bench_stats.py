"""tests/bench/bench_stats.py: statistics, JSON, file-staging and page-recycling
helpers of the benchmarks' modules (boot_bench.py, boot_matrix.py,
boot_phases.py, boot_ab.py, rate_bench.py). Stdlib only."""

import json
import mmap
import os
import shutil
import tempfile
import time

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


def delta(a, b):
    if a is None or b is None:
        return None
    return round(a - b, 3)


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


TCG_NOTE = ("absolute numbers from the nested test host are TCG-nested, not hardware figures "
            "(../shared/docs/host-kvm.md: a VM exit costs ~47 us there, CPU-bound code runs "
            "~10x slower): the deltas and ratios against the baseline are what counts")


def stage_paths(paths):
    """Copies each file of `paths` into one fresh folder of the local /tmp.
    Returns the folder and {path: its copy}. In the test host the
    repository is a 9p share mounted cache=mmap: every exec of husk there
    read its code pages over 9p again (about 110 ms more per start, measured
    2026-12-01), and both VMMs read the kernel and the initrd over it, while
    QEMU and its libraries come from the host root mounted cache=loose, kept
    in the page cache like any local disk. Staged, they all come from memory
    for both VMMs, as on a real machine."""
    stage = tempfile.mkdtemp(prefix="husk-bench-stage-")
    copies = {}
    for i, src in enumerate(sorted(set(paths))):
        dst = os.path.join(stage, "%d-%s" % (i, os.path.basename(src)))
        shutil.copy2(src, dst)
        copies[src] = dst
    print("bench: staged %d files in %s (local memory, as QEMU's files)" % (len(copies), stage), flush=True)
    return stage, copies


def recycle_pages(mib):
    """Writes one byte to every 4 KiB page of `mib` MiB of fresh anonymous
    memory (transparent huge pages, as both VMMs ask for guest RAM), then
    frees it. Returns the milliseconds it took.

    For the nested test host, before each timed boot. There, the memory a
    VM's guest used is slow for whoever writes it next, once: after a
    husk boot, writing 16 MiB of fresh memory took 182 and 194 ms against
    11 ms on pages no VM had used, and a boot that came straight after
    another spent 244 to 268 ms of guest clock in the kernel's memory
    set-up against 47 to 56 ms after recycling 512 MiB first (2026-12-01,
    4 boots each, alternating; the README's cold-start section). The likely cause is QEMU
    TCG's tracking of the code it translated from the inner guest's pages;
    hardware has no such cost. The page allocator hands out what was freed
    last, so each timed boot would otherwise pay for the one before it, by
    an amount that depends on which pages it gets: recycling puts both
    VMMs on pages no VM used just before."""
    size = mib << 20
    start = time.monotonic()
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        if hasattr(mmap, "MADV_HUGEPAGE"):
            m.madvise(mmap.MADV_HUGEPAGE)
        for off in range(0, size, 4096):
            m[off] = 1
    finally:
        m.close()
    return (time.monotonic() - start) * 1000.0
