#!/usr/bin/env python3
"""bench/compare: Kamailio, sipgw (UDP backend) and sipgw (AF_XDP backend) side by side, and
Kamailio and sipgw with the phones over TCP (systems kamailio-tcp and sipgw-tcp).

One run, one machine, one load: a network-namespace topology (load <-> gateway <-> softswitch,
veth pairs, addresses from 198.18.0.0/15), the same sipgw-bench load against each system in
turn, the same softswitch stand-in behind it. Prints one table, writes the numbers as JSON and
two SVG charts (registrations/s against offered load; flood absorbed). Run it through
bench/compare/run (as root), which installs what it needs and builds first.

The TCP systems get the registration loads over TCP (`sipgw-bench register --transport tcp`,
4 connections per socket thread; the softswitch leg stays UDP); the banned flood and the
mixed run are UDP attacks, measured on the UDP systems only (a TCP row shows "-" there).

Pinning (--pin-load, --pin-system; by default the load generator and the stand-in on CPU 0,
the system under test on CPU 1): runs are comparable, and the CPU figures add the softirq time
of the system's own core (where its veth NAPI and, for AF_XDP, the copy into the UMEM run) to
its processes' time, at each system's maximum and at one equal offered rate (--equal-rate).

The attacks, on the UDP systems: a flood from banned sources (raw frames, as fast as the
generator goes), legitimate registrations under it, and legitimate registrations under an
unauthenticated flood from RANDOM_SOURCES spoofed addresses (198.19.0.0/16, raw frames, as fast
as the generator goes: no address can be banned for it). The no-attack p99 of the same 200
registrations/s is the reference of both.

Every process is bounded in time; the namespaces are removed at the end, also on failure.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# SIPGW_BIN_DIR: where sipgw and sipgw-bench are (the test of this harness uses its own build);
# else the release directory of CARGO_TARGET_DIR (where bench/compare/run built them).
BIN = Path(os.environ.get(
    "SIPGW_BIN_DIR", Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"))
BENCH = str(BIN / "sipgw-bench")
SIPGW = str(BIN / "sipgw")

GW = "198.18.1.1"
LEGIT = "198.18.1.2"
FLOOD_BASE = 10      # 198.18.1.10.. : flood sources
MIXED_BASE = 40      # 198.18.1.40.. : flood sources of the mixed runs
SOURCES = 64         # addresses configured on the load side, from .10
RANDOM_NET = "198.19.0.0/16"   # spoofed sources of the unauthenticated flood (raw frames)
RANDOM_BASE = "198.19.0.1"
RANDOM_SPREAD = 1024          # addresses per flood queue thread (4 threads: 4,096)
SOFTSWITCH = "198.18.2.2"
REALM = "bench.test"
MAX_RETRY = 6
SUSPEND = 180
CLK_TCK = os.sysconf("SC_CLK_TCK")
# sipgw's metrics endpoint, inside the gateway namespace.
METRICS = "127.0.0.1:9465"


def sh(*args, check=True, capture=True, timeout=60):
    r = subprocess.run(args, capture_output=capture, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise SystemExit(f"compare: {' '.join(args)} failed: {r.stderr.strip()}")
    return r


class Topo:
    """Three namespaces: load (l), gateway (g), softswitch (s)."""

    def __init__(self, queues, softswitch_side="gateway"):
        # "gateway": the softswitch behind the gateway's second interface (the softswitch leg
        # of sipgw's AF_XDP backend uses the kernel socket there); "load": behind the load
        # namespace, which routes (the leg crosses the phone-facing interface, on AF_XDP).
        self.softswitch_side = softswitch_side
        tag = f"{os.getpid() % 100000}"
        self.l, self.g, self.s = (f"sgcmp{tag}-{x}" for x in "lgs")
        self.g_if, self.l_if = f"cg{tag}", f"cl{tag}"
        self.gs_if, self.s_if = f"cgs{tag}", f"cs{tag}"
        self.pin_root = f"/sys/fs/bpf/sipgw-compare-{tag}"
        self.queues = queues

    def __enter__(self):
        for ns in (self.l, self.g, self.s):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        q = str(self.queues)
        sh("ip", "link", "add", self.g_if, "numrxqueues", q, "numtxqueues", q, "netns", self.g,
           "type", "veth", "peer", "name", self.l_if, "numrxqueues", q, "numtxqueues", q,
           "netns", self.l)
        side = self.l if self.softswitch_side == "load" else self.g
        sh("ip", "link", "add", self.gs_if, "netns", side, "type", "veth", "peer", "name",
           self.s_if, "netns", self.s)
        sh("ip", "-n", self.g, "addr", "add", f"{GW}/24", "dev", self.g_if)
        sh("ip", "-n", side, "addr", "add", "198.18.2.1/24", "dev", self.gs_if)
        sh("ip", "-n", self.s, "addr", "add", f"{SOFTSWITCH}/24", "dev", self.s_if)
        sh("ip", "-n", self.l, "addr", "add", f"{LEGIT}/24", "dev", self.l_if)
        for i in range(SOURCES):
            sh("ip", "-n", self.l, "addr", "add", f"198.18.1.{FLOOD_BASE + i}/24", "dev",
               self.l_if)
        for ns, dev in ((self.l, self.l_if), (self.g, self.g_if), (side, self.gs_if),
                        (self.s, self.s_if)):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", self.s, "route", "add", "default", "via", "198.18.2.1")
        if self.softswitch_side == "load":
            sh("ip", "netns", "exec", self.l, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            sh("ip", "-n", self.g, "route", "add", "198.18.2.0/24", "via", LEGIT, "dev",
               self.g_if)
            # The softswitch's datagrams cross into the AF_XDP interface: full checksums.
            sh("ip", "netns", "exec", self.s, "ethtool", "-K", self.s_if, "tx", "off")
        # Replies to the spoofed flood go back into the load namespace, which drops them (no
        # such address there, no forwarding): nothing leaves the namespaces.
        sh("ip", "-n", self.g, "route", "add", RANDOM_NET, "via", LEGIT, "dev", self.g_if)
        # Local senders over veth leave partial UDP checksums with TX offload on; the AF_XDP
        # gateway checks checksums like the kernel on the wire would and drops those: the load
        # side computes full checksums instead (docs/xdp.md, "Checksums").
        sh("ip", "netns", "exec", self.l, "ethtool", "-K", self.l_if, "tx", "off")
        return self

    def __exit__(self, *exc):
        for ns in (self.l, self.g, self.s):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(self.pin_root, ignore_errors=True)

    def g_mac(self):
        """The gateway's phone-facing MAC address (the raw flood's destination)."""
        out = sh("ip", "-n", self.g, "-j", "link", "show", "dev", self.g_if).stdout
        return json.loads(out)[0]["address"]

    def udp_in(self):
        """UDP datagrams delivered to sockets in the gateway namespace (/proc/net/snmp)."""
        text = sh("ip", "netns", "exec", self.g, "cat", "/proc/net/snmp").stdout
        rows = [l.split() for l in text.splitlines() if l.startswith("Udp:")]
        fields = dict(zip(rows[0][1:], rows[1][1:]))
        return int(fields["InDatagrams"]), int(fields["RcvbufErrors"])

    def xdp_counter(self, name):
        path = f"{self.pin_root}/{self.g_if}/counters"
        if not os.path.exists(path):
            return 0
        dump = json.loads(sh("bpftool", "-j", "map", "dump", "pinned", path).stdout)
        return sum(v["value"][name] for v in dump[0]["formatted"]["values"])


def cpu_ticks(pids):
    """(user, system) clock ticks of the processes."""
    user = system = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        except OSError:
            pass
    return user, system


def softirq_ticks(cpu=None):
    """Softirq clock ticks of the machine, or of one CPU."""
    want = "cpu" if cpu is None else f"cpu{cpu}"
    for line in Path("/proc/stat").read_text().splitlines():
        f = line.split()
        if f and f[0] == want:
            return int(f[7])
    raise SystemExit(f"compare: no {want} line in /proc/stat")


PIN = {"load": None, "system": None}


def pinned(cmd, who):
    """`cmd` under taskset to the CPU of `who` (load or system), if pinning is on."""
    cpu = PIN[who]
    return cmd if cpu is None else ["taskset", "-c", str(cpu), *cmd]


class System:
    name = ""
    # The phones' transport: "udp", or "tcp" for the kamailio-tcp and sipgw-tcp systems.
    transport = "udp"

    def __init__(self, topo, workdir, workers):
        self.topo, self.dir, self.workers = topo, workdir, workers
        self.proc = None

    def pids(self):
        return [self.proc.pid]

    def counters(self):
        """The system's own counters (sipgw: its metrics; others: none)."""
        return {}

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Sipgw(System):
    def __init__(self, topo, workdir, workers, backend, transport="udp"):
        super().__init__(topo, workdir, workers)
        self.backend = backend
        self.transport = transport
        self.name = f"sipgw-{backend}" if transport == "udp" else f"sipgw-{transport}"

    def start(self):
        cfg = self.dir / f"{self.name}.toml"
        xdp = ""
        if self.backend == "xdp":
            xdp = (f'\n[xdp]\ninterface = "{self.topo.g_if}"\nmode = "native"\n'
                   f'zero_copy = "off"\npin_root = "{self.topo.pin_root}"\n')
        if self.transport == "tcp":
            xdp += "\n[tcp]\nenabled = true\n"
        cfg.write_text(
            f'credentials = "users.toml"\n\n[auth]\nrealm = "{REALM}"\nmax_retry = {MAX_RETRY}\n'
            f'challenge_mode = 3\n'
            f'failed_suspend = {SUSPEND}\n\n[gateway]\nbackend = "{self.backend}"\n'
            f'listen = "{GW}:5060"\nsoftswitch = "{SOFTSWITCH}:5060"\nworkers = {self.workers}\n'
            f'log_rejections_per_sec = 0\nmetrics = "{METRICS}"\n{xdp}')
        log = open(self.dir / f"{self.name}.log", "w")
        self.proc = subprocess.Popen(
            pinned(["nsenter", f"--net=/run/netns/{self.topo.g}", SIPGW, "run", "--config",
                    str(cfg)], "system"),
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        time.sleep(1.5)
        if self.proc.poll() is not None:
            raise SystemExit(f"compare: {self.name} did not start: "
                             f"{(self.dir / f'{self.name}.log').read_text()}")

    def counters(self):
        """The gateway's transport counters (`sipgw stats -j -a` in its namespace)."""
        r = sh("nsenter", f"--net=/run/netns/{self.topo.g}", SIPGW, "stats", "--metrics",
               METRICS, "-j", "-a", check=False)
        if r.returncode != 0:
            return {}
        return {k: v for k, v in json.loads(r.stdout).items()
                if "xsk_" in k or "datagrams" in k}

    def stop(self):
        super().stop()
        # Drop the program and maps so the next system starts clean.
        shutil.rmtree(self.topo.pin_root, ignore_errors=True)


class Kamailio(System):
    def __init__(self, topo, workdir, workers, transport="udp"):
        super().__init__(topo, workdir, workers)
        self.transport = transport
        self.name = "kamailio" if transport == "udp" else f"kamailio-{transport}"

    def start(self):
        users = json.loads((self.dir / "users.json").read_text())
        lines = "\n".join(f'\t$sht(users=>{u}) = "{p}";' for u, p in users)
        text = (ROOT / "bench/compare/kamailio.cfg.in").read_text()
        listen = f"disable_tcp=yes\nlisten=udp:{GW}:5060"
        if self.transport == "tcp":
            # TCP for the phones (as many TCP workers as UDP children), UDP to the softswitch.
            listen = (f"disable_tcp=no\ntcp_children={self.workers}\nlisten=udp:{GW}:5060\n"
                      f"listen=tcp:{GW}:5060")
        for k, v in {"@CHILDREN@": str(self.workers), "@TRANSPORT@": listen,
                     "@SECRET@": os.urandom(16).hex(), "@SUSPEND@": str(SUSPEND),
                     "@MAX_RETRY@": str(MAX_RETRY), "@SOFTSWITCH_IP@": SOFTSWITCH,
                     "@SOFTSWITCH@": f"{SOFTSWITCH}:5060", "@REALM@": REALM,
                     "@USERS@": lines}.items():
            text = text.replace(k, v)
        cfg = self.dir / f"{self.name}.cfg"
        cfg.write_text(text)
        log = open(self.dir / f"{self.name}.log", "w")
        self.proc = subprocess.Popen(
            pinned(["nsenter", f"--net=/run/netns/{self.topo.g}", "kamailio", "-DD", "-E", "-m",
                    "256", "-M", "16", "-f", str(cfg),
                    "-P", str(self.dir / f"{self.name}.pid"), "-Y", str(self.dir)], "system"),
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        time.sleep(2)
        if self.proc.poll() is not None:
            raise SystemExit(f"compare: {self.name} did not start: "
                             f"{(self.dir / f'{self.name}.log').read_text()[-3000:]}")

    def pids(self):
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [self.proc.pid] + [int(p) for p in out.stdout.split()]


QUERY = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(b"SIPGW-BENCH-STATS", (sys.argv[1], 5060))
print(s.recv(65536).decode())
"""


def softswitch_stats(topo):
    """The stand-in's counters, asked from inside its own namespace (the load namespace has no
    route to it, as in production)."""
    r = sh("ip", "netns", "exec", topo.s, "python3", "-c", QUERY, SOFTSWITCH, timeout=10)
    return json.loads(r.stdout)


def bench(topo, args, timeout):
    """sipgw-bench in the load namespace; its JSON report."""
    cmd = pinned(["ip", "netns", "exec", topo.l, BENCH, "--json", "--progress", "never"] + args,
                 "load")
    before = softswitch_stats(topo)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise SystemExit(f"compare: {' '.join(args)} failed: {r.stderr.strip()[-2000:]}")
    after = softswitch_stats(topo)
    report = json.loads(r.stdout)
    report["softswitch"] = {k: after[k] - before.get(k, 0) for k in after
                            if isinstance(after[k], int)}
    return report


def common(d):
    return ["--gateway", f"{GW}:5060", "--users", str(d / "users.toml"), "--realm", REALM,
            "--no-softswitch-query"]


def reg_rate(report):
    """Completed registrations per second of a `register` report."""
    r = report["register"]
    return r["succeeded"] / max(r["elapsed_s"], 1e-9)


def cpu_run(system, topo, args, timeout):
    """One bench run with the system's CPU: its processes' time and the softirq time of its
    core (of the machine when not pinned)."""
    pids = system.pids()
    t0, s0, m0 = cpu_ticks(pids), softirq_ticks(PIN["system"]), softirq_ticks()
    r = bench(topo, args, timeout)
    t1, s1, m1 = cpu_ticks(system.pids()), softirq_ticks(PIN["system"]), softirq_ticks()
    return r, {"cpu_user_s": (t1[0] - t0[0]) / CLK_TCK, "cpu_sys_s": (t1[1] - t0[1]) / CLK_TCK,
               "softirq_core_s": (s1 - s0) / CLK_TCK, "softirq_machine_s": (m1 - m0) / CLK_TCK}


def measure(system, topo, d, dur, offered, equal_rate):
    res = {"system": system.name, "transport": system.transport, "sweep": []}
    c = common(d)
    # The registrations travel over the system's transport (TCP: 4 threads x 4 connections).
    reg = ["register", *c, "--bind", LEGIT, "-n", "1000000000", "--sockets", "4",
           "--transport", system.transport]
    # Throughput against offered load.
    for rate in offered:
        r = bench(topo, [*reg, "--rate", str(rate), "--duration", str(dur)], dur + 30)
        res["sweep"].append({"offered": rate, "report": r})
        print(f"  {system.name}: offered {rate or 'max'}/s -> {reg_rate(r):,.0f}/s", flush=True)
    # The highest rate, with CPU; then one equal offered rate for every system, with CPU.
    k0 = system.counters()
    r, cpu = cpu_run(system, topo, [*reg, "--rate", "0", "--duration", str(dur)], dur + 30)
    k1 = system.counters()
    # Where the gateway's datagrams went in that run (sipgw: AF_XDP or the kernel socket).
    res["counters_max"] = {k: k1[k] - k0.get(k, 0) for k in k1}
    res["max"] = r
    res.update(cpu)
    res["cpu_s"] = res["cpu_user_s"] + res["cpu_sys_s"]
    res["softirq_s"] = res["softirq_core_s"]
    r, cpu = cpu_run(system, topo, [*reg, "--rate", str(equal_rate), "--duration", str(dur)],
                     dur + 30)
    res["equal"] = {"offered": equal_rate, "report": r, **cpu}
    # The reference of the attacks: 200 legitimate registrations/s without one.
    res["baseline"] = bench(topo, ["register", *c, "--bind", LEGIT, "-n", str(200 * dur),
                                   "--rate", "200", "--duration", str(dur), "--sockets", "2",
                                   "--transport", system.transport], dur + 30)
    if system.transport != "udp":
        # The flood and the mixed run are UDP attacks: measured on the UDP systems.
        return res
    # A flood from banned sources: brute-forced into a ban first, then as fast as possible as
    # raw frames from AF_XDP sockets on the load side (UDP sockets cannot outrun the gateways).
    raw = ["--xdp-iface", topo.l_if, "--xdp-dst-mac", topo.g_mac(), "--xdp-queues",
           str(topo.queues)]
    in0, err0 = topo.udp_in()
    x0 = topo.xdp_counter("dropped_banned")
    r = bench(topo, ["flood", *c, "--mode", "banned", "--flood-source-base",
                     f"198.18.1.{FLOOD_BASE}", "--flood-sockets", "4", "--duration", str(dur),
                     *raw], dur + 60)
    in1, err1 = topo.udp_in()
    x1 = topo.xdp_counter("dropped_banned")
    res["flood"] = r
    res["flood_delivered"] = in1 - in0
    res["flood_rcvbuf_errors"] = err1 - err0
    res["flood_xdp_dropped"] = x1 - x0
    # Legitimate registrations while that flood runs.
    res["mixed"] = bench(topo, ["mixed", *c, "--bind", LEGIT, "--rate", "200", "--attack",
                                "flood", "--mode", "banned", "--flood-source-base",
                                f"198.18.1.{MIXED_BASE}", "--flood-sockets", "4",
                                "--duration", str(dur), *raw], dur + 60)
    # Legitimate registrations under an unauthenticated flood from spoofed random sources.
    res["mixed_random"] = bench(topo, ["mixed", *c, "--bind", LEGIT, "--rate", "200",
                                       "--attack", "flood", "--mode", "unauth",
                                       "--flood-source-base", RANDOM_BASE, "--flood-spread",
                                       str(RANDOM_SPREAD), "--flood-sockets", "4",
                                       "--duration", str(dur), *raw], dur + 60)
    return res


def per_1000(cpu_s, report):
    return 1000.0 * cpu_s / max(report["register"]["succeeded"], 1)


def summary(res, dur):
    m = res["max"]["register"]
    eq = res["equal"]
    eq_cpu = eq["cpu_user_s"] + eq["cpu_sys_s"]
    ok = m["succeeded"]
    fail = m["failed"] + m["timed_out"]
    row = {
        "system": res["system"],
        "transport": res.get("transport", "udp"),
        "reg_per_s": reg_rate(res["max"]),
        "failure_pct": 100.0 * fail / max(ok + fail, 1),
        "reg_p50_ms": m["latency"]["p50_us"] / 1000,
        "reg_p99_ms": m["latency"]["p99_us"] / 1000,
        "cpu_s_per_1000": 1000.0 * res["cpu_s"] / max(ok, 1),
        "cpu_user_share_pct": 100.0 * res["cpu_user_s"] / max(res["cpu_s"], 1e-9),
        "softirq_s": res["softirq_s"],
        # CPU per registration with the softirq time of the system's core.
        "cpu_softirq_s_per_1000": per_1000(res["cpu_s"] + res["softirq_core_s"], res["max"]),
        "equal_offered": eq["offered"],
        "equal_reg_per_s": reg_rate(eq["report"]),
        "equal_cpu_s_per_1000": per_1000(eq_cpu, eq["report"]),
        "equal_cpu_softirq_s_per_1000": per_1000(eq_cpu + eq["softirq_core_s"], eq["report"]),
        "baseline_p99_ms": res["baseline"]["register"]["latency"]["p99_us"] / 1000,
        "reg_reached_softswitch": res["max"]["softswitch"]["register_asserted"],
        "connections_lost": m.get("connections_lost", 0),
        # Not measured for the TCP systems (UDP attacks): None, "-" in the table.
        "flood_sent_per_s": None,
        "flood_absorbed_per_s": None,
        "flood_reached_softswitch": None,
        "legit_success_pct": None,
        "legit_p99_ms": None,
        "random_flood_sent_per_s": None,
        "random_legit_success_pct": None,
        "random_legit_p99_ms": None,
    }
    if "flood" in res:
        flood = res["flood"]
        mixed = res["mixed"]["mixed"]
        row.update({
            "flood_sent_per_s": flood["flood"]["sent_per_s"],
            "flood_absorbed_per_s": (res["flood_delivered"] + res["flood_xdp_dropped"]) / dur,
            "flood_reached_softswitch": flood["softswitch"]["class_flood"],
            "legit_success_pct": 100.0 * mixed["legitimate_success_rate"],
            "legit_p99_ms": mixed["legitimate"]["latency"]["p99_us"] / 1000,
        })
    if "mixed_random" in res:
        mr = res["mixed_random"]["mixed"]
        row.update({
            "random_flood_sent_per_s": (mr.get("flood") or {}).get("sent_per_s"),
            "random_legit_success_pct": 100.0 * mr["legitimate_success_rate"],
            "random_legit_p99_ms": mr["legitimate"]["latency"]["p99_us"] / 1000,
        })
    return row


def svg_lines(results, path):
    """Registrations/s against offered load, one line per system; the last point of each line
    is the run "as fast as possible" (the tick labelled max)."""
    w, h, pad = 660, 360, 80
    series = []
    for r in results:
        series.append((r["system"], [(s["offered"], reg_rate(s["report"])) for s in r["sweep"]]))
    finite = [o for _, pts in series for o, _ in pts if o] or [1]
    x_max_point = max(finite) * 1.25
    xmax = x_max_point
    ymax = max(max(p for _, p in pts) for _, pts in series) or 1
    ymax *= 1.05
    colours = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    sx = lambda v: pad + (w - 30 - pad) * v / xmax
    sy = lambda v: h - 60 - (h - 60 - 40) * v / ymax
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w/2}" y="22" text-anchor="middle" font-size="14">'
           f'Completed registrations/s against offered load</text>',
           f'<line x1="{pad}" y1="{h-60}" x2="{w-30}" y2="{h-60}" stroke="black"/>',
           f'<line x1="{pad}" y1="{h-60}" x2="{pad}" y2="40" stroke="black"/>',
           f'<text x="{(w+pad)/2}" y="{h-20}" text-anchor="middle">offered registrations/s'
           f' (max: as fast as the generator can)</text>',
           f'<text x="18" y="{h/2}" transform="rotate(-90 18 {h/2})" text-anchor="middle">'
           f'completed registrations/s</text>']
    for i in range(5):
        v = ymax * i / 4
        out.append(f'<text x="{pad-6}" y="{sy(v)+4:.1f}" text-anchor="end">{v:,.0f}</text>')
        out.append(f'<line x1="{pad}" y1="{sy(v):.1f}" x2="{w-30}" y2="{sy(v):.1f}" '
                   f'stroke="#ddd"/>')
    last_x = -1e9
    for o in sorted(set(finite)):
        if sx(o) - last_x >= 40:  # skip labels that would overlap
            out.append(f'<text x="{sx(o):.1f}" y="{h-44}" text-anchor="middle">{o:,}</text>')
            last_x = sx(o)
    out.append(f'<text x="{sx(x_max_point):.1f}" y="{h-44}" text-anchor="middle">max</text>')
    for k, (name, pts) in enumerate(series):
        c = colours[k % len(colours)]
        xy = [(sx(o if o else x_max_point), sy(p)) for o, p in pts]
        out.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>'
                   % (c, " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)))
        for (x, y), (_, p) in zip(xy, pts):
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{c}"/>')
        last = xy[-1]
        out.append(f'<text x="{last[0]-8:.1f}" y="{last[1]+4+14*k:.1f}" text-anchor="end" '
                   f'fill="{c}">{pts[-1][1]:,.0f}</text>')
        out.append(f'<text x="{pad+12}" y="{58+16*k}" fill="{c}">{name}</text>')
    out.append("</svg>")
    Path(path).write_text("\n".join(out))


def svg_bars(rows, key, title, path):
    w, h, pad = 640, 300, 60
    vmax = max(r[key] or 0 for r in rows) or 1
    bw = (w - 2 * pad) / len(rows)
    colours = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w/2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
           f'<line x1="{pad}" y1="{h-pad}" x2="{w-pad}" y2="{h-pad}" stroke="black"/>']
    for i, r in enumerate(rows):
        v = r[key] or 0
        bh = (h - pad - 40) * v / vmax
        x = pad + i * bw + bw * 0.2
        out.append(f'<rect x="{x:.1f}" y="{h-pad-bh:.1f}" width="{bw*0.6:.1f}" '
                   f'height="{bh:.1f}" fill="{colours[i % len(colours)]}"/>')
        out.append(f'<text x="{x+bw*0.3:.1f}" y="{h-pad-bh-5:.1f}" text-anchor="middle">'
                   f'{v:,.0f}</text>')
        out.append(f'<text x="{x+bw*0.3:.1f}" y="{h-pad+18}" text-anchor="middle">'
                   f'{r["system"]}</text>')
    out.append("</svg>")
    Path(path).write_text("\n".join(out))


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per run (1-120)")
    ap.add_argument("--users", type=int, default=1000, help="accounts registered (10-100000)")
    ap.add_argument("--systems", default="kamailio,sipgw-udp,sipgw-xdp,kamailio-tcp,sipgw-tcp",
                    help="comma-separated: kamailio, sipgw-udp, sipgw-xdp (phones over UDP), "
                         "kamailio-tcp, sipgw-tcp (phones over TCP)")
    ap.add_argument("--offered", default="1000,2000,5000,10000,20000,30000,0",
                    help="offered registrations/s of the sweep (0: as fast as possible)")
    ap.add_argument("--queues", type=int, default=2, help="veth queues = workers/children")
    ap.add_argument("--softswitch-side", choices=("gateway", "load"), default="gateway",
                    help="where the softswitch stand-in is: behind the gateway's second "
                         "interface, or behind the load namespace (routed; the softswitch leg "
                         "then crosses the phone-facing interface: AF_XDP both ways)")
    ap.add_argument("--equal-rate", type=int, default=5000,
                    help="offered registrations/s at which every system's CPU is measured too")
    ncpu = os.cpu_count() or 1
    ap.add_argument("--pin-load", default="0" if ncpu >= 2 else "none",
                    help="CPU of the load generator and the stand-in (none: not pinned)")
    ap.add_argument("--pin-system", default="1" if ncpu >= 2 else "none",
                    help="CPU of the system under test (none: not pinned)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"),
                    help="directory for compare.json and the SVG charts")
    a = ap.parse_args()
    if not 1 <= a.duration <= 120 or not 10 <= a.users <= 100000:
        raise SystemExit("compare: --duration must be 1-120 and --users 10-100000")
    if os.geteuid() != 0:
        raise SystemExit("compare: run it as root (network namespaces, XDP): sudo bench/compare/run")
    for tool in ("ip", "nsenter", "bpftool", "kamailio", BENCH, SIPGW):
        if not shutil.which(tool) and not os.path.exists(tool):
            raise SystemExit(f"compare: {tool} not found: run bench/compare/run, which installs "
                             f"and builds what is needed")
    offered = [int(x) for x in a.offered.split(",")]
    for who, v in (("load", a.pin_load), ("system", a.pin_system)):
        if v != "none":
            if not v.isdigit() or int(v) >= ncpu:
                raise SystemExit(f"compare: --pin-{who} {v!r}: a CPU number below {ncpu}, or none")
            PIN[who] = int(v)
    if (PIN["load"] is None) != (PIN["system"] is None) or (
            PIN["load"] is not None and PIN["load"] == PIN["system"]):
        raise SystemExit("compare: --pin-load and --pin-system: two different CPUs, or both none")
    if not shutil.which("taskset") and PIN["load"] is not None:
        raise SystemExit("compare: taskset not found (util-linux): run bench/compare/run")
    systems = a.systems.split(",")
    known = ("kamailio", "sipgw-udp", "sipgw-xdp", "kamailio-tcp", "sipgw-tcp")
    for name in systems:
        if name not in known:
            raise SystemExit(f"compare: unknown system {name!r} in --systems (one of "
                             f"{', '.join(known)})")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sipgw-compare-"))
    users = [(f"u{i:05}", f"pw-{i}-{os.urandom(4).hex()}") for i in range(a.users)]
    (work / "users.toml").write_text("".join(
        f'[[account]]\nname = "{u}"\npassword = "{p}"\n\n' for u, p in users))
    (work / "users.json").write_text(json.dumps(users))
    results = []
    with Topo(a.queues, a.softswitch_side) as topo:
        for name in systems:
            ss = subprocess.Popen(
                pinned(["ip", "netns", "exec", topo.s, BENCH, "softswitch", "--listen",
                        f"{SOFTSWITCH}:5060", "--duration", "3600"], "load"),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            time.sleep(0.5)
            system = {"kamailio": lambda: Kamailio(topo, work, a.queues),
                      "sipgw-udp": lambda: Sipgw(topo, work, a.queues, "udp"),
                      "sipgw-xdp": lambda: Sipgw(topo, work, a.queues, "xdp"),
                      "kamailio-tcp": lambda: Kamailio(topo, work, a.queues, "tcp"),
                      "sipgw-tcp": lambda: Sipgw(topo, work, a.queues, "udp", "tcp")}[name]()
            print(f"compare: {name}", flush=True)
            system.start()
            try:
                results.append(measure(system, topo, work, a.duration, offered, a.equal_rate))
            finally:
                system.stop()
                ss.send_signal(signal.SIGTERM)
                try:
                    ss.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    ss.kill()
    rows = [summary(r, a.duration) for r in results]
    base = next((r for r in rows if r["system"] == "kamailio"), None)
    base_tcp = next((r for r in rows if r["system"] == "kamailio-tcp"), None)
    pin = ("not pinned" if PIN["load"] is None else
           f"load generator and stand-in on CPU {PIN['load']}, system on CPU {PIN['system']}")
    print(f"\n{pin}; CPU = the system's processes, +si = with the softirq time of "
          f"{'its core' if PIN['system'] is not None else 'the machine'}")
    head = (f"{'system':<13} {'reg/s':>9} {'fail %':>7} {'CPU s/1000':>11} {'+si':>8} "
            f"{'@' + str(a.equal_rate) + '/s':>9} {'+si':>8} {'p99 ms':>7}")
    print(head)
    for r in rows:
        print(f"{r['system']:<13} {fmt(r['reg_per_s'], ',.0f'):>9} {fmt(r['failure_pct'], '.2f'):>7} "
              f"{fmt(r['cpu_s_per_1000'], '.4f'):>11} {fmt(r['cpu_softirq_s_per_1000'], '.4f'):>8} "
              f"{fmt(r['equal_cpu_s_per_1000'], '.4f'):>9} "
              f"{fmt(r['equal_cpu_softirq_s_per_1000'], '.4f'):>8} {fmt(r['reg_p99_ms'], '.1f'):>7}")
    print(f"\n{'system':<13} {'banned flood/s':>14} {'absorbed/s':>11} {'reached ss':>10} "
          f"{'legit ok %':>10} {'p99 ms':>7} | {'random flood/s':>14} {'legit ok %':>10} "
          f"{'p99 ms':>7} | {'no attack p99':>13}")
    for r in rows:
        print(f"{r['system']:<13} {fmt(r['flood_sent_per_s'], ',.0f'):>14} "
              f"{fmt(r['flood_absorbed_per_s'], ',.0f'):>11} "
              f"{fmt(r['flood_reached_softswitch'], 'd'):>10} "
              f"{fmt(r['legit_success_pct'], '.2f'):>10} {fmt(r['legit_p99_ms'], '.1f'):>7} | "
              f"{fmt(r['random_flood_sent_per_s'], ',.0f'):>14} "
              f"{fmt(r['random_legit_success_pct'], '.2f'):>10} "
              f"{fmt(r['random_legit_p99_ms'], '.1f'):>7} | {fmt(r['baseline_p99_ms'], '.2f'):>13}")
    if base or base_tcp:
        print("\nratios against kamailio (same run; the TCP rows against kamailio-tcp):")
        for r in rows:
            b = base_tcp if r["transport"] == "tcp" else base
            if b is None or r is b:
                continue

            def times(k):
                return f"x{r[k] / b[k]:.2f}" if r[k] and b[k] else "-"

            def inv(k):
                return f"1/{b[k] / r[k]:.1f}" if r[k] and b[k] else "-"

            parts = [f"registrations/s {times('reg_per_s')}",
                     f"CPU per registration {inv('cpu_s_per_1000')} "
                     f"(with softirq {inv('cpu_softirq_s_per_1000')}; at {a.equal_rate}/s "
                     f"{inv('equal_cpu_s_per_1000')}, with softirq "
                     f"{inv('equal_cpu_softirq_s_per_1000')})"]
            if r["flood_absorbed_per_s"] is not None:
                parts += [f"banned flood absorbed {times('flood_absorbed_per_s')}",
                          f"legitimate success under it {times('legit_success_pct')}, "
                          f"p99 {times('legit_p99_ms')}",
                          f"under the random flood {times('random_legit_success_pct')}, "
                          f"p99 {times('random_legit_p99_ms')}"]
            print(f"  {r['system']} / {b['system']}: " + "; ".join(parts))
    for res in results:
        k = res.get("counters_max") or {}
        up = k.get("sipgw_xsk_upstream_frames_total")
        if up is not None:
            kernel = k.get("sipgw_tx_datagrams_total", 0)
            print(f"\n{res['system']} at its maximum: softswitch leg {up:,} datagrams on AF_XDP, "
                  f"{kernel:,} through the kernel socket (unresolved "
                  f"{k.get('sipgw_xsk_upstream_unresolved_total', 0):,}, elsewhere "
                  f"{k.get('sipgw_xsk_upstream_elsewhere_total', 0):,}); "
                  f"{k.get('sipgw_rx_datagrams_total', 0):,} received on the kernel socket")
    (out / "compare.json").write_text(json.dumps({"rows": rows, "runs": results,
                                                  "duration_s": a.duration,
                                                  "users": a.users, "pin": PIN,
                                                  "softswitch_side": a.softswitch_side,
                                                  "equal_rate": a.equal_rate}, indent=1))
    svg_lines(results, out / "compare-throughput.svg")
    svg_bars(rows, "flood_absorbed_per_s", "Banned-source flood absorbed (packets/s), 0 reaching "
             "the softswitch", out / "compare-flood.svg")
    print(f"\ncompare: results in {out}/compare.json, charts compare-throughput.svg and "
          f"compare-flood.svg; logs in {work}")


if __name__ == "__main__":
    main()
