#!/usr/bin/env bash
# The long form of the server-crash tests (opt-in; scripts/test.sh runs 6 cycles per server):
#
#   scripts/soak-faults.sh [CYCLES]          CYCLES kill -9 cycles per server (default 20)
#   scripts/soak-faults.sh --asan [CYCLES]   the same, the consumers built with the address sanitizer
#
# Redis is killed with -9 and restarted from its append-only file with the file's tail cut off,
# PostgreSQL is killed with -9 (every process) and restarted through crash recovery, consumers are
# killed while a server is down; no consumer may exit, and the warehouse and the KPIs must equal an
# uninterrupted run's. Results go to the README's Reliability section.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$SW_ROOT"

asan=no
if [ "${1:-}" = --asan ]; then asan=yes; shift; fi
cycles=${1:-20}

if [ $asan = yes ]; then
  sw_log "building warehouse with the address sanitizer in .build-asan"
  sw_build --scratch-path .build-asan --product warehouse -Xswiftc -sanitize=address
  export WAREHOUSE_BIN="$SW_ROOT/.build-asan/debug/warehouse"
  # A leak report at exit is not a crash; anything else the sanitizer finds aborts the process,
  # which the test sees as a consumer exiting.
  export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
fi
export SW_FAULT_CYCLES=$cycles
exec scripts/test.sh --filter ServerCrashTests
