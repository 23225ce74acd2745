#!/usr/bin/env python3
"""ClickHouse HTTP-protocol gateway over the embedded ClickHouse engine (chdb-core).

One process is one "replica" of the local test cluster. It writes its own server config
(macros, remote_servers, zookeeper, a `backups` disk, <backups><allowed_disk>) into --dir,
opens the engine on that config and serves the subset of ClickHouse's HTTP interface that
the `clickhouse` Rust crate and chops use:

  GET  /ping                      -> "Ok.\n" (answered without touching the engine)
  POST / (body = SQL)             -> result in `default_format` (or the query's FORMAT clause)
  POST /?query=INSERT … FORMAT F  -> body is the data; spooled to a file, run as FROM INFILE
  multipart/form-data             -> fields `query` and `param_<name>` (crate's .param())
  URL params                      -> database, default_format, param_<name>, any other = setting
  X-ClickHouse-User / -Key        -> checked against --user and the password in $CHOPS_GW_PASSWORD

Errors answer like ClickHouse: an HTTP error status, header X-ClickHouse-Exception-Code and
body `Code: N. DB::Exception: … (NAME) (version …)`.
"""
import argparse
import json
import random
import email.parser
import email.policy
import os
import re
import socket
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import chdb

RESERVED = {"query", "default_format", "database", "role", "user", "password", "query_id",
            "session_id", "session_timeout", "session_check", "compress", "decompress",
            "wait_end_of_query", "buffer_size", "quota_key", "stacktrace"}
SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CODE_RE = re.compile(r"Code: (\d+)\.")
INSERT_RE = re.compile(r"^\s*(INSERT\s+INTO\s+.+?)\s+FORMAT\s+(\w+)\s*$", re.I | re.S)

# A few of ClickHouse's own code -> HTTP status mappings (HTTPHandler.cpp).
STATUS = {516: 403, 192: 403, 193: 403, 194: 401, 497: 403,
          60: 404, 81: 404, 47: 400, 62: 400, 36: 400, 53: 400, 70: 400, 42: 400, 27: 400,
          159: 500, 209: 500, 210: 500, 598: 500, 395: 500}


def write_config(args):
    replicas = "".join(
        f"<replica><host>127.0.0.1</host><port>{p}</port></replica>" for p in args.cluster_ports)
    zk = f"<zookeeper><node><host>127.0.0.1</host><port>{args.zk_port}</port></node>" \
         f"<session_timeout_ms>{args.zk_session_timeout_ms}</session_timeout_ms></zookeeper>" \
        if args.zk_port else ""
    backups = os.path.join(args.dir, "backups") + "/"
    os.makedirs(backups, exist_ok=True)
    cfg = f"""<clickhouse>
  <macros><cluster>{args.cluster}</cluster><shard>{args.shard}</shard><replica>{args.replica}</replica></macros>
  <remote_servers><{args.cluster}><shard>{replicas}</shard></{args.cluster}></remote_servers>
  {zk}
  <storage_configuration><disks><backups><type>local</type><path>{backups}</path></backups></disks></storage_configuration>
  <backups><allowed_disk>backups</allowed_disk><allowed_path>{backups}</allowed_path></backups>
</clickhouse>
"""
    path = os.path.join(args.dir, "config.xml")
    with open(path, "w") as f:
        f.write(cfg)
    return path


class Engine:
    """The engine allows one query at a time per process: every call goes through a lock."""

    def __init__(self, data_dir, config_path):
        self.conn = chdb.connect(f"file:{data_dir}?config-file={config_path}")
        self.lock = threading.Lock()
        self.applied = {}
        self.version = self.conn.query("SELECT version()", "TSV").bytes().decode().strip()

    def run(self, sql, fmt, settings, params, database):
        with self.lock:
            # HTTP settings are per request; the engine's are per session. Apply only what differs
            # from the session's current state and reset what this request does not set.
            for name in [n for n in self.applied if n not in settings]:
                self.conn.query(f"SET {name} = DEFAULT", "TSV")
                del self.applied[name]
            for name, value in settings.items():
                if self.applied.get(name) != value:
                    self.conn.query(f"SET {name} = {sql_literal(value)}", "TSV")
                    self.applied[name] = value
            if database:
                self.conn.query(f"USE `{database.replace('`', '``')}`", "TSV")
            try:
                return self.conn.query(sql, fmt, params=params).bytes()
            finally:
                if database:
                    self.conn.query("USE default", "TSV")


