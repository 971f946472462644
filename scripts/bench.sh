#!/usr/bin/env bash
# Runs a benchmark on a release build against the local services (started if needed):
#   scripts/bench.sh clients|replay|load|kpi|dashboard [--json]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$SW_ROOT"

[ $# -ge 1 ] || { echo "usage: scripts/bench.sh NAME [options]   (NAME: clients, replay, load, kpi, dashboard)" >&2; exit 2; }
sw_install_missing
sw_log "building warehouse (release)"
sw_build -c release
eval "$(scripts/services.sh up)"
exec "$SW_ROOT/.build/release/warehouse" bench "$@"
