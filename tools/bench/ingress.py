"""The ingress's benchmarks: requests/s and latency of
/viewer-connected-to-player (answered after Kafka's ack) with wrk beside
nginx answering a static 202 on the same machine, of
/join-stream-as-viewer (a token minted as well) and of GET
/streams/{name}/state (the public state a polling audience reads, served
from the view) in the same alternating runs, p99 at half that rate, the
rate with thousands of idle connections open, the machine's cost of a
system call and of a thread wake-up, and the ingress's CPU, context
switches and system calls per request,
the reference backend's chain of Twilio calls at the emulator's latency
against one stagehand request, and the ingress's memory per stream.
Each returns rows for the report: (what, figure, target, baseline or note)."""

import http.client
import json
import os
import re
import statistics
import subprocess
import time

from stack import DEV_CREDENTIALS, Process, Stack, events, wait_until

CONNECTIONS = 64
SENDERS = 16
SECONDS = 10
PASSCODE = DEV_CREDENTIALS["PASSCODE"]

# Each request names a new viewer, so that every one is a real event.
WRK_SCRIPT = """
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  n = 0
  pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
end
function request()
  n = n + 1
  local body = '{"user_identity":"w' .. tid .. '-' .. n .. '","stream_name":"bench-0"}'
  return wrk.format("POST", "/viewer-connected-to-player",
                    {["Content-Type"] = "application/json", ["Authorization"] = "%s"}, body)
end
function delay()
  return pause
end
""" % PASSCODE

# The public state of the stream, as a polling audience reads it; with
# BENCH_IF_NONE_MATCH set, revalidated (304 while nothing changed).
WRK_STATE_SCRIPT = """
function init(args)
  headers = {["Authorization"] = "%s"}
  local tag = os.getenv("BENCH_IF_NONE_MATCH") or ""
  if tag ~= "" then headers["If-None-Match"] = tag end
  req = wrk.format("GET", "/streams/bench-0/state", headers)
end
function request()
  return req
end
""" % PASSCODE

# Each request a new viewer joining: a token minted, an event acknowledged.
WRK_JOIN_SCRIPT = """
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  n = 0
  run = os.getenv("BENCH_RUN") or "0"
end
function request()
  n = n + 1
  local body = '{"user_identity":"j' .. run .. '-' .. tid .. '-' .. n .. '","stream_name":"bench-0"}'
  return wrk.format("POST", "/join-stream-as-viewer",
                    {["Content-Type"] = "application/json", ["Authorization"] = "%s"}, body)
end
""" % PASSCODE

# Targets of issue 17: the ingress's POST against nginx's static 202, p99
# at half the ingress's rate, and its rate with IDLE connections open
# against its rate without them.
TARGET_RATIO = 0.5
TARGET_HALF_P99_MS = 10.0
TARGET_IDLE_RATIO = 0.8

# Viewers listed in the stream's record (VIEWERS_MAP_CAP's default), so
# that the public state has its usual size.
LISTED_VIEWERS = 100

NGINX_CONF = """
daemon off;
worker_processes 2;
error_log %(dir)s/nginx-error.log;
pid %(dir)s/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %(dir)s/nginx-body;
  proxy_temp_path %(dir)s/nginx-proxy;
  fastcgi_temp_path %(dir)s/nginx-fastcgi;
  uwsgi_temp_path %(dir)s/nginx-uwsgi;
  scgi_temp_path %(dir)s/nginx-scgi;
  server {
    listen 127.0.0.1:%(port)d;
    location / { default_type application/json; return 202 '{"success":true}'; }
  }
}
"""

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def run_wrk(port, rundir, name, delay_ms=0, seconds=SECONDS, script_text=WRK_SCRIPT, if_none_match="", run=0):
    """wrk with CONNECTIONS keep-alive connections running script_text
    (the POST by default); (requests/s, p50 ms, p99 ms, responses neither
    2xx nor 3xx)."""
    script = os.path.join(rundir, name + ".lua")
    with open(script, "w") as f:
        f.write(script_text)
    env = dict(os.environ, BENCH_DELAY_MS=str(delay_ms), BENCH_IF_NONE_MATCH=if_none_match, BENCH_RUN=str(run))
    out = subprocess.run(["wrk", "-t2", "-c%d" % CONNECTIONS, "-d%ds" % seconds, "--latency", "-s", script,
                          "http://127.0.0.1:%d" % port], env=env, capture_output=True, text=True, check=True).stdout
    with open(os.path.join(rundir, name + ".wrk"), "w") as f:
        f.write(out)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pct = {}
    for p, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        pct[p] = float(value) * UNITS[unit]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, pct.get("50"), pct.get("99"), int(bad.group(1)) if bad else 0


