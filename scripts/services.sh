#!/usr/bin/env bash
# Local services: a private Redis and PostgreSQL on 127.0.0.1, with their data, logs and pid
# files under .local/ (or $SW_STATE_DIR). PostgreSQL runs as an unprivileged user even when this
# is run as root.
#
#   scripts/services.sh up       install what is missing, start both, wait until they answer
#   scripts/services.sh down     stop both cleanly (down redis / down postgres: only that one)
#   scripts/services.sh status   say whether each one answers
#   scripts/services.sh env      print the REDIS_URL and DATABASE_URL to export
#
# With --cluster (after the verb), Redis is a 6-node Redis Cluster instead (3 primaries, 3
# replicas, AOF on) on SW_CLUSTER_PORT … +5 (default 17000), with bus ports SW_CLUSTER_PORT + 100 …;
# REDIS_URL then names all six nodes (any one is enough: the client finds the rest).
#
# Ports: SW_REDIS_PORT (default 16379) and SW_PG_PORT (default 15432), chosen so as not to clash
# with a system Redis or PostgreSQL. The defaults of the `warehouse` program point here.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

state=$(sw_state_dir)
redis_port=${SW_REDIS_PORT:-16379}
pg_port=${SW_PG_PORT:-15432}
redis_url="redis://127.0.0.1:$redis_port/0"
cluster=no
[ "${2:-}" = "--cluster" ] && cluster=yes
# `env --cluster` / `status --cluster` name the cluster too; so does `down`, which stops whatever runs.
cluster_port=${SW_CLUSTER_PORT:-17000}
cluster_ports=() cluster_bus=()
for i in 0 1 2 3 4 5; do cluster_ports+=($((cluster_port + i))); cluster_bus+=($((cluster_port + 100 + i))); done
if [ "$cluster" = yes ]; then
  redis_url="redis://$(printf '127.0.0.1:%s,' "${cluster_ports[@]}" | sed 's/,$//')/0"
fi
database_url="postgresql://warehouse@127.0.0.1:$pg_port/warehouse"

print_env() {
  echo "export REDIS_URL=$redis_url"
  echo "export DATABASE_URL=$database_url"
}

case "${1:-}" in
  up)
    sw_install_missing
    mkdir -p "$state"
    if [ "$cluster" = yes ]; then
      sw_log "starting a 6-node Redis Cluster on 127.0.0.1:${cluster_ports[0]}-${cluster_ports[5]} ($state/redis-cluster)"
      SW_CLUSTER_BUS_PORTS="${cluster_bus[*]}" sw_start_redis_cluster "$state/redis-cluster" "${cluster_ports[@]}"
    elif sw_redis_running "$redis_port"; then
      sw_log "Redis already answers on 127.0.0.1:$redis_port"
    else
      sw_log "starting Redis on 127.0.0.1:$redis_port ($state/redis)"
      sw_start_redis "$state/redis" "$redis_port" durable
    fi
    if sw_postgres_running "$pg_port"; then
      sw_log "PostgreSQL already answers on 127.0.0.1:$pg_port"
    else
      sw_log "starting PostgreSQL on 127.0.0.1:$pg_port ($state/postgres)"
      sw_start_postgres "$state/postgres" "$pg_port" durable
    fi
    print_env
    ;;
  down)
    which=${2:-both}
    case "$which" in both|--cluster|redis|postgres) ;; *) echo "usage: scripts/services.sh down [redis|postgres]" >&2; exit 2 ;; esac
    if [ "$which" != postgres ]; then
      sw_log "stopping Redis"
      [ -d "$state/redis-cluster" ] && sw_stop_redis_cluster "$state/redis-cluster"
      if sw_redis_running "$redis_port"; then redis-cli -h 127.0.0.1 -p "$redis_port" shutdown >/dev/null 2>&1 || true; fi
      sw_stop_redis "$state/redis" "$redis_port"
    fi
    if [ "$which" != redis ]; then
      sw_log "stopping PostgreSQL"
      sw_stop_postgres "$state/postgres" fast
    fi
    ;;
  status)
    rc=0
    if [ "$cluster" = yes ]; then
      if redis-cli -h 127.0.0.1 -p "$cluster_port" cluster info 2>/dev/null | grep -q cluster_state:ok; then
        echo "redis      up    $redis_url (cluster)"; else echo "redis      down  $redis_url (cluster)"; rc=1; fi
    elif sw_redis_running "$redis_port"; then echo "redis      up    $redis_url"; else echo "redis      down  $redis_url"; rc=1; fi
    if sw_postgres_running "$pg_port"; then echo "postgresql up    $database_url"; else echo "postgresql down  $database_url"; rc=1; fi
    exit $rc
    ;;
  env)
    print_env
    ;;
  logs)
    # Every log file there is, in the one folder they all live in.
    echo "logs in $state:"
    find "$state" -maxdepth 3 -name '*.log' -type f 2>/dev/null | sort | sed "s|^|  |"
    ;;
  *)
    echo "usage: scripts/services.sh up|down [redis|postgres]|status|env|logs [--cluster]" >&2
    exit 2
    ;;
esac
