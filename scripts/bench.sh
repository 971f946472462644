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
  venv="${XDG_CACHE_HOME:-$HOME/.cache}/streamwarehouse/bench-venv"
  requirements="$SW_ROOT/bench/python-baseline/requirements.txt"
  if ! cmp -s "$requirements" "$venv/requirements.txt" 2>/dev/null; then
    python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || sw_apt_install python3-venv python3-pip
    sw_log "making the Python baseline's venv in $venv"
    rm -rf "$venv" && python3 -m venv "$venv" && "$venv/bin/pip" install -q -r "$requirements" && cp "$requirements" "$venv/requirements.txt"
  fi
  export SW_BENCH_PYTHON="$venv/bin/python"
fi
exec "$SW_ROOT/.build/release/warehouse" bench "$@"
