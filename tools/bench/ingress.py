"""The ingress's benchmarks: requests/s and latency of
/viewer-connected-to-player (answered after Kafka's ack) with wrk beside
nginx answering a static 202 on the same machine, and of GET
/streams/{name}/state (the public state a polling audience reads, served
from the view) in the same runs, p99 at half that rate,
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


def run_wrk(port, rundir, name, delay_ms=0, seconds=SECONDS, script_text=WRK_SCRIPT, if_none_match=""):
    """wrk with CONNECTIONS keep-alive connections running script_text
    (the POST by default); (requests/s, p50 ms, p99 ms, responses neither
    2xx nor 3xx)."""
    script = os.path.join(rundir, name + ".lua")
    with open(script, "w") as f:
        f.write(script_text)
    env = dict(os.environ, BENCH_DELAY_MS=str(delay_ms), BENCH_IF_NONE_MATCH=if_none_match)
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


def view_only_stack(build, rundir, kafka, event_loops=("poll",)):
    """A broker and one ingress per event loop (INGRESS_EVENT_LOOP), with
    stream "bench-0" live in their views from state records as the workers
    would publish them: the ingress's own cost, without workers competing
    for the two cores. Returns the stack and {event loop: ingress}."""
    port = free_port()
    env = {"RATE_LIMIT_IP_PER_S": "0", "RATE_LIMIT_IDENTITY_PER_S": "0", "INGRESS_PORT": str(port),
           "PUBLIC_BASE_URL": "http://127.0.0.1:%d" % port}
    stack = Stack(build, rundir, env=env, kafka=kafka)
    ingresses = {}
    for i, loop in enumerate(event_loops):
        ingresses[loop] = stack.start_ingress({"INGRESS_EVENT_LOOP": loop, "INGRESS_PORT": "0" if i else str(port)},
                                              name="ingress-" + loop)
    stack.loadgen("--state", "--count", 1, "--stream", "bench", "--listed", LISTED_VIEWERS)
    for ing in ingresses.values():
        wait_until(lambda: view_size(ing.metrics_port) >= 1, 30, 0.1)
    return stack, ingresses


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
    after a warm-up (medians): the ingress's POST with each event loop and
    its GET of the public state (default loop); then the state revalidated
    (304s); then the default loop's POST at half its rate; then both loops
    with `idle` idle connections open beside wrk's."""
    os.makedirs(rundir, exist_ok=True)
    stack, ingresses = view_only_stack(build, rundir, kafka, ("poll", "epoll"))
    nginx, nginx_port = start_nginx(rundir)
    wait_until(lambda: public_state(ingresses["poll"].port)[0] == 200, 30, 0.1)
    _, etag, state_bytes = public_state(ingresses["poll"].port)
    targets = [("nginx", nginx_port, WRK_SCRIPT)] + [(loop, ing.port, WRK_SCRIPT) for loop, ing in ingresses.items()]
    targets.append(("state", ingresses["poll"].port, WRK_STATE_SCRIPT))
    results = {name: [] for name, _, _ in targets}
    try:
        for name, port, script in targets:  # warm-up: first runs after a start are slower
            run_wrk(port, rundir, "warmup-" + name, seconds=3, script_text=script)
        for i in range(runs):
            for name, port, script in targets:
                results[name].append(run_wrk(port, rundir, "%s-%d" % (name, i), script_text=script))
        revalidated = run_wrk(ingresses["poll"].port, rundir, "state-304", script_text=WRK_STATE_SCRIPT,
                              if_none_match=etag)
        nginx.stop()

        def medians(name):
            rs = results[name]
            return (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs),
                    statistics.median(r[2] for r in rs), sum(r[3] for r in rs))

        rate, p50, p99, bad = medians("poll")
        e_rate, e_p50, e_p99, e_bad = medians("epoll")
        n_rate, n_p50, n_p99, _ = medians("nginx")
        s_rate, s_p50, s_p99, s_bad = medians("state")
        ratios = sorted(r[0] / n[0] for r, n in zip(results["poll"], results["nginx"]))
        # The state's rate over the POST's, run by run (each pair minutes apart at most).
        state_ratios = sorted(s[0] / p[0] for s, p in zip(results["state"], results["poll"]))
        # Half the rate: each connection waits between its requests.
        delay_ms = max(1, int(CONNECTIONS * 1000 / (rate / 2) - p50))
        h_rate, h_p50, h_p99, h_bad = run_wrk(ingresses["poll"].port, rundir, "ingress-half", delay_ms)
        with_idle = {}
        for loop, ing in ingresses.items():
            crowd = IdleConnections(ing.port, idle)
            try:
                time.sleep(1)
                with_idle[loop] = (run_wrk(ing.port, rundir, "idle-" + loop)[0], len(crowd.sockets))
            finally:
                crowd.close()
    finally:
        nginx.stop()
        stack.stop()
    return [
        ("ingress /viewer-connected-to-player, %d connections, answered after Kafka's ack (median of %d)"
         % (CONNECTIONS, runs), "{:,.0f} req/s".format(rate), ">= 0.5 x nginx",
         "nginx static 202: {:,.0f} req/s; ratio {:.2f} (runs {:.2f} to {:.2f}); non-2xx: {}".format(
             n_rate, rate / n_rate, ratios[0], ratios[-1], bad)),
        ("  the same with INGRESS_EVENT_LOOP=epoll", "{:,.0f} req/s".format(e_rate), "(measured)",
         "ratio {:.2f}; p50 / p99 {:.2f} / {:.2f} ms; non-2xx: {}".format(e_rate / n_rate, e_p50, e_p99, e_bad)),
        ("  latency p50 / p99 at full rate", "%.2f / %.2f ms" % (p50, p99), "(measured)",
         "nginx: %.2f / %.2f ms" % (n_p50, n_p99)),
        ("ingress GET /streams/{name}/state, %d connections, from the view (median of %d, same runs)"
         % (CONNECTIONS, runs), "{:,.0f} req/s".format(s_rate), ">= 2 x the POST rate",
         "ratio to the POST {:.2f} (runs {:.2f} to {:.2f}); {} bytes with {} viewers listed; p50 / p99 "
         "{:.2f} / {:.2f} ms; non-2xx: {}".format(s_rate / rate, state_ratios[0], state_ratios[-1], state_bytes,
                                                  LISTED_VIEWERS, s_p50, s_p99, s_bad)),
        ("  the same revalidated (If-None-Match: the current ETag, 304 and no body)",
         "{:,.0f} req/s".format(revalidated[0]), "(measured)",
         "ratio to the POST {:.2f}; p50 / p99 {:.2f} / {:.2f} ms".format(revalidated[0] / rate, revalidated[1],
                                                                          revalidated[2])),
        ("  latency p50 / p99 at half rate ({:,.0f} req/s)".format(h_rate), "%.2f / %.2f ms" % (h_p50, h_p99),
         "p99 <= 10 ms", "non-2xx: %d" % h_bad),
        ("  with {:,} idle connections open as well: poll / epoll".format(with_idle["poll"][1]),
         "{:,.0f} / {:,.0f} req/s".format(with_idle["poll"][0], with_idle["epoll"][0]), "(measured)",
         "why epoll is offered: poll's cost grows with the connections held"),
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
