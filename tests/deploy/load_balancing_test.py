#!/usr/bin/env python3
"""gRPC load balancing across replicas, the way docs/operations.md tells
clients to connect: two real `muserve serve` replicas behind one name that
resolves to both addresses (here gRPC's ipv4: target, standing in for the
headless Service's DNS name), and a channel with the documented service
config. round_robin spreads requests over both replicas on long-lived
HTTP/2 connections, where the default pick_first pins every request to one;
with client-side health checking, a draining replica (NOT_SERVING) stops
getting new requests at once, before its connection closes; without it, the
config's retry policy sends the calls a draining replica refuses
(UNAVAILABLE) to the other one, and the client sees no error either way.

Usage: load_balancing_test.py MUSERVE_BINARY REPO_DIR MODEL_DIR
"""
import json
import os
import re
import sys
import time
import unittest

MUSERVE, REPO, MODEL_DIR = sys.argv[1:4]
del sys.argv[1:4]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc  # noqa: E402

from muserve_process import MuserveServer, load_stubs  # noqa: E402

pb, pb_grpc, health_pb2, health_pb2_grpc = load_stubs(os.path.join(REPO, "proto"))
NUM_REQUESTS = 20


def documented_service_config():
    """The service config of docs/operations.md ("Load balancing"): the
    first JSON block of that section, so the test checks what users copy."""
    with open(os.path.join(REPO, "docs", "operations.md")) as f:
        section = f.read().split("## Load balancing", 1)[1]
    return json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))


ROUND_ROBIN = documented_service_config()
# The same for a client that does not watch health: the retry policy alone
# keeps a drain invisible to it.
ROUND_ROBIN_WITHOUT_HEALTH_CHECKS = {k: v for k, v in ROUND_ROBIN.items()
                                     if k != "healthCheckConfig"}


def requests_served(server):
    """Generate calls the replica finished OK, from its own /metrics."""
    total = 0.0
    for line in server.metrics().splitlines():
        if line.startswith("muserve_requests_total{") and 'code="OK"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def generate(stub, max_tokens=2, request_id=""):
    request = pb.GenerateRequest(
        request_id=request_id, text="hello", options=pb.GenerationOptions(
            stopping=pb.StoppingOptions(max_tokens=max_tokens, ignore_eos=True)))
    return list(stub.Generate(request, timeout=10))


class LoadBalancingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.replicas = [MuserveServer(MUSERVE, MODEL_DIR, ["--drain-timeout=60s"]).wait_serving()
                        for _ in range(2)]
        cls.target = "ipv4:" + ",".join(r.target for r in cls.replicas)

    @classmethod
    def tearDownClass(cls):
        for replica in cls.replicas:
            replica.__exit__(None, None, None)

    def served(self):
        return [requests_served(r) for r in self.replicas]

    def settled(self, baseline, sent):
        """The replicas' counts once all `sent` requests since `baseline` are
        recorded: a request's metrics are written once both its call and its
        engine request have ended, a moment after the client sees the end."""
        deadline = time.monotonic() + 10
        while True:
            now = self.served()
            if sum(now) - sum(baseline) >= sent or time.monotonic() > deadline:
                return now
            time.sleep(0.02)

    def run_requests(self, options):
        """Requests each replica served of NUM_REQUESTS sent over one channel,
        once the channel has settled (round_robin's second connection may
        become ready a moment after the first)."""
        with grpc.insecure_channel(self.target, options=options) as channel:
            grpc.channel_ready_future(channel).result(timeout=10)
            stub = pb_grpc.InferenceStub(channel)
            start = self.served()
            for sent in range(1, 11):
                generate(stub)
                if all(now > was for now, was in zip(self.settled(start, sent), start)):
                    break
            before = self.settled(start, sent)
            for _ in range(NUM_REQUESTS):
                generate(stub)
            after = self.settled(before, NUM_REQUESTS)
            return [a - b for a, b in zip(after, before)]

    def test_1_pick_first_pins_every_request_to_one_replica(self):
        counts = self.run_requests([])
        self.assertEqual(sorted(counts), [0, NUM_REQUESTS], counts)

    def test_2_round_robin_spreads_requests_over_every_replica(self):
        counts = self.run_requests([("grpc.service_config", json.dumps(ROUND_ROBIN))])
        self.assertEqual(sum(counts), NUM_REQUESTS)
        self.assertEqual(counts, [NUM_REQUESTS // 2] * 2, counts)

    def test_3_a_draining_replica_gets_no_new_requests(self):
        draining, other = self.replicas
        ids = self.drain_while_sending(draining, other, ROUND_ROBIN, "after-drain")
        # Each replica logs the id of every request it ran or refused.
        for request_id in ids:
            self.assertNotIn(f"id={request_id} ", draining.log_text())

    def test_4_without_health_checks_retries_hide_a_drain(self):
        self.assertIn("retryPolicy", json.dumps(ROUND_ROBIN), "the documented retry policy")
        with MuserveServer(MUSERVE, MODEL_DIR, ["--drain-timeout=60s"]) as draining:
            ids = self.drain_while_sending(draining, self.replicas[1],
                                           ROUND_ROBIN_WITHOUT_HEALTH_CHECKS, "retried")
            # round_robin still picked the draining replica for some calls:
            # it refused them and the retries went to the other replica.
            refused = [line for line in draining.log_text().splitlines()
                       if "request refused" in line and "id=retried-" in line]
            self.assertTrue(refused, "no call reached the draining replica: inconclusive")
            for line in refused:
                self.assertIn("UNAVAILABLE", line)

    def drain_while_sending(self, draining, other, service_config, prefix):
        """Sends NUM_REQUESTS // 2 calls over a channel to both replicas with
        `service_config` while `draining` drains (kept alive by long streams);
        each must succeed and be run by `other`. Returns their ids."""
        options = [("grpc.service_config", json.dumps(service_config))]
        target = f"ipv4:{draining.target},{other.target}"
        with grpc.insecure_channel(target, options=options) as channel, \
                grpc.insecure_channel(draining.target) as direct:
            grpc.channel_ready_future(channel).result(timeout=10)
            stub = pb_grpc.InferenceStub(channel)
            generate(stub)
            # Long streams that keep the draining replica up (it waits for
            # them) while it is NOT_SERVING.
            long_request = pb.GenerateRequest(
                text="a long story", options=pb.GenerationOptions(
                    stopping=pb.StoppingOptions(max_tokens=2000, ignore_eos=True)))
            long_streams = [pb_grpc.InferenceStub(direct).Generate(long_request, timeout=60)
                            for _ in range(4)]
            for stream in long_streams:
                next(stream)
            draining.signal()
            # Once the replica's own health service says NOT_SERVING, the
            # drain has begun (a health-checking client is told at once).
            health = health_pb2_grpc.HealthStub(direct)
            check = health_pb2.HealthCheckRequest(service="muserve.v1.Inference")
            deadline = time.monotonic() + 5
            while health.Check(check, timeout=5).status == health_pb2.HealthCheckResponse.SERVING:
                self.assertLess(time.monotonic(), deadline, "still SERVING 5s after SIGTERM")
                time.sleep(0.01)
            ids = [f"{prefix}-{i}" for i in range(NUM_REQUESTS // 2)]
            for request_id in ids:
                generate(stub, request_id=request_id)  # an UNAVAILABLE would raise
            self.assertIsNone(draining.process.poll(),
                              "the replica exited before the requests were sent: inconclusive")
            for stream in long_streams:
                for _ in stream:
                    pass
        self.assertEqual(draining.process.wait(timeout=60), 0)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and f"id={ids[-1]} " not in other.log_text():
            time.sleep(0.05)
        for request_id in ids:
            self.assertIn(f"id={request_id} ", other.log_text())
        return ids


if __name__ == "__main__":
    unittest.main(verbosity=2)
