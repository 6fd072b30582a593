#!/usr/bin/env python3
"""The chart's alert rules on synthetic series: `promtool test rules` runs
tests/deploy/alerts_test.yaml against deploy/helm/muserve/files/alerts.rules.yaml
(when each alert fires, with which labels, and that none adds up releases
of different namespaces). The rules are given to promtool without their
annotations, which are prose for people (`promtool check rules` checks
their templates in prometheus_test.py).

Usage: alert_rules_test.py REPO_DIR
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

REPO = sys.argv[1]
del sys.argv[1]

import yaml  # noqa: E402

RULES = os.path.join(REPO, "deploy", "helm", "muserve", "files", "alerts.rules.yaml")
TESTS = os.path.join(REPO, "tests", "deploy", "alerts_test.yaml")


class AlertRulesTest(unittest.TestCase):
    def test_promtool_unit_tests_of_the_alerts_pass(self):
        with open(RULES) as f:
            rules = yaml.safe_load(f)
        for group in rules["groups"]:
            for rule in group["rules"]:
                rule.pop("annotations", None)
        with tempfile.TemporaryDirectory(prefix="muserve-alerts-") as tmp:
            with open(os.path.join(tmp, "alerts.rules.yaml"), "w") as f:
                yaml.safe_dump(rules, f)
            shutil.copy(TESTS, tmp)
            result = subprocess.run(["promtool", "test", "rules", os.path.basename(TESTS)],
                                    cwd=tmp, capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("SUCCESS", result.stdout)

    def test_the_alerts_this_file_covers_exist(self):
        with open(RULES) as f:
            alerts = {r["alert"] for g in yaml.safe_load(f)["groups"] for r in g["rules"]}
        with open(TESTS) as f:
            tested = {t["alertname"] for case in yaml.safe_load(f)["tests"]
                      for t in case["alert_rule_test"]}
        self.assertFalse(tested - alerts, "tests of alerts that no longer exist")
        for alert in ("MuserveReplicaDown", "MuserveContainerRestarting", "MuserveQueueGrowing",
                      "MuserveQueueBacklog", "MuserveHighErrorRate"):
            self.assertIn(alert, tested)


if __name__ == "__main__":
    unittest.main(verbosity=2)
