#!/usr/bin/env bash
# The live-operations soak: both consumer groups running (with the stream trimmer) while
# `warehouse produce synthetic` publishes at a steady rate; Redis's used_memory, stream lengths and
# the lag are recorded every minute, and at the end the KPIs in Redis are reconciled with the
# warehouse. Runs on the local services, in a namespace and a PostgreSQL schema of its own.
#
#   scripts/soak.sh [MINUTES] [RATE]      (default: 10 minutes at 2000 events/s)
#
# The kpi group runs with --state-retention $STATE_RETENTION (default 180s: the synthetic load's
# orders settle within 150 s of event time), so its state, and Redis's memory, stay bounded; set
# STATE_RETENTION=off to see the state grow with the history instead.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$SW_ROOT"

minutes=${1:-10}
rate=${2:-2000}
retention=${STATE_RETENTION:-180s}
retention_flags=()
[ "$retention" != off ] && retention_flags=(--state-retention "$retention")
sw_install_missing
sw_log "building warehouse (release)"
sw_build -c release
bin="$SW_ROOT/.build/release/warehouse"
eval "$(scripts/services.sh env)"
scripts/services.sh up >/dev/null

tag="soak$(date +%s)"
export WAREHOUSE_NAMESPACE="$tag"
base="$DATABASE_URL"
case "$base" in *\?*) sep="&" ;; *) sep="?" ;; esac
psql "$base" -qc "CREATE SCHEMA $tag" >/dev/null
export DATABASE_URL="${base}${sep}options=-csearch_path%3D$tag"
"$bin" migrate >/dev/null
logs=$(mktemp -d "${TMPDIR:-/tmp}/sw-soak.XXXXXX")
sw_log "namespace $tag, schema $tag, logs in $logs, kpi state retention: $retention"

"$bin" consume --group warehouse --block-ms 200 2>"$logs/warehouse.log" & warehouse=$!
"$bin" consume --group kpi --block-ms 200 ${retention_flags[@]+"${retention_flags[@]}"} 2>"$logs/kpi.log" & kpi=$!
stop_consumers() { kill -TERM "$warehouse" "$kpi" 2>/dev/null || true; wait "$warehouse" "$kpi" 2>/dev/null || true; }
trap stop_consumers EXIT

state_fields() {
  local total=0 retired=0 entity
  for entity in customers suppliers products orders payments inventory; do
    total=$((total + $(redis-cli -u "$REDIS_URL" hlen "$tag:{$entity:0}:kpi")))
    retired=$((retired + $(redis-cli -u "$REDIS_URL" hlen "$tag:{$entity:0}:kpi:retired")))
  done
  echo "$total (+ $retired retired counters)"
}
redis_memory() { redis-cli -u "$REDIS_URL" info memory | awk -F: '/^used_memory:/ {printf "%.1f MB", $2/1048576}'; }
stream_entries() {
  local total=0 key
  for entity in customers suppliers products orders payments inventory; do
    total=$((total + $(redis-cli -u "$REDIS_URL" xlen "$tag:{$entity:0}")))
  done
  echo "$total"
}

sw_log "before: used_memory $(redis_memory)"
"$bin" produce synthetic --rate "$rate" --duration "${minutes}m" --max-lag 200000 2>"$logs/synthetic.log" > "$logs/synthetic.out" & producer=$!
for minute in $(seq 1 "$minutes"); do
  sleep 60
  lag=$("$bin" lag --window-ms 1000 --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); r=d["rows"]; print(d["status"], "max lag", max((x["lag"] for x in r), default=0), "max time lag %.1fs" % max((x["time_lag_s"] for x in r), default=0))' || true)
  sw_log "minute $minute: used_memory $(redis_memory), stream entries $(stream_entries), KPI state records $(state_fields), lag: $lag"
done
wait "$producer" || true
tail -1 "$logs/synthetic.out"
stop_consumers
trap - EXIT
sw_log "after the consumers stopped: used_memory $(redis_memory), stream entries $(stream_entries), KPI state records $(state_fields)"
grep -h "kpi: retired" "$logs/kpi.log" | tail -1 || true
sw_log "dead letters from the kpi group: $(redis-cli -u "$REDIS_URL" xrange "$tag:{dlq}" - + | grep -c '^kpi$' || true)"
sw_log "reconciling"
"$bin" reconcile --wait 120
