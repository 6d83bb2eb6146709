#!/usr/bin/python3
"""The WAN testbed (issue 17, docs/wan.md): one network namespace per site.

  bench/wan/testbed.py check [--rate_mbit=50] [--delay_ms=40] [--lan]
                             [--site=mdc-b:rate_mbit=10,delay_ms=150,slowdown=4]
  bench/wan/testbed.py hold  [...]        bring it up and wait for Ctrl-C
  bench/wan/testbed.py clean              remove what a killed run left

Sites: `hq` (10.77.0.2), `mdc-a` (10.77.1.2) and `mdc-b` (10.77.2.2), each a
namespace with one interface `wan0` to a router namespace and a default
route through it; processes in a site reach the others by their addresses,
never through loopback. Inside a site nothing is shaped. Each MDC site's
link to the router is shaped both ways: the rate by tbf in the kernel (on
the MDC's egress and the router's egress towards it), the one-way delay by
hips-wan-delay in the router (policy routing sends the link's packets
through a TUN device, the program writes each back `delay_ms` later). The
HQ site's own link is unshaped: the MDC links are the long distances, and
MDC to MDC crosses both (twice the delay).
--lan (or Testbed(shaped=False)) builds the same namespaces with neither
rate nor delay.

Sites may differ (issue 28): --site=SITE:rate_mbit=R,delay_ms=D,slowdown=S
(or Testbed(sites={SITE: {...}})) gives one MDC site its own link rate and
one-way delay, and a compute slowdown that the processes started in it are
told of (Testbed.slowdown(site): WanCluster passes it to its workers as
--slowdown). A site not named has the testbed's rate and delay and no
slowdown; a site's delay stage is a hips-wan-delay of its own.

Root only (it says so and stops otherwise). Everything it makes is named
hipswan<pid>-*, removed on exit, on Ctrl-C, on SIGTERM and on a failure;
`clean` removes what a SIGKILLed run left behind (namespaces whose run is
gone, and the processes in them).

`check` shows the link holds the rate and the delay: ping RTT between an
MDC and HQ, and a bulk TCP transfer each way (bulk.py), printed as JSON.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
PREFIX = "hipswan"
SITES = {"hq": 0, "mdc-a": 1, "mdc-b": 2}


def sh(argv, check=True, **kwargs):
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), result.returncode,
                                                result.stderr.strip()))
    return result


def require_root():
    if os.geteuid() != 0:
        sys.exit("bench/wan: the WAN testbed needs root (network namespaces, tbf, TUN); "
                 "run it as root")


class Testbed:
    """The namespaces, links and delay stage; a context manager that removes
    them (and every process started in them) on exit."""

    def __init__(self, rate_mbit=50.0, delay_ms=40, shaped=True, build=None, sites=None):
        if shaped and (not rate_mbit > 0 or delay_ms < 0):
            raise ValueError("rate_mbit must be > 0 and delay_ms >= 0")
        self.rate_mbit, self.delay_ms, self.shaped = rate_mbit, delay_ms, shaped
        self.sites = check_sites(sites or {})
        self.build = build or os.path.join(ROOT, "build")
        self.tag = "%s%d" % (PREFIX, os.getpid())
        self.processes = []
        self.delays = []
        self.made = []

    # Per site: its link's rate and one-way delay (when shaped), and the
    # compute slowdown of what runs in it.
    def site_rate_mbit(self, site):
        return self.sites.get(site, {}).get("rate_mbit", self.rate_mbit)

    def site_delay_ms(self, site):
        return self.sites.get(site, {}).get("delay_ms", self.delay_ms)

    def slowdown(self, site):
        return self.sites.get(site, {}).get("slowdown", 1.0)

    # Names and addresses.
    def ns(self, site):
        return "%s-%s" % (self.tag, site)

    @staticmethod
    def address(site):
        return "10.77.%d.2" % SITES[site]

    def up(self):
        require_root()
        clean_stale()
        router = self.ns("router")
        for ns in [router] + [self.ns(s) for s in SITES]:
            sh(["ip", "netns", "add", ns])
            self.made.append(ns)
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        for name in ("all", "default"):
            sh(["ip", "netns", "exec", router, "sysctl", "-qw",
                "net.ipv4.conf.%s.rp_filter=0" % name])
        sh(["ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        tuns = []
        for site, k in SITES.items():
            ns, port = self.ns(site), "r-%d" % k
            sh(["ip", "link", "add", "wan0", "netns", ns, "type", "veth", "peer", "name", port,
                "netns", router])
            sh(["ip", "-n", ns, "addr", "add", "10.77.%d.2/24" % k, "dev", "wan0"])
            sh(["ip", "-n", router, "addr", "add", "10.77.%d.1/24" % k, "dev", port])
            sh(["ip", "-n", ns, "link", "set", "wan0", "up"])
            sh(["ip", "-n", router, "link", "set", port, "up"])
            sh(["ip", "-n", ns, "route", "add", "default", "via", "10.77.%d.1" % k])
            sh(["ip", "netns", "exec", router, "sysctl", "-qw",
                "net.ipv4.conf.%s.rp_filter=0" % port])
            if not self.shaped or site == "hq":
                continue
            # The rate: tbf on both ends' egress. Its queue holds about two
            # one-way delays of the link (a bottleneck's buffer near its
            # bandwidth-delay product).
            rate, delay = self.site_rate_mbit(site), self.site_delay_ms(site)
            rate_bytes = rate * 1e6 / 8
            burst = max(32 * 1024, int(rate_bytes / 100))
            latency = max(50, 2 * delay)
            for where, dev in ((ns, "wan0"), (router, port)):
                sh(["ip", "netns", "exec", where, "tc", "qdisc", "add", "dev", dev, "root", "tbf",
                    "rate", "%gmbit" % rate, "burst", str(burst), "latency",
                    "%dms" % latency])
            # The delay: both directions of this link through tun-K.
            tun, table = "tun-%d" % k, str(100 + k)
            sh(["ip", "-n", router, "tuntap", "add", "dev", tun, "mode", "tun"])
            sh(["ip", "-n", router, "link", "set", tun, "up"])
            sh(["ip", "netns", "exec", router, "sysctl", "-qw",
                "net.ipv4.conf.%s.rp_filter=0" % tun])
            sh(["ip", "-n", router, "route", "add", "default", "dev", tun, "table", table])
            tuns.append((tun, self.site_delay_ms(site)))
        # A packet leaving MDC k crosses its link (tun-k); one for MDC k, from
        # HQ's site or out of another MDC's link, crosses it too: MDC to MDC
        # is both links, as it would be through the HQ region.
        mdcs = [k for site, k in SITES.items() if site != "hq"] if tuns else []
        for k in mdcs:
            table = str(100 + k)
            sh(["ip", "-n", router, "rule", "add", "iif", "r-%d" % k, "lookup", table])
            for source in ["r-0"] + ["tun-%d" % j for j in mdcs if j != k]:
                sh(["ip", "-n", router, "rule", "add", "iif", source, "to", "10.77.%d.0/24" % k,
                    "lookup", table])
        if tuns:
            binary = os.path.join(self.build, "bench", "hips-wan-delay")
            if not os.access(binary, os.X_OK):
                raise RuntimeError("no %s: build it (scripts/build.sh)" % binary)
            # One delay stage per delay: the links of equal delay share one.
            by_delay = {}
            for tun, delay in tuns:
                by_delay.setdefault(delay, []).append(tun)
            for delay, names in sorted(by_delay.items()):
                stage = subprocess.Popen(
                    ["ip", "netns", "exec", router, binary, "--tun=" + ",".join(names),
                     "--delay_ms=%d" % delay],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                self.delays.append(stage)
                first = stage.stdout.readline()
                if "delaying" not in first:
                    raise RuntimeError("hips-wan-delay did not start: " + first)
        return self

    def popen(self, site, argv, **kwargs):
        """Starts `argv` in `site`'s namespace; stopped by down()."""
        p = subprocess.Popen(["ip", "netns", "exec", self.ns(site)] + argv, **kwargs)
        self.processes.append(p)
        return p

    def run(self, site, argv, timeout=120):
        return subprocess.run(["ip", "netns", "exec", self.ns(site)] + argv, capture_output=True,
                              text=True, timeout=timeout)

    def down_processes(self, extra=()):
        """Stops every process popen() started (SIGTERM, then SIGKILL after
        10 s); the testbed stays up."""
        stopping = self.processes + list(extra)
        for p in stopping:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        for p in stopping:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.processes = []

    def down(self):
        self.down_processes(self.delays)
        self.delays = []
        for ns in reversed(self.made):
            remove_namespace(ns)
        self.made = []

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.down()
        return False


