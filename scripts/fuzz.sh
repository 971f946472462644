#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser that reads outside input, with libFuzzer and the address
# sanitizer (Swift's -sanitize=fuzzer,address on Linux).
#
#   scripts/fuzz.sh TARGET SECONDS    fuzz one target (csv, entry, timestamp, decimal, streamid,
#                                     jsonl, query, kpirecord) for SECONDS
#   scripts/fuzz.sh all SECONDS       each target in turn for SECONDS
#   scripts/fuzz.sh build             only build the fuzzer
#
# The build lives in .build-fuzz (its own scratch folder: the sanitizers change every module).
# Each run starts from the seed corpus in Fuzz/corpus/TARGET and the past crashes in
# Fuzz/regressions/TARGET; what it discovers goes to .build-fuzz/corpus/TARGET (kept between runs,
# never committed). A crash stops the run, exits 1, and leaves its input in
# .build-fuzz/crashes/TARGET/: copy it into Fuzz/regressions/TARGET/, where the unit tests
# (FuzzCorpusTests) run it from then on.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$SW_ROOT"

targets="csv entry timestamp decimal streamid jsonl query kpirecord"
[ $# -ge 1 ] || sw_die "usage: scripts/fuzz.sh TARGET|all|build [SECONDS]"
what=$1
seconds=${2:-60}

sw_install_missing
sw_log "building the fuzzer (libFuzzer + address sanitizer) in .build-fuzz"
SW_FUZZ=1 sw_build --scratch-path .build-fuzz --product warehouse-fuzz -Xswiftc -sanitize=fuzzer,address
binary=$(SW_FUZZ=1 swift build --scratch-path .build-fuzz --show-bin-path 2>/dev/null)/warehouse-fuzz
[ "$what" = build ] && exit 0

fuzz_one() {
  local target=$1 seconds=$2
  case " $targets " in *" $target "*) ;; *) sw_die "unknown target $target (one of: $targets)";; esac
  local work=.build-fuzz/corpus/$target crashes=.build-fuzz/crashes/$target
  mkdir -p "$work" "$crashes" "Fuzz/regressions/$target"
  sw_log "fuzzing $target for ${seconds}s"
  local log=.build-fuzz/fuzz-$target.log
  set +e
  # -rss_limit_mb and -max_len bound each input; -timeout turns a hang into a crash report.
  SW_FUZZ_TARGET=$target ASAN_OPTIONS=detect_leaks=0 "$binary" "$work" "Fuzz/corpus/$target" "Fuzz/regressions/$target" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$crashes/" >"$log" 2>&1
  local status=$?
  set -e
  local runs cov
  runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -n 1 | awk '{print $2}')
  if [ $status -ne 0 ]; then
    tail -n 40 "$log" >&2
    sw_log "$target: CRASH after ${runs:-?} executions; input in $crashes/ (log: $log)"
    return 1
  fi
  printf '%-10s %10s executions  coverage %6s  crashes 0  (%ss)\n' "$target" "${runs:-?}" "${cov:-?}" "$seconds"
}

if [ "$what" = all ]; then
  failed=0
  for target in $targets; do fuzz_one "$target" "$seconds" || failed=1; done
  exit $failed
fi
fuzz_one "$what" "$seconds"
