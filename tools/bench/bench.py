#!/usr/bin/env python3
"""make bench: measures stagehand on this machine and writes BENCHMARKS.md.

    python3 tools/bench/bench.py [--build build] [--only a,b] [--quick]
                                 [--out BENCHMARKS.md]

Sections: ingress (wrk against the ingress and against nginx), ceiling
(the reference's chain of Twilio calls against one stagehand request),
view (the ingress's memory per stream), burst (joins and leaves through
the ingress), join (a join and leave burst straight onto Kafka), replay, memory (the sync worker's per viewer). Each
starts its own dev broker, emulator and processes under run/bench/, and
reports its figure beside its target and a baseline measured in the same
run. --quick shrinks every size tenfold (a smoke run, not a measurement;
it does not write the report)."""

import argparse
import datetime
import os
import platform
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ingress  # noqa: E402
import workers  # noqa: E402


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


def main():
    ap = argparse.ArgumentParser(description="stagehand benchmarks")
    ap.add_argument("--build", default="build")
    ap.add_argument("--only", default="")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="BENCHMARKS.md")
    args = ap.parse_args()
    scale = 10 if args.quick else 1
    rundir = os.path.join("run", "bench")
    sections = [
        ("ingress", lambda: ingress.throughput(args.build, os.path.join(rundir, "ingress"))),
        ("ceiling", lambda: ingress.ceiling(args.build, os.path.join(rundir, "ceiling"))),
        ("view", lambda: ingress.memory(args.build, os.path.join(rundir, "view"), 10000 // scale)),
        ("burst", lambda: ingress.join_burst(args.build, os.path.join(rundir, "burst"), 100000 // scale)),
        ("join", lambda: workers.join_burst(args.build, os.path.join(rundir, "join"), 100000 // scale)),
        ("replay", lambda: workers.replay(args.build, os.path.join(rundir, "replay"), 1000000 // scale)),
        ("memory", lambda: workers.memory(args.build, os.path.join(rundir, "memory"), 1000000 // scale)),
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
    with open(args.out, "w") as f:
        f.write("# Benchmarks\n\n")
        f.write("Written by `make bench` (`python3 tools/bench/bench.py`); do not edit by hand.\n\n")
        f.write("- date: %s\n" % datetime.date.today().isoformat())
        f.write("- machine: %s\n" % machine())
        f.write("- revision: %s\n" % revision())
        f.write("- command: `make bench`%s\n\n" % (" (`--only %s`)" % args.only if only else ""))
        f.write("| section | what | measured | target | baseline, notes |\n|---|---|---|---|---|\n")
        for row in rows:
            f.write("| %s |\n" % " | ".join(row))
    print("bench: wrote %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
