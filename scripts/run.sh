#!/usr/bin/env bash
# The main job on this machine: install what is missing, build (release), start the local Redis
# and PostgreSQL (scripts/services.sh), apply the migrations, and show that both servers answer.
# Later steps of the pipeline (replay, consumers, dashboard) join this script as they land.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$SW_ROOT"

sw_install_missing
sw_log "building warehouse (release)"
sw_build -c release
bin="$SW_ROOT/.build/release/warehouse"

eval "$(scripts/services.sh up)"
sw_log "REDIS_URL=$REDIS_URL DATABASE_URL=$DATABASE_URL"

sw_log "migrating"
"$bin" migrate
sw_log "checking both servers"
"$bin" ping
sw_log "done; stop the servers with: scripts/services.sh down"
