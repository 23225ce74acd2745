#!/usr/bin/env bash
#! Start the local 3-replica cluster + ZooKeeper, add a sample database, print `chops check backup`
#! for it, and stop everything again. Extra arguments go to `chops check` (e.g. `--json`, `lag`).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
bash scripts/setup.sh
cargo build --release -q
dir="$repo/.local-cluster"
bash scripts/local-cluster.sh stop "$dir"
rm -rf "$dir"
trap 'bash scripts/local-cluster.sh stop "$dir"' EXIT
bash scripts/local-cluster.sh start "$dir" >&2
url=$(sed -n 's/^url = "\(.*\)"$/\1/p' "$dir/chops.toml")
for u in $url; do
  for q in "CREATE DATABASE IF NOT EXISTS shop" \
           "CREATE TABLE IF NOT EXISTS shop.orders (id UInt64, amount Decimal(18, 2)) ENGINE = MergeTree ORDER BY id" \
           "INSERT INTO shop.orders SELECT number, number / 100 FROM numbers(1000)"; do
    curl -sf "$u/" --data-binary "$q" >/dev/null
  done
done
set +e
./target/release/chops --config "$dir/chops.toml" check "${@:-backup}"
code=$?
echo "(chops exit code $code: 0 healthy, 1 degraded, 2 failing, 3 usage/config error)" >&2
exit $code
