#!/usr/bin/env python3
"""The Helm chart (deploy/helm/muserve) against the server it deploys.

Renders the chart's templates (with helm when it is installed, else with
helm_template.py) for the default values, for values-gpu.yaml and with
autoscaling on, lints every YAML file and rendering, and checks that what
the chart tells Kubernetes and Prometheus matches the real server: the flags
in the container command exist in `muserve serve --help`, the probes and
Service target the ports the command sets, `muserve serve --print-config`
accepts every value set's command line (but those that need the CUDA
backend, which this build lacks), the pod meets the "restricted" Pod
Security Standard, the model mount is the --model
directory, the grace period covers the preStop sleep and the drain, a server
started with the chart's flags and values serves, and every metric (and
label) named by the alerts, the autoscaler and the adapter rules is on its
/metrics.

Usage: chart_test.py MUSERVE_BINARY REPO_DIR MODEL_DIR
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

MUSERVE, REPO, MODEL_DIR = sys.argv[1:4]
del sys.argv[1:4]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import yaml  # noqa: E402

import helm_template  # noqa: E402
from muserve_process import MuserveServer, metric_families  # noqa: E402

CHART = os.path.join(REPO, "deploy", "helm", "muserve")
YAMLLINT_CONFIG = os.path.join(REPO, ".yamllint")


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


# The value sets the chart is rendered with: every template and branch the
# chart has is exercised by at least one of them.
VALUE_SETS = {
    "defaults": {},
    "gpu": load_yaml(os.path.join(CHART, "values-gpu.yaml")),
    "autoscaling": {"autoscaling": {"enabled": True},
                    "server": {"extraArgs": ["--max-request-bytes=8388608"]}},
}


def render_with_helm(values):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump(values, f)
        f.flush()
        out = subprocess.run(["helm", "template", "muserve", CHART, "-f", f.name],
                             check=True, capture_output=True, text=True).stdout
    return out


def render(values):
    """(rendered text, [parsed documents])."""
    if shutil.which("helm"):
        text = render_with_helm(values)
        return text, [d for d in yaml.safe_load_all(text) if d is not None]
    chart = helm_template.Chart(CHART)
    text = "".join(f"---\n# Source: {name}\n{body.strip()}\n"
                   for name, body in chart.render(values).items() if body.strip())
    return text, [doc for _, doc in chart.render_documents(values)]


def by_kind(documents, kind):
    return [d for d in documents if d.get("kind") == kind]


def container(documents):
    (deployment,) = by_kind(documents, "Deployment")
    (main,) = deployment["spec"]["template"]["spec"]["containers"]
    return deployment, main


def flag_values(args):
    """{"--port": "50051", ...} from ["serve", "--port=50051", ...]."""
    flags = {}
    for arg in args:
        if arg.startswith("--"):
            name, _, value = arg.partition("=")
            flags[name] = value
    return flags


def needs_cuda(args):
    """Why `args` cannot run on this build, or None: --device=cuda needs a
    muserve built with the CUDA backend (nvcc present at build time)."""
    if flag_values(args).get("--device", "cpu") != "cuda":
        return None
    probe = subprocess.run([MUSERVE, "serve", "--device=cuda", "--print-config"],
                           capture_output=True, text=True)
    if probe.returncode != 0 and "got 'cuda'" in probe.stderr:
        return "--device=cuda needs the CUDA backend, which this build was made without"
    return None


def print_config(args):
    """`muserve serve ARGS --print-config` with the chart's container ARGS
    (less "serve"), the model mount replaced by this test's model."""
    args = [f"--model={MODEL_DIR}" if a.startswith("--model=") else a for a in args[1:]]
    return subprocess.run([MUSERVE, "serve", *args, "--print-config"], capture_output=True,
                          text=True)


def serve_help_flags():
    result = subprocess.run([MUSERVE, "serve", "--help"], capture_output=True, text=True)
    return set(re.findall(r"(?m)^\s+(--[a-z][a-z0-9-]*)", result.stdout + result.stderr))


