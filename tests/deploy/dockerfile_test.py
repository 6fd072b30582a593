#!/usr/bin/env python3
"""deploy/docker/Dockerfile's invariants, checked without building it (no
registry is reachable where the tests run): the builders use the README's
scripts, the final images run as the chart's non-root user with no compiler
and only the runtime libraries that `ldd` finds on the built binary, the
model volume is where the chart mounts it, and the default command's flags
exist in `muserve serve --help`.

Usage: dockerfile_test.py MUSERVE_BINARY REPO_DIR BUILD_DIR
"""
import json
import os
import re
import subprocess
import sys
import unittest

MUSERVE, REPO, BUILD_DIR = sys.argv[1:4]
del sys.argv[1:4]

import yaml  # noqa: E402

DOCKER = os.path.join(REPO, "deploy", "docker")
FINAL_STAGES = ("cpu", "gpu")
# Packages that would put a compiler, linker or headers into an image.
COMPILER_PACKAGE = re.compile(r"^(g\+\+|gcc|cpp|clang|cmake|ninja-build|make|build-essential|"
                              r"binutils|cuda-toolkit.*|cuda-nvcc.*|.*-dev)(-[\d.]+)?$")


def read_stages():
    """{stage name: {"from": base, "lines": [(instruction, argument), ...]}}
    with continuation lines joined."""
    with open(os.path.join(DOCKER, "Dockerfile")) as f:
        text = re.sub(r"\\\n", " ", f.read())
    stages, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, argument = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            match = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", argument.strip(), re.I)
            assert match, f"every stage is named: FROM {argument}"
            current = {"from": match.group(1), "lines": []}
            stages[match.group(2)] = current
        elif current is not None:
            current["lines"].append((instruction, argument.strip()))
    return stages


def lineage(stages, name):
    """The stage and the stages it is built on, nearest first."""
    chain = []
    while name in stages:
        chain.append(name)
        name = stages[name]["from"]
    return chain


def instructions(stages, name, kind):
    return [arg for stage in lineage(stages, name) for ins, arg in stages[stage]["lines"]
            if ins == kind]


def package_list(file_name):
    with open(os.path.join(DOCKER, file_name)) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def chart_values():
    with open(os.path.join(REPO, "deploy", "helm", "muserve", "values.yaml")) as f:
        return yaml.safe_load(f)


class DockerfileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stages = read_stages()

    def test_the_last_stage_is_the_cpu_image(self):
        self.assertEqual(list(self.stages)[-1], "cpu")

    def test_builders_use_the_readme_scripts(self):
        for stage in ("builder-cpu", "builder-gpu"):
            runs = " ".join(instructions(self.stages, stage, "RUN"))
            self.assertIn("deploy/install-deps.sh", runs, stage)
            self.assertIn("deploy/build.sh", runs, stage)
        gpu_runs = " ".join(instructions(self.stages, "builder-gpu", "RUN"))
        self.assertIn("-DMUSERVE_CUDA=ON", gpu_runs)

    def test_final_images_start_from_slim_debian_and_copy_only_the_binary(self):
        for stage in FINAL_STAGES:
            root = lineage(self.stages, stage)[-1]
            self.assertEqual(self.stages[root]["from"], "debian:${DEBIAN_RELEASE}-slim", stage)
            copies = instructions(self.stages, stage, "COPY")
            from_builders = [c for c in copies if c.startswith("--from=")]
            # The builders build into /src/build, as this build tree's binary.
            binary = os.path.join("/src/build", os.path.relpath(MUSERVE, BUILD_DIR))
            self.assertEqual(from_builders, [f"--from=builder-{stage} {binary} "
                                             "/usr/local/bin/muserve"])

    def test_final_images_install_no_compiler(self):
        installed = package_list("runtime-packages.txt") + package_list("cuda-runtime-packages.txt")
        for stage in FINAL_STAGES:
            for run in instructions(self.stages, stage, "RUN"):
                for segment in run.split("&&"):
                    if "apt-get install" in segment and "xargs" not in segment:
                        installed += [w for w in segment.split("install", 1)[1].split()
                                      if not w.startswith("-")]
        compilers = [p for p in installed if COMPILER_PACKAGE.match(p)]
        self.assertFalse(compilers, f"compilers or headers in a final image: {compilers}")

    def test_final_images_run_as_the_charts_non_root_user(self):
        with open(os.path.join(REPO, "deploy", "helm", "muserve", "templates",
                               "deployment.yaml")) as f:
            deployment = f.read()
        run_as_user = re.search(r"runAsUser: (\d+)", deployment).group(1)
        for stage in FINAL_STAGES:
            (user,) = instructions(self.stages, stage, "USER")
            uid = user.split(":")[0]
            self.assertNotIn(uid, ("0", "root"), stage)
            self.assertEqual(uid, run_as_user, f"{stage}: USER is the chart's runAsUser")

    def test_model_volume_ports_and_command_match_the_chart_and_the_server(self):
        values = chart_values()
        help_text = subprocess.run([MUSERVE, "serve", "--help"], capture_output=True, text=True)
        known = set(re.findall(r"(?m)^\s+(--[a-z][a-z0-9-]*)", help_text.stdout + help_text.stderr))
        self.assertIn("--model", known)
        for stage in FINAL_STAGES:
            (volume,) = instructions(self.stages, stage, "VOLUME")
            self.assertEqual(volume, values["model"]["mountPath"], stage)
            (entrypoint,) = instructions(self.stages, stage, "ENTRYPOINT")
            self.assertEqual(json.loads(entrypoint), ["/usr/local/bin/muserve"])
            (cmd,) = instructions(self.stages, stage, "CMD")
            args = json.loads(cmd)
            self.assertEqual(args[0], "serve")
            flags = dict(a.split("=", 1) for a in args[1:])
            self.assertFalse(set(flags) - known, f"{stage}: flags not in serve --help")
            self.assertEqual(flags["--model"], volume)
            (exposed,) = instructions(self.stages, stage, "EXPOSE")
            self.assertEqual(exposed.split(), [flags["--port"], flags["--metrics-port"]])
            self.assertEqual(int(flags["--port"]), values["server"]["grpcPort"])
            self.assertEqual(int(flags["--metrics-port"]), values["server"]["metricsPort"])

    def test_runtime_packages_are_exactly_the_owners_of_the_binarys_libraries(self):
        ldd = subprocess.run(["ldd", MUSERVE], capture_output=True, text=True, check=True).stdout
        libraries = re.findall(r"=> (/\S+)", ldd)
        self.assertTrue(libraries, ldd)
        # A build with CUDA links the CUDA runtime from the toolkit, which no
        # Debian package owns: the GPU image installs it from NVIDIA's
        # repository (cuda-runtime-packages.txt), the CPU image is built
        # without CUDA.
        cuda_packages = {"libcudart": "cuda-cudart-CUDA_VERSION", "libnccl": "libnccl2",
                         "libcublas": "libcublas-CUDA_VERSION"}
        gpu_listed = set(package_list("cuda-runtime-packages.txt"))
        debian_libraries = []
        for library in libraries:
            if not os.path.realpath(library).startswith("/usr/local/cuda"):
                debian_libraries.append(library)
                continue
            stem = os.path.basename(library).split(".so")[0]
            self.assertIn(cuda_packages.get(stem), gpu_listed,
                          f"{library}: its package must be in cuda-runtime-packages.txt")
        libraries = debian_libraries
        candidates = {}  # library -> the names dpkg may know it by
        for library in libraries:
            names = {library, os.path.realpath(library)}
            # Debian 12 merges /lib into /usr/lib; dpkg knows each file by one
            # of the two names.
            names |= {re.sub(r"^/usr/lib/", "/lib/", n) for n in list(names)}
            names |= {"/usr" + n for n in list(names) if n.startswith("/lib/")}
            candidates[library] = names
        query = subprocess.run(["dpkg-query", "-S", *sorted(set().union(*candidates.values()))],
                               capture_output=True, text=True)
        owner_of = {}
        for line in query.stdout.splitlines():
            packages, _, path = line.partition(": ")
            owner_of[path] = {p.split(":")[0] for p in packages.split(", ")}
        owners = set()
        for library, names in candidates.items():
            packages = set().union(*(owner_of.get(n, set()) for n in names))
            self.assertTrue(packages, f"no Debian package owns {library}")
            owners |= packages
        listed = set(package_list("runtime-packages.txt"))
        self.assertEqual(listed, owners,
                         "runtime-packages.txt must list the packages owning `ldd muserve`'s "
                         f"libraries: missing {sorted(owners - listed)}, "
                         f"unused {sorted(listed - owners)}")

    def test_dockerignore_keeps_build_trees_and_history_out(self):
        with open(os.path.join(REPO, ".dockerignore")) as f:
            ignored = {line.strip() for line in f if line.strip() and not line.startswith("#")}
        self.assertTrue({".git", "build*/"} <= ignored)


if __name__ == "__main__":
    unittest.main(verbosity=2)
