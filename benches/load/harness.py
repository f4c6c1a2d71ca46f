#!/usr/bin/env python3
"""Gatehouse vs nginx load harness (called by benches/load/run.sh).

One origin (nginx serving fixed bodies), then per profile three proxies with
equivalent configs: Gatehouse, nginx, and a second identical nginx as the
control pair. wrk drives them in alternation, round after round; every round
yields a requests/s ratio, latency percentiles and CPU time per request read
from /proc. The control pair's spread is the noise floor a verdict must clear.

Output: a table per scenario, then one line per scenario, exactly:
RESULT scenario=<name> ratio=<x.xx> cpu_ratio=<x.xx> gatehouse_rps=<n> nginx_rps=<n> \
gatehouse_p99_ms=<x> nginx_p99_ms=<x> failures=<n>
and a MEMORY line for the 10,000-domain profile.

The noisy-neighbour scenarios (noisy-loop, noisy-chain, noisy-plain) run Gatehouse alone:
a victim tenant under a paced load, alone and while an attacker tenant's
hostile plugin chain is flooded, and end with one line each, exactly:
NOISY scenario=<name> victim_rps_ratio=<x.xx> victim_p99_ratio=<x.xx> \
attacker_shed=<n> failures_victim=<n> victim_rps=<n> victim_solo_rps=<n> \
victim_p99_ms=<x> victim_solo_p99_ms=<x>
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GATEHOUSE = os.path.join(ROOT, "target", "release", "gatehouse")
FIXTURES = os.path.join(ROOT, "target", "release", "examples", "bench-fixtures")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CORES = os.cpu_count() or 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
MANY_DOMAINS = 10_000
BODY_SMALL = "gatehouse-bench-ok\n"

# name -> (profile, scheme, path, extra wrk args)
SCENARIOS = {
    "plain-http": ("base", "http", "/small", []),
    "plain-http-100k": ("base", "http", "/100k", []),
    "tls-keepalive": ("base", "https", "/small", []),
    "tls-new-conn": ("base", "https", "/small", ["-H", "Connection: close"]),
    "domains-10k": ("many", "http", "/small", ["-s", "SPREAD_LUA"]),
    # One WASM plugin (plugins/examples/add-headers) adding a request and a
    # response header; nginx adds the same headers natively.
    "plugin": ("plugin", "http", "/small", []),
    # Cache hits: the origin allows an hour of caching; both proxies store the
    # object on the first request and answer every later one themselves
    # (Gatehouse: its in-memory store; nginx: proxy_cache, files in the page cache).
    "cache-hit": ("cache", "http", "/c/1k", []),
    "cache-hit-100k": ("cache", "http", "/c/100k", []),
}
# Slots later issues fill (waf, ratelimit): listed, not run.
PENDING = ["waf", "ratelimit"]
PLUGIN_WASM = os.path.join(ROOT, "target", "bench-plugins", "add-headers.wasm")
LOOP_WASM = os.path.join(ROOT, "target", "bench-plugins", "infinite-loop.wasm")

# Noisy neighbour: one Gatehouse, tenant `victim` (a plain route to the
# origin) beside tenant `attacker`, whose route runs a chain of
# plugins/hostile/infinite-loop. name -> the attacker's chain.
NOISY = {
    # One spinning binding: default 5 ms deadline, failing closed (503).
    "noisy-loop": {"bindings": 1, "alternate": False, "binding": "failure_mode: closed", "limits": None},
    # 20 bindings alternating spinning ({spin: true}) and instant ({spin: false}),
    # 100 ms deadline, failing open: every timeout is followed by a success, so
    # the circuit breaker stays closed (unless five requests' timeouts land back
    # to back) and only the request's and the tenant's CPU budgets stop the chain. max_chain is raised so that the chain is
    # accepted and those budgets, not the chain-length check, are measured.
    "noisy-chain": {"bindings": 20, "alternate": True, "binding": "timeout: 100ms, failure_mode: open",
                    "limits": "{ plugins: { max_chain: 20 } }"},
    # The control: the same flood on a route without plugins. What the victim
    # loses here is the cost of sharing the node's cores with any flood (the
    # tenant's request ceiling is the tool for that); the plugin variants are
    # judged against it too.
    "noisy-plain": {"bindings": 0, "alternate": False, "binding": "", "limits": None},
}
# The victim's load is paced: wrk's delay() hook makes each connection wait
# NOISY_PACE_MS after a response, so one connection offers 1/(pace + latency).
# A pace well above the latency keeps the offered rate nearly fixed when the
# attacker slows the victim down (with 1 ms, a mean latency going from 0.3 to
# 1.3 ms would cut the offer by 43% and the requests/s ratio would measure
# latency again; with 5 ms, by 16%); p99 is the latency measure.
NOISY_PACE_MS = 5
NOISY_VICTIM_SHARE = 0.3   # the victim's offered load, as a share of what the node serves it closed-loop
NOISY_PROBE_CONNECTIONS = 8
NOISY_MAX_VICTIM_CONNECTIONS = 512
NOISY_ATTACKERS = 4 * CORES  # attacker connections: more than cores, closed loop
VICTIM, ATTACKER = "victim.test", "attacker.test"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open within {timeout}s")


# ---------------------------------------------------------------- processes

def proc_tree(pid):
    """pid and all its descendants (nginx master + workers)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError):
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid):
    total = 0
    for p in proc_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError):
            continue
    return total / CLK_TCK


