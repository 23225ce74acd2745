#!/usr/bin/env bash
#! Run every test: unit, card snapshots, and the integration tests against real local clusters.
#! The integration tests are one binary; most of their time is spent waiting on local servers
#! (deadlines, watcher rounds), so they run twice as many at once as there are cores.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
bash scripts/setup.sh
# A whole-suite run builds once: incremental state only costs time here.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo test -- --test-threads="$(( $(nproc) * 2 ))"
