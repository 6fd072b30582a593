#!/usr/bin/env bash
# Installs the Debian 12 packages Muserve's build and tests need, and only the
# missing ones: quiet and quick when everything is already there. Used by the
# README's commands, by .ci/run (through deploy/test.sh) and by the container
# image build. The CUDA toolkit is not a Debian package; CMake finds it at
# /usr/local/cuda when present.
set -euo pipefail

packages=(
  g++ cmake ninja-build ccache pkg-config git   # toolchain
  libabsl-dev                                   # Status/StatusOr, flags, containers
  nlohmann-json3-dev                            # config.json, tokenizer.json, safetensors headers
  libpcre2-dev                                  # tokenizer split regexes (\p{L}, lookahead)
  libutf8proc-dev                               # Unicode normalization (NFC) for tokenizers
  libgtest-dev libgmock-dev                     # tests
  libbenchmark-dev                              # microbenchmarks
  libgrpc++-dev protobuf-compiler-grpc          # gRPC server and clients (callback API, reflection)
  libprotobuf-dev protobuf-compiler             # the API's messages
  prometheus-cpp-dev                            # /metrics
  libspdlog-dev                                 # logs (text and JSON lines)
  libyaml-cpp-dev                               # configuration files (muserve serve --config)
  yamllint                                      # tests: the example configuration files lint clean
  python3-grpcio python3-protobuf               # the API test from an independent client
  python3-yaml yamllint                         # tests only: the Helm chart's checks, YAML lint
  prometheus                                    # tests only: scrapes a server, loads the alerts (promtool)
)

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
