#!/usr/bin/env bash
# Stop what start.sh started in DIR (./cluster-demo by default): haproxy, the nodes,
# Redis and PostgreSQL, each by the pid file start.sh (or the program itself) wrote.
# The data stays in DIR: start.sh DIR starts the same cluster again; rm -r DIR forgets it.
#
# Usage: stop.sh [DIR]
set -euo pipefail

dir="${1:-./cluster-demo}"
[[ -d "$dir" ]] || { printf 'stop.sh: no directory %s\n' "$dir" >&2; exit 1; }

# Send signal $2 to the process whose pid is on the first line of file $3, and wait up
# to 15 seconds for it to end (then SIGKILL it). $1 names it for people.
stop() {
    local what="$1" sig="$2" file="$3" pid i
    [[ -f "$file" ]] || return 0
    pid="$(head -n1 "$file")"
    if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$file"
        return 0
    fi
    printf 'stopping %s (pid %s)\n' "$what" "$pid"
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 75; i++)); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$file"; return 0; }
        sleep 0.2
    done
    printf 'stop.sh: %s (pid %s) still runs after 15 s: SIGKILL\n' "$what" "$pid" >&2
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$file"
}

# Clients first lose the balancer, then the nodes say goodbye to them (SIGTERM: each
# tells its clients and leaves the cluster), then what the nodes needed goes.
stop haproxy TERM "$dir/haproxy.pid"
for pidfile in "$dir"/node*/chat.pid; do
    [[ -e "$pidfile" ]] || continue
    node="$(basename "$(dirname "$pidfile")")"
    stop "$node" TERM "$pidfile" &     # the nodes together: each takes up to 2 s
done
wait
stop redis TERM "$dir/redis.pid"       # (it writes its append-only file out first)
# SIGINT is PostgreSQL's "fast" shutdown (pg_ctl stop -m fast): it ends the sessions and
# writes a checkpoint. PostgreSQL removes postmaster.pid itself.
stop postgresql INT "$dir/postgres/postmaster.pid"
printf 'stopped; the data stays in %s\n' "$dir"
