#!/usr/bin/env bash
# Installs missing packages, then configures and builds Muserve into ./build
# (or $MUSERVE_BUILD_DIR). Extra arguments go to CMake's configure step, e.g.
#   deploy/build.sh -DMUSERVE_ASAN=ON
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
build_dir=${MUSERVE_BUILD_DIR:-build}
jobs=${MUSERVE_JOBS:-2}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$build_dir" -j "$jobs"
