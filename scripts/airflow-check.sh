#!/usr/bin/env bash
# The DAGs in dags/, run by the real Airflow (3.3.2, deploy/airflow/requirements.txt) against real
# servers: `airflow db migrate` on SQLite in a scratch AIRFLOW_HOME, then `airflow dags test` of each
# DAG on a database and namespace of its own:
#   1. warehouse_backfill (drain=consume) replays data/ with one row planted bad: it loads, drains
#      both groups and reconciles clean;
#   2. warehouse_hourly passes, and its dead-letter report counts the planted row by reason;
#   3. warehouse_daily extends the calendar, warms the cache and archives the summary;
#   4. warehouse_dlq_redrive redrives the planted row with the field corrected, drains, reconciles;
#   5. a drift planted in PostgreSQL makes warehouse_hourly fail, naming the KPI;
#   6. an order published while no consumer runs makes its lag task fail (STALLED or STOPPED).
#
# Uses REDIS_URL, DATABASE_URL and WAREHOUSE_BIN (scripts/test.sh sets them; otherwise the
# services.sh servers and the debug build). The venv is made once under ~/.cache/streamwarehouse
# (about a minute, from PyPI) and reused offline afterwards.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$SW_ROOT"

venv=$(sw_venv airflow-venv "$SW_ROOT/deploy/airflow/requirements.txt")

bin="${WAREHOUSE_BIN:-$SW_ROOT/.build/debug/warehouse}"
[ -x "$bin" ] || sw_die "no warehouse binary at $bin: build first (swift build)"
if [ -z "${DATABASE_URL:-}" ] || [ -z "${REDIS_URL:-}" ]; then eval "$("$SW_ROOT/scripts/services.sh" env)"; fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sw-airflow.XXXXXX")
database="sw_airflow_$$"
admin_url="${DATABASE_URL%/*}/postgres"
cleanup() {
  local rc=$?
  psql "$admin_url" -qc "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1 || true
  [ $rc -eq 0 ] && rm -rf "$tmp" || sw_log "Airflow's logs kept in $tmp"
  exit $rc
}
trap cleanup EXIT

psql "$admin_url" -qc "CREATE DATABASE $database" >/dev/null
export DATABASE_URL="${DATABASE_URL%/*}/$database"
export WAREHOUSE_NAMESPACE="airflow$$"
export WAREHOUSE_BIN="$bin"
export WAREHOUSE_ARCHIVE_DIR="$tmp/archive"
export WAREHOUSE_DAG_RETRIES=0
export AIRFLOW_HOME="$tmp/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$SW_ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__UNIT_TEST_MODE=False
export NO_PROXY='*'
airflow="$venv/bin/airflow"

started=$SECONDS
sw_log "Airflow $("$airflow" version 2>/dev/null): db migrate"
"$airflow" db migrate >"$tmp/migrate.log" 2>&1 || { tail -20 "$tmp/migrate.log"; sw_die "airflow db migrate failed"; }
"$airflow" dags list-import-errors >"$tmp/import-errors.log" 2>&1 || true
if ! grep -q "No data found" "$tmp/import-errors.log"; then cat "$tmp/import-errors.log"; sw_die "the DAG folder has import errors"; fi
"$bin" migrate >/dev/null

