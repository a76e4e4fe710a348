"""Processes for the benchmarks: the dev broker, the Twilio emulator, the
ingress and the workers, each started on free ports with its log under the
bench's run directory, plus small readers for what they expose (/metrics,
the emulator's stats, a process's resident memory)."""

import json
import os
import re
import signal
import subprocess
import time
import urllib.request

DEV_CREDENTIALS = {
    "TWILIO_ACCOUNT_SID": "AC00000000000000000000000000000000",
    "TWILIO_API_KEY_SID": "SK00000000000000000000000000000000",
    "TWILIO_API_KEY_SECRET": "bench-api-key-secret",
    "TWILIO_AUTH_TOKEN": "bench-auth-token",
    "PASSCODE": "123456",
    "KAFKA_SESSION_TIMEOUT_MS": "6000",
    "LOG_LEVEL": "warn",
}


class Process:
    """One program of the stack, its stdout and stderr in files."""

    def __init__(self, name, argv, env, rundir):
        self.name = name
        self.out_path = os.path.join(rundir, name + ".out")
        self.log_path = os.path.join(rundir, name + ".log")
        with open(self.out_path, "w") as out, open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=log)

    @property
    def pid(self):
        return self.proc.pid

    def wait_line(self, pattern, timeout=30.0):
        """The first match of pattern in the process's stdout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.out_path) as f:
                m = re.search(pattern, f.read(), re.M)
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("%s did not print %r; see %s" % (self.name, pattern, self.log_path))

    def stop(self, timeout=30.0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def rss_bytes(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0


KAFKA_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kafka", "kafka.sh")


class Stack:
    """A broker (the dev broker, or Apache Kafka itself when kafka is
    "kafka", see tools/kafka/kafka.sh) and the emulator, and whatever else
    a benchmark starts."""

    def __init__(self, build, rundir, partitions=12, env=None, kafka="dev"):
        self.build = build
        self.rundir = rundir
        os.makedirs(rundir, exist_ok=True)
        self.env = dict(os.environ)
        self.env.update(DEV_CREDENTIALS)
        self.env.update(env or {})
        self.processes = []
        self.kafka_dir = None
        if kafka == "kafka":
            self.kafka_dir = os.path.abspath(os.path.join(rundir, "kafka"))
            subprocess.run(["rm", "-rf", self.kafka_dir], check=True)
            e = dict(self.env, KAFKA_PARTITIONS=str(partitions), STAGEHAND_BUILD=os.path.abspath(build))
            out = subprocess.run(["sh", KAFKA_SCRIPT, "start", self.kafka_dir, "0"], env=e, check=True,
                                 capture_output=True, text=True)
            self.brokers = out.stdout.strip().splitlines()[-1]
        else:
            bootstrap = os.path.join(rundir, "bootstrap.servers")
            if os.path.exists(bootstrap):
                os.remove(bootstrap)
            broker = self.start("devbroker", [self.program("stagehand-devbroker"), "--partitions",
                                              str(partitions), "--bootstrap-file", bootstrap])
            self.brokers = broker.wait_line(r"^(\S+)$").group(1)
        self.env["KAFKA_BROKERS"] = self.brokers
        emulator = self.start("emulator", [self.program("twilio-emulator"), "--port", "0"])
        self.emulator_url = "http://127.0.0.1:%s" % emulator.wait_line(r"^port (\d+)").group(1)
        self.env["TWILIO_API_BASE"] = self.emulator_url
        self.env.setdefault("PUBLIC_BASE_URL", "http://127.0.0.1:9")  # nobody listens: webhooks go nowhere

    def program(self, name):
        return os.path.join(self.build, name)

    def start(self, name, argv, env=None):
        e = dict(self.env)
        e.update(env or {})
        p = Process(name, argv, e, self.rundir)
        self.processes.append(p)
        return p

    def start_worker(self, role, name=None, env=None):
        e = {"METRICS_PORT": "0"}
        e.update(env or {})
        p = self.start(name or role + "-worker", [self.program("stagehand-%s-worker" % role)], e)
        p.metrics_port = int(p.wait_line(r"^metrics port (\d+)").group(1))
        return p

    def start_ingress(self, env=None, name="ingress"):
        # /metrics is on METRICS_LISTEN, apart from the public port. The
        # bench's clients all come from 127.0.0.1 and hold idle connections
        # on purpose (the idle-connections row): no per-IP connection limit,
        # and a header deadline longer than any run; one host starts every
        # stream, so no stream limits either.
        e = {"INGRESS_PORT": "0", "METRICS_LISTEN": "127.0.0.1:0", "MAX_CONNECTIONS_PER_IP": "0",
             "HEADER_TIMEOUT_MS": "600000", "MAX_STREAMS_PER_HOST": "0", "MAX_STREAMS_PER_CLIENT": "0",
             "MAX_STREAMS": "0"}
        e.update(env or {})
        p = self.start(name, [self.program("stagehand-ingress")], e)
        p.port = int(p.wait_line(r"^port (\d+)").group(1))
        p.metrics_port = int(p.wait_line(r"^metrics port (\d+)").group(1))
        return p

    def loadgen(self, *args):
        """Runs stagehand-loadgen to its end; returns its stdout."""
        out = subprocess.run([self.program("stagehand-loadgen")] + [str(a) for a in args], env=self.env,
                             check=True, capture_output=True, text=True)
        return out.stdout

    def emulator(self, path):
        with urllib.request.urlopen(self.emulator_url + path, timeout=30) as r:
            return json.load(r)

    def stop(self):
        for p in reversed(self.processes):
            p.stop()
        self.processes = []
        if self.kafka_dir:
            subprocess.run(["sh", KAFKA_SCRIPT, "stop", self.kafka_dir], env=self.env, check=False)
            self.kafka_dir = None


def metrics(port):
    """A worker's or the ingress's /metrics as {"name{labels}": value}."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def events(port, event_type, outcome):
    name = 'stagehand_worker_events_total{type="%s",outcome="%s"}' % (event_type, outcome)
    return metrics(port).get(name, 0)


def wait_until(check, timeout, interval=0.02):
    """Polls check() until it is true; the monotonic time it first was, or
    raises after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise RuntimeError("gave up waiting after %.0f s" % timeout)
        time.sleep(interval)
