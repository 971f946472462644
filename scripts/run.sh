#!/usr/bin/env bash
# The main job on this machine: install what is missing, build (release), start the local Redis
# and PostgreSQL (scripts/services.sh), apply the migrations, replay data/ onto the entity
# streams, load the star schema with the `warehouse` consumer group and the KPIs with the `kpi`
# group until both have caught up, print the summary, the KPIs and the data-quality checks, and
# reconcile the KPIs in Redis with the warehouse. The dashboard joins this script when it lands.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$SW_ROOT"

sw_install_missing
sw_log "building warehouse (release)"
sw_build -c release
bin="$SW_ROOT/.build/release/warehouse"

eval "$(scripts/services.sh up)"
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
"$bin" lag --window-ms 500
sw_log "done; stop the servers with: scripts/services.sh down"
