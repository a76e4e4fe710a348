"""Issue 19 item 5: the sync worker's pool at 1, 2 and 3 members on 12
partitions. Standalone (not yet a section of make bench):

    python3 tools/bench/scaling.py [--build build] [--n 600000] [--kafka dev|kafka]

For each pool size: a burst of n viewer.connected over 48 streams straight
onto Kafka while the members run (the time from the last produced to the
last applied, summed over the members), then the whole pool replaced by as
many fresh members, which rebuild every partition from offset 0 (the events'
effects already applied): the time from the first event folded until the
members' fold counters stop moving for a second (a partition that moved
while being rebuilt is folded again, and that counts)."""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stack import Stack, events, metrics, wait_until  # noqa: E402

STREAMS = 48
PARTITIONS = 12


def total(pool, event_type, *outcomes):
    return sum(events(p.metrics_port, event_type, o) for p in pool for o in outcomes)


def spread(pool):
    held = [metrics(p.metrics_port).get("stagehand_worker_partitions", 0) for p in pool]
    return sum(held) == PARTITIONS and all(h >= 1 for h in held)


def start_pool(stack, size, tag):
    pool = [stack.start_worker("sync", name="sync-%s-%d" % (tag, k)) for k in range(size)]
    wait_until(lambda: spread(pool), 120, 0.1)
    return pool


def run(build, rundir, kafka, n, size):
    stack = Stack(build, rundir, PARTITIONS, kafka=kafka)
    try:
        pool = start_pool(stack, size, "burst")
        names = ["scale-%02d" % i for i in range(STREAMS)]
        for name in names:
            stack.loadgen("--stream", name, "--count", 1, "--type", "stream.create_requested", "--prefix", "host-")
        wait_until(lambda: total(pool, "stream.create_requested", "applied") >= STREAMS, 120, 0.05)
        per_stream = n // STREAMS
        count = per_stream * STREAMS
        started = time.monotonic()
        for name in names:
            stack.loadgen("--stream", name, "--count", per_stream, "--type", "viewer.connected")
        produced = time.monotonic()
        applied = wait_until(lambda: total(pool, "viewer.connected", "applied") >= count, 900, 0.05)
        print("sync pool of %d: %d joins produced in %.2f s, all applied %.2f s after the last" % (
            size, count, produced - started, max(0.0, applied - produced)), flush=True)
        time.sleep(1.0)  # the state records with the last applied offsets
        for p in pool:
            p.stop()
        replayers = [stack.start_worker("sync", name="sync-replay-%d" % k, env={"SNAPSHOT_INTERVAL_S": "0"})
                     for k in range(size)]  # from offset 0: no checkpoint
        first = wait_until(lambda: total(replayers, "viewer.connected", "folded", "duplicate") > 0, 120, 0.005)
        last_value, last_change = -1, time.monotonic()
        while time.monotonic() - last_change < 1.0:
            value = total(replayers, "viewer.connected", "folded", "duplicate")
            if value != last_value:
                last_value, last_change = value, time.monotonic()
            time.sleep(0.02)
        assert last_value >= count, "the replayers folded %d of %d" % (last_value, count)
        rebuild = last_change - first
        return {"size": size, "events": count, "produce_s": produced - started,
                "apply_after_s": max(0.0, applied - produced), "rebuild_s": rebuild,
                "rebuild_rate": count / rebuild, "folded": last_value}
    finally:
        stack.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--rundir", default="run/bench-scaling")
    ap.add_argument("--kafka", default="dev", choices=["dev", "kafka"])
    ap.add_argument("--n", type=int, default=600000)
    args = ap.parse_args()
    for size in (1, 2, 3):
        r = run(args.build, os.path.join(args.rundir, "pool-%d" % size), args.kafka, args.n, size)
        print("sync pool of %(size)d: rebuild from offset 0 by %(size)d fresh members: %(rebuild_s).2f s "
              "(%(rebuild_rate).0f events/s, %(folded)d folds of %(events)d events)" % r, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