class ChartRendersAndLints(unittest.TestCase):
    def test_every_yaml_file_and_rendering_passes_yamllint(self):
        files = [p for p in glob.glob(os.path.join(REPO, "deploy", "**", "*.yaml"), recursive=True)
                 if "/templates/" not in p]
        self.assertIn(os.path.join(CHART, "values.yaml"), files)
        with tempfile.TemporaryDirectory() as tmp:
            for name, values in VALUE_SETS.items():
                path = os.path.join(tmp, f"rendered-{name}.yaml")
                with open(path, "w") as f:
                    f.write(render(values)[0])
                files.append(path)
            result = subprocess.run(["yamllint", "--strict", "-c", YAMLLINT_CONFIG, *files],
                                    capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_renders_the_objects_a_replica_set_needs(self):
        kinds = sorted(d["kind"] for d in render({})[1])
        self.assertEqual(kinds, ["Deployment", "PodDisruptionBudget", "PrometheusRule", "Service",
                                 "ServiceMonitor"])
        kinds = [d["kind"] for d in render(VALUE_SETS["autoscaling"])[1]]
        self.assertIn("HorizontalPodAutoscaler", kinds)
        deployment, _ = container(render(VALUE_SETS["autoscaling"])[1])
        self.assertNotIn("replicas", deployment["spec"], "the HPA owns the replica count")

    def test_the_renderer_refuses_what_it_cannot_render(self):
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(CHART, os.path.join(tmp, "chart"))
            extra = os.path.join(tmp, "chart", "templates", "extra.yaml")
            for construct in ['{{ template "muserve.fullname" . }}', "{{ .Values.x | b64enc }}",
                              "{{ $x := 1 }}", "{{ if .Values.x }}open"]:
                with open(extra, "w") as f:
                    f.write(f"a: {construct}\n")
                with self.assertRaises(helm_template.TemplateError, msg=construct):
                    helm_template.Chart(os.path.join(tmp, "chart")).render()

    def test_pods_meet_the_restricted_pod_security_standard(self):
        for name, values in VALUE_SETS.items():
            deployment, main = container(render(values)[1])
            pod = deployment["spec"]["template"]["spec"]["securityContext"]
            self.assertTrue(pod["runAsNonRoot"], name)
            self.assertNotEqual(pod["runAsUser"], 0, name)
            self.assertEqual(pod["seccompProfile"], {"type": "RuntimeDefault"}, name)
            self.assertEqual(pod["fsGroupChangePolicy"], "OnRootMismatch", name)
            own = main["securityContext"]
            self.assertIs(own["allowPrivilegeEscalation"], False, name)
            self.assertEqual(own["capabilities"]["drop"], ["ALL"], name)
            self.assertNotIn("add", own["capabilities"], name)
            self.assertTrue(own["runAsNonRoot"], name)

    def test_replicas_spread_over_nodes_without_blocking_scheduling(self):
        deployment, _ = container(render({})[1])
        (spread,) = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        self.assertEqual(spread["topologyKey"], "kubernetes.io/hostname")
        self.assertEqual(spread["whenUnsatisfiable"], "ScheduleAnyway")
        self.assertEqual(spread["labelSelector"]["matchLabels"],
                         deployment["spec"]["selector"]["matchLabels"])
        deployment, _ = container(render({"topologySpread": {"enabled": False}})[1])
        self.assertNotIn("topologySpreadConstraints", deployment["spec"]["template"]["spec"])

    def test_probes_tolerate_one_slow_answer(self):
        for name, values in VALUE_SETS.items():
            _, main = container(render(values)[1])
            readiness = main["readinessProbe"]
            self.assertIn(readiness["timeoutSeconds"], (2, 3), name)
            self.assertIn(readiness["failureThreshold"], (2, 3), name)
            for probe in ("startupProbe", "livenessProbe"):
                self.assertGreaterEqual(main[probe]["timeoutSeconds"], 2, f"{name}: {probe}")

    def test_gpu_rollouts_need_no_spare_gpu_and_cpu_rollouts_keep_capacity(self):
        deployment, _ = container(render(VALUE_SETS["gpu"])[1])
        self.assertEqual(deployment["spec"]["strategy"]["rollingUpdate"],
                         {"maxSurge": 0, "maxUnavailable": 1})
        deployment, _ = container(render({})[1])
        self.assertEqual(deployment["spec"]["strategy"]["rollingUpdate"],
                         {"maxSurge": 1, "maxUnavailable": 0})

    def test_needs_kubernetes_with_grpc_probes(self):
        self.assertEqual(load_yaml(os.path.join(CHART, "Chart.yaml"))["kubeVersion"],
                         ">=1.24.0-0")

    def test_prometheus_operator_objects_can_be_turned_off(self):
        # For clusters without the Prometheus operator's CRDs.
        documents = render({"serviceMonitor": {"enabled": False},
                            "prometheusRule": {"enabled": False}})[1]
        kinds = sorted(d["kind"] for d in documents)
        self.assertEqual(kinds, ["Deployment", "PodDisruptionBudget", "Service"])
        (monitor,) = by_kind(render({})[1], "ServiceMonitor")
        # The MuserveReplicaDown alert selects `up` by this label.
        self.assertEqual(monitor["spec"]["targetLabels"], ["app.kubernetes.io/name"])

    def test_gpu_values_request_gpus_and_select_gpu_nodes(self):
        deployment, main = container(render(VALUE_SETS["gpu"])[1])
        self.assertEqual(main["resources"]["limits"]["nvidia.com/gpu"], 1)
        node_selector = deployment["spec"]["template"]["spec"]["nodeSelector"]
        self.assertIn("nvidia.com/gpu.present", node_selector)
        _, cpu_main = container(render({})[1])
        self.assertNotIn("nvidia.com/gpu", cpu_main["resources"]["limits"])


class ChartMatchesTheServer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.help_flags = serve_help_flags()
        assert "--port" in cls.help_flags, "could not read muserve serve --help"

    def test_container_flags_exist_in_serve_help(self):
        for name, values in VALUE_SETS.items():
            _, main = container(render(values)[1])
            self.assertEqual(main["args"][0], "serve")
            unknown = set(flag_values(main["args"])) - self.help_flags
            self.assertFalse(unknown, f"{name}: flags not in `muserve serve --help`: {unknown}")

    def test_serve_accepts_every_value_sets_command_line(self):
        # --print-config runs every check of serve's flags (ranges, sizes,
        # the device, that --model is a directory) without loading a model.
        for name, values in VALUE_SETS.items():
            with self.subTest(values=name):
                _, main = container(render(values)[1])
                reason = needs_cuda(main["args"])
                if reason:
                    print(f"\nskipped: {name} values: {reason}", file=sys.stderr)
                    self.skipTest(f"{name} values: {reason}")
                result = print_config(main["args"])
                self.assertEqual(result.returncode, 0, f"{name}: {result.stderr}")

    def test_a_bad_value_fails_the_print_config_check(self):
        _, main = container(render({"server": {"maxNumSeqs": 0, "maxConnectionAge": "-1s"}})[1])
        result = print_config(main["args"])
        self.assertEqual(result.returncode, 2)
        self.assertIn("--max-num-seqs: must be in [1, 2147483647], got 0", result.stderr)
        self.assertIn("--max-connection-age: must be 0 (never close)", result.stderr)

    def test_probes_and_ports_are_the_ones_the_command_sets(self):
        for name, values in VALUE_SETS.items():
            documents = render(values)[1]
            deployment, main = container(documents)
            flags = flag_values(main["args"])
            grpc_port, metrics_port = int(flags["--port"]), int(flags["--metrics-port"])
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                self.assertEqual(main[probe]["grpc"]["port"], grpc_port, f"{name}: {probe}")
            ports = {p["name"]: p["containerPort"] for p in main["ports"]}
            self.assertEqual(ports, {"grpc": grpc_port, "metrics": metrics_port})
            (service,) = by_kind(documents, "Service")
            self.assertEqual(service["spec"]["clusterIP"], "None", "headless, for client-side LB")
            service_ports = {p["name"]: p for p in service["spec"]["ports"]}
            for port in service_ports.values():
                self.assertIn(port["targetPort"], ports)
            (monitor,) = by_kind(documents, "ServiceMonitor")
            for endpoint in monitor["spec"]["endpoints"]:
                self.assertEqual(service_ports[endpoint["port"]]["targetPort"], "metrics")
            selector = deployment["spec"]["selector"]["matchLabels"]
            self.assertEqual(service["spec"]["selector"], selector)
            self.assertEqual(deployment["spec"]["template"]["metadata"]["labels"], selector)

    def test_model_volume_is_mounted_where_model_points(self):
        documents = render({})[1]
        deployment, main = container(documents)
        mounts = {m["name"]: m for m in main["volumeMounts"]}
        self.assertEqual(mounts["model"]["mountPath"], flag_values(main["args"])["--model"])
        self.assertTrue(mounts["model"]["readOnly"])
        volumes = {v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]}
        self.assertIn("model", volumes)

    def test_grace_period_covers_the_pre_stop_sleep_and_the_drain(self):
        deployment, main = container(render({})[1])
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        sleep = main["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(sleep[0], "sleep")
        drain = flag_values(main["args"])["--drain-timeout"]
        self.assertRegex(drain, r"^\d+s$")
        self.assertGreater(grace, int(sleep[1]) + int(drain[:-1]))

    def test_server_runs_with_the_charts_flags_and_has_every_metric_alerts_use(self):
        # The server runs with the chart's own flags and values, but the
        # model, address and ports of this test.
        _, main = container(render({})[1])
        local = ("--model", "--host", "--port", "--metrics-port")
        chart_args = [a for a in main["args"][1:] if a.partition("=")[0] not in local]
        self.assertIn("--log-format=json", chart_args)
        with MuserveServer(MUSERVE, MODEL_DIR, chart_args) as server:
            done = subprocess.run([MUSERVE, "complete", "--target", server.target, "--max-tokens",
                                   "4", "Once upon a time"], capture_output=True, text=True)
            self.assertEqual(done.returncode, 0, done.stderr)
            families = metric_families(server.metrics())
            code = server.stop()
        self.assertEqual(code, 0)
        exposed = {}  # sample name -> label names seen on it
        for kind, samples in families.values():
            for sample, labels in samples:
                exposed.setdefault(sample, set()).update(labels)
        self.assertIn("muserve_requests_total", exposed)

        documents = render(VALUE_SETS["autoscaling"])[1]
        (rule,) = by_kind(documents, "PrometheusRule")
        expressions = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
        self.assertGreaterEqual(len(expressions), 5)
        adapter = load_yaml(os.path.join(CHART, "prometheus-adapter-rules.yaml"))
        adapter_series = []
        for adapter_rule in adapter["rules"]["custom"]:
            self.assertEqual(adapter_rule["name"]["as"], "$1", "the adapter keeps metric names")
            expressions.append(adapter_rule["seriesQuery"])
            adapter_series += re.findall(r"\bmuserve_\w+", adapter_rule["seriesQuery"])
        named = set()
        for expr in expressions:
            for name in re.findall(r"\bmuserve_\w+", expr):
                named.add(name)
                self.assertTrue(name in exposed, f"{name} (in {expr!r}) is not on /metrics")
            for name, matchers in re.findall(r"\b(muserve_\w+)\{([^}]*)\}", expr):
                for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers):
                    if label in ("namespace", "pod"):
                        continue  # added by the scrape, not by the server
                    self.assertTrue(label in exposed[name],
                                    f"{name} has no label {label} on /metrics (in {expr!r})")
        for family in ("muserve_time_to_first_token_seconds_bucket", "muserve_waiting_requests",
                       "muserve_kv_cache_usage_ratio", "muserve_preemptions_total",
                       "muserve_requests_total"):
            self.assertIn(family, named, "the issue's alerts and autoscaling metrics")
        (hpa,) = by_kind(documents, "HorizontalPodAutoscaler")
        for metric in hpa["spec"]["metrics"]:
            self.assertIn(metric["pods"]["metric"]["name"], adapter_series)


if __name__ == "__main__":
    unittest.main(verbosity=2)
