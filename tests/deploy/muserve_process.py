"""`muserve serve` as a child process for the deploy tests: started on free
ports with the tiny model, with its log kept for failure messages."""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


class MuserveServer:
    """One server process. Ports are picked by the server (--port 0,
    --metrics-port 0) and read back from its "listening" log line."""

    def __init__(self, binary, model_dir, extra_args=()):
        self.log = tempfile.TemporaryFile()
        self.args = [binary, "serve", "--model", model_dir, "--host", "127.0.0.1", "--port", "0",
                     "--metrics-port", "0", *extra_args]
        self.process = subprocess.Popen(self.args, stderr=self.log, stdout=subprocess.DEVNULL)
        self.port = None
        self.metrics_port = None

    def log_text(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def wait_serving(self, timeout_s=60):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.log_text()
            if re.search(r"\bserving\b", text):
                # Text (grpc=127.0.0.1:P) or JSON ("grpc":"127.0.0.1:P") lines.
                self.port = int(re.search(r'grpc"?[=:]"?127\.0\.0\.1:(\d+)', text).group(1))
                self.metrics_port = int(re.search(r'metrics_port"?[=:](\d+)', text).group(1))
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"muserve serve exited with {self.process.returncode}:\n{text}")
            time.sleep(0.05)
        raise RuntimeError("muserve serve did not start:\n" + self.log_text())

    @property
    def target(self):
        return f"127.0.0.1:{self.port}"

    def metrics(self):
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()

    def signal(self, number=signal.SIGTERM):
        self.process.send_signal(number)

    def stop(self, timeout_s=30):
        """SIGTERM and wait; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def __enter__(self):
        return self.wait_serving()

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric_families(exposition):
    """{family name: (type, [(sample name, {label: value}), ...])} from
    Prometheus' text format."""
    families = {}
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            families[name] = (kind, [])
        elif line and not line.startswith("#"):
            match = re.match(r"([a-zA-Z_:][\w:]*)(\{(.*)\})?\s", line)
            if not match:
                continue
            sample = match.group(1)
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
            for name, (kind, samples) in families.items():
                suffixes = ("_bucket", "_sum", "_count") if kind in ("histogram", "summary") else ()
                if sample == name or sample in (name + s for s in suffixes):
                    samples.append((sample, labels))
                    break
    return families


def load_stubs(proto_dir):
    """Generates and imports the Python stubs of our .proto files (Debian's
    protoc and gRPC's Python plugin); returns (inference_pb2, inference_pb2_grpc,
    health_pb2, health_pb2_grpc)."""
    import grpc
    stubs = tempfile.mkdtemp(prefix="muserve-py-stubs-")
    subprocess.run(["protoc", f"-I{proto_dir}", f"--python_out={stubs}", f"--grpc_out={stubs}",
                    "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin",
                    "muserve/v1/inference.proto", "grpc/health/v1/health.proto"], check=True)
    sys.path.insert(0, stubs)
    # grpc.health.v1 lives inside grpcio's own package, which Debian's
    # python3-grpcio does not ship: extend it.
    grpc.__path__.append(os.path.join(stubs, "grpc"))
    from grpc.health.v1 import health_pb2, health_pb2_grpc
    from muserve.v1 import inference_pb2, inference_pb2_grpc
    return inference_pb2, inference_pb2_grpc, health_pb2, health_pb2_grpc