def start_nginx(rundir):
    port = free_port()
    conf = os.path.join(rundir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF % {"dir": os.path.abspath(rundir), "port": port})
    nginx = Process("nginx", ["nginx", "-c", os.path.abspath(conf), "-p", os.path.abspath(rundir)], dict(os.environ),
                    rundir)
    wait_until(lambda: port_open(port), 10, 0.05)
    return nginx, port


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    import socket
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def post(port, path, body, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = {"Content-Type": "application/json", "Authorization": PASSCODE}
    h.update(headers or {})
    conn.request("POST", path, json.dumps(body), h)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def live_stack(build, rundir, kafka, emulator_faults=None):
    """A broker (kafka: "kafka" or "dev"), emulator, ingress (no rate
    limits) and the three workers, with stream "bench" live."""
    env = {"RATE_LIMIT_IP_PER_S": "0", "RATE_LIMIT_IDENTITY_PER_S": "0"}
    if emulator_faults:
        env["TWILIO_EMULATOR_FAULTS"] = emulator_faults
    port = free_port()
    env["INGRESS_PORT"] = str(port)
    env["PUBLIC_BASE_URL"] = "http://127.0.0.1:%d" % port  # where the emulator's webhooks go, and are signed for
    stack = Stack(build, rundir, env=env, kafka=kafka)
    ingress = stack.start_ingress({"INGRESS_PORT": str(port)})
    workers = {role: stack.start_worker(role) for role in ("room", "stream", "sync")}
    status, body = post(ingress.port, "/create-stream", {"user_identity": "host", "stream_name": "bench"})
    if status != 200:
        raise RuntimeError("create-stream answered %d: %s" % (status, body[:200]))
    return stack, ingress, workers


def view_only_stack(build, rundir, kafka):
    """A broker and one ingress, with stream "bench-0" live in its view
    from state records as the workers would publish them: the ingress's
    own cost, without workers competing for the two cores. Returns the
    stack and the ingress."""
    port = free_port()
    env = {"RATE_LIMIT_IP_PER_S": "0", "RATE_LIMIT_IDENTITY_PER_S": "0", "INGRESS_PORT": str(port),
           "PUBLIC_BASE_URL": "http://127.0.0.1:%d" % port}
    stack = Stack(build, rundir, env=env, kafka=kafka)
    ingress = stack.start_ingress({"INGRESS_PORT": str(port)})
    publish_bench_stream(stack)
    wait_until(lambda: view_size(ingress.metrics_port) >= 1, 30, 0.1)
    return stack, ingress


def publish_bench_stream(stack):
    """The state records of stream bench-0, live, its playback grant fresh
    for a minute (joins wait for a fresh one)."""
    stack.loadgen("--state", "--count", 1, "--stream", "bench", "--listed", LISTED_VIEWERS)


def machine_cost(build, rundir):
    """(ns per trivial system call, ns per thread wake-up) on this machine,
    from tools/bench/syscost.c; (None, None) when it cannot be built."""
    exe = os.path.join(rundir, "syscost")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "syscost.c")
    try:
        subprocess.run(["cc", "-O2", "-pthread", "-o", exe, src], check=True, capture_output=True)
        out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None, None
    values = dict(line.split() for line in out.splitlines())
    return float(values["syscall_ns"]), float(values["wakeup_ns"])


def process_counters(pid):
    """(CPU seconds, context switches) of a process so far, all threads."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    switches = 0
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, task)) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
        except OSError:
            pass  # a thread that ended meanwhile
    return cpu, switches


def syscalls_per_request(pid, port, rundir, seconds=5):
    """System calls per request of the ingress (perf stat on its
    raw_syscalls tracepoint during a wrk run of its own); None without
    perf."""
    out_path = os.path.join(rundir, "perf-stat.txt")
    try:
        perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", str(pid), "-o", out_path,
                                 "--", "sleep", str(seconds + 1)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None
    time.sleep(0.3)
    rate = run_wrk(port, rundir, "syscalls", seconds=seconds)[0]
    perf.wait()
    try:
        with open(out_path) as f:
            for line in f:
                cells = line.split(",")
                if len(cells) > 2 and "raw_syscalls" in line and cells[0].strip().isdigit():
                    return int(cells[0]) / (rate * seconds)
    except OSError:
        pass
    return None


def verdict(met):
    return "met here" if met else "NOT MET on this machine"


class IdleConnections:
    """n open, idle keep-alive connections to a port (as many as the file
    limit allows), as a crowd of clients that connected and went quiet."""

    def __init__(self, port, n):
        import resource
        import socket
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        n = min(n, soft - 256) if soft != resource.RLIM_INFINITY else n
        self.sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(max(n, 0))]

    def close(self):
        for s in self.sockets:
            s.close()
        self.sockets = []


def public_state(port):
    """GET /streams/bench-0/state once: (status, ETag, body length)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/streams/bench-0/state", headers={"Authorization": PASSCODE})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, r.getheader("ETag"), len(body)


