#!/usr/bin/env bash
#! Install what the local cluster and the tests need, idempotently:
#!   Apache ZooKeeper 3.8 (Debian `zookeeper`, with Java) and a venv at .venv with chdb-core==26.9.0
#!   and prometheus-client (its text-format parsers check chops' /metrics); the checkers of the files
#!   under deploy/: promtool (Debian `prometheus`), amtool (Debian `prometheus-alertmanager`),
#!   systemd-analyze (Debian `systemd`) and kubernetes-validate (PyPI, into the venv).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

if [ ! -f /usr/share/java/zookeeper.jar ] || ! command -v java >/dev/null; then
  echo "setup: installing zookeeper (apt)" >&2
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq zookeeper >/dev/null
fi

# Only the tools are wanted: Debian's postinst would start the prometheus and alertmanager daemons,
# so a policy-rc.d that denies every start (exit 101) is in place while they install, unless the
# machine already has one (container images usually do).
missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
command -v systemd-analyze >/dev/null || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} (apt)" >&2
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# setup.sh: no service starts while packages install\nexit 101\n' \
      | $sudo_cmd tee "$policy" >/dev/null
    $sudo_cmd chmod 0755 "$policy"
    trap '$sudo_cmd rm -f "$policy"' EXIT
  fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
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
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  echo "setup: installing kubernetes-validate==1.37.0 into $venv (pip)" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check kubernetes-validate==1.37.0
fi
