"""The workers' benchmarks: a join and leave burst straight onto Kafka, a
replay of events whose effects are already applied, the rebuild of one
long partition from checkpoints and from offset 0, and the sync worker's
memory per tracked viewer. Each returns rows for the report: (what, figure,
target, baseline or note)."""

import datetime
import json
import os
import statistics
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from stack import Stack, events, metrics, wait_until


def sync_stack(build, rundir, kafka, partitions=12):
    stack = Stack(build, rundir, partitions, kafka=kafka)
    worker = stack.start_worker("sync")
    return stack, worker


def create_stream(stack, worker, name):
    before = events(worker.metrics_port, "stream.create_requested", "applied")
    stack.loadgen("--stream", name, "--count", 1, "--type", "stream.create_requested", "--prefix", "host-")
    wait_until(lambda: events(worker.metrics_port, "stream.create_requested", "applied") > before, 60)


def object_sid(stack, kind, unique_name):
    """The SID of the one stream's Sync map or document with that name."""
    state = stack.emulator("/_emulator/state")
    for service in state["sync_services"]:
        for obj in service[kind]:
            if obj.get("unique_name") == unique_name:
                return obj["sid"]
    return None


def burst(stack, worker, event_type, n, prefix="viewer-"):
    """Produces n events of a type for stream "burst" as fast as Kafka takes
    them; returns (seconds to produce, seconds from the last produced to the
    last applied)."""
    port = worker.metrics_port
    before = events(port, event_type, "applied")
    started = time.monotonic()
    stack.loadgen("--stream", "burst", "--count", n, "--type", event_type, "--prefix", prefix)
    produced = time.monotonic()
    applied = wait_until(lambda: events(port, event_type, "applied") >= before + n, 600)
    return produced - started, max(0.0, applied - produced)


def join_burst(build, rundir, kafka, n):
    """n viewer.connected then n viewer.disconnected for one stream."""
    stack, worker = sync_stack(build, rundir, kafka)
    try:
        create_stream(stack, worker, "burst")
        viewers_sid = object_sid(stack, "maps", "viewers")
        stream_sid = object_sid(stack, "documents", "stream")
        rows = []
        for event_type, verb in (("viewer.connected", "joins"), ("viewer.disconnected", "leaves")):
            writes_before = stack.emulator("/_emulator/stats")["sync_writes"]
            produce_s, lag_s = burst(stack, worker, event_type, n)
            time.sleep(2.5)  # the last viewers round and count write
            stats = stack.emulator("/_emulator/stats")
            writes = stats["sync_writes"]
            map_writes = writes.get(viewers_sid, 0) - writes_before.get(viewers_sid, 0)
            count_writes = writes.get(stream_sid, 0) - writes_before.get(stream_sid, 0)
            seconds = produce_s + lag_s
            rows.append(("{:,} {} (straight onto Kafka, one stream): applied after the last was produced".format(n, verb),
                         "%.2f s" % lag_s, "<= 5 s",
                         "produced in %.2f s; %d/s end to end" % (produce_s, n / seconds)))
            target = "<= 100 / <= 1 per s / 0" if verb == "joins" else "few / <= 1 per s / 0"
            rows.append(("  viewers map writes / count writes / 429s", "%d / %d / %d" % (
                map_writes, count_writes, stats["responses_429"]),
                target, "count writes over %.1f s" % (seconds + 2.5)))
        return rows
    finally:
        stack.stop()


def spread(values, fmt, unit=""):
    """The median of values and their range, "median unit (min-max)", each
    number formatted with fmt."""
    values = sorted(values)
    return "%s%s (%s-%s)" % (fmt(statistics.median(values)), unit, fmt(values[0]), fmt(values[-1]))


def thousands(v):
    return "{:,.0f}".format(v)


