#!/usr/bin/env bash
# Shared shell functions: install what is missing, start and stop private Redis and PostgreSQL
# servers on 127.0.0.1. Sourced by services.sh, test.sh, run.sh and bench.sh.

SW_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

sw_log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
sw_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root: directly when we are root, through sudo otherwise.
sw_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else sw_die "need root (or sudo) to run: $*"
  fi
}

# The newest PostgreSQL server binaries installed by Debian's packages.
sw_pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] && echo "$dir"
}

# sw_apt_install PACKAGE…: installs Debian packages (quietly).
sw_apt_install() {
  sw_log "installing from Debian's packages: $*"
  export DEBIAN_FRONTEND=noninteractive
  sw_as_root apt-get update -qq >/dev/null
  sw_as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Installs, from Debian's packages, whatever of the servers and C libraries is missing.
sw_install_missing() {
  local missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
  [ -n "$(sw_pg_bin)" ] || missing+=(postgresql)
  command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
  command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  [ -f /usr/include/hiredis/hiredis.h ] || missing+=(libhiredis-dev)
  [ -f /usr/include/postgresql/libpq-fe.h ] || missing+=(libpq-dev)
  if [ ${#missing[@]} -gt 0 ]; then sw_apt_install "${missing[@]}"; fi
  command -v swift >/dev/null 2>&1 || sw_die "swift is not on PATH (Swift 6.1 or newer is needed)"
}

# What the browser test needs: Debian's Chromium and Playwright for Python (which drives the
# system browser; it downloads no browser of its own).
sw_install_browser() {
  command -v chromium >/dev/null 2>&1 || sw_apt_install chromium fonts-dejavu-core
  if ! python3 -c "import playwright" >/dev/null 2>&1; then
    python3 -m pip --version >/dev/null 2>&1 || sw_apt_install python3-pip
    sw_log "installing Playwright for Python from PyPI"
    python3 -m pip install -q playwright >/dev/null 2>&1 || python3 -m pip install -q --break-system-packages playwright >/dev/null
  fi
}

# Where the local servers keep their data, logs and pid files, and scripts/run.sh its processes'
# logs: $SW_STATE_DIR, else .local/ in the checkout, unless PostgreSQL's unprivileged user cannot
# reach it (a checkout under /root, or in a private temporary folder): then a folder of its own
# under /var/tmp.
sw_world_traversable() {
  local path=$1
  while [ "$path" != "/" ] && [ -n "$path" ]; do
    [ -n "$(find "$path" -maxdepth 0 -perm -o+x 2>/dev/null)" ] || return 1
    path=$(dirname "$path")
  done
}
sw_state_dir() {
  if [ -n "${SW_STATE_DIR:-}" ]; then
    echo "$SW_STATE_DIR"
  elif [ "$(id -u)" -eq 0 ] && ! sw_world_traversable "$SW_ROOT"; then
    echo "/var/tmp/streamwarehouse-$(printf %s "$SW_ROOT" | md5sum | cut -c1-12)"
  else
    echo "$SW_ROOT/.local"
  fi
}

# sw_venv NAME REQUIREMENTS: prints the path of a Python venv under ~/.cache/streamwarehouse/NAME
# holding exactly REQUIREMENTS (a pinned pip file); made, from PyPI, only when missing or when the
# file changed (installing python3-venv and python3-pip first if they are missing), then reused offline.
sw_venv() {
  local venv="${XDG_CACHE_HOME:-$HOME/.cache}/streamwarehouse/$1" requirements=$2
  if ! cmp -s "$requirements" "$venv/requirements.txt" 2>/dev/null; then
    python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || sw_apt_install python3-venv python3-pip
    sw_log "making the venv $venv from $requirements (once)"
    { rm -rf "$venv" && python3 -m venv "$venv" && "$venv/bin/pip" install -q -r "$requirements" && cp "$requirements" "$venv/requirements.txt"; } >&2 \
      || sw_die "could not make $venv"
  fi
  echo "$venv"
}

# A TCP port on 127.0.0.1 that nothing listens on.
sw_free_port() {
  local port tries=0
  while [ $tries -lt 200 ]; do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
    tries=$((tries + 1))
  done
  sw_die "no free port found"
}

# The user PostgreSQL runs as: the invoking user, or `postgres` when invoked as root
# (PostgreSQL refuses to run as root).
sw_pg_user() {
  if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi
}

sw_as_pg() {
  # From /, so that a working directory the postgres user cannot enter draws no warning.
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# sw_start_redis DIR PORT [durable]: a private redis-server on 127.0.0.1:PORT with its files in DIR.
sw_start_redis() {
  local dir=$1 port=$2 durable=${3:-no}
  mkdir -p "$dir"
  local persistence=(--save "" --appendonly no)
  [ "$durable" = durable ] && persistence=(--save "" --appendonly yes --appendfsync everysec)
  redis-server --bind 127.0.0.1 --port "$port" --protected-mode yes --dir "$dir" \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" "${persistence[@]}" >/dev/null \
    || sw_die "redis-server did not start; see $dir/redis.log"
  local i
  for i in $(seq 1 100); do
    [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  sw_die "redis-server on port $port did not answer; see $dir/redis.log"
}

sw_stop_redis() {
  local dir=$1 port=$2
  redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
  if [ -f "$dir/redis.pid" ]; then
    local pid; pid=$(cat "$dir/redis.pid" 2>/dev/null)
    local i
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/redis.pid"
  fi
}

# sw_start_redis_cluster DIR PORT… : a Redis Cluster of the given nodes (6: 3 primaries and 3
# replicas) on 127.0.0.1, each with its files in DIR/PORT, AOF on (fsync every second), a node
# timeout of 5 s (a shorter one fails over by mistake on a loaded machine) and an explicit bus port
# (PORT + 10000 overflows above 55535; SW_CLUSTER_BUS_PORTS may list them, else free ones).
sw_start_redis_cluster() {
  local dir=$1; shift
  local ports=("$@") bus=() nodes=() i
  if [ -n "${SW_CLUSTER_BUS_PORTS:-}" ]; then read -r -a bus <<<"$SW_CLUSTER_BUS_PORTS"; fi
  for i in "${!ports[@]}"; do
    local port=${ports[$i]} busport=${bus[$i]:-}
    if [ -z "$busport" ]; then
      busport=$(sw_free_port)
      while printf '%s\n' "${ports[@]}" "${bus[@]}" | grep -qx "$busport"; do busport=$(sw_free_port); done
      bus[$i]=$busport
    fi
    sw_start_cluster_node "$dir" "$port" "$busport"
    nodes+=("127.0.0.1:$port")
  done
  for port in "${ports[@]}"; do
    for i in $(seq 1 100); do
      [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] && break
      sleep 0.1
    done
    # A node that could not bind its port (or its bus port) fails the start now, not at create.
    [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] || sw_die "cluster node $port did not start; see $dir/$port/redis.log"
  done
  # A restarted cluster knows itself from nodes.conf; only a new one is created.
  if ! redis-cli -h 127.0.0.1 -p "${ports[0]}" cluster info 2>/dev/null | grep -q "cluster_known_nodes:${#ports[@]}"; then
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
      || sw_die "redis-cli --cluster create failed; see $dir/create.log"
  fi
  for i in $(seq 1 300); do
    local ok=0
    for port in "${ports[@]}"; do
      redis-cli -h 127.0.0.1 -p "$port" cluster info 2>/dev/null | grep -q "cluster_state:ok" && ok=$((ok + 1))
    done
    # cluster_state:ok comes before the replicas' first sync; a replica that never synced would
    # not be promoted when its primary fails.
    for port in "${ports[@]}"; do
      redis-cli -h 127.0.0.1 -p "$port" info replication 2>/dev/null | grep -q "role:master\|master_link_status:up" || ok=-1
    done
    [ "$ok" -eq "${#ports[@]}" ] && return 0
    sleep 0.1
  done
  sw_die "the Redis Cluster on ports ${ports[*]} did not reach cluster_state:ok with its replicas in sync; see $dir/*/redis.log"
}

# sw_start_cluster_node DIR PORT BUSPORT: one node of a cluster under DIR (its files in DIR/PORT);
# a node started again finds its cluster in its nodes.conf.
sw_start_cluster_node() {
  local dir=$1 port=$2 busport=$3
  mkdir -p "$dir/$port"
  redis-server --bind 127.0.0.1 --port "$port" --protected-mode yes --dir "$dir/$port" \
    --daemonize yes --pidfile "$dir/$port/redis.pid" --logfile "$dir/$port/redis.log" \
    --save "" --appendonly yes --appendfsync everysec \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 --cluster-port "$busport" >/dev/null \
    || sw_die "redis-server (cluster node $port) did not start; see $dir/$port/redis.log"
  echo "$busport" >"$dir/$port/busport"
}

# sw_restart_cluster_node DIR PORT: starts a stopped (or killed) node again, on its bus port.
sw_restart_cluster_node() {
  local dir=$1 port=$2
  sw_start_cluster_node "$dir" "$port" "$(cat "$dir/$port/busport")"
  local i
  for i in $(seq 1 100); do
    [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  sw_die "cluster node $port did not answer; see $dir/$port/redis.log"
}

# sw_stop_redis_cluster DIR: stops every node started under DIR.
sw_stop_redis_cluster() {
  local dir=$1 node
  for node in "$dir"/*/; do
    [ -f "$node/redis.pid" ] || continue
    sw_stop_redis "$node" "$(basename "$node")"
  done
}

# sw_start_postgres DIR PORT [fast]: a private PostgreSQL cluster in DIR on 127.0.0.1:PORT with a
# database and a role both called `warehouse` (trust authentication, loopback only). `fast`
# turns durability off, for throwaway test servers.
sw_start_postgres() {
  local dir=$1 port=$2 mode=${3:-durable}
  local bin; bin=$(sw_pg_bin) || sw_die "PostgreSQL server binaries not found"
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir"
    runuser -u postgres -- test -w "$dir" || sw_die "user postgres cannot write $dir (a parent folder is not traversable); set SW_STATE_DIR to a folder it can reach"
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    sw_as_pg "$bin/initdb" -D "$dir/data" -U warehouse --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; sw_die "initdb failed"; }
  fi
  mkdir -p "$dir/socket"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir/socket"
  local options="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir/socket -c max_connections=200"
  if [ "$mode" = fast ]; then
    options="$options -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  elif [ "${SW_PG_SETTINGS:-tuned}" != stock ]; then
    options="$options $(sw_pg_warehouse_settings)"
  fi
  sw_as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -o "$options" -w -t 60 start >/dev/null \
    || { tail -n 20 "$dir/postgres.log" >&2; sw_die "PostgreSQL did not start"; }
  if ! psql -h 127.0.0.1 -p "$port" -U warehouse -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'warehouse'" | grep -q 1; then
    psql -h 127.0.0.1 -p "$port" -U warehouse -d postgres -qc "CREATE DATABASE warehouse" >/dev/null
  fi
}

# Settings for a warehouse load on the machine found (see README, "PostgreSQL settings"), all
# durable (fsync, synchronous commit and full-page writes stay on): shared buffers a quarter of
# memory (at most 8 GiB), the OS cache counted for the planner, and checkpoints spaced out
# (a 15-minute timeout, up to 8 GiB of WAL, lz4-compressed full-page images) so that a page dirtied
# again and again is written once per checkpoint instead of once per second of load.
# SW_PG_SETTINGS=stock starts PostgreSQL with its own defaults instead (to measure both).
sw_pg_warehouse_settings() {
  local kib; kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
  local mib=$((kib / 1024))
  local shared=$((mib / 4)); [ "$shared" -gt 8192 ] && shared=8192; [ "$shared" -lt 128 ] && shared=128
  local maintenance=$((mib / 16)); [ "$maintenance" -gt 1024 ] && maintenance=1024; [ "$maintenance" -lt 64 ] && maintenance=64
  echo "-c shared_buffers=${shared}MB -c effective_cache_size=$((mib / 2))MB -c maintenance_work_mem=${maintenance}MB" \
       "-c work_mem=32MB -c wal_buffers=64MB -c max_wal_size=8GB -c min_wal_size=1GB -c checkpoint_timeout=15min" \
       "-c checkpoint_completion_target=0.9 -c wal_compression=lz4 -c random_page_cost=1.1 -c effective_io_concurrency=200"
}

sw_stop_postgres() {
  local dir=$1 mode=${2:-fast}
  local bin; bin=$(sw_pg_bin) || return 0
  [ -f "$dir/data/postmaster.pid" ] || return 0
  sw_as_pg "$bin/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 stop >/dev/null 2>&1 || true
}

# sw_kill_redis DIR: kill -9 of the redis-server whose files are in DIR (a crash, for fault tests).
sw_kill_redis() {
  local dir=$1 pid
  pid=$(cat "$dir/redis.pid" 2>/dev/null) || return 0
  kill -9 "$pid" 2>/dev/null || true
  local i
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  rm -f "$dir/redis.pid"
}

# sw_kill_postgres DIR: kill -9 of every process of the PostgreSQL cluster in DIR (the postmaster
# and its children at once, as a power cut would end them); restarting runs crash recovery.
sw_kill_postgres() {
  local dir=$1 pid children
  pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null) || return 0
  children=$(pgrep -P "$pid" || true)
  kill -9 "$pid" $children 2>/dev/null || true
  local i p alive
  for i in $(seq 1 100); do
    alive=0
    for p in $pid $children; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.05
  done
}

sw_redis_running() { [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]; }
sw_postgres_running() { psql -h 127.0.0.1 -p "$1" -U warehouse -d warehouse -Atc 'SELECT 1' >/dev/null 2>&1; }

# sw_build ARGS…: `swift build ARGS…`, its output on stderr without SwiftPM's harmless
# "prohibited flag" warnings about libpq's pkg-config; dies when the build fails.
sw_build() {
  local rc
  set +e
  swift build "$@" 2>&1 | grep --line-buffered -v "prohibited flag" >&2
  rc=${PIPESTATUS[0]}
  set -e
  [ "$rc" -eq 0 ] || sw_die "swift build $* failed"
}
