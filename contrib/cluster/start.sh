#!/usr/bin/env bash
# Start a three-node chatcli cluster on this machine, for trying it out:
#
#   Redis        127.0.0.1:$REDIS_PORT (6380)   the nodes' backbone (chat serve --cluster)
#   PostgreSQL   127.0.0.1:$PG_PORT (5433)      accounts, registered rooms, history (--db)
#   node1..3     IRC 127.0.0.1:6671-6673, web 127.0.0.1:8081-8083
#   haproxy      IRC 127.0.0.1:6667, web 127.0.0.1:8080, stats 127.0.0.1:8404
#                (only if haproxy is installed; haproxy.cfg beside this script)
#
# Usage: start.sh [DIR]     (DIR: ./cluster-demo by default; stop.sh DIR stops it all)
#
# Everything lives in DIR: data, config files, logs and pid files. Nothing listens
# beyond 127.0.0.1. Running it again on the same DIR reuses the data (Redis's and
# PostgreSQL's); run stop.sh first. Environment:
#   CHAT             the chat command (default: `chat` on PATH)
#   HAPROXY          the haproxy command (default: `haproxy`, if installed; empty: none)
#   REDIS_PORT, PG_PORT, CLUSTER_TIMEOUT (seconds; 10)
#   LOG_LEVEL        the nodes' --log-level (warning; info logs every connection, and
#                    haproxy's health checks too: one line a second per node)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${1:-./cluster-demo}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

CHAT="${CHAT:-chat}"
REDIS_PORT="${REDIS_PORT:-6380}"   # not 6379 nor 5432: leave a system Redis/PostgreSQL be
PG_PORT="${PG_PORT:-5433}"
CLUSTER_TIMEOUT="${CLUSTER_TIMEOUT:-10}"
LOG_LEVEL="${LOG_LEVEL:-warning}"
HAPROXY="${HAPROXY-haproxy}"
NODES=(1 2 3)                      # node N: IRC port 667N, web port 808N (as haproxy.cfg)

say() { printf '%s\n' "$*"; }
die() {
    printf 'start.sh: %s\n' "$*" >&2
    if [[ -n "${dir:-}" ]] && ls "$dir"/*.pid "$dir"/node*/chat.pid "$dir"/postgres/postmaster.pid \
        >/dev/null 2>&1; then
        printf 'start.sh: to stop what did start: %s/stop.sh %s\n' "$here" "$dir" >&2
    fi
    exit 1
}

# A process from an earlier run still going (its pid file, and the pid alive)?
running() { [[ -f "$1" ]] && kill -0 "$(head -n1 "$1")" 2>/dev/null; }

