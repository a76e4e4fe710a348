#!/bin/sh
# A local Apache Kafka (KRaft) from Maven Central, for `make run KAFKA=kafka`
# and the tests. The version is pinned in tools/kafka/pom.xml.
#
#   kafka.sh fetch              copy the broker's jars into the cache (once)
#   kafka.sh start DIR PORT     format DIR, start one broker+controller on
#                               127.0.0.1:PORT (controller on PORT+1), wait
#                               until it answers metadata requests, create
#                               stagehand's topics; prints the bootstrap servers
#   kafka.sh stop DIR           stop the broker started in DIR (SIGTERM, then
#                               SIGKILL after KAFKA_STOP_WAIT_S)
#   kafka.sh start-cluster DIR BASEPORT
#                               three nodes, each broker and controller, in
#                               DIR/node1..3 on 127.0.0.1:BASEPORT, +2, +4
#                               (controllers on +1, +3, +5); replication
#                               factor 3, min.insync.replicas 2, heaps of
#                               KAFKA_CLUSTER_HEAP; waits until every node
#                               answers, creates the topics (KAFKA_NO_TOPICS
#                               as for start); prints the bootstrap servers
#   kafka.sh stop-cluster DIR   stop the three nodes of DIR
#   kafka.sh version            print the pinned Kafka version
#   kafka.sh cache              print the cache directory
#
# PORT 0 picks free ports. DIR holds server.properties, data/, logs/,
# kafka.pid and bootstrap (host:port); `start` on a DIR that holds a running
# broker fails, on one whose broker is gone it starts afresh (data kept).
#
# Environment:
#   KAFKA_CACHE_DIR     where the jars go (default
#                       ${XDG_CACHE_HOME:-$HOME/.cache}/stagehand/kafka-VERSION)
#   KAFKA_HEAP          the JVM's heap (default 512m)
#   KAFKA_CLUSTER_HEAP  each cluster node's heap (default 256m)
#   KAFKA_PARTITIONS    partitions of the events, DLQ and state topics (12)
#   KAFKA_RETENTION_MS  retention of the events and DLQ topics (7 days)
#   KAFKA_NO_TOPICS=1   start without creating the topics
#   KAFKA_TOPIC_*       topic names (as for every stagehand program)
#   STAGEHAND_BUILD     where stagehand-topics is (default: build/ of the repo)
#   KAFKA_START_WAIT_S  how long start waits for the broker (default 120)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
pom=$here/pom.xml

say() { echo "kafka: $*" >&2; }
die() { echo "kafka: $*" >&2; exit 1; }

version() {
    sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom"
}

cache_dir() {
    echo "${KAFKA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stagehand/kafka-$(version)}"
}

# Copies the runtime jars of the pom into the cache. A cache is complete
# when its marker file exists (written last), so an interrupted fetch is
# done again.
fetch() {
    cache=$(cache_dir)
    [ -f "$cache/.complete" ] && return 0
    command -v mvn >/dev/null 2>&1 || die "mvn is missing (make deps, or apt-get install maven)"
    command -v java >/dev/null 2>&1 || die "java is missing (make deps, or apt-get install default-jre-headless)"
    say "fetching Apache Kafka $(version) from Maven Central into $cache"
    tmp="$cache.partial.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    # Maven's download progress goes to the terminal; -B keeps it line by
    # line (no escape codes), so it reads well in CI logs too.
    if ! mvn -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$tmp" >&2; then
        rm -rf "$tmp"
        die "mvn could not fetch the jars (is Maven Central reachable?)"
    fi
    ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "no kafka_2.13 jar was fetched"; }
    rm -rf "$cache"
    mv "$tmp" "$cache"
    date >"$cache/.complete"
    say "$(ls "$cache"/*.jar | wc -l) jars in $cache"
}

# A free TCP port on 127.0.0.1 (the kernel's pick).
# A new cluster id: 16 random bytes in URL-safe base64 without padding,
# drawn again when it starts with "-", which kafka-storage's argument
# parser takes for an option (so one start in 64 failed to format).
cluster_id() {
    while :; do
        id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)
        case "$id" in
        -*) ;;
        *) echo "$id"; return ;;
        esac
    done
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

