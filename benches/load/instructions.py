#!/usr/bin/env python3
"""Instructions per proxied request, Gatehouse vs nginx (called by instructions.sh).

Requests/s and CPU time on a shared 2-core VM move with scheduler noise; the
number of user-space instructions a proxy executes per request does not. This
runs each proxy with ONE worker under `valgrind --tool=callgrind`, with the same
configs as the load harness (plain-http profile), warms it up, switches
instrumentation on for a measured `wrk` run, and divides the instructions by the
requests served. Kernel time (system calls, wake-ups) is not counted: compare it
with the CPU/request column of the load harness.

Output: the top functions by inclusive cost per request for each proxy, then
lines, exactly:
INSTRUCTIONS proxy=<gatehouse|nginx> per_request=<n> requests=<n>
INSTRUCTIONS ratio=<x.xx>
The callgrind files stay in the work directory printed at the end, for
`callgrind_annotate --inclusive=yes <file>`.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (shares configs and helpers with the load harness)

VALGRIND_START_TIMEOUT = 180.0


def run_one(name, argv, port, work, warmup, duration, connections):
    out = os.path.join(work, f"callgrind-{name}.out")
    vg = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no",
        f"--callgrind-out-file={out}",
    ]
    srv = harness.Server(name, vg + argv, [port], os.path.join(work, f"callgrind-{name}.log"))
    try:
        harness.wait_port(port, timeout=VALGRIND_START_TIMEOUT)
        url = f"http://127.0.0.1:{port}/small"
        harness.wrk(url, warmup, connections, [], "bench.test")
        subprocess.run(["callgrind_control", "--instr=on", str(srv.proc.pid)], check=True, capture_output=True)
        res = harness.wrk(url, duration, connections, [], "bench.test")
        subprocess.run(["callgrind_control", "--instr=off", str(srv.proc.pid)], check=True, capture_output=True)
    finally:
        srv.stop()
    if res["failures"]:
        sys.exit(f"{name}: {res['failures']} failed requests under callgrind:\n{res['raw']}")
    return out, res["requests"]


def annotate(path, requests, top):
    text = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
        capture_output=True, text=True, check=True,
    ).stdout
    total = None
    rows = []
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(.*)", line)
        if not m:
            continue
        count = int(m.group(1).replace(",", ""))
        what = m.group(2)
        if what.startswith("PROGRAM TOTALS"):
            total = count
            continue
        if what.startswith("events annotated"):
            continue
        # "file:function [object]": keep the function, drop paths and the object.
        func = re.sub(r"\s*\[[^\]]*\]$", "", what)
        func = re.sub(r"\s*\([\d,]+x\)$", "", func)
        func = func.split(":", 1)[1] if ":" in func and not func.startswith("<") else func
        rows.append((count, func))
    if total is None:
        sys.exit(f"no PROGRAM TOTALS in {path}")
    seen, shown = set(), []
    for count, func in sorted(rows, reverse=True):
        if func in seen:
            continue
        seen.add(func)
        shown.append((count, func))
        if len(shown) == top:
            break
    return total, shown


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds of measured load (default 10)")
    ap.add_argument("--warmup", type=int, default=3, help="seconds of unmeasured load first (default 3)")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--top", type=int, default=25, help="functions to list per proxy")
    args = ap.parse_args()

    harness.CORES = 1  # one worker each: instruction counts do not depend on it
    # Through the environment, not `env`: valgrind must exec the proxy itself.
    os.environ["GATEHOUSE_LOG"] = "warn"
    work = tempfile.mkdtemp(prefix="gatehouse-instr-")
    os.chmod(work, 0o755)
    fixtures = os.path.join(harness.ROOT, "target", "bench-fixtures")
    certs = os.path.join(fixtures, "certs")
    subprocess.run([harness.FIXTURES, fixtures, "0"], check=True, stdout=subprocess.DEVNULL)

    origin_port = harness.free_port()
    origin_conf = os.path.join(work, "origin.conf")
    with open(origin_conf, "w") as f:
        f.write(harness.origin_conf(work, origin_port))
    origin = harness.Server("origin", [harness.NGINX, "-c", origin_conf, "-p", work], [origin_port],
                            os.path.join(work, "origin.out")).wait_ready()
    results = {}
    try:
        http, https, internal = harness.free_port(), harness.free_port(), harness.free_port()
        conf = os.path.join(work, "gatehouse.yaml")
        with open(conf, "w") as f:
            f.write(harness.gatehouse_conf(http, https, internal, origin_port, certs, 0))
        results["gatehouse"] = run_one(
            "gatehouse", [harness.GATEHOUSE, "run", "--config", conf],
            http, work, args.warmup, args.duration, args.connections)

        http, https = harness.free_port(), harness.free_port()
        text = harness.nginx_conf(work, "nginx", http, https, origin_port, certs, 0, False)
        # One process: the worker is the process valgrind watches.
        assert "master_process on;" in text
        text = text.replace("master_process on;", "master_process off;")
        conf = os.path.join(work, "nginx.conf")
        with open(conf, "w") as f:
            f.write(text)
        results["nginx"] = run_one(
            "nginx", [harness.NGINX, "-c", conf, "-p", work], http, work, args.warmup, args.duration,
            args.connections)
    finally:
        origin.stop()

    per_request = {}
    for name, (path, requests) in results.items():
        total, top = annotate(path, requests, args.top)
        per_request[name] = total / requests
        print(f"\n## {name}: {total:,} instructions for {requests:,} requests")
        print(f"{'per request':>12}  function (inclusive)")
        for count, func in top:
            print(f"{count / requests:12,.0f}  {func[:150]}")
    print(f"\n# callgrind files kept in {work}")
    for name, (path, requests) in results.items():
        print(f"INSTRUCTIONS proxy={name} per_request={per_request[name]:.0f} requests={requests}")
    print(f"INSTRUCTIONS ratio={per_request['gatehouse'] / per_request['nginx']:.2f}")


if __name__ == "__main__":
    main()