SITE_KEYS = {"rate_mbit": float, "delay_ms": int, "slowdown": float}


def check_sites(sites):
    """`sites` ({site: {rate_mbit, delay_ms, slowdown}}) checked: MDC sites
    only, known keys, rate > 0, delay in [0, 10000], slowdown >= 1."""
    for site, values in sites.items():
        if site not in SITES or site == "hq":
            raise ValueError("per-site settings are for the MDC sites (%s), not %r" %
                             (", ".join(s for s in SITES if s != "hq"), site))
        for key, value in values.items():
            if key not in SITE_KEYS:
                raise ValueError("unknown site setting %r (want %s)" %
                                 (key, ", ".join(sorted(SITE_KEYS))))
            if key == "rate_mbit" and not value > 0:
                raise ValueError("%s: rate_mbit must be > 0" % site)
            if key == "delay_ms" and not 0 <= value <= 10000:
                raise ValueError("%s: delay_ms must be in [0, 10000]" % site)
            if key == "slowdown" and not value >= 1:
                raise ValueError("%s: slowdown must be >= 1" % site)
    return sites


def parse_site(text):
    """'mdc-b:rate_mbit=10,delay_ms=150,slowdown=4' -> ('mdc-b', {...})."""
    site, sep, rest = text.partition(":")
    if not sep or not rest:
        raise ValueError("--site wants SITE:KEY=VALUE[,KEY=VALUE...], got %r" % text)
    values = {}
    for item in rest.split(","):
        key, eq, value = item.partition("=")
        if not eq or key not in SITE_KEYS:
            raise ValueError("--site %r: unknown or malformed setting %r (want %s)" %
                             (text, item, ", ".join(sorted(SITE_KEYS))))
        try:
            values[key] = SITE_KEYS[key](value)
        except ValueError:
            raise ValueError("--site %r: %s=%r is not a number" % (text, key, value)) from None
    check_sites({site: values})
    return site, values


