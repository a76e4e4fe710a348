"""The workers' benchmarks: a join and leave burst straight onto Kafka, a
replay of events whose effects are already applied, and the sync worker's
memory per tracked viewer. Each returns rows for the report: (what, figure,
target, baseline or note)."""

import time

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


def replay(build, rundir, kafka, n, streams=48):
    """n viewer.connected over many streams, applied; then a new sync worker
    rebuilds from offset 0 (every event's effect already applied;
    SNAPSHOT_INTERVAL_S=0, so it reads no checkpoint). The baseline is a
    plain Kafka reader of the same events in the same run. Then another new
    sync worker rebuilds from the checkpoints the first worker wrote when it
    stopped: both rebuilds timed from the process's start."""
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
        baseline = stack.loadgen("--read").split()
        read_n, read_s = int(baseline[1]), float(baseline[3])
        spawned = time.monotonic()
        replayer = stack.start_worker("sync", name="sync-worker-replay", env={"SNAPSHOT_INTERVAL_S": "0"})
        port = replayer.metrics_port

        def folded():
            return events(port, "viewer.connected", "folded") + events(port, "viewer.connected", "duplicate")

        first = wait_until(lambda: folded() > 0, 120, 0.005)
        last = wait_until(lambda: folded() >= total, 900, 0.05)
        seconds = last - first
        rate = total / seconds
        raw = read_n / read_s if read_s > 0 else float("nan")
        full_s = last - spawned
        replayer.stop()

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
        return [("replay: {:,} events already applied, through a new sync worker".format(total),
                 "{:,.0f} events/s".format(rate), ">= 100,000/s",
                 "plain Kafka reader: {:,.0f}/s (ratio {:.2f})".format(raw, rate / raw)),
                ("rebuild of {} streams ({:,} events) by a new sync worker, from its start: from offset 0 / "
                 "from checkpoints".format(streams, total),
                 "%.2f s / %.2f s" % (full_s, done - spawned), "<= 2 s from checkpoints",
                 "%d checkpoints loaded, %d fallbacks, %d events folded after them" % (
                     m.get('stagehand_worker_checkpoint_loads_total{outcome="loaded"}', 0),
                     m.get('stagehand_worker_checkpoint_loads_total{outcome="fallback"}', 0),
                     events(loader.metrics_port, "viewer.connected", "folded")))]
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
