#!/usr/bin/env bash
# A long fuzzing campaign of the cache fuzzer over every policy combination (not run by CI; CI
# runs the bounded fuzz.cache test).
#
#   tests/fuzz/campaign.sh FUZZER OUT_DIR [TOTAL_OPERATIONS] [CHECK_EVERY] [SECONDS_PER_RUN]
#
#   FUZZER            the kvkit_cache_fuzzer executable (fuzz preset: Clang, ASan + UBSan)
#   OUT_DIR           corpora, crash inputs, logs and summary.csv go here
#   TOTAL_OPERATIONS  operations over all combinations (default 100000000); each combination
#                     runs at least TOTAL_OPERATIONS / 54 of them
#   CHECK_EVERY       whole-cache checks after every N operations (default 64; see
#                     tests/fuzz/cache_fuzzer.cpp)
#   SECONDS_PER_RUN   length of one fuzzer run (default 60); a combination is fuzzed in runs
#                     until it has its share of operations
#
# Each combination is fuzzed alone (-kvkit_combination=K) from its own corpus, seeded with the
# repository's corpus and four random 16 KiB inputs (long inputs run up to 4096 operations each,
# which spreads libFuzzer's per-input cost). A run that exits non-zero (a failed check, a
# sanitizer report) counts as a failure; its input is kept in OUT_DIR/crashes/ and the campaign
# goes on. ASan records no allocation stacks here (faster); replay a crash input to see them:
#   FUZZER OUT_DIR/crashes/crash-<sha1>
# KVKIT_FIRST_COMBINATION=K in the environment starts at combination K (a resumed campaign).
# summary.csv: combination,name,operations,inputs,runs,failures,seconds. The last line of the
# output gives the totals and the rate.
set -euo pipefail

if (($# < 2)); then
  sed -n '2,25p' "$0" >&2
  exit 2
fi
fuzzer="$(realpath "$1")"
out="$2"
total="${3:-100000000}"
check_every="${4:-64}"
run_seconds="${5:-60}"
seeds_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/corpus/cache"

combinations=54
per_combination=$(((total + combinations - 1) / combinations))
mkdir -p "${out}/crashes" "${out}/logs"
summary="${out}/summary.csv"
echo "combination,name,operations,inputs,runs,failures,seconds" >"${summary}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-malloc_context_size=0}"

all_ops=0
all_failures=0
start_all=${SECONDS}
for ((c = ${KVKIT_FIRST_COMBINATION:-0}; c < combinations; ++c)); do
  corpus="${out}/corpus/${c}"
  seeds="${out}/seeds/${c}"
  mkdir -p "${corpus}" "${seeds}"
  for k in 0 1 2 3; do
    [[ -f "${seeds}/random_${k}" ]] || head -c 16384 /dev/urandom >"${seeds}/random_${k}"
  done
  ops=0
  inputs=0
  runs=0
  failures=0
  name=""
  start=${SECONDS}
  while ((ops < per_combination)); do
    log="${out}/logs/${c}_${runs}.log"
    rc=0
    "${fuzzer}" -kvkit_combination="${c}" -kvkit_check_every="${check_every}" -kvkit_stats=1 \
      -entropic=0 -len_control=0 -max_len=16384 -max_total_time="${run_seconds}" \
      -seed=$((c * 1000 + runs + 1)) -artifact_prefix="${out}/crashes/" -print_final_stats=1 \
      "${corpus}" "${seeds}" "${seeds_dir}" >"${log}" 2>&1 || rc=$?
    runs=$((runs + 1))
    if ((rc != 0)); then
      failures=$((failures + 1))
      echo "combination ${c}: run ${runs} failed (exit ${rc}), see ${log}" >&2
    fi
    # "kvkit-fuzz: N operations" is printed at every exit, also after a failed check.
    done_ops=$(sed -n 's/^kvkit-fuzz: \([0-9]*\) operations$/\1/p' "${log}" | tail -n 1)
    done_inputs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)$/\1/p' "${log}" | tail -n 1)
    [[ -n "${name}" ]] || name=$(sed -n 's/^kvkit-fuzz: only combination [0-9]* (\(.*\))$/\1/p' "${log}" | head -n 1)
    ops=$((ops + ${done_ops:-0}))
    inputs=$((inputs + ${done_inputs:-0}))
    if [[ ${rc} -ne 0 && "${done_ops:-0}" -eq 0 ]]; then
      break  # a failed run without a single operation: the executable cannot run; stop here
    fi
  done
  seconds=$((SECONDS - start))
  echo "${c},${name},${ops},${inputs},${runs},${failures},${seconds}" >>"${summary}"
  echo "combination ${c} (${name}): ${ops} operations, ${inputs} inputs, ${runs} runs, ${failures} failures, ${seconds} s"
  all_ops=$((all_ops + ops))
  all_failures=$((all_failures + failures))
done
elapsed=$((SECONDS - start_all))
echo "campaign: ${all_ops} operations over ${combinations} combinations, ${all_failures} failures, ${elapsed} s wall, $((all_ops / (elapsed > 0 ? elapsed : 1))) operations/s"