def remove_namespace(ns):
    """Kills what runs in `ns` (only our testbed's processes live there),
    then deletes it (its veths and TUN devices go with it)."""
    for _ in range(3):
        pids = sh(["ip", "netns", "pids", ns], check=False).stdout.split()
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        time.sleep(0.2)
    sh(["ip", "netns", "delete", ns], check=False)


def clean_stale():
    """Removes the namespaces of testbed runs whose process is gone."""
    listing = sh(["ip", "netns", "list"], check=False).stdout
    for line in listing.splitlines():
        m = re.match(r"(%s(\d+)-\S+)" % PREFIX, line)
        if m and not os.path.exists("/proc/%s" % m.group(2)):
            remove_namespace(m.group(1))


def ping_ms(bed, site, target, count=10):
    out = bed.run(site, ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", target]).stdout
    m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/", out)
    if not m:
        raise RuntimeError("ping %s from %s: %s" % (target, site, out))
    return {"min": float(m.group(1)), "avg": float(m.group(2)), "max": float(m.group(3))}


def bulk_mbit(bed, sender, receiver, megabytes):
    """Goodput of one TCP transfer, measured by the receiver."""
    server = bed.popen(receiver, ["/usr/bin/python3", os.path.join(HERE, "bulk.py"), "serve",
                                  bed.address(receiver), "0"],
                       stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline().split()[-1])
    send = bed.run(sender, ["/usr/bin/python3", os.path.join(HERE, "bulk.py"), "send",
                            bed.address(receiver), str(port), str(megabytes << 20)], timeout=300)
    if send.returncode != 0:
        raise RuntimeError("bulk send: " + send.stderr)
    result = json.loads(server.stdout.readline())
    server.wait(timeout=30)
    return result["bytes"] * 8 / result["seconds"] / 1e6


def check(bed, megabytes):
    out = {"rate_mbit": bed.rate_mbit if bed.shaped else None,
           "delay_ms": bed.delay_ms if bed.shaped else 0}
    if bed.sites:
        out["sites"] = bed.sites
    out["rtt_ms"] = {site: ping_ms(bed, site, bed.address("hq")) for site in ("mdc-a", "mdc-b")}
    out["rtt_ms_between_mdcs"] = ping_ms(bed, "mdc-a", bed.address("mdc-b"))
    out["up_mbit"] = round(bulk_mbit(bed, "mdc-a", "hq", megabytes), 1)
    out["down_mbit"] = round(bulk_mbit(bed, "hq", "mdc-b", megabytes), 1)
    if bed.sites:
        # Each MDC's own link, up: a site of its own rate holds it.
        out["up_mbit_by_site"] = {site: round(bulk_mbit(bed, site, "hq", megabytes), 1)
                                  for site in ("mdc-a", "mdc-b")}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["check", "hold", "clean"])
    parser.add_argument("--rate_mbit", type=float, default=50.0)
    parser.add_argument("--delay_ms", type=int, default=40)
    parser.add_argument("--lan", action="store_true", help="no rate, no delay")
    parser.add_argument("--megabytes", type=int, default=24, help="check: bytes per transfer")
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--site", action="append", default=[],
                        help="SITE:rate_mbit=R,delay_ms=D,slowdown=S (an MDC site of its own)")
    args = parser.parse_args()
    if args.rate_mbit <= 0 or args.delay_ms < 0 or args.megabytes <= 0:
        parser.error("--rate_mbit and --megabytes must be positive, --delay_ms >= 0")
    sites = {}
    for text in args.site:
        try:
            site, values = parse_site(text)
        except ValueError as e:
            parser.error(str(e))
        sites.setdefault(site, {}).update(values)
    require_root()
    if args.command == "clean":
        clean_stale()
        return 0
    # SIGTERM ends the run like Ctrl-C: through the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with Testbed(args.rate_mbit, args.delay_ms, not args.lan, args.build, sites) as bed:
        if args.command == "check":
            print(json.dumps(check(bed, args.megabytes)), flush=True)
        else:
            print("testbed %s up: %s; Ctrl-C removes it" % (bed.tag, ", ".join(
                "%s=%s (ip netns exec %s ...)" % (s, bed.address(s), bed.ns(s)) for s in SITES)),
                flush=True)
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
