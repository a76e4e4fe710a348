"""The audience benchmark: the reference's whole viewer flow through the
ingress for n viewers of one stream (POST /join-stream-as-viewer, then
POST /viewer-connected-to-player, each answered after Kafka's ack), and
what the audience and the host see afterwards:

- joins answered per second (both requests of a viewer count as one join);
- seconds from the last answer until the stream document's viewer_count is
  exact;
- a hand raised right after the burst: seconds until it is in raised_hands;
- an invitation sent right after the burst: seconds until the invitee's
  document says speaker_invite;
- a second stream playing its whole story during the burst (create, a
  viewer joins and connects, raises a hand, is invited, goes on stage),
  each step's seconds until Sync shows it, beside the same story played
  alone before the burst;
- 429s, Sync writes per object, and the seconds until every eager viewer
  (SYNC_EAGER_VIEWERS) has Sync access.

The senders are Python processes with keep-alive threads (SENDER_PROCS x
SENDER_THREADS), so the join rate is partly theirs; the Sync figures are
the pipeline's. Each size starts its own stack under the run directory, on
Apache Kafka when kafka == "kafka", else on the dev broker."""

import base64
import http.client
import json
import multiprocessing
import os
import threading
import time
import urllib.error
import urllib.request

import ingress as ingress_bench
from stack import DEV_CREDENTIALS, Stack, metrics, wait_until

PASSCODE = DEV_CREDENTIALS["PASSCODE"]
SENDER_PROCS = 4
SENDER_THREADS = 8
HEADERS = {"Content-Type": "application/json", "Authorization": PASSCODE}

