#!/usr/bin/env bash
#! Local test cluster: one Apache ZooKeeper 3.8 + N ClickHouse-engine replicas (gateway processes).
#
#   scripts/local-cluster.sh start DIR [--replicas N] [--zk-port P] [--http-ports P1,P2,…] [--latency-ms MS]
#                                      [--jitter-ms MS] [--one-engine]
#   scripts/local-cluster.sh stop DIR
#
# start: writes DIR/zk/zoo.cfg and DIR/rN/config.xml, starts every server in the background,
#        records each server's own PID in DIR/<name>.pid, waits until all answer, and writes
#        DIR/chops.toml (a chops config for cluster "local"). Ports default to free ones.
#        Each replica appends every query it gets (user, query, query_id) to DIR/rN.queries.jsonl,
#        and accepts a second account, chops_operator (no password), for write actions.
# stop:  stops every PID recorded in DIR, together (SIGCONT first, so frozen servers stop too).
# Needs: java + /usr/share/java/zookeeper.jar (Debian `zookeeper`) and a Python with
# chdb-core==26.9.0 (CHOPS_PYTHON, default .venv/bin/python of this repo).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
py=${CHOPS_PYTHON:-$repo/.venv/bin/python}

die() { echo "local-cluster: $*" >&2; exit 1; }

