#!/usr/bin/env python3
"""A real Prometheus (Debian's prometheus package) scrapes a running
`muserve serve` and loads the chart's alert rules: the target comes up, a
muserve metric is queryable, and every rule is loaded and healthy. The rule
file also passes `promtool check rules`.

Usage: prometheus_test.py MUSERVE_BINARY REPO_DIR MODEL_DIR
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

MUSERVE, REPO, MODEL_DIR = sys.argv[1:4]
del sys.argv[1:4]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import yaml  # noqa: E402

import helm_template  # noqa: E402
from muserve_process import MuserveServer, free_port  # noqa: E402

CHART = os.path.join(REPO, "deploy", "helm", "muserve")


def prometheus_rule_groups():
    """The rule groups of the chart's rendered PrometheusRule."""
    documents = helm_template.Chart(CHART).render_documents()
    (rule,) = [d for _, d in documents if d["kind"] == "PrometheusRule"]
    return rule["spec"]["groups"]


def api_get(port, path, **params):
    url = f"http://127.0.0.1:{port}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


class PrometheusScrapesMuserve(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="muserve-prometheus-")
        self.rules = os.path.join(self.tmp, "muserve.rules.yaml")
        with open(self.rules, "w") as f:
            yaml.safe_dump({"groups": prometheus_rule_groups()}, f)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_promtool_accepts_the_rules(self):
        for path in (self.rules, os.path.join(CHART, "files", "alerts.rules.yaml")):
            result = subprocess.run(["promtool", "check", "rules", path], capture_output=True,
                                    text=True)
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_prometheus_scrapes_the_server_and_loads_the_rules(self):
        with MuserveServer(MUSERVE, MODEL_DIR) as server:
            done = subprocess.run([MUSERVE, "complete", "--target", server.target, "--max-tokens",
                                   "4", "Once upon a time"], capture_output=True, text=True)
            self.assertEqual(done.returncode, 0, done.stderr)
            config = os.path.join(self.tmp, "prometheus.yml")
            with open(config, "w") as f:
                yaml.safe_dump({
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [self.rules],
                    # The target label the chart's ServiceMonitor copies
                    # from the Service, which MuserveReplicaDown selects on.
                    "scrape_configs": [{"job_name": "muserve", "static_configs": [
                        {"targets": [f"127.0.0.1:{server.metrics_port}"],
                         "labels": {"app_kubernetes_io_name": "muserve"}}]}],
                }, f)
            web_port = free_port()
            log = open(os.path.join(self.tmp, "prometheus.log"), "w+")
            prometheus = subprocess.Popen(
                ["prometheus", f"--config.file={config}",
                 f"--storage.tsdb.path={os.path.join(self.tmp, 'data')}",
                 f"--web.listen-address=127.0.0.1:{web_port}"],
                stdout=log, stderr=subprocess.STDOUT)
            try:
                self.check_scrape_and_rules(web_port, prometheus, log)
            finally:
                prometheus.terminate()
                prometheus.wait(timeout=20)
                log.close()
            self.assertEqual(server.stop(), 0)

    def check_scrape_and_rules(self, port, prometheus, log):
        deadline = time.monotonic() + 30
        series = []
        while time.monotonic() < deadline:
            if prometheus.poll() is not None:
                log.seek(0)
                self.fail("prometheus exited:\n" + log.read())
            try:
                targets = api_get(port, "targets")["activeTargets"]
                if targets and targets[0]["health"] == "up":
                    series = api_get(port, "query",
                                     query='muserve_requests_total{job="muserve"}')["result"]
                    if series:
                        break
            except OSError:
                pass  # not listening yet
            time.sleep(0.2)
        self.assertTrue(series, "no muserve_requests_total series in Prometheus")
        self.assertEqual(sum(float(s["value"][1]) for s in series), 1.0)
        self.assertEqual(api_get(port, "query", query="muserve_serving")["result"][0]["value"][1],
                         "1")
        up = api_get(port, "query", query='up{app_kubernetes_io_name="muserve"}')["result"]
        self.assertEqual([s["value"][1] for s in up], ["1"], "MuserveReplicaDown's selector")

        groups = api_get(port, "rules")["groups"]
        loaded = {r["name"]: r for g in groups for r in g["rules"]}
        expected = {r["alert"] for g in prometheus_rule_groups() for r in g["rules"]}
        self.assertEqual(set(loaded), expected)
        # Rules are evaluated every second: wait for one evaluation of each.
        while time.monotonic() < deadline and any("lastEvaluation" not in r or
                                                  r["lastEvaluation"].startswith("0001")
                                                  for r in loaded.values()):
            time.sleep(0.2)
            loaded = {r["name"]: r for g in api_get(port, "rules")["groups"] for r in g["rules"]}
        for name, rule in loaded.items():
            self.assertEqual(rule["health"], "ok", f"{name}: {rule.get('lastError')}")
            self.assertEqual(rule["state"], "inactive", f"{name} fires on an idle server")


if __name__ == "__main__":
    unittest.main(verbosity=2)