# The heavier half of the flow alone, at the ingress's own pace: each
# request a new viewer joining (a token minted, an event acknowledged).
WRK_JOIN_SCRIPT = """
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  n = 0
end
function request()
  n = n + 1
  local body = '{"user_identity":"j' .. tid .. '-' .. n .. '","stream_name":"aud-wrk"}'
  return wrk.format("POST", "/join-stream-as-viewer",
                    {["Content-Type"] = "application/json", ["Authorization"] = "%s"}, body)
end
""" % PASSCODE


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _viewers(args):
    """One sender process: its viewers' two requests each, over
    SENDER_THREADS keep-alive connections. Returns (answers not 200, last
    answer's time.time())."""
    port, stream, names = args
    refused = [0] * SENDER_THREADS
    last = [0.0] * SENDER_THREADS

    def run(k):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for who in names[k::SENDER_THREADS]:
            body = json.dumps({"user_identity": who, "stream_name": stream})
            for path in ("/join-stream-as-viewer", "/viewer-connected-to-player"):
                conn.request("POST", path, body, HEADERS)
                r = conn.getresponse()
                r.read()
                refused[k] += r.status != 200
        last[k] = time.time()
        conn.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(SENDER_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(refused), max(last)


class Client:
    """The ingress's client API and the emulator's Sync REST API."""

    def __init__(self, stack, ingress_port):
        self.stack = stack
        self.port = ingress_port
        key = "%s:%s" % (DEV_CREDENTIALS["TWILIO_API_KEY_SID"], DEV_CREDENTIALS["TWILIO_API_KEY_SECRET"])
        self.auth = "Basic " + base64.b64encode(key.encode()).decode()

    def post(self, path, body):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("POST", path, json.dumps(body), HEADERS)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        if r.status != 200:
            raise RuntimeError("%s answered %d: %s" % (path, r.status, data[:200]))
        return json.loads(data or b"{}")

    def sync(self, path):
        """GET a Sync resource from the emulator: its JSON, or None (404)."""
        req = urllib.request.Request(self.stack.emulator_url + path, headers={"Authorization": self.auth})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def service_sid(self, stream):
        def found():
            for s in self.stack.emulator("/_emulator/state")["sync_services"]:
                if s["friendly_name"] == "Live Video Stream %s" % stream:
                    return s["sid"]
            return None
        wait_until(lambda: found() is not None, 60, 0.1)
        return found()

    def document(self, sid, name):
        doc = self.sync("/v1/Services/%s/Documents/%s" % (sid, name))
        return doc["data"] if doc else None

    def has_item(self, sid, map_name, key):
        return self.sync("/v1/Services/%s/Maps/%s/Items/%s" % (sid, map_name, key)) is not None


def seconds_until(check, timeout=120, interval=0.05):
    started = time.monotonic()
    wait_until(check, timeout, interval)
    return time.monotonic() - started


def story(client, stream):
    """The small story of a second stream, each step's seconds until Sync
    shows it: {step: seconds}."""
    out = {}
    started = time.monotonic()
    client.post("/create-stream", {"user_identity": "host-" + stream, "stream_name": stream})
    out["create (answered when ready)"] = time.monotonic() - started
    sid = client.service_sid(stream)
    who = "guest-" + stream
    client.post("/join-stream-as-viewer", {"user_identity": who, "stream_name": stream})
    client.post("/viewer-connected-to-player", {"user_identity": who, "stream_name": stream})
    out["viewer counted"] = seconds_until(
        lambda: (client.document(sid, "stream") or {}).get("viewer_count") == 1)
    client.post("/raise-hand", {"user_identity": who, "stream_name": stream, "hand_raised": True})
    out["hand in raised_hands"] = seconds_until(lambda: client.has_item(sid, "raised_hands", who))
    client.post("/send-speaker-invite", {"user_identity": who, "stream_name": stream})
    out["invitation in the document"] = seconds_until(
        lambda: (client.document(sid, "user-" + who) or {}).get("speaker_invite") is True)
    client.post("/join-stream-as-speaker", {"user_identity": who, "stream_name": stream})
    return out


def object_writes(stack, stream):
    """Sync writes per object of the stream's service, by unique name."""
    state = stack.emulator("/_emulator/state")
    writes = stack.emulator("/_emulator/stats")["sync_writes"]
    for s in state["sync_services"]:
        if s["friendly_name"] == "Live Video Stream %s" % stream:
            named = {m["unique_name"]: writes.get(m["sid"], 0) for m in s["maps"]}
            docs = [d for d in s["documents"]]
            named["stream"] = sum(writes.get(d["sid"], 0) for d in docs if d["unique_name"] == "stream")
            users = [writes.get(d["sid"], 0) for d in docs if d["unique_name"].startswith("user-")]
            named["user documents"] = "%d documents, %s writes each" % (
                len(users), "/".join(str(v) for v in sorted(set(users))) or "0")
            return named
    return {}


def one_size(build, rundir, n, kafka):
    port = free_port()
    env = {"RATE_LIMIT_IP_PER_S": "0", "RATE_LIMIT_IDENTITY_PER_S": "0", "INGRESS_PORT": str(port),
           "PUBLIC_BASE_URL": "http://127.0.0.1:%d" % port}
    stack = Stack(build, rundir, env=env, kafka=kafka)
    try:
        ingress = stack.start_ingress({"INGRESS_PORT": str(port)})
        workers = {role: stack.start_worker(role) for role in ("room", "stream", "sync")}
        client = Client(stack, ingress.port)
        story(client, "side-warm")  # first producers, groups and connections: not what is measured
        alone = story(client, "side-alone")
        client.post("/create-stream", {"user_identity": "host", "stream_name": "aud"})
        client.post("/create-stream", {"user_identity": "host", "stream_name": "aud-wrk"})
        sid = client.service_sid("aud")
        names = ["v%d" % i for i in range(n)]
        chunks = [(ingress.port, "aud", names[i::SENDER_PROCS]) for i in range(SENDER_PROCS)]

        during = {}
        side = threading.Thread(target=lambda: during.update(story(client, "side-burst")))
        started = time.time()
        ingress_cpu0 = cpu_seconds(ingress.pid)
        with multiprocessing.get_context("fork").Pool(SENDER_PROCS) as pool:
            pending = pool.map_async(_viewers, chunks)
            time.sleep(min(2.0, n / 5000.0))
            side.start()
            results = pending.get()
        refused = sum(r[0] for r in results)
        last_answer = max(r[1] for r in results)
        burst_s = last_answer - started
        ingress_share = (cpu_seconds(ingress.pid) - ingress_cpu0) / burst_s

        # Right after the last answer: a hand, an invitation.
        hand_who, invite_who = names[-1], names[-2]
        t_hand = time.monotonic()
        client.post("/raise-hand", {"user_identity": hand_who, "stream_name": "aud", "hand_raised": True})
        t_invite = time.monotonic()
        client.post("/send-speaker-invite", {"user_identity": invite_who, "stream_name": "aud"})
        got = {}
        since_answer = time.time() - last_answer

        def check():
            now = time.monotonic()
            if "hand" not in got and client.has_item(sid, "raised_hands", hand_who):
                got["hand"] = now - t_hand
            if "invite" not in got and (client.document(sid, "user-" + invite_who) or {}).get("speaker_invite"):
                got["invite"] = now - t_invite
            if "count" not in got and (client.document(sid, "stream") or {}).get("viewer_count") == n:
                got["count"] = now - t_hand + since_answer
            return len(got) == 3

        wait_until(check, 600, 0.05)
        side.join()
        sync_port = workers["sync"].metrics_port
        backlog = 'stagehand_sync_provisioning_backlog{stream="aud"}'
        wait_until(lambda: metrics(sync_port).get(backlog, 1) == 0, 900, 0.5)
        provisioned_s = time.time() - last_answer
        stats = stack.emulator("/_emulator/stats")
        writes = object_writes(stack, "aud")
        join_rate, _, join_p99, join_bad = ingress_bench.run_wrk(ingress.port, rundir, "join-wrk", seconds=5,
                                                                 script_text=WRK_JOIN_SCRIPT)
        where = "Apache Kafka" if kafka == "kafka" else "dev broker"
        label = "{:,} viewers, whole flow ({})".format(n, where)
        rows = [
            (label + ": joins answered per second", "%.0f/s" % (n / burst_s), "(measured)",
             "%d requests in %.1f s, %d not 200; %d x %d Python senders, the limit: the ingress used %.0f%% "
             "of a core meanwhile" % (2 * n, burst_s, refused, SENDER_PROCS, SENDER_THREADS,
                                       100 * ingress_share)),
            ("  the ingress's own pace for /join-stream-as-viewer (wrk, %d connections, 5 s)" %
             ingress_bench.CONNECTIONS, "%.0f req/s" % join_rate, "(measured)",
             "p99 %.1f ms; non-2xx %d; each a new viewer (token minted, event acknowledged)" % (
                 join_p99 or 0, join_bad)),
            ("  viewer_count exact, after the last answer", "%.2f s" % got["count"], "<= 5 s",
             "COUNT_INTERVAL_MS 1000"),
            ("  a hand raised after the burst, in raised_hands", "%.2f s" % got["hand"], "<= 2 s",
             "viewer %s (beyond the eager tier)" % hand_who if n > 1000 else "viewer %s" % hand_who),
            ("  an invitation after the burst, in the invitee's document", "%.2f s" % got["invite"], "<= 2 s",
             "viewer %s" % invite_who),
        ]
        for step in alone:
            rows.append(("  second stream during the burst: " + step, "%.2f s" % during.get(step, float("nan")),
                         "as alone", "alone before the burst: %.2f s" % alone[step]))
        rows.append(("  every eager viewer provisioned, after the last answer", "%.1f s" % provisioned_s,
                     "(measured)", "SYNC_EAGER_VIEWERS 1000, about SYNC_WRITES_PER_S viewers/s"))
        rows.append(("  429s / Sync writes per object", "%d" % stats["responses_429"], "0",
                     "; ".join("%s %s" % (k, v) for k, v in sorted(writes.items()))))
        return rows
    finally:
        stack.stop()


def audience(build, rundir, sizes, kafka):
    rows = []
    for n in sizes:
        rows += one_size(build, os.path.join(rundir, str(n)), n, kafka)
    return rows
