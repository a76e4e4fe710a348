#!/bin/sh
# Runs every test program of a build (unit tests first, then integration tests),
# shows their output and ends with one summary line: "tests: N passed, M failed".
# Usage: tests/run-tests.sh BUILD_DIR [NAME_FILTER]
set -u
build=$(cd "${1:?usage: run-tests.sh BUILD_DIR [FILTER]}" && pwd)
filter=${2:-}
export STAGEHAND_BUILD="$build"
export STAGEHAND_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CMOCKA_MESSAGE_OUTPUT=TAP
# Sanitizer runs: fail on the first report, keep leak checking on.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

passed=0
failed=0
failed_programs=""
log=$(mktemp)
trap 'rm -f "$log"' EXIT

for kind in unit integration; do
    for prog in "$build"/tests/$kind/test_*; do
        [ -x "$prog" ] || continue
        name=$(basename "$prog")
        case "$name" in *"$filter"*) ;; *) continue ;; esac
        echo "# --- $kind/$name"
        timeout "${TEST_TIMEOUT_S:-600}" "$prog" >"$log" 2>&1
        rc=$?
        cat "$log"
        ok=$(grep -c '^ok ' "$log")
        not_ok=$(grep -c '^not ok ' "$log")
        passed=$((passed + ok))
        failed=$((failed + not_ok))
        if [ "$rc" -ne 0 ] && [ "$not_ok" -eq 0 ]; then
            # Crashed, timed out or a sanitizer stopped it: one failure of its own.
            echo "# $name exited with status $rc"
            failed=$((failed + 1))
        fi
        if [ "$rc" -ne 0 ]; then
            failed_programs="$failed_programs $kind/$name"
        fi
    done
done

if [ -n "$failed_programs" ]; then
    echo "# failing programs:$failed_programs"
fi
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