class SharedAnswers:
    """One engine standing in for many servers: identical read-only queries arriving within
    `ttl` seconds share one engine call (single-flight), as independent servers would compute
    them in parallel. Off (ttl 0) unless asked for."""

    def __init__(self, engine, ttl):
        self.engine, self.ttl = engine, ttl
        self.version = engine.version
        self.lock = threading.Lock()
        self.cells = {}

    def answer(self, sql, fmt, settings, params, database):
        if not self.ttl or not sql.lstrip().upper().startswith("SELECT"):
            return self.engine.run(sql, fmt, settings, params, database)
        key = (sql, fmt, tuple(sorted((k, v) for k, v in settings.items() if k != "query_id")),
               tuple(sorted(params.items())), database)
        with self.lock:
            cell = self.cells.get(key)
            if cell is None or time.monotonic() - cell["at"] > self.ttl:
                cell = {"at": time.monotonic(), "done": threading.Event(), "out": None, "err": None}
                self.cells[key] = cell
                owner = True
            else:
                owner = False
        if owner:
            try:
                cell["out"] = self.engine.run(sql, fmt, settings, params, database)
            except Exception as e:  # shared with the waiters
                cell["err"] = e
            finally:
                cell["done"].set()
        cell["done"].wait()
        if cell["err"] is not None:
            raise cell["err"]
        return cell["out"]


