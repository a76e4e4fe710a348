#!/bin/sh
# Runs every test program of a build (unit tests first, then integration tests),
# shows their output and ends with one summary line: "tests: N passed, M failed".
# Usage: tests/run-tests.sh BUILD_DIR [NAME_FILTER]
#
# Real Kafka: the integration tests about Kafka (REAL_KAFKA_TESTS below) run
# a second time on one Apache Kafka broker (tools/kafka/kafka.sh), started
# once for the whole run while the unit tests run, and given to the tests as
# STAGEHAND_TEST_KAFKA (each test makes its own topics and groups there).
# STAGEHAND_REAL_KAFKA: 1 runs them (a broker that does not start is a
# failure), 0 skips them, only runs nothing else, auto (the default) runs
# them when java and mvn are on the PATH. `make test` sets 1.
set -u
build=$(cd "${1:?usage: run-tests.sh BUILD_DIR [FILTER]}" && pwd)
filter=${2:-}
export STAGEHAND_BUILD="$build"
export STAGEHAND_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CMOCKA_MESSAGE_OUTPUT=TAP
# Sanitizer runs: fail on the first report, keep leak checking on.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# The integration tests that run on real Kafka too: the ingress's client API
# and its 503 when the broker is gone (test_ingress), the room and stream
# workers (duplicates, DLQ), a stream's whole story through every process
# (test_secrets), stagehand-replay (export, import, DLQ re-drive, offsets on
# the real group coordinator), kill -9 mid-burst and the broker frozen
# (test_faults), compaction (test_compaction, real Kafka only) and ended
# streams' tombstones with workers rebuilt after compaction (test_tombstones).
REAL_KAFKA_TESTS="test_ingress test_room_worker test_stream_worker test_secrets test_replay test_faults test_compaction test_tombstones test_scaling test_snapshots"
# Of those, the ones about Kafka itself (rebalances, kill -9 and a frozen
# broker, compaction's tombstones, checkpoints read back after a
# rebalance) run on the dev broker only when real Kafka does not run: on
# real Kafka they prove more, and they are the slowest (about 4 minutes).
KAFKA_ABOUT_TESTS="test_scaling test_faults test_tombstones test_snapshots"

passed=0
failed=0
failed_programs=""
log=$(mktemp)
kafka_dir=""
kafka_started=""
cleanup() {
    rm -f "$log"
    if [ -n "$kafka_dir" ]; then
        sh "$STAGEHAND_ROOT/tools/kafka/kafka.sh" stop "$kafka_dir" >/dev/null 2>&1
        if [ -n "${STAGEHAND_KEEP_LOGS:-}" ]; then
            echo "# real Kafka's logs kept in $kafka_dir/logs" >&2
        else
            rm -rf "$kafka_dir"
        fi
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
elapsed() { awk "BEGIN { printf \"%.1f\", $(now) - $1 }"; }

wants_real_kafka() {
    case "${STAGEHAND_REAL_KAFKA:-auto}" in
    0 | no | false) return 1 ;;
    1 | yes | true | only) return 0 ;;
    *) command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1 ;;
    esac
}

# Does the filter select any real-Kafka test?
real_kafka_selected() {
    for t in $REAL_KAFKA_TESTS; do
        case "$t" in *"$filter"*) [ -x "$build/tests/integration/$t" ] && return 0 ;; esac
    done
    return 1
}

# Starts the broker in the background (it overlaps the unit tests).
if wants_real_kafka && real_kafka_selected; then
    kafka_dir=$(mktemp -d /tmp/stagehand-kafka.XXXXXX)
    # Fetching the jars (the first time) shows Maven's progress here.
    sh "$STAGEHAND_ROOT/tools/kafka/kafka.sh" fetch || true
    (sh "$STAGEHAND_ROOT/tools/kafka/kafka.sh" start "$kafka_dir" 0 >"$kafka_dir/start.out" 2>"$kafka_dir/start.err";
        echo $? >"$kafka_dir/start.rc") &
    kafka_started=1
fi

run_program() { # kind prog label
    kind=$1 prog=$2 label=$3
    name=$(basename "$prog")
    echo "# --- $kind/$name$label"
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
        failed_programs="$failed_programs $kind/$name$label"
    fi
}

for kind in unit integration; do
    for prog in "$build"/tests/$kind/test_*; do
        [ -x "$prog" ] || continue
        name=$(basename "$prog")
        case "$name" in *"$filter"*) ;; *) continue ;; esac
        # test_compaction needs real Kafka (the dev broker does not compact).
        [ "$name" = test_compaction ] && continue
        # test_cluster starts three brokers of its own: make test-cluster.
        [ "$name" = test_cluster ] && [ "${STAGEHAND_CLUSTER_TEST:-0}" != 1 ] && continue
        [ "${STAGEHAND_REAL_KAFKA:-}" = only ] && continue
        if [ -n "$kafka_started" ] && [ "$kind" = integration ]; then
            case " $KAFKA_ABOUT_TESTS " in *" $name "*)
                echo "# --- integration/$name: on real Kafka only (below)"
                continue ;;
            esac
        fi
        t0=$(now)
        run_program "$kind" "$prog" ""
        [ "$kind" = integration ] && echo "# $name: $(elapsed "$t0") s"
    done
done

if [ -n "$kafka_started" ]; then
    wait
    rc=$(cat "$kafka_dir/start.rc" 2>/dev/null || echo 1)
    if [ "$rc" -ne 0 ]; then
        cat "$kafka_dir/start.err"
        echo "# real Kafka did not start: its tests are not run"
        failed=$((failed + 1))
        failed_programs="$failed_programs real-kafka-start"
    else
        export STAGEHAND_TEST_KAFKA="$(cat "$kafka_dir/bootstrap")"
        export STAGEHAND_TEST_KAFKA_PID="$(cat "$kafka_dir/kafka.pid")"
        echo "# real Kafka: $(tail -n 1 "$kafka_dir/start.err" | sed 's/^kafka: //')"
        real_t0=$(now)
        for name in $REAL_KAFKA_TESTS; do
            prog=$build/tests/integration/$name
            [ -x "$prog" ] || continue
            case "$name" in *"$filter"*) ;; *) continue ;; esac
            t0=$(now)
            run_program integration "$prog" " (real Kafka)"
            echo "# $name on real Kafka: $(elapsed "$t0") s"
        done
        echo "# real Kafka: the broker started in the background; its tests took $(elapsed "$real_t0") s"
        unset STAGEHAND_TEST_KAFKA STAGEHAND_TEST_KAFKA_PID
    fi
elif real_kafka_selected; then
    echo "# real Kafka: skipped (STAGEHAND_REAL_KAFKA=${STAGEHAND_REAL_KAFKA:-auto}; java or mvn missing?)"
fi

if [ -n "$failed_programs" ]; then
    echo "# failing programs:$failed_programs"
fi
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