# data/ with one order line whose quantity is not a number: replay dead-letters it.
mkdir -p "$tmp/data" && cp data/*.csv "$tmp/data/"
echo "O9999,1,C001,P001,two,19.99,0,placed,2024-06-01T10:00:00Z,2024-06-01T10:00:00Z" >>"$tmp/data/orders.csv"

failures=0
# dags_test NAME EXPECT(0|1) DAG_ID [airflow dags test args…]: the run must pass (0) or fail (1).
dags_test() {
  local name=$1 expect=$2 dag=$3 rc=0
  shift 3
  "$airflow" dags test "$dag" "$@" >"$tmp/$name.log" 2>&1 || rc=$?
  if { [ "$expect" = 0 ] && [ $rc -ne 0 ]; } || { [ "$expect" = 1 ] && [ $rc -eq 0 ]; }; then
    tail -40 "$tmp/$name.log"
    printf 'FAIL  %s: airflow dags test %s exited %s (expected %s)\n' "$name" "$dag" "$rc" "$([ "$expect" = 0 ] && echo 0 || echo non-zero)" >&2
    failures=$((failures + 1))
    return 1
  fi
  printf 'ok    %s (%s, exit %s)\n' "$name" "$dag" "$rc" >&2
}
# expect_log NAME PATTERN: the run's log holds PATTERN.
expect_log() {
  if ! grep -qE "$2" "$tmp/$1.log"; then
    printf 'FAIL  %s: its log does not match %s\n' "$1" "$2" >&2
    failures=$((failures + 1))
  fi
}

dags_test backfill 0 warehouse_backfill -c "{\"data_dir\": \"$tmp/data\", \"drain\": \"consume\"}" || true
expect_log backfill '"drift": ?\[\]'
# The planted row is dead-lettered, naming its line and field.
planted=$("$bin" dlq list --count 10000 --json | python3 -c '
import json, sys
for line in sys.stdin:
    entry = json.loads(line)
    if "O9999" in entry.get("raw", ""):
        print(entry["id"], entry.get("code"), entry.get("line"), entry.get("column"))')
read -r planted_id planted_code planted_line planted_field <<<"$planted"
if [ "$planted_code" != not_integer ] || [ "$planted_field" != quantity ] || [ "$planted_line" != "$(wc -l <"$tmp/data/orders.csv")" ]; then
  echo "FAIL  backfill: the planted row's dead letter is '$planted' (expected code not_integer, field quantity, its line)" >&2
  failures=$((failures + 1))
fi

# A logical date an hour ahead: the hourly data interval is the current hour, which holds the dead letter.
next_hour=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%S+00:00)
dags_test hourly 0 warehouse_hourly "$next_hour" || true
expect_log hourly '"by_reason": ?\{[^}]*"not_integer": ?[1-9]'

dags_test daily 0 warehouse_daily || true
[ -s "$tmp/archive/summary/$(date -u +%Y-%m-%d).json" ] || { echo "FAIL  daily: no summary archived under $tmp/archive/summary" >&2; failures=$((failures + 1)); }
expect_log daily '"warmed": ?\['

before=$("$bin" dlq stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
dags_test redrive 0 warehouse_dlq_redrive -c "{\"ids\": [\"$planted_id\"], \"set\": [\"quantity=2\"], \"drain\": \"consume\"}" || true
expect_log redrive '"redriven": ?\[\{'
[ "$("$bin" dlq stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')" = $((before - 1)) ] \
  || { echo "FAIL  redrive: the dead letter is still there" >&2; failures=$((failures + 1)); }
[ "$(psql "$DATABASE_URL" -Atc "SELECT count(*) FROM fact_sales WHERE order_id = 'O9999'")" = 1 ] \
  || { echo "FAIL  redrive: the corrected order line is not in fact_sales" >&2; failures=$((failures + 1)); }

# A drift: one payment's amount changed behind the pipeline's back.
psql "$DATABASE_URL" -qc "UPDATE fact_payments SET amount = amount + 1 WHERE ctid = (SELECT ctid FROM fact_payments LIMIT 1)" >/dev/null
dags_test drift 1 warehouse_hourly "$next_hour" || true
expect_log drift 'DRIFT in [0-9]+ of [0-9]+ KPIs: .*payment'

# An order while no consumer runs: the groups fall behind with nobody (live) reading.
"$bin" produce order --customer C001 --line P001:1 >/dev/null 2>&1
AIRFLOW_VAR_WAREHOUSE_RECONCILE_WAIT_S=1 dags_test stopped 1 warehouse_hourly "$next_hour" || true
expect_log stopped 'lag (STALLED|STOPPED): (kpi|warehouse) on '

sw_log "Airflow check: $((SECONDS - started)) s, $failures failure(s)"
[ $failures -eq 0 ]