def throughput(build, rundir, kafka, runs=5, idle=4000):
    """nginx and the ingress under the same wrk, alternately, `runs` times
    after a warm-up (medians and spreads): the ingress's POST
    /viewer-connected-to-player, its /join-stream-as-viewer and its GET of
    the public state; then the state revalidated (304s); then the POST at
    half its rate; then the POST with and without `idle` idle connections
    open beside wrk's, alternately. Each target says whether it was met on
    this machine."""
    os.makedirs(rundir, exist_ok=True)
    syscall_ns, wakeup_ns = machine_cost(build, rundir)
    stack, ing = view_only_stack(build, rundir, kafka)
    nginx, nginx_port = start_nginx(rundir)
    # The stream's three records arrive one by one: wait for the sync
    # record's listed viewers (about 13 bytes each) in the public state.
    wait_until(lambda: public_state(ing.port)[2] > 10 * LISTED_VIEWERS, 30, 0.1)
    _, etag, state_bytes = public_state(ing.port)
    targets = [("nginx", nginx_port, WRK_SCRIPT), ("post", ing.port, WRK_SCRIPT), ("join", ing.port, WRK_JOIN_SCRIPT),
               ("state", ing.port, WRK_STATE_SCRIPT)]
    results = {name: [] for name, _, _ in targets}
    per_request = []  # (CPU us, context switches) of the ingress per POST, run by run
    try:
        for name, port, script in targets:  # warm-up: first runs after a start are slower
            if name == "join":
                publish_bench_stream(stack)
            run_wrk(port, rundir, "warmup-" + name, seconds=3, script_text=script, run=99)
        for i in range(runs):
            for name, port, script in targets:
                if name == "join":  # a fresh playback grant for the joins
                    publish_bench_stream(stack)
                    time.sleep(0.5)
                before = process_counters(ing.pid)
                results[name].append(run_wrk(port, rundir, "%s-%d" % (name, i), script_text=script, run=i))
                if name == "post":
                    after = process_counters(ing.pid)
                    n = results[name][-1][0] * SECONDS
                    per_request.append(((after[0] - before[0]) * 1e6 / n, (after[1] - before[1]) / n))
        revalidated = run_wrk(ing.port, rundir, "state-304", script_text=WRK_STATE_SCRIPT, if_none_match=etag)
        nginx.stop()
        syscalls = syscalls_per_request(ing.pid, ing.port, rundir)

        def medians(name):
            rs = results[name]
            return (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs),
                    statistics.median(r[2] for r in rs), sum(r[3] for r in rs))

        rate, p50, p99, bad = medians("post")
        j_rate, j_p50, j_p99, j_bad = medians("join")
        n_rate, n_p50, n_p99, _ = medians("nginx")
        s_rate, s_p50, s_p99, s_bad = medians("state")
        ratios = sorted(r[0] / n[0] for r, n in zip(results["post"], results["nginx"]))
        ratio = statistics.median(ratios)
        n_rates = sorted(r[0] for r in results["nginx"])
        rates = sorted(r[0] for r in results["post"])
        # The state's rate over the POST's, run by run (each pair minutes apart at most).
        state_ratios = sorted(s[0] / p[0] for s, p in zip(results["state"], results["post"]))
        join_ratios = sorted(j[0] / p[0] for j, p in zip(results["join"], results["post"]))
        cpu_us = statistics.median(c for c, _ in per_request)
        switches = statistics.median(w for _, w in per_request)
        # Half the rate: each connection waits between its requests.
        delay_ms = max(1, int(CONNECTIONS * 1000 / (rate / 2) - p50))
        h_rate, h_p50, h_p99, h_bad = run_wrk(ing.port, rundir, "ingress-half", delay_ms)
        # With and without the idle crowd, alternately: each pair's ratio.
        idle_pairs = []
        held = 0
        for i in range(3):
            alone = run_wrk(ing.port, rundir, "alone-%d" % i)[0]
            crowd = IdleConnections(ing.port, idle)
            try:
                time.sleep(1)
                held = len(crowd.sockets)
                crowded = run_wrk(ing.port, rundir, "idle-%d" % i)[0]
            finally:
                crowd.close()
            time.sleep(1)
            idle_pairs.append((alone, crowded))
        idle_ratios = sorted(c / a for a, c in idle_pairs)
        idle_ratio = statistics.median(idle_ratios)
    finally:
        nginx.stop()
        stack.stop()
    cost = ("a system call %.0f ns, a thread wake-up %.1f us" % (syscall_ns, wakeup_ns / 1000)
            if syscall_ns is not None else "not measured (no cc)")
    return [
        ("ingress /viewer-connected-to-player, %d connections, answered after Kafka's ack (median of %d)"
         % (CONNECTIONS, runs), "{:,.0f} req/s".format(rate),
         ">= 0.5 x nginx: %s" % verdict(ratio >= TARGET_RATIO),
         "nginx static 202: {:,.0f} req/s (runs {:,.0f} to {:,.0f}); ratio {:.2f} (runs {:.2f} to {:.2f}); ingress runs "
         "{:,.0f} to {:,.0f}; non-2xx: {}".format(n_rate, n_rates[0], n_rates[-1], ratio, ratios[0], ratios[-1],
                                                  rates[0], rates[-1], bad)),
        ("  latency p50 / p99 at full rate", "%.2f / %.2f ms" % (p50, p99), "(measured)",
         "nginx: %.2f / %.2f ms" % (n_p50, n_p99)),
        ("  the ingress's cost per request (median of the runs)",
         "%.1f us CPU, %.2f context switches" % (cpu_us, switches), "(measured)",
         "system calls per request: %s; this machine: %s" % (
             "%.1f" % syscalls if syscalls is not None else "not measured (no perf)", cost)),
        ("  /join-stream-as-viewer in the same runs (a new viewer each: token minted, event acknowledged)",
         "{:,.0f} req/s".format(j_rate), "(measured)",
         "ratio to /viewer-connected-to-player {:.2f} (runs {:.2f} to {:.2f}); p50 / p99 {:.2f} / {:.2f} ms; "
         "non-2xx: {}".format(j_rate / rate, join_ratios[0], join_ratios[-1], j_p50, j_p99, j_bad)),
        ("ingress GET /streams/{name}/state, %d connections, from the view (median of %d, same runs)"
         % (CONNECTIONS, runs), "{:,.0f} req/s".format(s_rate),
         ">= 2 x the POST rate: %s" % verdict(s_rate >= 2 * rate),
         "ratio to the POST {:.2f} (runs {:.2f} to {:.2f}); {} bytes with {} viewers listed; p50 / p99 "
         "{:.2f} / {:.2f} ms; non-2xx: {}".format(s_rate / rate, state_ratios[0], state_ratios[-1], state_bytes,
                                                  LISTED_VIEWERS, s_p50, s_p99, s_bad)),
        ("  the same revalidated (If-None-Match: the current ETag, 304 and no body)",
         "{:,.0f} req/s".format(revalidated[0]), "(measured)",
         "ratio to the POST {:.2f}; p50 / p99 {:.2f} / {:.2f} ms".format(revalidated[0] / rate, revalidated[1],
                                                                          revalidated[2])),
        ("  latency p50 / p99 at half rate ({:,.0f} req/s)".format(h_rate), "%.2f / %.2f ms" % (h_p50, h_p99),
         "p99 <= 10 ms: %s" % verdict(h_p99 <= TARGET_HALF_P99_MS), "non-2xx: %d" % h_bad),
        ("  with {:,} idle keep-alive connections open as well (3 pairs, alternately)".format(held),
         "{:,.0f} req/s".format(statistics.median(c for _, c in idle_pairs)),
         ">= 0.8 x without: %s" % verdict(idle_ratio >= TARGET_IDLE_RATIO),
         "ratio {:.2f} (pairs {:.2f} to {:.2f}); without them {:,.0f} req/s".format(
             idle_ratio, idle_ratios[0], idle_ratios[-1], statistics.median(a for a, _ in idle_pairs))),
    ]