running_pid() {
    dir=$1
    [ -f "$dir/kafka.pid" ] || return 1
    pid=$(cat "$dir/kafka.pid")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

java_run() {
    # shellcheck disable=SC2086
    java -Xms${KAFKA_HEAP:-512m} -Xmx${KAFKA_HEAP:-512m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -Djava.awt.headless=true -Dlog4j2.configurationFile="$dir/log4j2.properties" \
        -Dkafka.logs.dir="$dir/logs" -cp "$cache/*" "$@"
}

# write_config DIR PORT CPORT [NODE VOTERS REPLICAS MIN_ISR]: one node that
# is broker and controller; alone by default, else node NODE of the quorum
# VOTERS (id@host:port,...) with topics of REPLICAS replicas.
write_config() {
    dir=$1 port=$2 cport=$3 node=${4:-1} voters=${5:-1@127.0.0.1:$3} rf=${6:-1} isr=${7:-1}
    cat >"$dir/server.properties" <<EOF
# Written by tools/kafka/kafka.sh: node $node, broker and controller.
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
# As compose: topics are created up front, never on first use.
auto.create.topics.enable=false
# Replicas of every topic, internal ones too (1 for a lone node).
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
# Small and quick, for a laptop or CI (2 cores): the first group does not
# wait 3 s, the offsets topic has 10 partitions rather than 50, the
# cleaner's dedupe buffer fits a small heap and it looks for work every
# second (compaction shows within seconds on topics that ask for it).
group.initial.rebalance.delay.ms=0
offsets.topic.num.partitions=10
log.cleaner.dedupe.buffer.size=16777216
log.cleaner.backoff.ms=1000
num.network.threads=2
num.io.threads=4
background.threads=4
num.recovery.threads.per.data.dir=1
EOF
    cat >"$dir/log4j2.properties" <<EOF
# Written by tools/kafka/kafka.sh: the broker's log in logs/server.log.
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = $dir/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = info
EOF
}

start() {
    dir=${1:?usage: kafka.sh start DIR PORT}
    port=${2:?usage: kafka.sh start DIR PORT}
    topics=${STAGEHAND_BUILD:-$root/build}/stagehand-topics
    [ -x "$topics" ] || die "$topics is missing: run make first"
    fetch
    cache=$(cache_dir)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if pid=$(running_pid "$dir"); then
        die "a broker already runs in $dir (pid $pid); kafka.sh stop $dir"
    fi
    if [ "$port" = 0 ]; then
        port=$(free_port)
        cport=${KAFKA_CONTROLLER_PORT:-$(free_port)}
        [ "$cport" != "$port" ] || cport=$(free_port)
    else
        cport=${KAFKA_CONTROLLER_PORT:-$((port + 1))}
    fi
    mkdir -p "$dir/logs" "$dir/data"
    rm -f "$dir/bootstrap"
    write_config "$dir" "$port" "$cport"
    t0=$(date +%s.%N)
    if [ ! -f "$dir/data/meta.properties" ]; then
        id=$(cluster_id)
        java_run kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" \
            >"$dir/logs/format.log" 2>&1 || die "formatting $dir/data failed; see $dir/logs/format.log"
    fi
    # setsid: the broker has its own session, so a Ctrl-C meant for the
    # caller reaches it only through `kafka.sh stop`.
    setsid sh -c 'echo $$ >"$1/kafka.pid"; shift; exec "$@"' sh "$dir" \
        java -Xms"${KAFKA_HEAP:-512m}" -Xmx"${KAFKA_HEAP:-512m}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -Djava.awt.headless=true -Dlog4j2.configurationFile="$dir/log4j2.properties" \
        -Dkafka.logs.dir="$dir/logs" -cp "$cache/*" kafka.Kafka "$dir/server.properties" \
        >"$dir/logs/kafka.out" 2>&1 </dev/null &
    i=0
    while [ ! -s "$dir/kafka.pid" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    bootstrap=127.0.0.1:$port
    # Ready when it answers a metadata request; given up on when the JVM
    # has exited (a port in use, a bad config) or after KAFKA_START_WAIT_S.
    wait_s=${KAFKA_START_WAIT_S:-120}
    deadline=$(($(date +%s) + wait_s))
    until "$topics" --brokers "$bootstrap" --wait-only --wait-ms 1000 >"$dir/logs/topics.log" 2>&1; do
        if ! running_pid "$dir" >/dev/null || [ "$(date +%s)" -ge "$deadline" ]; then
            cat "$dir/logs/topics.log" >&2
            grep -h -m 5 -e ERROR -e Exception "$dir/logs/server.log" "$dir/logs/kafka.out" >&2 2>/dev/null || true
            stop "$dir" || true
            die "the broker in $dir did not come up; see $dir/logs/server.log"
        fi
        sleep 0.2
    done
    if [ "${KAFKA_NO_TOPICS:-0}" != 1 ] &&
        ! "$topics" --brokers "$bootstrap" --partitions "${KAFKA_PARTITIONS:-12}" \
            --retention-ms "${KAFKA_RETENTION_MS:-604800000}" >"$dir/logs/topics.log" 2>&1; then
        cat "$dir/logs/topics.log" >&2
        stop "$dir" || true
        die "the topics could not be created"
    fi
    echo "$bootstrap" >"$dir/bootstrap.tmp"
    mv "$dir/bootstrap.tmp" "$dir/bootstrap"
    t1=$(date +%s.%N)
    say "Apache Kafka $(version) on $bootstrap (pid $(cat "$dir/kafka.pid"), $dir) ready in $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s"
    echo "$bootstrap"
}

stop() {
    dir=${1:?usage: kafka.sh stop DIR}
    if ! pid=$(running_pid "$dir"); then
        rm -f "$dir/kafka.pid" "$dir/bootstrap"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    wait_s=${KAFKA_STOP_WAIT_S:-30}
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt $((wait_s * 10)) ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$pid" 2>/dev/null; then
        say "the broker (pid $pid) did not stop in ${wait_s} s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/kafka.pid" "$dir/bootstrap"
}

# The cluster: three nodes of one quorum, each in its own DIR/nodeN, with
# the same cluster id. Ready when each answers a metadata request.
start_cluster() {
    top=${1:?usage: kafka.sh start-cluster DIR BASEPORT}
    base=${2:?usage: kafka.sh start-cluster DIR BASEPORT}
    topics=${STAGEHAND_BUILD:-$root/build}/stagehand-topics
    [ -x "$topics" ] || die "$topics is missing: run make first"
    fetch
    cache=$(cache_dir)
    mkdir -p "$top"
    top=$(cd "$top" && pwd)
    ports="" voters="" bootstrap=""
    for n in 1 2 3; do
        if pid=$(running_pid "$top/node$n"); then
            die "node $n already runs in $top/node$n (pid $pid); kafka.sh stop-cluster $top"
        fi
        if [ "$base" = 0 ]; then
            p=$(free_port) c=$(free_port)
        else
            p=$((base + 2 * (n - 1))) c=$((base + 2 * (n - 1) + 1))
        fi
        ports="$ports $p:$c"
        voters="$voters${voters:+,}$n@127.0.0.1:$c"
        bootstrap="$bootstrap${bootstrap:+,}127.0.0.1:$p"
    done
    t0=$(date +%s.%N)
    id=$(cluster_id)
    n=0
    for pc in $ports; do
        n=$((n + 1))
        dir=$top/node$n
        mkdir -p "$dir/logs" "$dir/data"
        write_config "$dir" "${pc%:*}" "${pc#*:}" "$n" "$voters" 3 2
        # A node that dies is fenced after 3 s without a heartbeat (9 s by
        # default), so its partitions get a new leader sooner.
        printf '%s\n' broker.session.timeout.ms=3000 broker.heartbeat.interval.ms=500 \
            >>"$dir/server.properties"
        if [ -f "$dir/data/meta.properties" ]; then
            id=$(sed -n 's/^cluster.id=//p' "$dir/data/meta.properties")
        else
            java_run kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" \
                >"$dir/logs/format.log" 2>&1 || die "formatting $dir/data failed; see $dir/logs/format.log"
        fi
    done
    for n in 1 2 3; do
        dir=$top/node$n
        setsid sh -c 'echo $$ >"$1/kafka.pid"; shift; exec "$@"' sh "$dir" \
            java -Xms"${KAFKA_CLUSTER_HEAP:-256m}" -Xmx"${KAFKA_CLUSTER_HEAP:-256m}" -XX:+UseG1GC \
            -XX:MaxGCPauseMillis=20 -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
            -Dlog4j2.configurationFile="$dir/log4j2.properties" -Dkafka.logs.dir="$dir/logs" \
            -cp "$cache/*" kafka.Kafka "$dir/server.properties" >"$dir/logs/kafka.out" 2>&1 </dev/null &
    done
    deadline=$(($(date +%s) + ${KAFKA_START_WAIT_S:-180}))
    n=0
    for pc in $ports; do
        n=$((n + 1))
        until "$topics" --brokers "127.0.0.1:${pc%:*}" --wait-only --wait-ms 1000 >"$top/topics.log" 2>&1; do
            if ! running_pid "$top/node$n" >/dev/null || [ "$(date +%s)" -ge "$deadline" ]; then
                cat "$top/topics.log" >&2
                stop_cluster "$top"
                die "node $n in $top did not come up; see $top/node$n/logs/server.log"
            fi
            sleep 0.2
        done
    done
    if [ "${KAFKA_NO_TOPICS:-0}" != 1 ] &&
        ! "$topics" --brokers "$bootstrap" --partitions "${KAFKA_PARTITIONS:-12}" --replication 3 \
            --retention-ms "${KAFKA_RETENTION_MS:-604800000}" >"$top/topics.log" 2>&1; then
        cat "$top/topics.log" >&2
        stop_cluster "$top"
        die "the topics could not be created"
    fi
    echo "$bootstrap" >"$top/bootstrap"
    say "Apache Kafka $(version), three nodes on $bootstrap ($top) ready in $(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t0 }") s"
    echo "$bootstrap"
}

# SIGTERM to every node at once (one by one, the last would wait for a
# quorum that is gone), SIGKILL to those left after KAFKA_STOP_WAIT_S (10).
stop_cluster() {
    top=${1:?usage: kafka.sh stop-cluster DIR}
    pids=""
    for n in 1 2 3; do
        if pid=$(running_pid "$top/node$n"); then
            kill -TERM "$pid" 2>/dev/null || true
            pids="$pids $pid"
        fi
        rm -f "$top/node$n/kafka.pid"
    done
    i=0
    for pid in $pids; do
        while kill -0 "$pid" 2>/dev/null && [ $i -lt $((${KAFKA_STOP_WAIT_S:-10} * 10)) ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -f "$top/bootstrap"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
fetch) fetch ;;
start) start "$@" ;;
stop) stop "$@" ;;
start-cluster) start_cluster "$@" ;;
stop-cluster) stop_cluster "$@" ;;
version) version ;;
cache) cache_dir ;;
*)
    sed -n '2,/^set -eu/p' "$0" | sed -e '/^set -eu/d' -e 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
