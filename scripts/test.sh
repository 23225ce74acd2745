#!/usr/bin/env bash
#! Run every test: unit, card snapshots, and the integration tests against real local clusters.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
bash scripts/setup.sh
cargo test
