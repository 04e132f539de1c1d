#!/usr/bin/env python3
"""tests/bench/vsock_bench.py: the report half of `make bench-vsock` (stdlib only).

Merges husk-vsock-bench's two results (husk, QEMU microvm + vhost-vsock) into
build/bench/vsock.json with husk/QEMU ratios, and prints a table. It judges
nothing: the exit code says only whether husk's figures are all there.
"""

import argparse
import datetime
import json
import os
import platform

ROWS = [
    # key, label, unit, how to read it
    ("exec_true.median_ms", "exec `true` round trip, median", "ms", "lower is better"),
    ("exec_true.p99_ms", "exec `true` round trip, p99", "ms", "lower is better"),
    ("agent_stdin_mib_s", "agent stdin, host -> guest", "MiB/s", "higher is better"),
    ("agent_stdout_mib_s", "agent stdout, guest -> host", "MiB/s", "higher is better"),
    ("agent_stdout_256k_window_mib_s", "  the same, 256 KiB credit window", "MiB/s", "higher is better"),
    ("agent_stdout_head_mib_s", "  busybox head -c (4 KiB writes)", "MiB/s", "higher is better"),
    ("head_alone_mib_s", "  busybox head -c > /dev/null", "MiB/s", "higher is better"),
    ("raw_host_to_guest_mib_s", "raw vsock, host -> guest", "MiB/s", "higher is better"),
    ("raw_guest_to_host_mib_s", "raw vsock, guest -> host", "MiB/s", "higher is better"),
    ("agent_stdout_over_raw", "agent stdout / raw guest -> host", "ratio", "issue 10: >= 0.5"),
    ("boot_to_agent_ms", "start to agent Hello (1 boot)", "ms", "lower is better"),
]


def load(path, vmm):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        return {"vmm": vmm, "unavailable": "no result (%s)" % e}


def get(d, dotted):
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--husk", required=True)
    ap.add_argument("--qemu", required=True)
    ap.add_argument("--where", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    husk, qemu = load(a.husk, "husk"), load(a.qemu, "qemu")

    ratios = {}
    for key, _, _, _ in ROWS:
        h, q = get(husk, key), get(qemu, key)
        ratios[key] = round(h / q, 3) if isinstance(h, (int, float)) and isinstance(q, (int, float)) and q else None
    out = {
        "benchmark": "vsock",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "where": a.where,
        "note": "exec round trips and throughput on one VM each; absolute times from the nested "
                "test host are not hardware figures, compare the VMMs side by side",
        "husk": husk,
        "qemu_vhost_vsock": qemu,
        "ratio_husk_over_qemu": ratios,
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out + ".tmp", "w") as f:
        json.dump(out, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(a.out + ".tmp", a.out)

    def cell(v):
        return "-" if v is None else ("%.3f" % v if isinstance(v, float) and v < 10 else str(v))

    print("\nvsock benchmark, %s" % a.where)
    print("%-34s %-6s %12s %12s %10s" % ("", "unit", "husk", "qemu+vhost", "husk/qemu"))
    for key, label, unit, _ in ROWS:
        print("%-34s %-6s %12s %12s %10s" % (label, unit, cell(get(husk, key)), cell(get(qemu, key)),
                                           cell(ratios[key])))
    for name, r in (("husk", husk), ("qemu", qemu)):
        if r.get("unavailable"):
            print("%s: not measured: %s" % (name, r["unavailable"]))
        for e in r.get("errors", []):
            print("%s: failed: %s" % (name, e))
    print("written: %s" % a.out)
    complete = not husk.get("unavailable") and not husk.get("errors") and all(
        get(husk, k) is not None for k, _, _, _ in ROWS)
    return 0 if complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
