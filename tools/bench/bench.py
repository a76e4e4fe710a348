#!/usr/bin/env python3
"""make bench: measures stagehand on this machine and writes BENCHMARKS.md.

    python3 tools/bench/bench.py [--build build] [--only a,b] [--quick]
                                 [--out BENCHMARKS.md] [--kafka kafka|dev]

Sections: ingress (wrk against the ingress and against nginx), ceiling
(the reference's chain of Twilio calls against one stagehand request),
view (the ingress's memory per stream), burst (joins and leaves through
the ingress), join (a join and leave burst straight onto Kafka), replay, memory (the sync worker's per viewer),
audience (the whole viewer flow). Each starts its own broker (Apache
Kafka from tools/kafka by default, the dev broker with --kafka dev; join
runs on both), emulator and processes under run/bench/, and reports its figure beside its target and a baseline measured in the same
run. --quick shrinks every size tenfold (a smoke run, not a measurement;
it does not write the report)."""

import argparse
import datetime
import os
import platform
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import audience  # noqa: E402
import ingress  # noqa: E402
import workers  # noqa: E402


# What profiling (perf record -g on the process under load) found, and
# what was done about it. Kept with the generator so that the report says
# it every time; revise it when the code changes.
NOTES = """
## What was slow, and why

- **Replay (sync worker).** `perf` showed the envelope's schema validation building the JSON path of
  every member with `snprintf` and the "must be one of ..." message of every enum (the 16 event
  types) before knowing whether it was needed, housekeeping (paused partitions, the role's tick,
  state publishing: each a walk over every stream) after every event, and the id window copied
  with `snprintf`. Paths are now built with `memcpy`, the enum message only on failure,
  housekeeping runs at most every 5 ms: about 88,000 to 120,000 events/s on this machine. What is
  left is jansson parsing the 200-byte envelope (about a third of the worker's time), the schema
  check (compiled at load since: no keyword looked up by name per value), and librdkafka; a plain
  Kafka reader of the same events runs about six times faster. A
  further step would be to skip validation for events this role has applied before, which needs
  care for invalid events that went to the DLQ (not done).
- **Memory (sync worker).** A tracked viewer cost about 280 bytes with a generic string map (an
  entry, a key copy, the user and its name). Users are now the hash table's entries (one
  allocation with the name inline, a bucket pointer): 108 to 122 bytes in the runs so far.
- **Leave bursts.** Backfilling the `viewers` map on every leave cost a delete and a create per
  leaving viewer (200,000 writes for 100,000 leaves in join order, hours at Sync's 20 writes/s).
  The map is now brought to memory's truth by a viewers round at most once per
  `COUNT_INTERVAL_MS`, within its write budget.
- **The dev broker's retention.** librdkafka's mock keeps 5 MB of batches per partition; zstd
  (about 30 bytes an event) holds twice the events lz4 did at the same producing speed, so the
  bursts of one stream fit.
- **Ingress.** Every request waits for Kafka's ack, so the producer's `linger.ms` is latency:
  5 ms gave about 9,000 requests/s with 64 connections, 1 ms is used (0 ms halves it: a request to
  the broker per message). At first the ingress ran at 0.35 to 0.38 of nginx. `perf trace` counted
  about 11 system calls per request against nginx's 2.3, and a trivial system call costs about
  1 us on this virtualised machine; `perf record --call-graph dwarf` showed where the rest went.
  Found and fixed, in order of effect: (1) OpenSSL's `RAND_bytes` for every event id and trace id
  (a lock, a fork check with `getpid` and a cipher call each: three `getpid`s and a sixth of the
  time per request): ids now come from per-thread 4 KiB blocks of its output (common/random.c);
  (2) libmicrohttpd's epoll mode takes a suspended connection out of its epoll set and puts it
  back on resume, two `epoll_ctl` per request, and reads each connection until `EAGAIN`: its
  poll mode needs neither, and is now the default (`INGRESS_EVENT_LOOP=poll`), at the price shown
  in the idle-connections row, where each `poll()` walks thousands of connections; epoll stays a
  setting for that case; (3) `MHD_suspend_connection` (an `epoll_ctl`) was called under the lock
  the delivery thread and the other HTTP thread wait for; (4) each event's envelope was built
  twice (for validation, then to write it) and written through `json_dumps`'s growing buffer, and
  the schema walk looked every keyword up by name (schemas are now compiled at load). (Halving
  libmicrohttpd's per-connection memory, which it zeroes after each request, saved about 1.5%
  but left too little room to answer requests with very large headers: kept at 32 KiB.) A
  request now costs about 5 system calls (a read, a write, the eventfd write that
  resumes its connection, shares of `poll` and of librdkafka's broker thread). What is left of
  the gap: the kernel's loopback TCP path (`sendmsg` alone is about 17% of the ingress's time),
  thread wake-ups between the HTTP threads, the delivery thread and librdkafka's broker thread,
  JSON parsing and writing and the schema check (about 15% together), librdkafka's produce path
  and zstd per batch (about 8%) and malloc (about 10%). The ratio moves by +-0.05 between runs on
  this shared machine, so the five alternations and their spread are reported.
- **Audience (the whole viewer flow).** Before, every `user.joined` created the viewer's Sync
  document and wrote five permissions in the event path; Sync allows about 20 creations per second
  per service and 20 writes per second per object, and a permission on a map is a write to that
  map. While the sync worker waited for that budget it paused the partition, so a hand raised
  after 2,000 joins showed 101 s later, and at 100,000 nobody could raise a hand, be invited or see
  the count for about 90 minutes. Now the sync worker folds every event and writes Sync in rounds
  by priority (interactive work, the viewers round, then a provisioning lane that draws on a
  budget only above `SYNC_LANE_RESERVE_S` of headroom), and only the first `SYNC_EAGER_VIEWERS`
  viewers are provisioned eagerly; later ones when they raise a hand or are invited. Provisioning
  stays bound by Twilio's per-object limit (each viewer costs one write on each of `speakers`,
  `viewers`, `raised_hands` and `stream`), about 18 viewers a second per stream, which is why it
  is tiered; everything an audience of any size reads is in the public state endpoint. The join
  rate in that section is the Python senders' (the ingress's CPU share during the burst says so);
  the wrk row beside it is the ingress's own pace for `/join-stream-as-viewer`.
  The audience rows are one run per size (each takes minutes); their baseline is the second
  stream's story played alone in the same run, not a median with a spread. The Sync latencies
  there are tens of milliseconds against targets of 2 and 5 s, so the targets hold with a wide
  margin on a slower machine; the join rate is the senders', not a figure to compare.
- **Apache Kafka instead of the dev broker** (every section by default since issue 16; `--kafka dev`
  for the old figures; the join section runs on both). Seen in `--quick` runs on this 2-core
  machine, with other work running beside them, so as directions only: the ingress's POST, which
  waits for the ack of a real broker (a JVM sharing the two cores, writing a log with three
  replicas' worth of checks on one), ran at 18,000 req/s against 32,000 on the dev broker, p50 /
  p99 2.7 / 48 ms at full rate and 2.3 / 4.7 ms at half rate (p99 target met); straight onto Kafka,
  10,000 joins were produced 4 times slower (0.38 s against 0.09 s, the broker's CPU) but applied
  sooner after the last (0.07 s against 0.13 s); replay ran at 99,800 events/s against a plain
  reader's 178,700/s (0.56). The memory section's 100,000-viewer quick run showed 277 bytes per
  viewer, above the 128 of the full run on the dev broker: not yet explained (a tenth of the
  viewers weighs the fixed cost of librdkafka's larger fetch buffers ten times more; the full run
  will tell).
- Single runs for replay and memory (each takes minutes); the ingress, its epoll variant and
  nginx alternate five times after a warm-up and the medians are reported.
"""