def reference_chain(port, stream, identity, service_sid, streamer_sid):
    """The calls the reference backend makes, one after another, for one
    /join-stream-as-viewer (its section 3.4, without chat): room fetch,
    stream lookup, user document create and update, four permissions,
    a playback grant."""
    auth = "Basic " + __import__("base64").b64encode(
        ("%s:%s" % (DEV_CREDENTIALS["TWILIO_API_KEY_SID"], DEV_CREDENTIALS["TWILIO_API_KEY_SECRET"])).encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(method, path, form=None):
        body = "&".join("%s=%s" % (k, v) for k, v in (form or {}).items())
        conn.request(method, path, body if form is not None else None,
                     {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        r.read()
        return r.status

    svc = "/v1/Services/%s" % service_sid
    call("GET", "/v1/Rooms/%s" % stream)
    call("GET", svc + "/Documents/stream")
    call("POST", svc + "/Documents", {"UniqueName": "user-" + identity, "Data": "%7B%7D"})
    call("POST", svc + "/Documents/user-" + identity, {"Data": "%7B%22speaker_invite%22%3Afalse%7D"})
    call("POST", svc + "/Documents/user-%s/Permissions/%s" % (identity, identity), {"Read": "true", "Write": "false",
                                                                                   "Manage": "false"})
    for m in ("speakers", "raised_hands", "viewers"):
        call("POST", svc + "/Maps/%s/Permissions/%s" % (m, identity), {"Read": "true", "Write": "false",
                                                                       "Manage": "false"})
    call("POST", "/v1/PlayerStreamers/%s/PlaybackGrant" % streamer_sid, {"Ttl": "60", "AccessControlAllowOrigin": "*"})
    conn.close()


def ceiling(build, rundir, kafka, latency_ms=100, n=20):
    """One viewer's join: the reference's nine Twilio calls at the
    emulator's latency, against stagehand's /join-stream-as-viewer on the
    same stack (which makes no Twilio call in the request)."""
    stack, ingress, workers = live_stack(build, rundir, kafka)
    try:
        state = stack.emulator("/_emulator/state")
        service_sid = state["sync_services"][0]["sid"]
        streamer_sid = state["media"]["player_streamers"][0]["sid"]
        port = int(stack.emulator_url.rsplit(":", 1)[1])
        post_form(port, "/_emulator/faults", "LatencyMs=%d" % latency_ms)
        ref = []
        for i in range(n):
            t = time.monotonic()
            reference_chain(port, "bench", "ref-%d" % i, service_sid, streamer_sid)
            ref.append((time.monotonic() - t) * 1000)
        ours = []
        for i in range(n):
            t = time.monotonic()
            status, _ = post(ingress.port, "/join-stream-as-viewer", {"user_identity": "sh-%d" % i,
                                                                      "stream_name": "bench"})
            ours.append((time.monotonic() - t) * 1000)
            if status != 200:
                raise RuntimeError("join-stream-as-viewer answered %d" % status)
        post_form(port, "/_emulator/faults", "LatencyMs=0")
    finally:
        stack.stop()
    r, o = statistics.median(ref), statistics.median(ours)
    return [("the reference's ceiling: one viewer join, Twilio at %d ms per call" % latency_ms,
             "%.1f ms" % o, "(measured)",
             "reference's 9-call chain: %.0f ms (%.0fx); and its viewers map takes 20 joins/s per stream"
             % (r, r / o))]


def post_form(port, path, form):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", path, form, {"Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    r.read()
    conn.close()
    if r.status != 200:
        raise RuntimeError("%s answered %d" % (path, r.status))


def memory(build, rundir, kafka, streams=10000):
    """The ingress's resident memory per stream in its view: RSS with the
    state records of `streams` live streams (as the workers publish them)
    less RSS before."""
    stack = Stack(build, rundir, kafka=kafka)
    try:
        ingress = stack.start_ingress()
        time.sleep(1.0)
        before = ingress.rss_bytes()
        stack.loadgen("--state", "--count", streams, "--stream", "view")
        wait_until(lambda: view_size(ingress.metrics_port) >= streams, 120, 0.2)
        time.sleep(1.0)
        after = ingress.rss_bytes()
    finally:
        stack.stop()
    return [("ingress RSS with {:,} live streams in its view".format(streams),
             "%.1f MiB" % (after / 2**20), "<= 64 MiB",
             "%.1f MiB before; %.0f bytes per stream" % (before / 2**20, (after - before) / streams))]


def view_size(metrics_port):
    """Streams in an ingress's view, from its /metrics (on METRICS_LISTEN)."""
    conn = http.client.HTTPConnection("127.0.0.1", metrics_port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    m = re.search(r"^stagehand_ingress_view_streams (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0


def signed_leave(port, public_url, service_sid, identity, auth_token, conn):
    """One Sync endpoint_disconnected webhook for identity, signed as Twilio
    signs: HMAC-SHA1 over the URL and the sorted parameters."""
    import base64
    import hashlib
    import hmac
    import urllib.parse
    path = "/sync-webhook?stream=bench"
    params = {"EventType": "endpoint_disconnected", "ServiceSid": service_sid, "Identity": identity,
              "EndpointId": "endpoint-" + identity,
              # now: the ingress refuses deliveries outside WEBHOOK_REPLAY_WINDOW_S
              "DateCreated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    data = public_url + path + "".join(k + params[k] for k in sorted(params))
    signature = base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()
    conn.request("POST", path, urllib.parse.urlencode(params),
                 {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})
    r = conn.getresponse()
    r.read()
    return r.status


def join_burst(build, rundir, kafka, n):
    """n viewers connect through the ingress, then the same n leave as
    Sync's signed webhooks would say (SENDERS keep-alive Python clients):
    the time until the sync worker applied each wave, Sync writes, 429s."""
    import concurrent.futures
    stack, ingress, workers = live_stack(build, rundir, kafka)
    sync = workers["sync"]
    try:
        state = stack.emulator("/_emulator/state")
        service = state["sync_services"][0]
        service_sid = service["sid"]
        viewers_sid = [m["sid"] for m in service["maps"] if m["unique_name"] == "viewers"][0]
        rows = []
        names = ["b-%d" % i for i in range(n)]
        public_url = stack.env["PUBLIC_BASE_URL"]
        token = DEV_CREDENTIALS["TWILIO_AUTH_TOKEN"]
        writes0 = stack.emulator("/_emulator/stats")["sync_writes"].get(viewers_sid, 0)

        def join(chunk):
            conn = http.client.HTTPConnection("127.0.0.1", ingress.port, timeout=30)
            headers = {"Content-Type": "application/json", "Authorization": PASSCODE}
            bad = 0
            for who in chunk:
                conn.request("POST", "/viewer-connected-to-player",
                             json.dumps({"user_identity": who, "stream_name": "bench"}), headers)
                r = conn.getresponse()
                r.read()
                bad += r.status != 200
            conn.close()
            return bad

        def send(chunk):
            conn = http.client.HTTPConnection("127.0.0.1", ingress.port, timeout=30)
            bad = sum(signed_leave(ingress.port, public_url, service_sid, who, token, conn) != 200 for who in chunk)
            conn.close()
            return bad

        chunks = [names[i::SENDERS] for i in range(SENDERS)]
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(SENDERS) as pool:
            refused = sum(pool.map(join, chunks))
        sent = time.monotonic()
        applied = wait_until(lambda: events(sync.metrics_port, "viewer.connected", "applied") >= n, 600, 0.05)
        rows.append(("{:,} viewers connect through the ingress ({} senders): all applied".format(n, SENDERS),
                     "%.1f s" % (applied - started), "(measured)",
                     "requests took %.1f s (%.0f/s, %d refused); applied %.2f s after the last answer" % (
                         sent - started, n / (sent - started), refused, applied - sent)))
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(SENDERS) as pool:
            refused = sum(pool.map(send, chunks))
        sent = time.monotonic()
        applied = wait_until(lambda: events(sync.metrics_port, "viewer.disconnected", "applied") >= len(names),
                             600, 0.05)
        time.sleep(2.5)
        stats = stack.emulator("/_emulator/stats")
        rows.append(("{:,} leaves as signed Sync webhooks through the ingress: all applied".format(len(names)),
                     "%.1f s" % (applied - started), "(measured)",
                     "requests took %.1f s (%.0f/s, %d refused); applied %.2f s after the last answer" % (
                         sent - started, len(names) / (sent - started), refused, applied - sent)))
        rows.append(("  viewers map writes over both waves / 429s",
                     "%d / %d" % (stats["sync_writes"].get(viewers_sid, 0) - writes0, stats["responses_429"]),
                     "(measured) / 0", "map cap 100, at most a round per second"))
        return rows
    finally:
        stack.stop()