def thread_cpu(pid):
    """CPU seconds each thread of process pid has run, by thread id, with
    its name: (name, seconds). From /proc/<pid>/task/*/schedstat."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                name = f.read().strip()
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                out[tid] = (name, int(f.read().split()[0]) / 1e9)
        except OSError:
            pass
    return out


def replay_once(stack, total, name, env):
    """A new sync worker folding the whole log (every event already
    applied): its rate from its first folded event to its last, the time
    from its start, and the CPU share of its poll loop (the main thread) and
    of its parse-ahead thread over that window."""
    spawned = time.monotonic()
    replayer = stack.start_worker("sync", name=name, env=dict({"SNAPSHOT_INTERVAL_S": "0"}, **env))
    port, pid = replayer.metrics_port, replayer.pid

    def folded():
        return events(port, "viewer.connected", "folded") + events(port, "viewer.connected", "duplicate")

    first = wait_until(lambda: folded() > 0, 120, 0.005)
    before = thread_cpu(pid)
    last = wait_until(lambda: folded() >= total, 900, 0.05)
    after = thread_cpu(pid)
    replayer.stop()
    window = last - first
    # The main thread's id is the process id; the parse-ahead thread names
    # itself "parse-ahead".
    main = (after[str(pid)][1] - before.get(str(pid), ("", 0))[1]) / window
    helper = sum(after[t][1] - before.get(t, ("", 0))[1] for t in after if after[t][0] == "parse-ahead") / window
    return total / window, last - spawned, main, helper


def replay(build, rundir, kafka, n, streams=48, runs=5):
    """n viewer.connected over many streams, applied; then, `runs` times
    alternately, a plain Kafka reader of the same events, a new sync worker
    rebuilding from offset 0 (every event's effect already applied;
    SNAPSHOT_INTERVAL_S=0, so it reads and writes no checkpoint), and the
    same with PARSE_AHEAD=0 (every event parsed on the poll loop): their
    fold rates from the first event to the last, and the time from the
    start; the medians and spreads of the rates, of the per-round ratios to
    the reader, and of the threads' CPU shares. Then one more new sync
    worker rebuilds from the checkpoints the first worker wrote when it
    stopped, timed from the process's start (a single run; the rebuild
    section alternates five)."""
    stack, worker = sync_stack(build, rundir, kafka)
    try:
        names = ["replay-%02d" % i for i in range(streams)]
        for name in names:
            create_stream(stack, worker, name)
        per_stream = n // streams
        for name in names:
            stack.loadgen("--stream", name, "--count", per_stream, "--type", "viewer.connected")
        total = per_stream * streams
        wait_until(lambda: events(worker.metrics_port, "viewer.connected", "applied") >= total, 900, 0.2)
        time.sleep(1.0)  # the state records with the last applied offsets
        worker.stop()
        raws, rates, ratios, fulls, mains, helpers = [], [], [], [], [], []
        inline_rates, inline_ratios, inline_mains, gains = [], [], [], []
        for i in range(runs):
            baseline = stack.loadgen("--read").split()
            read_n, read_s = int(baseline[1]), float(baseline[3])
            raws.append(read_n / read_s if read_s > 0 else float("nan"))
            rate, full, main, helper = replay_once(stack, total, "sync-worker-replay-%d" % i, {})
            rates.append(rate)
            ratios.append(rate / raws[-1])
            fulls.append(full)
            mains.append(main)
            helpers.append(helper)
            rate, _, main, _ = replay_once(stack, total, "sync-worker-inline-%d" % i, {"PARSE_AHEAD": "0"})
            inline_rates.append(rate)
            inline_ratios.append(rate / raws[-1])
            inline_mains.append(main)
            gains.append(rates[-1] / rate)
            print("  replay %d: plain reader %.0f/s, worker %.0f/s (%.2f s from its start; poll loop %.0f%%, "
                  "parse-ahead %.0f%% of a core), with PARSE_AHEAD=0 %.0f/s (poll loop %.0f%%)" % (
                      i + 1, raws[-1], rates[-1], fulls[-1], 100 * mains[-1], 100 * helpers[-1], inline_rates[-1],
                      100 * inline_mains[-1]), flush=True)

        def percent(v):
            return "%.0f%%" % (100 * v)

        # From the checkpoints: the assignment is done (partitions gauge)
        # with every partition's checkpoint loaded, nothing left to fold.
        spawned = time.monotonic()
        loader = stack.start_worker("sync", name="sync-worker-checkpoint")

        def loaded():
            m = metrics(loader.metrics_port)
            return (m.get("stagehand_worker_partitions", 0) > 0 and
                    m.get('stagehand_worker_checkpoint_loads_total{outcome="loaded"}', 0) > 0)

        done = wait_until(loaded, 300, 0.005)
        m = metrics(loader.metrics_port)
        return [("replay: {:,} events already applied, through a new sync worker (median of {})".format(total, runs),
                 spread(rates, thousands, " events/s"), ">= 100,000/s; >= 0.5 x the plain reader",
                 "plain Kafka reader: %s; ratio %s, median of %d rounds; a core's share busy: poll loop %s, "
                 "parse-ahead thread %s" % (
                     spread(raws, thousands, "/s"), spread(ratios, lambda v: "%.2f" % v), runs,
                     spread(mains, percent), spread(helpers, percent))),
                ("replay as above with PARSE_AHEAD=0 (parsed on the poll loop), same rounds",
                 spread(inline_rates, thousands, " events/s"), "",
                 "ratio to the plain reader %s; poll loop busy %s of a core; parsing ahead gave %s times its "
                 "events/s, per round" % (
                     spread(inline_ratios, lambda v: "%.2f" % v), spread(inline_mains, percent),
                     spread(gains, lambda v: "%.2f" % v))),
                ("rebuild of {} streams ({:,} events) by a new sync worker, from its start: from offset 0 (median of "
                 "the {} replays) / from checkpoints (one run)".format(streams, total, runs),
                 "%s / %.2f s" % (spread(fulls, lambda v: "%.2f" % v, " s"), done - spawned),
                 "<= 2 s from checkpoints",
                 "%d checkpoints loaded, %d fallbacks, %d events folded after them" % (
                     m.get('stagehand_worker_checkpoint_loads_total{outcome="loaded"}', 0),
                     m.get('stagehand_worker_checkpoint_loads_total{outcome="fallback"}', 0),
                     events(loader.metrics_port, "viewer.connected", "folded")))]
    finally:
        stack.stop()


# Outcomes after which a worker is done with an event (not wait or retry).
DONE_OUTCOMES = ("applied", "folded", "duplicate", "skipped", "dlq")


def handled(m):
    """Events of every type a worker is done with, from its /metrics (m)."""
    return sum(v for k, v in m.items() if k.startswith("stagehand_worker_events_total{") and
               any('outcome="%s"' % o in k for o in DONE_OUTCOMES))


def loadgen_all(stack, jobs, parallel=8):
    """Runs the jobs, `parallel` at a time; a job is a list of argument
    lists for stagehand-loadgen, run one after the other (so a stream's
    events keep their order). A run of a few events costs about 0.3 s on
    Apache Kafka, most of it waiting, so runs overlap."""
    def run(job):
        for args in job:
            stack.loadgen(*args)

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(run, jobs))


def sync_quiet(stack, quiet_s=3.0, timeout=600):
    """Waits until the emulator has answered no request for quiet_s seconds
    (the sync worker's rounds are done)."""
    last = stack.emulator("/_emulator/stats")["requests"]
    since = time.monotonic()
    deadline = since + timeout
    while time.monotonic() - since < quiet_s:
        if time.monotonic() > deadline:
            raise RuntimeError("the emulator kept being called for %.0f s" % timeout)
        time.sleep(0.2)
        now = stack.emulator("/_emulator/stats")["requests"]
        if now != last:
            last, since = now, time.monotonic()


def log_lines(process):
    """The worker's log (one JSON object a line), what parses."""
    lines = []
    with open(process.log_path) as f:
        for line in f:
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass
    return lines


def debug_state(port):
    """GET /debug/state: every stream as a checkpoint holds it, with the
    viewers in name order (their order depends on when Sync was read back,
    as tests/integration/test_snapshots.c compares them)."""
    for _ in range(50):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/debug/state" % port, timeout=30) as r:
                state = json.load(r)
            break
        except urllib.error.HTTPError as e:
            if e.code != 503:  # 503: the poll loop was busy
                raise
            time.sleep(0.1)
    else:
        raise RuntimeError("no /debug/state from port %d" % port)
    for st in state.get("streams", []):
        role = st.get("role")
        if isinstance(role, dict) and isinstance(role.get("viewers"), list):
            role["viewers"].sort()
    return json.dumps(state, sort_keys=True)


def state_topic_bytes(stack):
    """The size on disk of stagehand.state (what a new worker's state loader
    reads to its end: compaction leaves the active segment alone), or None
    on the dev broker."""
    if not stack.kafka_dir:
        return None
    data = os.path.join(stack.kafka_dir, "data")
    return sum(os.path.getsize(os.path.join(data, d, f)) for d in os.listdir(data)
               if d.startswith("stagehand.state-") for f in os.listdir(os.path.join(data, d)) if f.endswith(".log"))


def timed_rebuild(stack, name, counted_from, from_checkpoint):
    """A new sync worker taking the one partition, timed from the process's
    start until its state is complete: the partition assigned, its
    checkpoint loaded (or none, from offset 0) and every event from there
    done, counted_from(offset) of them (a worker counts only the types its
    role handles). Returns (seconds, the /debug/state, what its log says:
    the checkpoint's offset and streams, checkpoints written, Twilio
    writes, the size of stagehand.state at its start, when it logged
    what). The state is kept beside the worker's log
    (NAME.state.json)."""
    env = {"LOG_LEVEL": "debug"}  # the checkpoints it writes and its Twilio calls
    if not from_checkpoint:
        env["SNAPSHOT_INTERVAL_S"] = "0"
    state_bytes = state_topic_bytes(stack)
    spawned, wall = time.monotonic(), time.time()
    worker = stack.start_worker("sync", name=name, env=env)
    port = worker.metrics_port

    def checkpoint_offset():
        for line in log_lines(worker):
            if line.get("message", "").startswith("checkpoint loaded"):
                return int(line["fields"]["offset"])
        return None

    def done():
        m = metrics(port)
        if m.get("stagehand_worker_partitions", 0) <= 0:
            return False
        if not from_checkpoint or m.get('stagehand_worker_checkpoint_loads_total{outcome="fallback"}', 0) > 0:
            return handled(m) >= counted_from(0)
        if m.get('stagehand_worker_checkpoint_loads_total{outcome="loaded"}', 0) <= 0:
            return False
        at = checkpoint_offset()  # logged right after the counter moved
        return at is not None and handled(m) >= counted_from(at)

    finished = wait_until(done, 900, 0.01 if from_checkpoint else 0.05)
    seconds = finished - spawned
    state = debug_state(port)
    with open(os.path.join(stack.rundir, name + ".state.json"), "w") as f:
        f.write(state)
    m = metrics(port)
    worker.stop()
    info = {"loaded": m.get('stagehand_worker_checkpoint_loads_total{outcome="loaded"}', 0),
            "fallback": m.get('stagehand_worker_checkpoint_loads_total{outcome="fallback"}', 0),
            "handled": handled(m), "offset": None, "streams": None, "written": 0, "twilio_writes": 0,
            "state_bytes": state_bytes, "at": {}}
    for line in log_lines(worker):
        message = line.get("message", "")
        fields = line.get("fields", {})
        if message.startswith("checkpoint loaded"):
            info["offset"], info["streams"] = int(fields["offset"]), int(fields["streams"])
        elif message == "checkpoint written":
            info["written"] += 1
        elif message == "twilio call" and fields.get("method") != "GET":
            info["twilio_writes"] += 1
        key = message.split(";")[0]
        if key in ("worker running", "kafka partitions assigned", "state restored",
                   "checkpoint loaded") and key not in info["at"]:
            try:
                t = datetime.datetime.strptime(line["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
                info["at"][key] = t.replace(tzinfo=datetime.timezone.utc).timestamp() - wall
            except (KeyError, ValueError):
                pass
    return seconds, state, info


def rebuild(build, rundir, kafka, n, live=1000, keep=10, runs=5):
    """The rebuild of one partition whose log is long and whose live state
    is small: on a topic of one partition, `live` streams created, then for
    each about (n - live) / live / 2 viewer.connected and as many
    viewer.disconnected of the same identities, keeping about `keep`
    viewers connected per stream (n events in all), every effect applied by
    a sync worker that then stops (writing its checkpoint). Then, `runs`
    times alternately, a new sync worker from the checkpoints (the
    default) and one from offset 0 (SNAPSHOT_INTERVAL_S=0: reads and writes
    none), each timed from its start until its state is complete (see
    timed_rebuild); medians and spreads. Every rebuilt worker's
    /debug/state is compared with the first's, and its log says whether it
    wrote a checkpoint or called Twilio to write (neither may change the
    next run). Each does publish its streams' state records again, so
    stagehand.state, which every new worker reads to its end, grows from
    run to run: its size is reported. On the dev broker, a log this long outgrows its retention
    (about 170,000 events a partition): use Apache Kafka."""
    stack = Stack(build, rundir, 1, kafka=kafka)
    try:
        worker = stack.start_worker("sync")
        port = worker.metrics_port
        started = time.monotonic()
        names = ["rebuild-%04d" % i for i in range(live)]
        per_stream = (n - live) // live
        joins = (per_stream + keep) // 2
        leaves = per_stream - joins
        loadgen_all(stack, [[("--stream", name, "--count", 1, "--type", "stream.create_requested",
                              "--prefix", "host-")] for name in names])
        wait_until(lambda: events(port, "stream.create_requested", "applied") >= live, 900, 0.2)
        created = time.monotonic()
        loadgen_all(stack, [[("--stream", name, "--count", joins),
                             ("--stream", name, "--count", leaves, "--type", "viewer.disconnected")]
                            for name in names])
        produced = time.monotonic()

        def applied():
            return (events(port, "viewer.connected", "applied") >= joins * live and
                    events(port, "viewer.disconnected", "applied") >= leaves * live)

        wait_until(applied, 900, 0.2)
        sync_quiet(stack)  # the viewers rounds done: the rebuilt workers have nothing to write
        time.sleep(1.0)  # the state records with the last applied offsets
        worker.stop()
        history_s = time.monotonic() - started
        log_n = int(stack.loadgen("--read").split()[1])
        produced_n = live * (1 + joins + leaves)
        # The rest is the worker's own sync.ready, one per stream, which it
        # does not count (not a type it handles), all among the first
        # offsets: the joins were produced after every create was applied.
        uncounted = log_n - produced_n

        def counted_from(at):
            return max(0, log_n - at - (uncounted if at < live + uncounted else 0))

        print("  history: %d streams created in %.1f s, %d joins and %d leaves each produced in %.1f s, "
              "all applied and quiet after %.1f s; %d events in the log" % (
                  live, created - started, joins, leaves, produced - created, history_s, log_n), flush=True)
        results = {True: [], False: []}
        states = []
        for i in range(runs):
            for from_checkpoint in (True, False):
                kind = "checkpoint" if from_checkpoint else "offset0"
                seconds, state, info = timed_rebuild(stack, "sync-rebuild-%s-%d" % (kind, i), counted_from,
                                                     from_checkpoint)
                results[from_checkpoint].append((seconds, info))
                states.append(state)
                print("  rebuild %d %-10s %.2f s: %s" % (i + 1, kind, seconds, info), flush=True)
        cp = [s for s, _ in results[True]]
        zero = [s for s, _ in results[False]]
        infos = [info for _, info in results[True]]
        offsets = sorted(set(info["offset"] for info in infos if info["offset"] is not None))
        written = sum(info["written"] for _, info in results[True] + results[False])
        twilio = sum(info["twilio_writes"] for _, info in results[True] + results[False])
        same = all(s == states[0] for s in states)
        median_run = sorted(results[True], key=lambda r: r[0])[len(cp) // 2][1]["at"]
        first_bytes, last_bytes = infos[0]["state_bytes"], infos[-1]["state_bytes"]
        state_size = ("stagehand.state %.1f MB before the first run from checkpoints, %.1f MB before the last; " % (
            first_bytes / 1e6, last_bytes / 1e6) if first_bytes is not None else "")
        where = ", ".join("%s at %.2f s" % (k, v) for k, v in sorted(median_run.items(), key=lambda kv: kv[1]))
        return [("rebuild of one partition: {:,} events in its history, {} live streams, by a new sync worker: "
                 "from checkpoints / from offset 0 (median of {}, alternately)".format(n, live, runs),
                 "%s / %s" % (spread(cp, lambda v: "%.2f" % v, " s"), spread(zero, lambda v: "%.2f" % v, " s")),
                 "<= 2 s from checkpoints",
                 "same state: %s (%d dumps); checkpoint at offset %s (%s streams) loaded %d times, %d fallbacks, "
                 "%d events done after it; %d checkpoints and %d Twilio writes by the rebuilt workers; %s"
                 "log %s events (%d joins, %d leaves per stream, %d still connected); median checkpoint run: %s" % (
                     "yes" if same else "NO", len(states), " and ".join(thousands(o) for o in offsets) or "none",
                     infos[0]["streams"], sum(info["loaded"] for info in infos),
                     sum(info["fallback"] for info in infos), max(info["handled"] for info in infos), written, twilio,
                     state_size, thousands(log_n), joins, leaves, joins - leaves, where))]
    finally:
        stack.stop()


def memory(build, rundir, kafka, n, rate=40000):
    """The sync worker's resident memory per tracked viewer: RSS with n
    viewers of one stream less RSS with the stream and none. Joins are
    paced (the dev broker keeps about 170,000 events per partition)."""
    stack, worker = sync_stack(build, rundir, kafka)
    try:
        create_stream(stack, worker, "crowd")
        time.sleep(1.0)
        empty = worker.rss_bytes()
        chunk = 100000
        done = 0
        while done < n:
            count = min(chunk, n - done)
            stack.loadgen("--stream", "crowd", "--count", count, "--first", done, "--rate", rate)
            done += count
            wait_until(lambda: events(worker.metrics_port, "viewer.connected", "applied") >= done, 600, 0.1)
        time.sleep(1.0)
        full = worker.rss_bytes()
        per_viewer = (full - empty) / n
        return [("sync worker memory per tracked viewer ({:,} viewers, one stream)".format(n), "%.0f bytes" % per_viewer,
                 "<= 150 bytes", "RSS %.0f MB with none, %.0f MB with all" % (empty / 1e6, full / 1e6))]
    finally:
        stack.stop()
