#!/usr/bin/env bash
# `warehouse bench cluster` on this machine: builds a release, starts a throwaway single Redis and a
# throwaway 6-node Redis Cluster (both with the append-only file on, fsync every second) on free
# loopback ports, uses the local PostgreSQL (scripts/services.sh up), runs the benchmark, then
# stops and removes both Redis deployments.
#   scripts/bench-cluster.sh [--json] [--order-lines N] [--partitions P] [--rate R] [--seconds S]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$SW_ROOT"

sw_install_missing
sw_log "building warehouse (release)"
sw_build -c release
eval "$(scripts/services.sh up)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sw-bench-cluster.XXXXXX")
single=$(sw_free_port)
ports=()
while [ ${#ports[@]} -lt 6 ]; do
  port=$(sw_free_port)
  [ "$port" = "$single" ] || printf '%s\n' "${ports[@]}" | grep -qx "$port" || ports+=("$port")
done
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  sw_stop_redis "$tmp/single" "$single"
  sw_stop_redis_cluster "$tmp/cluster"
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sw_log "starting a single Redis on 127.0.0.1:$single and a 6-node cluster on ${ports[*]}"
sw_start_redis "$tmp/single" "$single" durable
sw_start_redis_cluster "$tmp/cluster" "${ports[@]}"
"$SW_ROOT/.build/release/warehouse" bench cluster --redis-url "redis://127.0.0.1:$single/0" \
  --cluster-url "redis://127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}/0" "$@"