def rss_kb(pid):
    total = 0
    for p in proc_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


class Server:
    def __init__(self, name, argv, ports, log):
        self.name, self.ports = name, ports
        self.log = open(log, "w")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)

    def wait_ready(self):
        for p in self.ports:
            wait_port(p)
        return self

    def signal_stop(self):
        self.proc.send_signal(signal.SIGINT if "gatehouse" in self.name else signal.SIGQUIT)

    def stop(self):
        self.signal_stop()
        self.wait_stopped()

    def wait_stopped(self):
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------- configs

def nginx_conf(work, name, http_port, https_port, origin_port, certs, domains, log_access, plugin=False,
               cache=False):
    """An nginx reverse proxy equivalent to the Gatehouse config below."""
    access = f"access_log {work}/{name}-access.log;" if log_access else "access_log off;"
    # What the add-headers plugin does in the `plugin` profile, done natively.
    plugin_headers = ("proxy_set_header X-Bench-Plugin 1;\n            add_header X-Bench-Plugin 1;"
                      if plugin else "")
    # proxy_cache as an nginx operator sets it up: origin headers obeyed, a
    # status header like Gatehouse's Cache-Status, one fetch per cold key.
    cache_directives = ("proxy_cache bench;\n            proxy_cache_lock on;\n"
                        "            add_header X-Cache-Status $upstream_cache_status;" if cache else "")
    cache_zone = (f"proxy_cache_path {work}/{name}-cache levels=1:2 keys_zone=bench:10m max_size=256m "
                  "inactive=1h use_temp_path=off;" if cache else "")
    proxy = f"""
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Request-Id $request_id;
            add_header X-Request-Id $request_id always;
            {plugin_headers}
            {cache_directives}
        }}"""
    servers = [f"""
    server {{
        listen 127.0.0.1:{http_port} reuseport;
        listen 127.0.0.1:{https_port} ssl http2 reuseport;
        server_name bench.test;
        ssl_certificate {certs}/bench.crt;
        ssl_certificate_key {certs}/bench.key;
        {proxy}
    }}"""]
    for i in range(domains):
        servers.append(f"""
    server {{
        listen 127.0.0.1:{http_port};
        listen 127.0.0.1:{https_port} ssl http2;
        server_name d{i}.bench.test;
        ssl_certificate {certs}/d{i}.crt;
        ssl_certificate_key {certs}/d{i}.key;
        {proxy}
    }}""")
    return f"""
worker_processes {CORES};
pid {work}/{name}.pid;
error_log {work}/{name}-error.log warn;
daemon off;
master_process on;
events {{ worker_connections 8192; }}
http {{
    {access}
    server_names_hash_max_size 65536;
    server_names_hash_bucket_size 128;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path {work}/{name}-body;
    proxy_temp_path {work}/{name}-proxy;
    fastcgi_temp_path {work}/{name}-fastcgi;
    uwsgi_temp_path {work}/{name}-uwsgi;
    scgi_temp_path {work}/{name}-scgi;
    {cache_zone}
    upstream origin {{
        server 127.0.0.1:{origin_port};
        keepalive 128;
    }}
    {''.join(servers)}
}}
"""


def gatehouse_conf(http_port, https_port, internal_port, origin_port, certs, domains, plugin=False,
                   cache=False):
    lines = [
        "listeners:",
        f'  http: "127.0.0.1:{http_port}"',
        f'  https: "127.0.0.1:{https_port}"',
        f'  internal: "127.0.0.1:{internal_port}"',
        f"server: {{ threads: {CORES} }}",
        # wrk connects to 127.0.0.1, so its SNI names no domain: serve the bench
        # certificate then, as nginx's default server does.
        "tls: { unknown_sni: default_certificate, default_certificate: bench }",
        # The only tenant may use every core for its plugins: the `plugin`
        # scenario measures what a plugin costs, not the per-tenant budget
        # (limits.plugins.tenant_cpu, 250ms/s by default, would shed it).
        f"tenants: [{{ name: bench, plugin_cpu: {CORES}s }}]",
        "pools:",
        f'  - {{ name: origin, tenant: bench, targets: [{{ addr: "127.0.0.1:{origin_port}" }}] }}',
        "certificates:",
        f"  - {{ name: bench, cert_path: {certs}/bench.crt, key_path: {certs}/bench.key }}",
    ]
    for i in range(domains):
        lines.append(f"  - {{ name: d{i}, cert_path: {certs}/d{i}.crt, key_path: {certs}/d{i}.key }}")
    bind = ""
    if plugin:
        lines.append(f'plugins: [{{ name: add-headers, tenant: bench, path: "{PLUGIN_WASM}" }}]')
        bind = (", plugins: [{ plugin: add-headers, config: "
                "{ request: { x-bench-plugin: '1' }, response: { x-bench-plugin: '1' } } }]")
    if cache:
        bind += ", cache: {}"
    lines.append("domains:")
    lines.append("  - { hosts: [bench.test], tenant: bench, certificate: bench, routes: [{ path: /, pool: origin }]"
                 + bind + " }")
    for i in range(domains):
        lines.append(
            f"  - {{ hosts: [d{i}.bench.test], tenant: bench, certificate: d{i}, routes: [{{ path: /, pool: origin }}] }}"
        )
    return "\n".join(lines) + "\n"


