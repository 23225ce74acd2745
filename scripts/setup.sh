#!/usr/bin/env bash
#! Install what the local cluster and the tests need, idempotently:
#!   Apache ZooKeeper 3.8 (Debian `zookeeper`, with Java) and a venv at .venv with chdb-core==26.9.0
#!   and prometheus-client (its text-format parsers check chops' /metrics).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

if [ ! -f /usr/share/java/zookeeper.jar ] || ! command -v java >/dev/null; then
  echo "setup: installing zookeeper (apt)" >&2
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq zookeeper >/dev/null
fi

venv="$repo/.venv"
if ! "$venv/bin/python" -c 'import chdb; assert chdb.__version__ == "26.9.0"' 2>/dev/null; then
  echo "setup: creating $venv with chdb-core==26.9.0 (pip)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check chdb-core==26.9.0
fi
if ! "$venv/bin/python" -c 'import prometheus_client.parser, prometheus_client.openmetrics.parser' 2>/dev/null; then
  echo "setup: installing prometheus-client==0.21.1 into $venv (pip)" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check prometheus-client==0.21.1
fi
