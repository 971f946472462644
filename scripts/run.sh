#!/usr/bin/env bash
# The main job on this machine: install what is missing, build (release), start the local Redis
# and PostgreSQL (scripts/services.sh), apply the migrations, replay data/ onto the entity
# streams, load the star schema with the `warehouse` consumer group and the KPIs with the `kpi`
# group until both have caught up, print the summary, the KPIs and the data-quality checks, and
# reconcile the KPIs in Redis with the warehouse, print the lag table; then keep both consumer
# groups running live and serve the dashboard at http://127.0.0.1:5000 (SW_DASHBOARD_PORT) until
# Ctrl-C, which stops the consumers, the dashboard and those of the servers this script started
# (one already up is left running, and it says so).
#
#   scripts/run.sh              the whole product, until Ctrl-C
#   scripts/run.sh --no-serve   stop after the checks (consumers and dashboard not started)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$SW_ROOT"

sw_install_missing
sw_log "building warehouse (release)"
sw_build -c release
bin="$SW_ROOT/.build/release/warehouse"

serve=1
[ "${1:-}" = "--no-serve" ] && serve=0
# Which servers this script starts (and so stops on Ctrl-C): those that did not answer already.
start_redis=1 start_postgres=1
sw_redis_running "${SW_REDIS_PORT:-16379}" && start_redis=0
sw_postgres_running "${SW_PG_PORT:-15432}" && start_postgres=0
service_env=$(scripts/services.sh up)
eval "$service_env"
sw_log "REDIS_URL=$REDIS_URL DATABASE_URL=$DATABASE_URL"

sw_log "checking both servers"
"$bin" ping
sw_log "migrating"
"$bin" migrate
sw_log "replaying data/ (history scenario)"
"$bin" replay --scenario history
sw_log "loading the star schema (consumer group warehouse) until drained"
"$bin" consume --group warehouse --until-drained --block-ms 200
sw_log "keeping the KPIs in Redis (consumer group kpi) until drained"
"$bin" consume --group kpi --until-drained --block-ms 200
sw_log "summary, from PostgreSQL"
"$bin" report summary
sw_log "KPIs, from Redis"
"$bin" kpis
sw_log "data-quality checks"
"$bin" check
sw_log "reconciling Redis's KPIs with PostgreSQL"
"$bin" reconcile --wait 10
sw_log "consumer lag"
"$bin" lag --window-ms 500 || true

if [ "$serve" -eq 0 ]; then
  sw_log "done; Redis and PostgreSQL stay up; stop them with: scripts/services.sh down"
  exit 0
fi

# Live: both groups keep consuming what `warehouse produce` publishes, and the dashboard shows it.
pids=()
stop_all() {
  trap - INT TERM EXIT
  sw_log "stopping the dashboard and the consumers"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  if [ "$start_redis" -eq 1 ] && [ "$start_postgres" -eq 1 ]; then
    sw_log "stopping Redis and PostgreSQL, which this script started"
    scripts/services.sh down
  elif [ "$start_redis" -eq 1 ]; then
    sw_log "stopping Redis, which this script started; leaving PostgreSQL running, as it was before"
    scripts/services.sh down redis
  elif [ "$start_postgres" -eq 1 ]; then
    sw_log "stopping PostgreSQL, which this script started; leaving Redis running, as it was before"
    scripts/services.sh down postgres
  else
    sw_log "leaving Redis and PostgreSQL running: they were up before this script (scripts/services.sh down stops them)"
  fi
}
trap stop_all INT TERM EXIT
# Every log in one place: the servers' (redis/redis.log, postgres/postgres.log) and these processes'.
state=$(sw_state_dir)
logs="$state/logs"
mkdir -p "$logs"
"$bin" consume --group warehouse --block-ms 500 --metrics-port "${SW_WAREHOUSE_METRICS_PORT:-9101}" 2>>"$logs/warehouse.log" & pids+=($!)
"$bin" consume --group kpi --block-ms 500 --metrics-port "${SW_KPI_METRICS_PORT:-9102}" 2>>"$logs/kpi.log" & pids+=($!)
port=${SW_DASHBOARD_PORT:-5000}
"$bin" dashboard --port "$port" 2>>"$logs/dashboard.log" & pids+=($!)
sw_log "logs: $logs/{warehouse,kpi,dashboard}.log, $state/redis/redis.log, $state/postgres/postgres.log"
sw_log "live: the consumers' metrics on :${SW_WAREHOUSE_METRICS_PORT:-9101} and :${SW_KPI_METRICS_PORT:-9102}; send orders with e.g."
sw_log "  $bin produce synthetic --rate 200 --duration 1m"
sw_log "dashboard at http://127.0.0.1:$port/ — Ctrl-C stops everything this script started"
wait "${pids[@]}"
