#!/bin/sh
# Starts the development stack in the foreground and stops it on Ctrl-C.
# Today the stack is the dev broker; the Twilio emulator, the ingress and the
# workers join it as they are built. Logs go to run/*.log.
set -eu
build=${BUILD:-build}
mkdir -p run
bootstrap_file=run/bootstrap.servers
rm -f "$bootstrap_file"

pids=""
stop() {
    trap - INT TERM EXIT
    echo
    echo "stopping..."
    for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in $pids; do wait "$pid" 2>/dev/null || true; done
    echo "stopped"
}
trap stop INT TERM EXIT

"$build/stagehand-devbroker" --partitions "${KAFKA_PARTITIONS:-12}" \
    --bootstrap-file "$bootstrap_file" >run/devbroker.out 2>run/devbroker.log &
pids="$pids $!"

waited=0
while [ ! -s "$bootstrap_file" ]; do
    if [ "$waited" -ge 100 ]; then
        echo "the dev broker did not start; see run/devbroker.log" >&2
        exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
done
KAFKA_BROKERS=$(cat "$bootstrap_file")
export KAFKA_BROKERS

echo "stagehand dev stack is running (Ctrl-C stops it)"
echo "  dev broker   KAFKA_BROKERS=$KAFKA_BROKERS   log: run/devbroker.log"
echo "  topics       stagehand.events, stagehand.state, stagehand.dlq"
wait
