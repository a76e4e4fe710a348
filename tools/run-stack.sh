#!/bin/sh
# Starts the development stack in the foreground and stops it on Ctrl-C:
# the dev broker (or, with KAFKA=kafka, Apache Kafka on 127.0.0.1:9092 from
# tools/kafka/kafka.sh, its data in run/kafka/), the Twilio emulator (8090),
# the ingress (8080, its metrics on 127.0.0.1:9100) and one process of each
# worker role (metrics on 9101-9103). Every variable of the
# README's configuration table may be set in the environment; what is unset
# gets a development default here (fake Twilio credentials, which the
# emulator takes too). Logs go to run/*.log.
set -eu
build=${BUILD:-build}
kafka=${KAFKA:-devbroker}
case "$kafka" in
devbroker | kafka) ;;
*) echo "KAFKA must be devbroker or kafka, not $kafka" >&2; exit 2 ;;
esac
mkdir -p run
bootstrap_file=run/bootstrap.servers
rm -f "$bootstrap_file"

: "${TWILIO_ACCOUNT_SID:=AC00000000000000000000000000000000}"
: "${TWILIO_API_KEY_SID:=SK00000000000000000000000000000000}"
: "${TWILIO_API_KEY_SECRET:=dev-api-key-secret}"
: "${TWILIO_AUTH_TOKEN:=dev-auth-token}"
: "${TWILIO_API_BASE:=http://127.0.0.1:8090}"
: "${PUBLIC_BASE_URL:=http://127.0.0.1:${INGRESS_PORT:-8080}}"
: "${PASSCODE:=123456}"
: "${KAFKA_SESSION_TIMEOUT_MS:=6000}"
export TWILIO_ACCOUNT_SID TWILIO_API_KEY_SID TWILIO_API_KEY_SECRET TWILIO_AUTH_TOKEN TWILIO_API_BASE \
    PUBLIC_BASE_URL PASSCODE KAFKA_SESSION_TIMEOUT_MS

pids=""
kafka_dir=""
# Stops in the reverse order of starting: the workers and the ingress
# commit and flush while the broker is still there.
stop() {
    trap - INT TERM EXIT
    echo
    echo "stopping..."
    reversed=""
    for pid in $pids; do reversed="$pid $reversed"; done
    for pid in $reversed; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$kafka_dir" ]; then
        STAGEHAND_BUILD=$build sh tools/kafka/kafka.sh stop "$kafka_dir"
    fi
    echo "stopped"
}
trap stop INT TERM EXIT

# Waits until file has a line matching pattern, or gives up naming log.
wait_for() {
    file=$1 pattern=$2 log=$3 waited=0
    while ! grep -q "$pattern" "$file" 2>/dev/null; do
        if [ "$waited" -ge 300 ]; then
            echo "a process did not start; see $log" >&2
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

if [ "$kafka" = kafka ]; then
    # Its data stays in run/kafka/ between runs (the topics are kept).
    kafka_dir=run/kafka
    echo "starting Apache Kafka $(sh tools/kafka/kafka.sh version) (the first run fetches it)..."
    KAFKA_BROKERS=$(STAGEHAND_BUILD=$build sh tools/kafka/kafka.sh start "$kafka_dir" "${KAFKA_PORT:-9092}") || {
        kafka_dir=""
        exit 1
    }
else
    "$build/stagehand-devbroker" --partitions "${KAFKA_PARTITIONS:-12}" \
        --bootstrap-file "$bootstrap_file" >run/devbroker.out 2>run/devbroker.log &
    pids="$pids $!"
    wait_for "$bootstrap_file" . run/devbroker.log
    KAFKA_BROKERS=$(cat "$bootstrap_file")
fi
export KAFKA_BROKERS

"$build/twilio-emulator" --port "${EMULATOR_PORT:-8090}" >run/emulator.out 2>run/emulator.log &
pids="$pids $!"
wait_for run/emulator.out "^port" run/emulator.log

"$build/stagehand-ingress" >run/ingress.out 2>run/ingress.log &
pids="$pids $!"
wait_for run/ingress.out "^port" run/ingress.log

port=9101
for role in room stream sync; do
    METRICS_PORT=$port "$build/stagehand-$role-worker" >"run/$role-worker.out" 2>"run/$role-worker.log" &
    pids="$pids $!"
    wait_for "run/$role-worker.out" "^metrics port" "run/$role-worker.log"
    port=$((port + 1))
done

ingress=http://127.0.0.1:${INGRESS_PORT:-8080}
echo "stagehand dev stack is running (Ctrl-C stops it); logs in run/"
if [ "$kafka" = kafka ]; then
    echo "  Apache Kafka     KAFKA_BROKERS=$KAFKA_BROKERS   (logs and data in run/kafka/)"
else
    echo "  dev broker       KAFKA_BROKERS=$KAFKA_BROKERS"
    echo "                   librdkafka's mock, in memory: at most 5 MB per partition (a larger"
    echo "                   burst loses its start), no compaction of stagehand.state, slow group"
    echo "                   rebalances (3 s + the session timeout); make run KAFKA=kafka for the real one"
fi
echo "  Twilio emulator  $TWILIO_API_BASE   (GET /_emulator/state shows everything)"
echo "  ingress          $ingress   (PASSCODE=$PASSCODE; /metrics on ${METRICS_LISTEN:-127.0.0.1:9100})"
echo "  workers          room :9101, stream :9102, sync :9103   (/metrics, /healthz)"
echo
echo "Try:"
echo "  curl -s -XPOST $ingress/create-stream -H 'Authorization: $PASSCODE' -H 'Content-Type: application/json' -d '{\"user_identity\":\"alice\",\"stream_name\":\"demo\"}'"
echo "  curl -s -XPOST $ingress/join-stream-as-viewer -H 'Authorization: $PASSCODE' -H 'Content-Type: application/json' -d '{\"user_identity\":\"bob\",\"stream_name\":\"demo\"}'"
echo "  curl -s $TWILIO_API_BASE/_emulator/state"
wait
