#!/usr/bin/env bash
# Runs every fuzz target (or those named) for MINUTES minutes each, one after another, with
# nightly cargo-fuzz and one libFuzzer process, then prints a table: executions, executions per
# second, coverage (libFuzzer's `cov:` and `ft:`), corpus size and crashes per target.
#
#   fuzz/run-all.sh MINUTES [TARGET...]
#
# New inputs go to fuzz/target/corpus-work/<target>/ (ignored by git); the checked-in seeds in
# fuzz/corpus/<target>/ are read, never written. Crashes land in fuzz/artifacts/<target>/: turn
# each into a file under fuzz/regressions/<target>/ once fixed (see README.md). Logs are in
# fuzz/target/fuzz-logs/. Exits non-zero if any target crashed.
set -euo pipefail
cd "$(dirname "$0")"

minutes=${1:?usage: fuzz/run-all.sh MINUTES [TARGET...]}
shift
seconds=$(awk -v m="$minutes" 'BEGIN { s = int(m * 60); if (s < 1) s = 1; print s }')
if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

command -v cargo-fuzz >/dev/null || {
  echo "run-all: cargo-fuzz is missing: rustup toolchain install nightly && cargo install cargo-fuzz --locked" >&2
  exit 2
}

# Targets whose code under test has no `unsafe` (see README.md) fuzz without AddressSanitizer,
# several times faster, built in a target directory of their own so that the two builds do not
# replace each other; their corpus is then replayed once under AddressSanitizer.
nosan() { case "$1" in storage_model | config | filter) return 0 ;; *) return 1 ;; esac; }
nosan_flags=(-s none --target-dir target/nosan)

mkdir -p target/fuzz-logs
echo "run-all: building ${targets[*]}"
for t in "${targets[@]}"; do
  { cargo +nightly fuzz build "$t" &&
    if nosan "$t"; then cargo +nightly fuzz build "${nosan_flags[@]}" "$t"; fi; } \
    >target/fuzz-logs/build-"$t".log 2>&1 || {
    cat target/fuzz-logs/build-"$t".log >&2
    exit 2
  }
done

count_crashes() {
  [ -d "artifacts/$1" ] || { echo 0; return; }
  find "artifacts/$1" -maxdepth 1 -type f \
    \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l
}

rows=()
failed=0
for t in "${targets[@]}"; do
  work="target/corpus-work/$t"
  mkdir -p "$work" "corpus/$t"
  log="target/fuzz-logs/$t.log"
  before=$(count_crashes "$t")
  echo "run-all: $t for ${seconds}s (log: fuzz/$log)"
  # Structured targets (ops decoded with `arbitrary`) need long inputs from the start.
  extra=()
  case "$t" in
    storage_model | signature) extra=(-len_control=0 -max_len=4096) ;;
  esac
  flags=()
  nosan "$t" && flags=("${nosan_flags[@]}")
  status=ok
  cargo +nightly fuzz run "${flags[@]}" "$t" "$work" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=60 -print_final_stats=1 "${extra[@]}" >"$log" 2>&1 ||
    status=FAILED
  if nosan "$t" && [ "$status" = ok ]; then
    cargo +nightly fuzz run "$t" "$work" "corpus/$t" -- -runs=0 "${extra[@]}" \
      >target/fuzz-logs/"$t"-asan-replay.log 2>&1 || status=FAILED-UNDER-ASAN
  fi
  after=$(count_crashes "$t")
  crashes=$((after - before))
  [ "$crashes" -gt 0 ] && status=CRASH
  [ "$status" != ok ] && failed=1
  # The last status line: "#N  DONE|pulse|NEW  cov: C ft: F corp: K/S ... exec/s: E ...".
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  field() { sed -nE "s/.*$1: ([0-9]+).*/\\1/p" <<<"$last"; }
  execs=$(sed -nE 's/^stat::number_of_executed_units:[[:space:]]+([0-9]+)/\1/p' "$log" | tail -1)
  rate=$(sed -nE 's/^stat::average_exec_per_sec:[[:space:]]+([0-9]+)/\1/p' "$log" | tail -1)
  corp=$(sed -nE 's/.*corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p' <<<"$last")
  rows+=("$(printf '%-14s %8s %11s %8s %6s %7s %12s %8s  %s' "$t" "${seconds}s" "${execs:-?}" \
    "${rate:-?}" "$(field cov)" "$(field ft)" "${corp:-?}" "$crashes" "$status")")
done

echo
printf '%-14s %8s %11s %8s %6s %7s %12s %8s  %s\n' target time execs execs/s cov ft corpus crashes result
for r in "${rows[@]}"; do echo "$r"; done
exit "$failed"
