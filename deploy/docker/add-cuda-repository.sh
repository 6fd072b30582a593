#!/bin/sh
# Adds NVIDIA's CUDA repository for Debian 12 to apt, from the URL of its
# `cuda-keyring` package ($1, the image's CUDA_KEYRING_URL build argument),
# and refreshes the package lists. Used by the GPU builder and the GPU
# runtime stages of deploy/docker/Dockerfile; each then installs its own
# packages and cleans up.
set -eu
if [ -z "${1:-}" ]; then
  echo "build-arg CUDA_KEYRING_URL is required for the GPU image" >&2
  exit 1
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends ca-certificates curl
curl -fsSLo /tmp/cuda-keyring.deb "$1"
dpkg -i /tmp/cuda-keyring.deb
rm -f /tmp/cuda-keyring.deb
apt-get update -qq
