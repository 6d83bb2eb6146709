#!/usr/bin/python3
"""A real Prometheus scraping a live `hips local` (docs/observability.md).

Starts `hips local --metrics-targets`, then Debian's `prometheus` on a free
loopback port with the shipped deploy/prometheus config (scrape and
evaluation intervals shortened to 1 s, paths made absolute), and checks:
  - promtool check config / check rules pass on the shipped files;
  - every process of the cluster is a target and up;
  - every query of every panel of deploy/grafana/dashboards/hips.json returns
    data through Prometheus's HTTP API;
  - every alert expression of deploy/prometheus/rules.yml evaluates, and
    its series (the expression left of its comparison) returns data.
Every wait is bounded; every process started here is stopped here.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request

import waiting

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print("FAIL: " + message, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def wait_until(what, condition, seconds):
    if waiting.wait_for(condition, seconds, every=0.2, ignore=(OSError, ValueError, KeyError)):
        return True
    check(False, "timed out waiting for " + what)
    return False


def query(base, expr):
    url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    return get_json(url)


def stop(process):
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--deploy", required=True)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--screenshot", default="",
                        help="save the console page as PNG here (headless Chromium)")
    args = parser.parse_args()
    args.bin = os.path.abspath(args.bin)
    args.deploy = os.path.abspath(args.deploy)
    prometheus_bin = shutil.which("prometheus")
    promtool = shutil.which("promtool")
    if prometheus_bin is None or promtool is None:
        print("prometheus/promtool not installed (scripts/setup.sh installs them)")
        return 1

    shipped_config = os.path.join(args.deploy, "prometheus", "prometheus.yml")
    rules = os.path.join(args.deploy, "prometheus", "rules.yml")
    dashboard = os.path.join(args.deploy, "grafana", "dashboards", "hips.json")
    for name in (shipped_config, os.path.join(args.deploy, "prometheus", "prometheus-compose.yml")):
        r = subprocess.run([promtool, "check", "config", name], capture_output=True, text=True)
        check(r.returncode == 0, "promtool check config %s: %s%s" % (name, r.stdout, r.stderr))
    r = subprocess.run([promtool, "check", "rules", rules], capture_output=True, text=True)
    check(r.returncode == 0, "promtool check rules: " + r.stdout + r.stderr)

    tmp = tempfile.mkdtemp(prefix="hips-prometheus-")
    targets = os.path.join(tmp, "targets")
    os.makedirs(targets)
    config = open(shipped_config).read()
    config = config.replace("scrape_interval: 5s", "scrape_interval: 1s")
    config = config.replace("evaluation_interval: 5s", "evaluation_interval: 1s")
    config = config.replace("targets/*.json", os.path.join(targets, "*.json"))
    config = config.replace("- rules.yml", "- " + rules)
    check("1s" in config and targets in config and rules in config,
          "the shipped config no longer has the settings this test adjusts")
    config_path = os.path.join(tmp, "prometheus.yml")
    open(config_path, "w").write(config)

    hips = prometheus = None
    try:
        hips_out = open(os.path.join(tmp, "hips.out"), "w")
        hips = subprocess.Popen(
            [os.path.join(args.bin, "hips"), "local", "--epochs=6", "--eval_every=50",
             "--progress_seconds=1", "--run_dir=" + os.path.join(tmp, "run"),
             "--metrics-targets", os.path.join(targets, "hips.json")],
            stdout=hips_out, stderr=subprocess.STDOUT)
        port = free_port()
        base = "http://127.0.0.1:%d" % port
        prometheus = subprocess.Popen(
            [prometheus_bin, "--config.file=" + config_path,
             "--storage.tsdb.path=" + os.path.join(tmp, "data"),
             "--web.listen-address=127.0.0.1:%d" % port,
             "--web.console.templates=" + os.path.join(args.deploy, "prometheus", "consoles"),
             "--web.console.libraries=/usr/share/prometheus/console_libraries"],
            stdout=open(os.path.join(tmp, "prometheus.out"), "w"), stderr=subprocess.STDOUT)
        wait_until("Prometheus to be ready",
                 lambda: urllib.request.urlopen(base + "/-/ready", timeout=2).status == 200, 60)

        def all_up():
            active = get_json(base + "/api/v1/targets")["data"]["activeTargets"]
            return len(active) == 7 and all(t["health"] == "up" for t in active)
        wait_until("7 targets (1 hq, 2 aggregators, 4 workers) up", all_up, 90)
        active = get_json(base + "/api/v1/targets")["data"]["activeTargets"]
        tiers = sorted(t["labels"]["tier"] for t in active)
        check(tiers == ["aggregator"] * 2 + ["hq"] + ["worker"] * 4, "tiers: %s" % tiers)

        # Rates need two scrapes; the accuracy needs a first evaluation.
        wait_until("a first evaluation", lambda: query(base, 'hips_eval_accuracy{tier="hq"}')["data"]["result"], 90)
        wait_until("a second scrape of every target (rates need two)",
                   lambda: len(query(base, 'count_over_time(up[10m]) >= 2')["data"]["result"]) == 7,
                   60)

        board = json.load(open(dashboard))
        exprs = [(p["title"], t["expr"]) for p in board["panels"] for t in p["targets"]]
        for title, expr in exprs:
            result = query(base, expr)
            check(result["status"] == "success" and result["data"]["result"],
                  "panel %r: %s returned no data" % (title, expr))
        rule_exprs = re.findall(r"^\s*expr:\s*(.+)$", open(rules).read(), re.M)
        check(len(rule_exprs) >= 3, "alert rules found: %d" % len(rule_exprs))
        for expr in rule_exprs:
            result = query(base, expr)
            check(result["status"] == "success", "alert %s does not evaluate" % expr)
            series = re.split(r"\s(?:==|!=|<=|>=|<|>)\s", expr)[0]
            result = query(base, series)
            check(result["data"]["result"], "alert series %s returned no data" % series)
        rules_loaded = get_json(base + "/api/v1/rules")["data"]["groups"]
        check(sum(len(g["rules"]) for g in rules_loaded) == len(rule_exprs),
              "Prometheus loaded %s" % rules_loaded)
        # The console page (no Grafana needed): rendered by Prometheus, one
        # row per process, with numbers filled in.
        with urllib.request.urlopen(base + "/consoles/hips.html", timeout=10) as r:
            page = r.read().decode()
        check("<h1>hips cluster</h1>" in page, "console page: no title")
        for name in ["hq", "aggregator-0", "aggregator-1"] + ["worker-%d" % k for k in range(4)]:
            check('<td class="name">%s</td>' % name in page, "console page: no row for " + name)
        check(re.search(r"<th class=\"name\">version</th><td>[1-9][0-9]*</td>", page),
              "console page: no version")
        check("error executing template" not in page, "console page: template error")
        if args.screenshot:
            chromium = shutil.which("chromium") or shutil.which("chromium-browser")
            check(chromium is not None, "chromium is not installed (scripts/setup.sh installs it)")
            if chromium:
                if os.path.exists(args.screenshot):
                    os.remove(args.screenshot)
                r = subprocess.run(
                    [chromium, "--headless", "--no-sandbox", "--disable-gpu",
                     "--user-data-dir=" + os.path.join(tmp, "chromium"),
                     "--window-size=1000,900", "--screenshot=" + args.screenshot,
                     base + "/consoles/hips.html"],
                    capture_output=True, text=True, timeout=120)
                ok = os.path.exists(args.screenshot) and os.path.getsize(args.screenshot) > 10000
                check(ok, "no screenshot: %s %s" % (r.stdout[-500:], r.stderr[-500:]))
                with open(args.screenshot, "rb") as f:
                    check(f.read(8) == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG")
                print("console screenshot: " + args.screenshot, flush=True)
        # A value Prometheus scraped equals what HQ reports: versions only grow.
        version = float(query(base, 'hips_version{tier="hq"}')["data"]["result"][0]["value"][1])
        check(version > 0, "hips_version %s" % version)
        print("checked %d panel queries and %d alert expressions; HQ at version %d"
              % (len(exprs), len(rule_exprs), version), flush=True)
    finally:
        stop(hips)
        stop(prometheus)
        if failures or args.keep:
            print("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
