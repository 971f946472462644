#!/usr/bin/env bash
# The test command: installs what is missing, builds, starts throwaway Redis and PostgreSQL on
# free loopback ports in a temporary folder, runs every test (unit and integration) against them,
# then stops and removes the servers, also when the tests fail or the run is interrupted.
#
#   scripts/test.sh                 every test
#   scripts/test.sh --filter Redis  extra arguments go to `swift test` (and the Airflow check is skipped)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$SW_ROOT"

sw_install_missing
sw_install_browser

sw_log "building (debug, with tests)"
sw_build --build-tests

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sw-test.XXXXXX")
chmod 755 "$tmp"
redis_port=$(sw_free_port)
pg_port=$(sw_free_port)
while [ "$pg_port" = "$redis_port" ]; do pg_port=$(sw_free_port); done

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  sw_stop_redis "$tmp/redis" "$redis_port"
  sw_stop_postgres "$tmp/postgres" immediate
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sw_log "starting throwaway Redis on 127.0.0.1:$redis_port and PostgreSQL on 127.0.0.1:$pg_port"
sw_start_redis "$tmp/redis" "$redis_port"
sw_start_postgres "$tmp/postgres" "$pg_port" fast

export REDIS_URL="redis://127.0.0.1:$redis_port/0"
export DATABASE_URL="postgresql://warehouse@127.0.0.1:$pg_port/warehouse"
# The executable the tests run (scripts/soak-faults.sh --asan points it at a sanitizer build).
export WAREHOUSE_BIN="${WAREHOUSE_BIN:-$SW_ROOT/.build/debug/warehouse}"

# The crash, concurrency, error-class and lease tests (real loader and aggregator processes killed,
# paused and restarted, private servers filled up) load both cores for minutes; they run on their
# own after the rest, so the timing tests (the cooperative pool, replay pacing) are not measured on
# a machine they are saturating.
heavy="LoaderCrashTests|KPICrashTests|ConcurrentLoadTests|ErrorClassTests|KPILeaseTests|ServerCrashTests|RedisClusterTests|ClusterPipelineTests"
set +e
if [ $# -gt 0 ]; then
  sw_log "running tests: $*"
  swift test --skip-build "$@" 2>&1 | grep -v "prohibited flag"
  status=${PIPESTATUS[0]}
else
  sw_log "running tests (all but $heavy)"
  swift test --skip-build --skip "$heavy" 2>&1 | grep -v "prohibited flag"
  status=${PIPESTATUS[0]}
  sw_log "running $heavy"
  swift test --skip-build --filter "$heavy" 2>&1 | grep -v "prohibited flag"
  heavy_status=${PIPESTATUS[0]}
  [ "$status" -eq 0 ] && status=$heavy_status
  # deploy/ with promtool and grafana-foundation-sdk (seconds); then the Airflow DAGs (dags/), run
  # by the real Airflow against these servers (about 75 s; each venv, made once under
  # ~/.cache/streamwarehouse, about a minute more the first time).
  sw_log "checking deploy/: Prometheus rules and their unit tests, prometheus.yml, the Grafana board (scripts/deploy-check.sh)"
  scripts/deploy-check.sh
  deploy_status=$?
  [ "$status" -eq 0 ] && status=$deploy_status
  sw_log "running the Airflow DAGs (scripts/airflow-check.sh)"
  scripts/airflow-check.sh
  airflow_status=$?
  [ "$status" -eq 0 ] && status=$airflow_status
fi
set -e
exit "$status"
