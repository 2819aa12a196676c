#!/usr/bin/env bash
# Runs N release instances of the server behind nginx on loopback, the
# container-free scale-out recipe of issue 14 (README, "Deploying").
#
#   ISSUER=https://dev-123456.okta.com/oauth2/default CLIENT_ID=0oa... \
#     deploy/run-cluster.sh 4
#
# - installs nginx from the distribution if it is missing (apt-get, through
#   sudo unless root; the package's own service is not started);
# - starts N instances of target/release/server (build it first:
#   LEPTOS_OUTPUT_NAME=okta-implicit cargo build --release -p server --bin server,
#   or cargo leptos build --release) on 127.0.0.1:BASE_PORT+i, i = 0..N-1,
#   each with its metrics on 127.0.0.1:METRICS_BASE_PORT+i, sharing ISSUER
#   and CLIENT_ID, logging JSON to WORK/instance-<i>.log;
# - writes WORK/nginx/nginx.conf from deploy/nginx.conf with those
#   instances as the upstream and starts nginx on 127.0.0.1:NGINX_PORT;
# - restarts an instance that dies, RESTART_DELAY seconds later, as an
#   orchestrator would (WORK/instance-<i>.pid always holds the current
#   pid);
# - prints "cluster ready: http://127.0.0.1:NGINX_PORT (N instances)" once
#   every instance answers /readyz and nginx answers, then runs until
#   SIGTERM or SIGINT (or until COMMAND, if given after --, exits), and
#   tears everything down on exit: the instances get SIGTERM and their
#   shutdown grace, nginx a graceful quit.
#
# Settings (environment): ISSUER and CLIENT_ID (required; any other server
# setting is passed through too), NGINX_PORT (3480), BASE_PORT (3500),
# METRICS_BASE_PORT (3600), SERVER (target/release/server), WORK
# (target/cluster), RESTART_DELAY (5; "off": never restart),
# EXPOSE_UPSTREAM=1 (nginx adds X-Upstream-Addr to every answer, for the
# load harness; not for production), NGINX_RETRY_POST=0 (leave out
# non_idempotent: POSTs cut mid-answer are not retried).
#
# The load harness runs this itself: target/release/load --cluster N
# (loadtest/src/cluster.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: ISSUER=... CLIENT_ID=... $0 N [-- COMMAND...]" >&2
    exit 2
}