def sql_literal(value):
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "chops-gateway"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):  # quiet: one line per error only
        pass

    def reply(self, status, body, headers=()):
        if isinstance(body, str):
            body = body.encode()
        head = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}",
                f"Content-Length: {len(body)}", "Connection: keep-alive",
                "X-ClickHouse-Server-Display-Name: chops-gateway"]
        head += [f"{k}: {v}" for k, v in headers]
        # Headers and body in one write: no Nagle/delayed-ACK stall.
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)

    def fail(self, message):
        message = message.split(", Stack trace")[0].strip()
        m = CODE_RE.search(message)
        code = int(m.group(1)) if m else 1000
        if not m:
            message = f"Code: {code}. DB::Exception: {message}"
        body = f"{message} (version {self.server.engine.version})\n"
        self.reply(STATUS.get(code, 500), body, [("X-ClickHouse-Exception-Code", str(code)),
                                                ("Content-Type", "text/plain; charset=UTF-8")])

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))

    def authorized(self, params):
        user = self.headers.get("X-ClickHouse-User") or params.get("user") or "default"
        key = self.headers.get("X-ClickHouse-Key") or params.get("password") or ""
        if self.server.operator and user == self.server.operator:
            return key == self.server.operator_password
        return user == self.server.user and key == self.server.password

    def log_query(self, params, sql):
        """One JSON line per query (who, what): tests count the statements chops sent."""
        if not self.server.query_log:
            return
        user = self.headers.get("X-ClickHouse-User") or params.get("user") or "default"
        line = json.dumps({"user": user, "query": sql, "query_id": params.get("query_id", "")})
        with self.server.log_lock, open(self.server.query_log, "a") as f:
            f.write(line + "\n")

    def log_time(self, seconds):
        """Server-side time of each query, one number (ms) per line, next to the query log."""
        if not self.server.query_log:
            return
        with self.server.log_lock, open(self.server.query_log + ".ms", "a") as f:
            f.write(f"{seconds * 1000:.3f}\n")

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path in ("/ping", "/"):
            if url.path == "/ping" or not url.query:
                return self.reply(200, "Ok.\n")
        self.handle_query(b"")

    def do_POST(self):
        self.handle_query(self.read_body())

    def handle_query(self, body):
        if self.server.latency or self.server.jitter:
            # Simulated network/server wait (not CPU): what a remote replica adds to every query.
            time.sleep(self.server.latency + random.uniform(0, self.server.jitter))
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {ctype}\r\n\r\n".encode() + body)
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                params[name] = part.get_payload(decode=True).decode()
            body = b""
        if not self.authorized(params):
            user = self.headers.get("X-ClickHouse-User") or params.get("user") or "default"
            return self.fail(f"Code: 516. DB::Exception: {user}: Authentication failed: password is "
                             "incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)")
        fmt = params.get("default_format", "TabSeparated")
        query_params = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        settings = {k: v for k, v in params.items()
                    if k not in RESERVED and not k.startswith("param_") and SETTING_NAME.match(k)}
        spool = None
        try:
            if "query" in params and body:
                m = INSERT_RE.match(params["query"])
                if not m:
                    sql = params["query"] + "\n" + body.decode()
                else:
                    # Streaming inserts leave the engine's query_id stuck: spool and use FROM INFILE.
                    fd, spool = tempfile.mkstemp(dir=self.server.spool_dir)
                    with os.fdopen(fd, "wb") as f:
                        f.write(body)
                    sql = f"{m.group(1)} FROM INFILE '{spool}' FORMAT {m.group(2)}"
            else:
                sql = params.get("query", "") + body.decode()
            if not sql.strip():
                return self.fail("Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)")
            self.log_query(params, sql)
            began = time.monotonic()
            try:
                out = self.server.engine.answer(sql, fmt, settings, query_params, params.get("database"))
            finally:
                self.log_time(time.monotonic() - began)
        except Exception as e:  # the engine's errors carry ClickHouse's code and text
            return self.fail(str(e))
        finally:
            if spool:
                os.unlink(spool)
        self.reply(200, out, [("Content-Type", "application/octet-stream"),
                              ("X-ClickHouse-Format", fmt)])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True, help="replica directory (config, data, backups)")
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--cluster", default="local")
    ap.add_argument("--shard", default="1")
    ap.add_argument("--replica", required=True)
    ap.add_argument("--cluster-ports", type=lambda s: [int(p) for p in s.split(",")], default=[],
                    help="ports listed in remote_servers for every replica of the cluster")
    ap.add_argument("--zk-port", type=int, default=0)
    ap.add_argument("--zk-session-timeout-ms", type=int, default=6000)
    ap.add_argument("--user", default="default")
    ap.add_argument("--operator-user", default="",
                    help="a second account (write actions); its password from CHOPS_GW_OPERATOR_PASSWORD")
    ap.add_argument("--query-log", default="", help="append one JSON line per query to this file")
    ap.add_argument("--latency-ms", type=float, default=0.0,
                    help="sleep this long before answering each query (benchmarks: simulated RTT)")
    ap.add_argument("--jitter-ms", type=float, default=0.0,
                    help="add a uniform random wait of up to this much to each query")
    ap.add_argument("--extra-ports", type=lambda s: [int(p) for p in s.split(",") if p], default=[],
                    help="more endpoints served by this one engine, each its own replica")
    ap.add_argument("--extra-replicas", type=lambda s: [r for r in s.split(",") if r], default=[],
                    help="their replica names (for the query logs: {replica} in --query-log)")
    ap.add_argument("--share-answers-ms", type=float, default=0.0,
                    help="identical SELECTs within this window share one engine call (many endpoints)")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    config = write_config(args)
    engine = SharedAnswers(Engine(os.path.join(args.dir, "data"), config), args.share_answers_ms / 1000.0)
    # The default listen backlog (5) overflows under a burst of concurrent probes: dropped SYNs
    # come back after the 1 s retransmit timeout and look like a slow network.
    ThreadingHTTPServer.request_queue_size = 256
    log_lock = threading.Lock()
    servers = []
    for port, replica in [(args.http_port, args.replica)] + list(zip(args.extra_ports, args.extra_replicas)):
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        server.engine = engine
        server.user = args.user
        server.password = os.environ.get("CHOPS_GW_PASSWORD", "")
        server.operator = args.operator_user
        server.operator_password = os.environ.get("CHOPS_GW_OPERATOR_PASSWORD", "")
        server.query_log = args.query_log.replace("{replica}", replica)
        server.log_lock = log_lock
        server.spool_dir = args.dir
        server.latency = args.latency_ms / 1000.0
        server.jitter = args.jitter_ms / 1000.0
        servers.append(server)
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"ready http://127.0.0.1:{args.http_port} replica={args.replica} (+{len(servers) - 1})", flush=True)
    servers[0].serve_forever()


if __name__ == "__main__":
    sys.exit(main())
