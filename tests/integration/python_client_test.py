#!/usr/bin/env python3
"""The gRPC API checked from outside our C++ code: Python's grpcio (Debian's
python3-grpcio, stubs generated from proto/ with protoc's Python plugin) calls
Generate, Chat, GetModelInfo and the standard health service of a real
`muserve serve` process, and lists the services through server reflection.

Usage: python_client_test.py MUSERVE_BINARY PROTO_DIR MODEL_DIR
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

MUSERVE, PROTO_DIR, MODEL_DIR = sys.argv[1:4]
del sys.argv[1:4]

import grpc  # noqa: E402

# Stubs from our .proto files with Debian's protoc and gRPC's Python plugin
# (protobuf-compiler, protobuf-compiler-grpc).
STUBS = tempfile.mkdtemp(prefix="muserve-py-stubs-")
subprocess.run(["protoc", f"-I{PROTO_DIR}", f"--python_out={STUBS}", f"--grpc_out={STUBS}",
                "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin",
                "muserve/v1/inference.proto", "grpc/health/v1/health.proto"], check=True)
sys.path.insert(0, STUBS)
# The health stubs live in the package grpc.health.v1, inside grpcio's own
# `grpc` package, which Debian's python3-grpcio does not ship: extend it.
grpc.__path__.append(os.path.join(STUBS, "grpc"))

from grpc.health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from muserve.v1 import inference_pb2 as pb, inference_pb2_grpc as pb_grpc  # noqa: E402


class MuserveFromPython(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.log = tempfile.TemporaryFile()
        cls.server = subprocess.Popen(
            [MUSERVE, "serve", "--model", MODEL_DIR, "--host", "127.0.0.1", "--port", "0",
             "--metrics-port=-1"], stderr=cls.log, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        port = None
        while time.monotonic() < deadline and port is None:
            cls.log.seek(0)
            text = cls.log.read().decode(errors="replace")
            if "serving" in text:
                match = re.search(r"grpc=127\.0\.0\.1:(\d+)", text)
                port = int(match.group(1)) if match else None
            if cls.server.poll() is not None:
                raise RuntimeError("muserve serve exited:\n" + text)
            time.sleep(0.05)
        if port is None:
            raise RuntimeError("muserve serve did not start")
        cls.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        cls.stub = pb_grpc.InferenceStub(cls.channel)
        cls.health = health_pb2_grpc.HealthStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.server.send_signal(signal.SIGTERM)
        code = cls.server.wait(timeout=30)
        assert code == 0, f"muserve serve exited with {code}"

    def test_health_is_serving(self):
        for service in ("", "muserve.v1.Inference"):
            response = self.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            self.assertEqual(response.status, health_pb2.HealthCheckResponse.SERVING)

    def test_generate_streams_chunks_then_finished(self):
        request = pb.GenerateRequest(
            request_id="py-1", text="Once upon a time",
            options=pb.GenerationOptions(
                sampling=pb.SamplingOptions(temperature=0),
                stopping=pb.StoppingOptions(max_tokens=12, ignore_eos=True),
                logprobs=pb.LogprobsOptions(top_logprobs=2)))
        events = list(self.stub.Generate(request, timeout=30))
        self.assertTrue(all(e.request_id == "py-1" for e in events))
        chunks = [e.chunk for e in events if e.WhichOneof("event") == "chunk"]
        self.assertEqual(events[-1].WhichOneof("event"), "finished")
        finished = events[-1].finished
        self.assertEqual(finished.reason, pb.FINISH_REASON_LENGTH)
        ids = [i for c in chunks for i in c.token_ids]
        self.assertEqual(len(ids), 12)
        self.assertEqual(finished.usage.completion_tokens, 12)
        logprobs = [lp for c in chunks for lp in c.logprobs]
        self.assertEqual([lp.token_id for lp in logprobs], ids)
        self.assertTrue(all(len(lp.top) == 2 and lp.logprob <= 0 for lp in logprobs))
        # The same greedy request gives the same text (and it detokenizes back).
        again = list(self.stub.Generate(request, timeout=30))
        text = "".join(e.chunk.text for e in events if e.WhichOneof("event") == "chunk")
        self.assertEqual(text, "".join(e.chunk.text for e in again
                                       if e.WhichOneof("event") == "chunk"))
        detok = self.stub.Detokenize(pb.DetokenizeRequest(token_ids=ids), timeout=5)
        self.assertEqual(detok.text, text)

    def test_chat_uses_the_template(self):
        request = pb.ChatRequest(
            messages=[pb.ChatMessage(role=pb.ChatMessage.ROLE_USER, content="Hi there")],
            options=pb.GenerationOptions(
                sampling=pb.SamplingOptions(temperature=0),
                stopping=pb.StoppingOptions(max_tokens=5, ignore_eos=True)))
        events = list(self.stub.Chat(request, timeout=30))
        finished = events[-1].finished
        self.assertEqual(finished.usage.completion_tokens, 5)
        self.assertTrue(events[0].request_id.startswith("req-"))
        plain = self.stub.Tokenize(pb.TokenizeRequest(text="Hi there"), timeout=5)
        self.assertGreater(finished.usage.prompt_tokens, len(plain.token_ids))

    def test_bad_field_is_invalid_argument_naming_it(self):
        request = pb.GenerateRequest(
            text="x", options=pb.GenerationOptions(sampling=pb.SamplingOptions(top_p=0)))
        with self.assertRaises(grpc.RpcError) as caught:
            list(self.stub.Generate(request, timeout=10))
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("options.sampling.top_p", caught.exception.details())

    def test_model_info(self):
        info = self.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=5)
        self.assertEqual(info.architecture, "LlamaForCausalLM")
        self.assertEqual(info.kv_capacity_tokens, info.kv_num_blocks * info.kv_block_size)

    def test_reflection_describes_the_api(self):
        # Debian's python3-grpcio has no reflection client, so speak the
        # standard v1alpha protocol (what grpcurl and grpc_cli use) over a
        # generic stream with hand-encoded messages.
        from google.protobuf import descriptor_pb2
        reflection = self.channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=lambda b: b, response_deserializer=lambda b: b)
        symbol = b"muserve.v1.Inference"
        requests = [b"\x3a\x00",  # list_services (field 7) = ""
                    b"\x22" + bytes([len(symbol)]) + symbol]  # file_containing_symbol (4)
        listed, described = list(reflection(iter(requests), timeout=5))
        self.assertIn(b"muserve.v1.Inference", listed)
        self.assertIn(b"grpc.health.v1.Health", listed)
        # ServerReflectionResponse.file_descriptor_response (4) holds
        # FileDescriptorResponse.file_descriptor_proto (1) entries.
        files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
                 for raw in fields(fields(described)[4][0])[1]]
        services = {f"{f.package}.{svc.name}": [m.name for m in svc.method]
                    for f in files for svc in f.service}
        self.assertIn("Generate", services["muserve.v1.Inference"])
        self.assertIn("Chat", services["muserve.v1.Inference"])


def fields(message):
    """Length-delimited fields of a serialized message: {number: [bytes, ...]}."""
    out, i = {}, 0
    def varint():
        nonlocal i
        value, shift = 0, 0
        while True:
            byte = message[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value
    while i < len(message):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 2:
            length = varint()
            out.setdefault(number, []).append(message[i:i + length])
            i += length
        elif wire == 0:
            varint()
        else:
            raise ValueError(f"unexpected wire type {wire}")
    return out

if __name__ == "__main__":
    unittest.main(verbosity=2)
