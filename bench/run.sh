#!/usr/bin/env bash
# Print the benchmark figures (docs/BENCHMARKS.md), with stress-ng as the peer in the same
# run. Needs root (a loop filesystem is mounted). Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v stress-ng >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng >/dev/null
fi
cargo bench --locked --bench figures "$@"