# Wait up to $1 seconds for the command after it to succeed.
wait_for() {
    local seconds="$1"; shift
    local i
    for ((i = 0; i < seconds * 5; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    return 1
}

command -v "$CHAT" >/dev/null || die "no '$CHAT' command: install chatcli, or set CHAT=/path/to/chat"
"$CHAT" serve --help | grep -q -- --cluster \
    || die "'$CHAT serve' has no --cluster: a chatcli with cluster mode is needed"
command -v redis-server >/dev/null || die "no redis-server (Debian: apt-get install redis-server)"

# PostgreSQL's programs: on PATH, or where Debian puts them (the newest version).
pgbin=""
if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    pgbin="$(dirname "$(readlink -f "$(command -v pg_ctl)")")"
else
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$d/initdb" ]]; then pgbin="$d"; break; fi
    done
fi
[[ -n "$pgbin" ]] || die "no PostgreSQL (Debian: apt-get install postgresql)"

# PostgreSQL refuses to run as root: then it runs as the postgres user, who must be able
# to reach DIR (not under /root, say).
pg_user=""
if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' user for PostgreSQL"
    pg_user=postgres
fi
as_pg() {
    if [[ -n "$pg_user" ]]; then runuser -u "$pg_user" -- "$@"; else "$@"; fi
}

if running "$dir/redis.pid" || running "$dir/postgres/postmaster.pid" \
    || running "$dir/haproxy.pid"; then
    die "a cluster is already running in $dir: stop it first ($here/stop.sh $dir)"
fi

# -- Redis -------------------------------------------------------------------------------
# Persistence on (an append-only file, written every second): a restarted Redis comes
# back with the stream of events and the nodes' records. Without it the nodes still
# recover: each notices the empty Redis, writes its users, their nicks and its rooms'
# state again, and publishes again what it published in the last 10 seconds. But that
# is all there is then: events older than that, which a node that was lagging or is just
# starting could still need, would be gone.
mkdir -p "$dir/redis"
say "Redis on 127.0.0.1:$REDIS_PORT"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$dir/redis" \
    --appendonly yes --daemonize yes --pidfile "$dir/redis.pid" \
    --logfile "$dir/redis.log"
wait_for 10 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping \
    || die "Redis did not start: see $dir/redis.log"

# -- PostgreSQL --------------------------------------------------------------------------
# One database cluster of its own, trusting local connections (127.0.0.1 only), with
# chatcli as its superuser; its socket in its own directory.
pgdata="$dir/postgres"
if [[ ! -f "$pgdata/PG_VERSION" ]]; then
    say "PostgreSQL: initdb in $pgdata"
    mkdir -p "$pgdata"
    [[ -n "$pg_user" ]] && chown "$pg_user" "$pgdata"
    as_pg test -w "$pgdata" || die "the $pg_user user cannot write $pgdata: choose a DIR it can reach"
    as_pg "$pgbin/initdb" -D "$pgdata" -U chatcli --auth=trust -E UTF8 >"$dir/initdb.log" \
        || die "initdb failed: see $dir/initdb.log"
fi
[[ -n "$pg_user" ]] && { touch "$dir/postgres.log"; chown "$pg_user" "$dir/postgres.log"; }
say "PostgreSQL on 127.0.0.1:$PG_PORT"
as_pg "$pgbin/pg_ctl" -D "$pgdata" -l "$dir/postgres.log" -w -t 30 \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $pgdata" start >/dev/null \
    || die "PostgreSQL did not start: see $dir/postgres.log"
psql=("$pgbin/psql" -h 127.0.0.1 -p "$PG_PORT" -U chatcli -d postgres -qtA)
if [[ -z "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'chat'")" ]]; then
    "${psql[@]}" -c "CREATE DATABASE chat OWNER chatcli"
fi
db="postgresql://chatcli@127.0.0.1:$PG_PORT/chat"

# -- haproxy, or not -----------------------------------------------------------------------
# Behind haproxy, every connection to a node comes from haproxy and begins with a PROXY
# header: the nodes believe it from 127.0.0.1 only, and then take no connection from there
# without one. Without haproxy, clients connect to the nodes themselves, with no header.
use_haproxy=""
[[ -n "$HAPROXY" ]] && command -v "$HAPROXY" >/dev/null && use_haproxy=yes
proxy_protocol='[]'
[[ -n "$use_haproxy" ]] && proxy_protocol='["127.0.0.1"]'

# -- the nodes ---------------------------------------------------------------------------
for n in "${NODES[@]}"; do
    node="$dir/node$n"
    mkdir -p "$node/data"
    # Each node's settings: its own name and ports; the cluster's Redis and PostgreSQL,
    # shared by all.
    cat >"$node/chat.toml" <<EOF
# node$n of the demo cluster (written by start.sh)
name = "node$n.chat.local"
host = "127.0.0.1"
port = 667$n
web_port = 808$n
cluster = "redis://127.0.0.1:$REDIS_PORT/0"
cluster_timeout = $CLUSTER_TIMEOUT
db = "$db"
proxy_protocol = $proxy_protocol
EOF
    say "node$n: IRC 127.0.0.1:667$n, web 127.0.0.1:808$n"
    # Its data directory (the self-signed certificate, were TLS on) is its own.
    XDG_DATA_HOME="$node/data" nohup "$CHAT" serve --config "$node/chat.toml" \
        --log-level "$LOG_LEVEL" >"$node/chat.log" 2>&1 </dev/null &
    echo $! >"$node/chat.pid"
done

# Ready once /healthz answers 200 (with the PROXY header it wants from 127.0.0.1).
curl_node=(curl -fsS -o /dev/null --max-time 2)
[[ -n "$use_haproxy" ]] && curl_node+=(--haproxy-protocol)
for n in "${NODES[@]}"; do
    if ! wait_for 20 "${curl_node[@]}" "http://127.0.0.1:808$n/healthz"; then
        running "$dir/node$n/chat.pid" || die "node$n stopped: see $dir/node$n/chat.log"
        die "node$n does not answer /healthz: see $dir/node$n/chat.log"
    fi
done

if [[ -n "$use_haproxy" ]]; then
    say "haproxy: IRC 127.0.0.1:6667, web 127.0.0.1:8080, stats http://127.0.0.1:8404/"
    "$HAPROXY" -c -q -f "$here/haproxy.cfg" || die "haproxy.cfg does not check out"
    # In the foreground (-db) of a background job, so that its log goes to a file.
    nohup "$HAPROXY" -db -f "$here/haproxy.cfg" >"$dir/haproxy.log" 2>&1 </dev/null &
    echo $! >"$dir/haproxy.pid"
    wait_for 10 curl -fsS -o /dev/null --max-time 2 http://127.0.0.1:8080/healthz \
        || die "haproxy does not answer on 8080: see $dir/haproxy.log"
    irc_port=6667 web_port=8080
else
    say "(no haproxy: connect to the nodes themselves)"
    irc_port=6671 web_port=8081
fi

cat <<EOF

The cluster is up. Connect:
  $CHAT join --host 127.0.0.1 --port $irc_port --alias alice
  irssi -c 127.0.0.1 -p $irc_port -n bob
  http://127.0.0.1:$web_port/  (the web client)
EOF
[[ -n "$use_haproxy" ]] || say "  (or ports 6672, 6673: another node, the same chat)"
cat <<EOF
Logs: $dir/node*/chat.log, redis.log, postgres.log${use_haproxy:+, haproxy.log}
Stop it all: $here/stop.sh $dir
EOF