instances="${1:-}"
[[ "$instances" =~ ^[1-9][0-9]?$ ]] || usage
shift
command_to_run=()
if [[ $# -gt 0 ]]; then
    [[ "$1" == "--" ]] || usage
    shift
    command_to_run=("$@")
fi
: "${ISSUER:?ISSUER must be set (the issuer every instance trusts)}"
: "${CLIENT_ID:?CLIENT_ID must be set}"
nginx_port="${NGINX_PORT:-3480}"
base_port="${BASE_PORT:-3500}"
metrics_base_port="${METRICS_BASE_PORT:-3600}"
server="${SERVER:-target/release/server}"
work="${WORK:-target/cluster}"
restart_delay="${RESTART_DELAY:-5}"

for port in "$nginx_port" "$base_port" "$metrics_base_port"; do
    if ((port >= 3000 && port < 3400)); then
        echo "error: port $port is in 3000-3399, kept for the app's own runs and browser tests" >&2
        exit 2
    fi
done
[[ -x "$server" ]] || {
    echo "error: $server not found; build it: LEPTOS_OUTPUT_NAME=okta-implicit cargo build --release -p server --bin server" >&2
    exit 2
}

log() { echo "run-cluster: $*" >&2; }

find_nginx() {
    command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true
}

install_nginx() {
    local sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null || {
            echo "error: nginx is missing and there is no sudo to install it with; install nginx" >&2
            exit 2
        }
        sudo=(sudo)
    fi
    log "installing nginx with apt-get"
    # Keep the package from starting its own nginx on port 80: a
    # policy-rc.d that refuses service starts, for the install only.
    local policy=/usr/sbin/policy-rc.d placed=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        placed=1
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
    if ((placed)); then
        "${sudo[@]}" rm -f "$policy"
    fi
}

nginx_bin="$(find_nginx)"
if [[ -z "$nginx_bin" ]]; then
    install_nginx
    nginx_bin="$(find_nginx)"
    [[ -n "$nginx_bin" ]] || {
        echo "error: nginx is still missing after apt-get install" >&2
        exit 2
    }
fi

mkdir -p "$work/nginx"
work="$(cd "$work" && pwd)"
server="$(cd "$(dirname "$server")" && pwd)/$(basename "$server")"
site_root="$(pwd)/target/site"

stopping=0
supervisors=()
nginx_pid=""

instance_pid() { cat "$work/instance-$1.pid" 2>/dev/null || true; }

teardown() {
    stopping=1
    trap - EXIT INT TERM
    local pid i
    for pid in "${supervisors[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for ((i = 0; i < instances; i++)); do
        pid="$(instance_pid "$i")"
        if [[ -n "$pid" ]]; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    if [[ -n "$nginx_pid" ]]; then
        kill -QUIT "$nginx_pid" 2>/dev/null || true
    fi
    for ((i = 0; i < instances; i++)); do
        pid="$(instance_pid "$i")"
        while [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    done
    while [[ -n "$nginx_pid" ]] && kill -0 "$nginx_pid" 2>/dev/null; do sleep 0.1; done
    log "stopped"
}
trap teardown EXIT
trap 'exit 0' INT TERM

# One instance, started again whenever it dies (unless RESTART_DELAY=off).
supervise() {
    local i="$1" port=$((base_port + $1)) metrics_port=$((metrics_base_port + $1)) pid status
    # The supervisor itself ends quietly on SIGTERM; its instance is
    # stopped by the teardown.
    trap 'exit 0' TERM
    while true; do
        env LEPTOS_SITE_ADDR="127.0.0.1:$port" \
            LEPTOS_OUTPUT_NAME=okta-implicit \
            LEPTOS_SITE_ROOT="$site_root" \
            METRICS_ADDR="127.0.0.1:$metrics_port" \
            LOG_FORMAT="${LOG_FORMAT:-json}" \
            RUST_LOG="${RUST_LOG:-info}" \
            NO_COLOR=1 \
            "$server" >>"$work/instance-$i.log" 2>&1 &
        pid=$!
        echo "$pid" >"$work/instance-$i.pid"
        status=0
        wait "$pid" || status=$?
        [[ "$restart_delay" == off ]] && return 0
        echo "run-cluster: instance $i (pid $pid) exited with status $status; starting it again in ${restart_delay} s" >&2
        sleep "$restart_delay"
    done
}

upstreams=""
for ((i = 0; i < instances; i++)); do
    rm -f "$work/instance-$i.pid"
    : >"$work/instance-$i.log"
    upstreams+="server 127.0.0.1:$((base_port + i)) max_fails=1 fail_timeout=2s; "
done
extra=""
if [[ "${EXPOSE_UPSTREAM:-0}" == 1 ]]; then
    # shellcheck disable=SC2016 # nginx's variable, for nginx to expand
    extra='add_header X-Upstream-Addr $upstream_addr always;'
fi
conf="$work/nginx/nginx.conf"
sed -e "s|@UPSTREAMS@|$upstreams|" \
    -e "s|@LISTEN@|127.0.0.1:$nginx_port|" \
    -e "s|@PREFIX@|$work/nginx|g" \
    -e "s|@EXTRA@|$extra|" \
    deploy/nginx.conf >"$conf"
if [[ "${NGINX_RETRY_POST:-1}" == 0 ]]; then
    sed -i -e 's| non_idempotent;|;|' "$conf"
fi
"$nginx_bin" -t -q -p "$work/nginx" -c "$conf"

for ((i = 0; i < instances; i++)); do
    supervise "$i" &
    supervisors+=("$!")
done

ready() {
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null
}
deadline=$((SECONDS + 60))
for ((i = 0; i < instances; i++)); do
    until ready "http://127.0.0.1:$((base_port + i))/readyz"; do
        if ((SECONDS > deadline)); then
            echo "error: instance $i is not ready after 60 s; its log:" >&2
            tail -n 5 "$work/instance-$i.log" >&2
            exit 1
        fi
        sleep 0.1
    done
done

"$nginx_bin" -p "$work/nginx" -c "$conf" -g 'daemon off;' &
nginx_pid=$!
until ready "http://127.0.0.1:$nginx_port/healthz"; do
    if ((SECONDS > deadline)) || ! kill -0 "$nginx_pid" 2>/dev/null; then
        echo "error: nginx does not answer on 127.0.0.1:$nginx_port; $work/nginx/error.log:" >&2
        tail -n 5 "$work/nginx/error.log" >&2
        exit 1
    fi
    sleep 0.1
done
echo "cluster ready: http://127.0.0.1:$nginx_port ($instances instances)"

if ((${#command_to_run[@]})); then
    "${command_to_run[@]}"
else
    # Until SIGTERM or SIGINT; `wait` returns at once when one comes.
    while ((!stopping)); do
        wait "$nginx_pid" || true
        kill -0 "$nginx_pid" 2>/dev/null || {
            echo "error: nginx exited" >&2
            exit 1
        }
    done
fi