def noisy_conf(name, http_port, internal_port, origin_port):
    """Two tenants on one node: `victim` with a plain route, `attacker` whose
    route runs the scenario's chain of the infinite-loop plugin."""
    v = NOISY[name]
    lines = [
        "listeners:",
        f'  http: "127.0.0.1:{http_port}"',
        f'  internal: "127.0.0.1:{internal_port}"',
        f"server: {{ threads: {CORES} }}",
    ]
    if v["limits"]:
        lines.append(f"limits: {v['limits']}")
    lines += [
        "tenants: [{ name: victim }, { name: attacker }]",
        "pools:",
        f'  - {{ name: victim-origin, tenant: victim, targets: [{{ addr: "127.0.0.1:{origin_port}" }}] }}',
        f'  - {{ name: attacker-origin, tenant: attacker, targets: [{{ addr: "127.0.0.1:{origin_port}" }}] }}',
        f'plugins: [{{ name: spin, tenant: attacker, path: "{LOOP_WASM}" }}]',
        "domains:",
        f"  - {{ hosts: [{VICTIM}], tenant: victim, routes: [{{ path: /, pool: victim-origin }}] }}",
        f"  - hosts: [{ATTACKER}]",
        "    tenant: attacker",
        "    routes:",
        "      - path: /",
        "        pool: attacker-origin",
    ]
    if v["bindings"]:
        lines.append("        plugins:")
    for i in range(v["bindings"]):
        spin = f"config: {{ spin: {'false' if i % 2 else 'true'} }}, " if v["alternate"] else ""
        lines.append(f"          - {{ plugin: spin, {spin}{v['binding']} }}")
    return "\n".join(lines) + "\n"


def origin_conf(work, port):
    return f"""
worker_processes 1;
pid {work}/origin.pid;
error_log {work}/origin-error.log warn;
daemon off;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {work}/origin-body;
    proxy_temp_path {work}/origin-proxy;
    fastcgi_temp_path {work}/origin-fastcgi;
    uwsgi_temp_path {work}/origin-uwsgi;
    scgi_temp_path {work}/origin-scgi;
    server {{
        listen 127.0.0.1:{port} reuseport;
        location = /small {{ default_type text/plain; return 200 "{BODY_SMALL.strip()}\\n"; }}
        location = /100k {{ alias {work}/100k.bin; default_type application/octet-stream; }}
        location = /c/1k {{ alias {work}/1k.bin; default_type application/octet-stream;
                            add_header Cache-Control "public, max-age=3600"; }}
        location = /c/100k {{ alias {work}/100k.bin; default_type application/octet-stream;
                              add_header Cache-Control "public, max-age=3600"; }}
    }}
}}
"""


# ---------------------------------------------------------------- wrk

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_latency(text):
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")


def wrk_argv(url, duration, connections, extra, host):
    argv = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s", "--latency", "-H", f"Host: {host}"]
    return argv + extra + [url]


def wrk(url, duration, connections, extra, host):
    argv = wrk_argv(url, duration, connections, extra, host)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60).stdout
    return parse_wrk(out, url)