# N free ports, below the kernel's ephemeral range: a port picked here is bound by its server
# seconds later, and in between no `bind(0)` or outgoing connection of another test can be given
# it (in that range one was, and the cluster then "answered" from another test's server). Each
# socket is held until all are picked: no duplicates among them.
free_ports() {
  "$py" -c 'import random,socket,sys
n=int(sys.argv[1]); low=int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
ss=[]
while len(ss) < n:
    s=socket.socket()
    try:
        s.bind(("127.0.0.1", random.randrange(10000, low) if low > 11000 else 0))
    except OSError:
        s.close(); continue
    ss.append(s)
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

wait_tcp() { # host port seconds pid name
  local deadline=$((SECONDS + $3))
  until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
    kill -0 "$4" 2>/dev/null || die "$5 exited during start; see its log in $dir"
    [ $SECONDS -lt $deadline ] || die "$5 did not listen on $2 within $3 s"
    sleep 0.1
  done
}

wait_ready() { # log seconds pid name
  local deadline=$((SECONDS + $2))
  until grep -q '^ready ' "$1" 2>/dev/null; do
    kill -0 "$3" 2>/dev/null || die "$4 exited during start; see its log in $dir"
    [ $SECONDS -lt $deadline ] || die "$4 was not ready within $2 s"
    sleep 0.1
  done
}

stop_pid() { # pidfile
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: $0 start|stop DIR [--replicas N] [--zk-port P] [--http-ports P1,P2,…]"
shift 2

case "$cmd" in
stop)
  [ -d "$dir" ] || exit 0
  # Each server by its own PID, all at once: each takes a second or two to shut down.
  for f in "$dir"/*.pid; do [ -e "$f" ] && stop_pid "$f" & done
  wait
  exit 0 ;;
start) ;;
*) die "unknown command '$cmd' (start|stop)" ;;
esac

replicas=3; zk_port=""; http_ports=""; latency_ms=0; jitter_ms=0; one_engine=0
while [ $# -gt 0 ]; do
  case "$1" in
    --replicas) replicas=$2; shift 2 ;;
    --zk-port) zk_port=$2; shift 2 ;;
    --http-ports) http_ports=$2; shift 2 ;;
    --latency-ms) latency_ms=$2; shift 2 ;;
    --jitter-ms) jitter_ms=$2; shift 2 ;;
    --one-engine) one_engine=1; shift ;;
    *) die "unknown option $1" ;;
  esac
done
[ -x "$py" ] || die "no Python with chdb at $py (run: python3 -m venv .venv && .venv/bin/pip install chdb-core==26.9.0)"
[ -f /usr/share/java/zookeeper.jar ] || die "ZooKeeper is not installed (apt-get install zookeeper)"

mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
trap 'echo "local-cluster: start failed, stopping what started" >&2; for f in "$dir"/*.pid; do [ -e "$f" ] && stop_pid "$f"; done' ERR

[ -n "$zk_port" ] || zk_port=$(free_ports 1)
if [ -z "$http_ports" ]; then
  read -r -a ports <<<"$(free_ports "$replicas")"
else
  IFS=, read -r -a ports <<<"$http_ports"; replicas=${#ports[@]}
fi
# remote_servers lists each replica's native port; the gateways speak HTTP only, so these are
# placeholders that chops maps back to HTTP URLs through its config.
native=(); for p in "${ports[@]}"; do native+=("$((p + 1))"); done
native_csv=$(IFS=,; echo "${native[*]}")

mkdir -p "$dir/zk/data"
cat >"$dir/zk/zoo.cfg" <<EOF
tickTime=500
initLimit=10
syncLimit=5
dataDir=$dir/zk/data
clientPort=$zk_port
clientPortAddress=127.0.0.1
maxSessionTimeout=10000
admin.enableServer=false
4lw.commands.whitelist=ruok,mntr,srvr,stat,isro
EOF
java -Xmx256m -Dzookeeper.log.dir="$dir/zk" -cp "/usr/share/java/zookeeper.jar:/usr/share/java/*" \
  org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zk/zoo.cfg" >"$dir/zk/log" 2>&1 &
echo $! >"$dir/zk.pid"

if [ "$one_engine" = 1 ]; then
  # Many replicas, one engine process: every port answers as its own replica (own query log),
  # identical SELECTs share one engine call (as independent servers would answer in parallel).
  extra_ports=$(IFS=,; echo "${ports[*]:1}")
  extra_names=$(for i in $(seq 2 "$replicas"); do printf 'r%s,' "$i"; done)
  "$py" "$here/ch_gateway.py" --dir "$dir/r1" --http-port "${ports[0]}" --replica r1 \
    --extra-ports "$extra_ports" --extra-replicas "$extra_names" --share-answers-ms 500 \
    --cluster local --shard 1 --cluster-ports "$native_csv" --zk-port "$zk_port" \
    --latency-ms "$latency_ms" --jitter-ms "$jitter_ms" \
    --operator-user chops_operator --query-log "$dir/{replica}.queries.jsonl" \
    >"$dir/r1.log" 2>&1 &
  echo $! >"$dir/r1.pid"
fi
for i in $(seq 1 "$replicas"); do
  [ "$one_engine" = 1 ] && break
  p=${ports[$((i - 1))]}
  "$py" "$here/ch_gateway.py" --dir "$dir/r$i" --http-port "$p" --replica "r$i" \
    --cluster local --shard 1 --cluster-ports "$native_csv" --zk-port "$zk_port" --latency-ms "$latency_ms" \
    --operator-user chops_operator --query-log "$dir/r$i.queries.jsonl" \
    >"$dir/r$i.log" 2>&1 &
  echo $! >"$dir/r$i.pid"
done

wait_tcp 127.0.0.1 "$zk_port" 30 "$(cat "$dir/zk.pid")" zookeeper
# Listening is not serving: wait until `srvr` reports a mode.
deadline=$((SECONDS + 30))
until timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$zk_port; printf srvr >&3; cat <&3" 2>/dev/null | grep -q '^Mode: '; do
  [ $SECONDS -lt $deadline ] || die "zookeeper on $zk_port did not start serving within 30 s"
  sleep 0.1
done
# A gateway says "ready" once it has bound every port it serves: a port that merely accepts
# could be another process's (a gateway that failed to bind exits instead).
for i in $(seq 1 "$replicas"); do
  [ "$one_engine" = 1 ] && [ "$i" -gt 1 ] && break
  wait_ready "$dir/r$i.log" 60 "$(cat "$dir/r$i.pid")" "replica r$i"
done

{
  echo "# Generated by scripts/local-cluster.sh for the cluster in $dir"
  echo "[clusters.local]"
  echo "keeper = [\"127.0.0.1:$zk_port\"]"
  echo "user = \"default\""
  echo "# Write actions (chops act, buttons) run as this account; enable them in [clusters.local.actions]."
  echo "operator_user = \"chops_operator\""
  echo
  for i in $(seq 1 "$replicas"); do
    echo "[[clusters.local.replicas]]"
    echo "name = \"r$i\""
    echo "url = \"http://127.0.0.1:${ports[$((i - 1))]}\""
    echo "shard = 1"
    echo
  done
} >"$dir/chops.toml"
echo "local cluster up: zookeeper 127.0.0.1:$zk_port, replicas ${ports[*]}; config $dir/chops.toml"
