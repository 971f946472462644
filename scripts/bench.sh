#!/usr/bin/env bash
# Runs a benchmark on a release build against the local services (started if needed):
#   scripts/bench.sh clients|replay|load|kpi|dashboard|scale [--json]
# `scale` also makes (once) the venv of the Python baseline, under ~/.cache/streamwarehouse.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$SW_ROOT"

[ $# -ge 1 ] || { echo "usage: scripts/bench.sh NAME [options]   (NAME: clients, replay, load, kpi, dashboard, scale)" >&2; exit 2; }
sw_install_missing
sw_log "building warehouse (release)"
sw_build -c release
eval "$(scripts/services.sh up)"
if [ "$1" = scale ] && [ -z "${SW_BENCH_PYTHON:-}" ]; then
  venv=$(sw_venv bench-venv "$SW_ROOT/bench/python-baseline/requirements.txt")
  export SW_BENCH_PYTHON="$venv/bin/python"
fi
exec "$SW_ROOT/.build/release/warehouse" bench "$@"
