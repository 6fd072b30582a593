#!/usr/bin/env python3
"""The drain sequence a Kubernetes rollout relies on, with the chart's own
settings: while a client streams, SIGTERM turns the readiness service the
chart probes NOT_SERVING at once, new calls get UNAVAILABLE while the
stream in flight runs on to its end, and the process exits 0 well before
the pod's grace period (less its preStop sleep, which Kubernetes spends
before sending SIGTERM) is over.

Usage: drain_test.py MUSERVE_BINARY REPO_DIR MODEL_DIR
"""
import os
import re
import sys
import time
import unittest

MUSERVE, REPO, MODEL_DIR = sys.argv[1:4]
del sys.argv[1:4]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc  # noqa: E402

import helm_template  # noqa: E402
from muserve_process import MuserveServer, load_stubs  # noqa: E402

pb, pb_grpc, health_pb2, health_pb2_grpc = load_stubs(os.path.join(REPO, "proto"))
CHART = os.path.join(REPO, "deploy", "helm", "muserve")
MAX_TOKENS = 1500


def chart_settings():
    """(--drain-timeout argument, readiness service, grace seconds, preStop
    sleep seconds) as the chart renders them with its default values."""
    documents = helm_template.Chart(CHART).render_documents()
    (deployment,) = [d for _, d in documents if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (drain,) = [a for a in container["args"] if a.startswith("--drain-timeout=")]
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep", sleep
    return (drain, container["readinessProbe"]["grpc"].get("service", ""),
            pod["terminationGracePeriodSeconds"], int(sleep[1]))


class DrainTest(unittest.TestCase):
    def test_sigterm_drains_the_stream_and_exits_zero_within_the_grace_period(self):
        drain_flag, readiness_service, grace_s, pre_stop_s = chart_settings()
        budget_s = grace_s - pre_stop_s
        with MuserveServer(MUSERVE, MODEL_DIR, [drain_flag]) as server:
            channel = grpc.insecure_channel(server.target)
            health = health_pb2_grpc.HealthStub(channel)

            def readiness():
                request = health_pb2.HealthCheckRequest(service=readiness_service)
                return health.Check(request, timeout=5).status

            self.assertEqual(readiness(), health_pb2.HealthCheckResponse.SERVING)
            request = pb.GenerateRequest(
                text="a story to finish",
                options=pb.GenerationOptions(
                    sampling=pb.SamplingOptions(temperature=0),
                    stopping=pb.StoppingOptions(max_tokens=MAX_TOKENS, ignore_eos=True)))
            stream = pb_grpc.InferenceStub(channel).Generate(request, timeout=budget_s)
            first = next(stream)
            self.assertTrue(first.HasField("chunk"))

            server.signal()
            signalled = time.monotonic()
            while readiness() == health_pb2.HealthCheckResponse.SERVING:
                self.assertLess(time.monotonic() - signalled, 1.0, "still SERVING 1s after SIGTERM")
                time.sleep(0.005)
            self.assertEqual(readiness(), health_pb2.HealthCheckResponse.NOT_SERVING)

            # A new call is refused at once (for a client to retry on
            # another replica) while the stream in flight goes on.
            with self.assertRaises(grpc.RpcError) as refused:
                list(pb_grpc.InferenceStub(channel).Generate(
                    pb.GenerateRequest(text="too late"), timeout=5))
            self.assertEqual(refused.exception.code(), grpc.StatusCode.UNAVAILABLE)
            self.assertIn("draining", refused.exception.details())
            self.assertFalse(stream.done(), "the stream in flight ended before the new call")

            finished = None
            for response in stream:
                if response.HasField("finished"):
                    finished = response.finished
            self.assertIsNotNone(finished, "the stream ended without its Finished message")
            self.assertEqual(finished.reason, pb.FINISH_REASON_LENGTH)
            self.assertEqual(finished.usage.completion_tokens, MAX_TOKENS)
            self.assertEqual(stream.code(), grpc.StatusCode.OK)

            code = server.process.wait(timeout=budget_s)
            elapsed = time.monotonic() - signalled
            self.assertEqual(code, 0, server.log_text())
            self.assertLess(elapsed, budget_s)
            # The stream was still running when the drain began.
            match = re.search(r"draining.*in_flight=(\d+)", server.log_text())
            self.assertIsNotNone(match, server.log_text())
            self.assertEqual(int(match.group(1)), 1, "the stream had ended before SIGTERM")
            channel.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
