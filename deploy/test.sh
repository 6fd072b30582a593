#!/usr/bin/env bash
# Installs missing packages, builds, and runs every test that does not need a
# GPU or long run time (ctest labels: `gpu` tests skip cleanly without a GPU;
# `slow` tests run with `ctest -L slow`). This is the README's test command and
# what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/build.sh "$@"
build_dir=${MUSERVE_BUILD_DIR:-build}
ctest --test-dir "$build_dir" --output-on-failure -j "${MUSERVE_JOBS:-2}" -LE slow
