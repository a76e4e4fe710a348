#!/bin/sh
# Runs every libFuzzer harness in FUZZ_DIR for SECONDS each, starting from
# its seed corpus in tests/fuzz/corpus/<name> (new inputs go to a scratch
# directory, so the seeds stay as committed). A crash, leak or sanitizer
# report stops the run: the input is kept as FUZZ_DIR/crash-<name>-*, and
# it belongs in the seed corpus once fixed, as a regression input.
#
# Usage: tests/fuzz/run.sh FUZZ_DIR SECONDS
set -eu
dir=${1:?usage: run.sh FUZZ_DIR SECONDS}
seconds=${2:?usage: run.sh FUZZ_DIR SECONDS}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=0
for harness in "$dir"/fuzz_*; do
    [ -x "$harness" ] || continue
    name=${harness##*/fuzz_}
    mkdir -p "$scratch/$name"
    if "$harness" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$dir/crash-$name-" \
        "$scratch/$name" "tests/fuzz/corpus/$name" >"$dir/$name.log" 2>&1; then
        echo "fuzz: $name: $(grep -m1 'stat::number_of_executed_units' "$dir/$name.log" | awk '{print $2}') runs, no crash"
    else
        echo "fuzz: $name FAILED; see $dir/$name.log"
        tail -n 30 "$dir/$name.log"
        failed=1
    fi
done
exit $failed