def machine():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return "%s, %d cores, %.0f GiB, Linux %s" % (model, os.cpu_count(), mem_kb / 2**20, platform.release())


def revision():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def kafka_version():
    try:
        return subprocess.run(["sh", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kafka",
                                                  "kafka.sh"), "version"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def earlier_rows(path, rerun):
    """The table rows of an earlier report whose section is not re-run, and
    where they came from ("date, revision")."""
    rows, date, rev = [], "?", "?"
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("- date: "):
                    date = line[8:].strip()
                elif line.startswith("- revision: "):
                    rev = line[12:].strip()
                elif line.startswith("| ") and not line.startswith("| section") and not line.startswith("|---"):
                    cells = tuple(line.rstrip("\n")[2:-2].split(" | "))
                    if len(cells) == 5 and cells[0] not in rerun:
                        rows.append(cells)
    except OSError:
        return [], ""
    return rows, ("%s, revision %s" % (date, rev)) if rows else ""


def beside(run, kafka):
    """The rows of run(kafka); on Apache Kafka, the dev broker's rows of the
    same run below them (where the two differ), each marked."""
    rows = list(run(kafka))
    if kafka == "kafka":
        rows += [("  dev broker: " + r[0].strip(),) + tuple(r[1:]) for r in run("dev")]
    return rows


def main():
    ap = argparse.ArgumentParser(description="stagehand benchmarks")
    ap.add_argument("--build", default="build")
    ap.add_argument("--only", default="")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="BENCHMARKS.md")
    ap.add_argument("--kafka", default="kafka", choices=("kafka", "dev"),
                    help="the broker of every section: Apache Kafka (tools/kafka, the default) or the dev broker")
    args = ap.parse_args()
    scale = 10 if args.quick else 1
    rundir = os.path.join("run", "bench")
    k = args.kafka
    sections = [
        ("ingress", lambda: ingress.throughput(args.build, os.path.join(rundir, "ingress"), k)),
        ("ceiling", lambda: ingress.ceiling(args.build, os.path.join(rundir, "ceiling"), k)),
        ("view", lambda: ingress.memory(args.build, os.path.join(rundir, "view"), k, 10000 // scale)),
        ("burst", lambda: ingress.join_burst(args.build, os.path.join(rundir, "burst"), k, 100000 // scale)),
        ("join", lambda: beside(lambda b: workers.join_burst(args.build, os.path.join(rundir, "join-" + b), b,
                                                             100000 // scale), k)),
        ("replay", lambda: workers.replay(args.build, os.path.join(rundir, "replay"), k, 1000000 // scale)),
        ("memory", lambda: workers.memory(args.build, os.path.join(rundir, "memory"), k, 1000000 // scale)),
        ("audience", lambda: audience.audience(args.build, os.path.join(rundir, "audience"),
                                               [n // scale for n in (1000, 10000, 100000)], args.kafka)),
    ]
    only = [s for s in args.only.split(",") if s]
    rows = []
    for name, run in sections:
        if only and name not in only:
            continue
        print("bench: %s..." % name, flush=True)
        for row in run():
            print("  %-70s %-18s target %-24s %s" % row, flush=True)
            rows.append((name,) + row)
    if args.quick:
        return 0
    kept, kept_from = [], ""
    if only:
        kept, kept_from = earlier_rows(args.out, set(only))
        rows = [r for r in kept if r[0] not in only] + rows
        order = [name for name, _ in sections]
        rows.sort(key=lambda r: order.index(r[0]) if r[0] in order else len(order))
    with open(args.out, "w") as f:
        f.write("# Benchmarks\n\n")
        f.write("Written by `make bench` (`python3 tools/bench/bench.py`); do not edit by hand.\n\n")
        f.write("- date: %s\n" % datetime.date.today().isoformat())
        f.write("- machine: %s\n" % machine())
        f.write("- revision: %s\n" % revision())
        f.write("- command: `make bench`%s\n" % (" (`--only %s`)" % args.only if only else ""))
        f.write("- broker: %s\n" % ("Apache Kafka %s (tools/kafka, one node on loopback); rows marked "
                                     "\"dev broker\" ran on librdkafka's mock in the same run" % kafka_version()
                                     if args.kafka == "kafka" else "the dev broker (librdkafka's mock), `--kafka dev`"))
        if kept_from:
            f.write("- the rows of the other sections are kept from the earlier report (%s)\n" % kept_from)
        f.write("\n")
        f.write("| section | what | measured | target | baseline, notes |\n|---|---|---|---|---|\n")
        for row in rows:
            f.write("| %s |\n" % " | ".join(row))
        f.write(NOTES)
    print("bench: wrote %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