def parse_wrk(out, url):
    res = {"requests": 0, "rps": 0.0, "p50": float("nan"), "p99": float("nan"), "failures": 0, "raw": out}
    m = re.search(r"(\d+) requests in", out)
    if m:
        res["requests"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        if m:
            res[key] = parse_latency(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["failures"] += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["failures"] += int(m.group(1))
    if res["requests"] == 0:
        res["failures"] += 1
        sys.stderr.write(f"wrk produced no requests for {url}:\n{out}\n")
    return res


def gatehouse_metric(srv, name):
    body = urllib.request.urlopen(f"http://127.0.0.1:{srv.internal}/metrics", timeout=5).read().decode()
    m = re.search(rf"^{name} (\S+)$", body, re.M)
    return float(m.group(1)) if m else float("nan")


def gatehouse_metric_sum(srv, name, **labels):
    """Sum of a labelled family's series whose labels include `labels`; 0
    when the family is absent (e.g. a metric newer than the running binary)."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{srv.internal}/metrics", timeout=5).read().decode()
    total = 0.0
    for m in re.finditer(rf"^{name}(?:{{(.*)}})? (\S+)$", body, re.M):
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


def reload_under_load(gh, connections, duration, work, reloads=3):
    """SIGHUP Gatehouse `reloads` times while wrk spreads requests over the
    10,000 domains: every reload re-reads and recompiles the whole config
    (10,000 certificates included) and must not fail a request."""
    seconds = max(2 * duration, 6)
    argv = wrk_argv(url_for(gh, "http", "/small"), seconds, connections,
                    ["-s", os.path.join(work, "spread.lua")], "bench.test")
    load = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    durations = []
    for _ in range(reloads):
        before = gatehouse_metric(gh, "gatehouse_config_version")
        os.kill(gh.proc.pid, signal.SIGHUP)
        deadline = time.time() + 30
        while gatehouse_metric(gh, "gatehouse_config_version") <= before and time.time() < deadline:
            time.sleep(0.05)
        durations.append(gatehouse_metric(gh, "gatehouse_config_last_reload_duration_seconds") * 1000)
        time.sleep(0.5)
    out, _ = load.communicate(timeout=seconds + 60)
    res = parse_wrk(out, argv[-1])
    res.update(reloads=len(durations), max_reload_ms=max(durations), durations=durations)
    return res


def measure(server, url, duration, connections, extra, host):
    """One wrk run against one proxy, with the proxy's CPU time per request."""
    before = cpu_seconds(server.proc.pid)
    r = wrk(url, duration, connections, extra, host)
    spent = cpu_seconds(server.proc.pid) - before
    r["cpu_us"] = spent * 1e6 / r["requests"] if r["requests"] else float("nan")
    return r


def med(values):
    values = [v for v in values if v == v]  # drop NaN
    return statistics.median(values) if values else float("nan")


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 short rounds per scenario (under 3 minutes)")
    ap.add_argument("--rounds", type=int, help="rounds per scenario (default 10, quick 3)")
    ap.add_argument("--duration", type=int, help="seconds per wrk run (default 5, quick 2)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--scenarios", default=",".join(list(SCENARIOS) + list(NOISY)), help="comma-separated subset")
    ap.add_argument("--access-log", action="store_true", help="access logging on for both proxies")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    rounds = args.rounds or (3 if args.quick else 10)
    duration = args.duration or (2 if args.quick else 5)
    warmup = 1 if args.quick else 2
    wanted = [s for s in args.scenarios.split(",") if s]
    for s in wanted:
        if s not in SCENARIOS and s not in PENDING and s not in NOISY:
            sys.exit(f"unknown scenario {s!r}; known: {', '.join(list(SCENARIOS) + list(NOISY))}")
    if any(SCENARIOS[s][0] == "many" for s in wanted if s in SCENARIOS):
        domains_needed = MANY_DOMAINS
    else:
        domains_needed = 0

    work = tempfile.mkdtemp(prefix="gatehouse-bench-")
    # nginx workers run as an unprivileged user: they must be able to read the bodies.
    os.chmod(work, 0o755)
    # Certificates are kept between runs (generating 10,000 takes a few seconds).
    fixtures = os.path.join(ROOT, "target", "bench-fixtures")
    certs = os.path.join(fixtures, "certs")
    subprocess.run([FIXTURES, fixtures, str(domains_needed)], check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(work, "100k.bin"), "wb") as f:
        f.write(os.urandom(100 * 1024))
    with open(os.path.join(work, "1k.bin"), "wb") as f:
        f.write(os.urandom(1024))
    with open(os.path.join(work, "spread.lua"), "w") as f:
        f.write(
            "math.randomseed(42)\n"
            "request = function()\n"
            f"  local h = 'd' .. math.random(0, {MANY_DOMAINS - 1}) .. '.bench.test'\n"
            "  return wrk.format(nil, nil, { Host = h })\n"
            "end\n"
        )
    # Paced load (the noisy-neighbour victim): wrk calls delay() after each
    # response and waits that many ms before the connection's next request.
    with open(os.path.join(work, "paced.lua"), "w") as f:
        f.write(f"function delay()\n  return {NOISY_PACE_MS}\nend\n")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    cpu_model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    print(f"# gatehouse load harness: commit {commit}, {CORES} cores ({cpu_model}), {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"# rounds={rounds} duration={duration}s connections={args.connections} warmup={warmup}s "
          f"access_log={'on' if args.access_log else 'off'} workers={CORES}")

    origin_port = free_port()
    origin_conf_path = os.path.join(work, "origin.conf")
    with open(origin_conf_path, "w") as f:
        f.write(origin_conf(work, origin_port))
    origin = Server("origin", [NGINX, "-c", origin_conf_path, "-p", work], [origin_port], os.path.join(work, "origin.out")).wait_ready()

    results, memory, reload_check, noisy = {}, None, None, {}
    try:
        if "plugin" in wanted:
            subprocess.run([GATEHOUSE, "plugin", "build", os.path.join(ROOT, "plugins", "examples", "add-headers"),
                            "-o", PLUGIN_WASM], check=True, stdout=subprocess.DEVNULL)
        if any(s in NOISY for s in wanted):
            subprocess.run([GATEHOUSE, "plugin", "build", os.path.join(ROOT, "plugins", "hostile", "infinite-loop"),
                            "-o", LOOP_WASM], check=True, stdout=subprocess.DEVNULL)
        for profile in ("base", "many", "plugin", "cache"):
            scen = [s for s in wanted if s in SCENARIOS and SCENARIOS[s][0] == profile]
            if not scen:
                continue
            domains = MANY_DOMAINS if profile == "many" else 0
            servers = start_proxies(work, profile, origin_port, certs, domains, args.access_log)
            try:
                if profile == "many":
                    time.sleep(1)  # let start-up allocation settle before reading idle RSS
                    memory = {name: rss_kb(s.proc.pid) for name, s in servers.items()}
                for s in scen:
                    results[s] = run_scenario(s, servers, origin_port, rounds, duration, warmup, args.connections, work)
                    if profile == "many":
                        memory.update({f"{name}_load": results[s]["rss_after"][name] for name in servers})
                if profile == "many":
                    reload_check = reload_under_load(servers["gatehouse"], args.connections, duration, work)
            finally:
                for srv in servers.values():
                    srv.signal_stop()
                for srv in servers.values():
                    srv.wait_stopped()
        for s in wanted:
            if s in NOISY:
                noisy[s] = run_noisy(s, work, origin_port, rounds, duration, warmup, args.connections,
                                     args.access_log)
    finally:
        origin.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"# work directory kept: {work}")

    report(results, memory, reload_check, wanted)
    report_noisy(noisy)


def start_proxies(work, profile, origin_port, certs, domains, access_log):
    servers = {}
    plugin = profile == "plugin"
    cache = profile == "cache"
    for name in ("nginx", "control"):
        http_port, https_port = free_port(), free_port()
        conf = os.path.join(work, f"{name}-{profile}.conf")
        with open(conf, "w") as f:
            f.write(nginx_conf(work, f"{name}-{profile}", http_port, https_port, origin_port, certs, domains,
                               access_log, plugin, cache))
        srv = Server(name, [NGINX, "-c", conf, "-p", work], [http_port, https_port], os.path.join(work, f"{name}-{profile}.out"))
        srv.http, srv.https = http_port, https_port
        servers[name] = srv
    # The plugin profile also runs Gatehouse without the plugin, for the
    # plugin's own cost (`PLUGIN` line): same rounds, same rotation.
    variants = [("gatehouse", plugin)] + ([("gatehouse-noplugin", False)] if plugin else [])
    for name, with_plugin in variants:
        http_port, https_port, internal = free_port(), free_port(), free_port()
        conf = os.path.join(work, f"{name}-{profile}.yaml")
        with open(conf, "w") as f:
            f.write(gatehouse_conf(http_port, https_port, internal, origin_port, certs, domains, with_plugin,
                                   cache))
        env_log = "info" if access_log else "warn"
        srv = Server(
            name,
            ["env", f"GATEHOUSE_LOG={env_log}", GATEHOUSE, "run", "--config", conf],
            [http_port, https_port],
            os.path.join(work, f"{name}-{profile}.out"),
        )
        # `env` execs gatehouse in place, so the pid is gatehouse's own.
        srv.http, srv.https, srv.internal = http_port, https_port, internal
        servers[name] = srv
    # Started together, waited for together: nginx takes ~9 s to load 10,000 certificates.
    for s in servers.values():
        s.wait_ready()
    return servers


def url_for(srv, scheme, path):
    port = srv.http if scheme == "http" else srv.https
    return f"{scheme}://127.0.0.1:{port}{path}"


def run_scenario(name, servers, origin_port, rounds, duration, warmup, connections, work):
    _, scheme, path, extra = SCENARIOS[name]
    extra = [os.path.join(work, "spread.lua") if a == "SPREAD_LUA" else a for a in extra]
    host = "bench.test"
    print(f"\n## {name}", flush=True)
    ceiling = None
    if scheme == "http":
        ceiling = wrk(f"http://127.0.0.1:{origin_port}{path}", warmup, connections, [], host)
        print(f"origin direct (ceiling): {ceiling['rps']:.0f} req/s, p99 {ceiling['p99']:.2f} ms", flush=True)
    if name.startswith("cache-hit"):
        check_cached(servers, path, host)
    for srv in servers.values():  # warm-up, excluded
        wrk(url_for(srv, scheme, path), warmup, connections, extra, host)
    runs = {n: [] for n in servers}
    order = list(servers)
    for r in range(rounds):
        # Rotate who goes first so slow drift in the machine does not favour one side.
        for n in order[r % len(order):] + order[: r % len(order)]:
            runs[n].append(measure(servers[n], url_for(servers[n], scheme, path), duration, connections, extra, host))
        g, x, c = runs["gatehouse"][-1], runs["nginx"][-1], runs["control"][-1]
        extra_col = ""
        if "gatehouse-noplugin" in runs:
            b = runs["gatehouse-noplugin"][-1]
            extra_col = f" | gatehouse without plugin {b['rps']:8.0f} req/s"
        print(f"round {r + 1:2d}: gatehouse {g['rps']:8.0f} req/s {g['cpu_us']:6.1f} us/req | "
              f"nginx {x['rps']:8.0f} req/s {x['cpu_us']:6.1f} us/req | control {c['rps']:8.0f} req/s{extra_col}",
              flush=True)
    ratios = [g["rps"] / x["rps"] for g, x in zip(runs["gatehouse"], runs["nginx"]) if x["rps"]]
    cpu_ratios = [g["cpu_us"] / x["cpu_us"] for g, x in zip(runs["gatehouse"], runs["nginx"]) if x["cpu_us"]]
    control = [c["rps"] / x["rps"] for c, x in zip(runs["control"], runs["nginx"]) if x["rps"]]
    control_cpu = [c["cpu_us"] / x["cpu_us"] for c, x in zip(runs["control"], runs["nginx"]) if x["cpu_us"]]
    summary = {
        "ratio": med(ratios),
        "cpu_ratio": med(cpu_ratios),
        "control_ratio": (min(control), med(control), max(control)) if control else (float("nan"),) * 3,
        "control_cpu_ratio": (min(control_cpu), med(control_cpu), max(control_cpu)) if control_cpu else (float("nan"),) * 3,
        "ceiling": ceiling,
        "rss_after": {n: rss_kb(s.proc.pid) for n, s in servers.items()},
    }
    if "gatehouse-noplugin" in runs:
        base = runs["gatehouse-noplugin"]
        summary["plugin_ratio"] = med([g["rps"] / b["rps"] for g, b in zip(runs["gatehouse"], base) if b["rps"]])
        summary["plugin_cpu_ratio"] = med([g["cpu_us"] / b["cpu_us"] for g, b in zip(runs["gatehouse"], base)
                                           if b["cpu_us"]])
    for n in servers:
        summary[n] = {
            "rps": med([x["rps"] for x in runs[n]]),
            "p50": med([x["p50"] for x in runs[n]]),
            "p99": med([x["p99"] for x in runs[n]]),
            "cpu_us": med([x["cpu_us"] for x in runs[n]]),
            "failures": sum(x["failures"] for x in runs[n]),
        }
    return summary


def check_cached(servers, path, host):
    """Each proxy answers a repeated request from its cache (else the scenario
    would measure misses)."""
    for name, srv in servers.items():
        status = ""
        for _ in range(3):
            req = urllib.request.Request(url_for(srv, "http", path), headers={"Host": host})
            with urllib.request.urlopen(req, timeout=10) as r:
                r.read()
                status = r.headers.get("Cache-Status") or r.headers.get("X-Cache-Status") or ""
        if "hit" not in status.lower():
            sys.exit(f"{name} does not answer {path} from its cache (status header: {status!r})")
        print(f"{name}: {path} answered from cache ({status})", flush=True)


# ---------------------------------------------------------------- noisy neighbour

def run_noisy(name, work, origin_port, rounds, duration, warmup, connections, access_log):
    """One Gatehouse with the victim and attacker tenants; each round measures
    the victim's paced load alone and beside the attacker's flood."""
    print(f"\n## {name}", flush=True)
    gh = start_noisy(work, name, origin_port, access_log)
    try:
        victim = calibrate_victim(gh, warmup, connections, work)
        rows = []
        for r in range(rounds):
            # Alternate which goes first so slow drift in the machine does not favour one side.
            phases = ("solo", "attacked") if r % 2 == 0 else ("attacked", "solo")
            rows.append({p: noisy_phase(gh, victim, duration, p == "attacked") for p in phases})
            print_noisy_round(r, rows[-1])
        return summarise_noisy(rows)
    finally:
        gh.stop()


def start_noisy(work, name, origin_port, access_log):
    http_port, internal = free_port(), free_port()
    conf = os.path.join(work, f"gatehouse-{name}.yaml")
    with open(conf, "w") as f:
        f.write(noisy_conf(name, http_port, internal, origin_port))
    log = os.path.join(work, f"gatehouse-{name}.out")
    env_log = "info" if access_log else "warn"
    srv = Server("gatehouse", ["env", f"GATEHOUSE_LOG={env_log}", GATEHOUSE, "run", "--config", conf],
                 [http_port, internal], log)
    srv.http, srv.internal = http_port, internal
    try:
        return srv.wait_ready()
    except RuntimeError:
        srv.stop()
        with open(log) as f:
            sys.exit(f"gatehouse did not start for {name} (config {conf}):\n{f.read()[-4000:]}")


def calibrate_victim(gh, warmup, connections, work):
    """The victim's offered load: NOISY_VICTIM_SHARE of what the node serves
    it closed-loop (`connections`), as paced connections; a paced probe gives
    what one connection offers. Both runs also warm the proxy up."""
    url = url_for(gh, "http", "/small")
    pace = ["-s", os.path.join(work, "paced.lua")]
    closed = wrk(url, warmup, connections, [], VICTIM)
    probe = wrk(url, warmup, NOISY_PROBE_CONNECTIONS, pace, VICTIM)
    per_conn = probe["rps"] / NOISY_PROBE_CONNECTIONS
    conns = NOISY_PROBE_CONNECTIONS
    if per_conn and closed["rps"]:
        conns = round(NOISY_VICTIM_SHARE * closed["rps"] / per_conn)
        conns = max(1, min(NOISY_MAX_VICTIM_CONNECTIONS, conns))
    share = conns * per_conn / closed["rps"] if closed["rps"] else float("nan")
    print(f"victim alone, closed loop ({connections} connections): {closed['rps']:.0f} req/s; paced "
          f"({NOISY_PACE_MS} ms after each response): {per_conn:.0f} req/s per connection -> {conns} connections, "
          f"about {conns * per_conn:.0f} req/s offered ({share:.0%} of closed loop); "
          f"attacker: {NOISY_ATTACKERS} connections, closed loop", flush=True)
    return {"url": url, "extra": pace, "connections": conns}


def noisy_phase(gh, victim, duration, attacked):
    """The victim's paced load for `duration`, alone or with the attacker's
    flood started beside it; then waits until the proxy is quiet again
    (spinning calls outlive the attacker's wrk), so the next run starts clean."""
    shed_before = attacker_shed(gh)
    flood = None
    if attacked:
        argv = wrk_argv(url_for(gh, "http", "/small"), duration, NOISY_ATTACKERS, ["--timeout", "10s"], ATTACKER)
        flood = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    res = wrk(victim["url"], duration, victim["connections"], victim["extra"], VICTIM)
    if flood:
        out, _ = flood.communicate(timeout=duration + 60)
        res["attacker"] = parse_wrk(out, argv[-1])
    wait_quiet(gh)
    res["shed"] = attacker_shed(gh) - shed_before
    return res


def attacker_shed(gh):
    """Attacker requests shed for its plugin CPU budget so far (0 before budgets exist)."""
    return gatehouse_metric_sum(gh, "gatehouse_plugin_shed_total", tenant="attacker")


def wait_quiet(srv, timeout=30.0, window=0.25, busy=0.1):
    """Polls the proxy's CPU time until it uses less than `busy` of a core
    over `window` seconds, or `timeout` passes (then warns)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        before = cpu_seconds(srv.proc.pid)
        time.sleep(window)
        if cpu_seconds(srv.proc.pid) - before < busy * window:
            return
    sys.stderr.write(f"{srv.name} still busy {timeout:.0f}s after the load ended\n")


def print_noisy_round(r, row):
    s, a = row["solo"], row["attacked"]
    f = a["attacker"]
    print(f"round {r + 1:2d}: victim alone {s['rps']:7.0f} req/s p99 {s['p99']:6.2f} ms | beside the attacker "
          f"{a['rps']:7.0f} req/s p99 {a['p99']:6.2f} ms, failures {a['failures']} | attacker {f['rps']:8.0f} req/s "
          f"(non-2xx or errors {f['failures']}), shed {a['shed']:.0f}", flush=True)


def summarise_noisy(rows):
    solo = [r["solo"] for r in rows]
    hit = [r["attacked"] for r in rows]
    return {
        "rps_ratio": med([h["rps"] / s["rps"] for s, h in zip(solo, hit) if s["rps"]]),
        "p99_ratio": med([h["p99"] / s["p99"] for s, h in zip(solo, hit) if s["p99"]]),
        "rps": med([h["rps"] for h in hit]),
        "solo_rps": med([s["rps"] for s in solo]),
        "p99": med([h["p99"] for h in hit]),
        "solo_p99": med([s["p99"] for s in solo]),
        "attacker_rps": med([h["attacker"]["rps"] for h in hit]),
        "shed": med([h["shed"] for h in hit]),
        # Every victim failure counts, alone or attacked: never hidden by a median.
        "failures": sum(x["failures"] for x in solo + hit),
    }


def verdict(value, lo, hi):
    if value != value or lo != lo:
        return "n/a"
    if value > hi:
        return "above noise"
    if value < lo:
        return "below noise"
    return "within noise"


def report(results, memory, reload_check, wanted):
    if results:
        print("\n# Summary (medians over rounds; ratios are Gatehouse/nginx per round, then the median)")
        print(f"{'scenario':16} {'gh req/s':>10} {'nginx req/s':>11} {'ratio':>6} {'control (min-med-max)':>22} "
              f"{'gh p50/p99 ms':>14} {'nginx p50/p99':>14} {'gh us/req':>9} {'nginx us/req':>12} {'cpu ratio':>9} "
              f"{'ceiling':>8}")
    for name, s in results.items():
        g, x = s["gatehouse"], s["nginx"]
        lo, mid, hi = s["control_ratio"]
        ceiling = f"{s['ceiling']['rps']:.0f}" if s["ceiling"] else "-"
        print(f"{name:16} {g['rps']:10.0f} {x['rps']:11.0f} {s['ratio']:6.2f} {lo:6.2f}-{mid:4.2f}-{hi:4.2f} {'':5}"
              f"{g['p50']:6.2f}/{g['p99']:6.2f} {x['p50']:6.2f}/{x['p99']:6.2f} {g['cpu_us']:9.1f} {x['cpu_us']:12.1f} "
              f"{s['cpu_ratio']:9.2f} {ceiling:>8}")
        clo, _, chi = s["control_cpu_ratio"]
        print(f"{'':16} throughput {verdict(s['ratio'], lo, hi)}; CPU/request {verdict(s['cpu_ratio'], clo, chi)} "
              f"(control CPU ratio {clo:.2f}-{chi:.2f}); failures gatehouse={g['failures']} nginx={x['failures']} "
              f"control={s['control']['failures']}")
    if memory:
        print(f"\nMEMORY domains={MANY_DOMAINS} certificates={MANY_DOMAINS} "
              f"gatehouse_idle_kb={memory['gatehouse']} nginx_idle_kb={memory['nginx']} "
              f"gatehouse_load_kb={memory.get('gatehouse_load', 0)} nginx_load_kb={memory.get('nginx_load', 0)} "
              f"idle_ratio={memory['gatehouse'] / max(memory['nginx'], 1):.2f}")
    if reload_check:
        r = reload_check
        print(f"RELOAD domains={MANY_DOMAINS} certificates={MANY_DOMAINS} reloads={r['reloads']} "
              f"max_reload_ms={r['max_reload_ms']:.0f} requests={r['requests']} failures={r['failures']} "
              f"(each: {', '.join(f'{d:.0f} ms' for d in r['durations'])})")
    for name, s in results.items():
        if "plugin_ratio" in s:
            b = s["gatehouse-noplugin"]
            print(f"PLUGIN scenario={name} throughput_ratio={s['plugin_ratio']:.2f} "
                  f"cpu_ratio={s['plugin_cpu_ratio']:.2f} with_plugin_rps={s['gatehouse']['rps']:.0f} "
                  f"without_plugin_rps={b['rps']:.0f} (Gatehouse with the add-headers plugin / without)")
    for name in wanted:
        if name in PENDING:
            print(f"# scenario {name}: not yet available (filled by a later issue)")
    print()
    for name, s in results.items():
        g, x = s["gatehouse"], s["nginx"]
        print(f"RESULT scenario={name} ratio={s['ratio']:.2f} cpu_ratio={s['cpu_ratio']:.2f} "
              f"gatehouse_rps={g['rps']:.0f} nginx_rps={x['rps']:.0f} gatehouse_p99_ms={g['p99']:.2f} "
              f"nginx_p99_ms={x['p99']:.2f} failures={g['failures'] + x['failures']}")


def report_noisy(noisy):
    if not noisy:
        return
    print("\n# Noisy neighbour (medians over rounds; ratios are the victim beside the attacker / alone, per round, "
          "then the median)")
    print(f"{'scenario':16} {'victim req/s':>12} {'alone':>8} {'ratio':>6} {'p99 ms':>7} {'alone':>7} {'ratio':>6} "
          f"{'attacker req/s':>14} {'shed/round':>10} {'victim failures':>15}")
    for name, n in noisy.items():
        print(f"{name:16} {n['rps']:12.0f} {n['solo_rps']:8.0f} {n['rps_ratio']:6.2f} {n['p99']:7.2f} "
              f"{n['solo_p99']:7.2f} {n['p99_ratio']:6.2f} {n['attacker_rps']:14.0f} {n['shed']:10.0f} "
              f"{n['failures']:15d}")
        met = n["rps_ratio"] >= 0.8 and n["p99_ratio"] <= 2.0 and n["failures"] == 0
        print(f"{'':16} goal (victim >= 0.80x alone req/s, <= 2x alone p99, no failures): "
              f"{'met' if met else 'missed'}")
    print()
    for name, n in noisy.items():
        print(f"NOISY scenario={name} victim_rps_ratio={n['rps_ratio']:.2f} victim_p99_ratio={n['p99_ratio']:.2f} "
              f"attacker_shed={n['shed']:.0f} failures_victim={n['failures']} victim_rps={n['rps']:.0f} "
              f"victim_solo_rps={n['solo_rps']:.0f} victim_p99_ms={n['p99']:.2f} "
              f"victim_solo_p99_ms={n['solo_p99']:.2f}")


if __name__ == "__main__":
    main()
