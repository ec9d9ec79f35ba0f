"""sidetrackd's health endpoint: GET /status and GET /metrics on DATA/agent.sock, /metrics on
--metrics-listen, and `sidetrack status` asking the socket. While another process holds the
store's write lock the drain loop is stuck: the agent must say so (and `sidetrack status`
must fail), then catch up without losing a point once the lock is released."""
import http.client
import json
import os
import re
import socket
import subprocess
import sys

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [TESTS, os.path.join(TESTS, "sync")]
import pyutil  # noqa: E402
from cluster import Cluster  # noqa: E402

HOLD = pyutil.built("tests", "health", "hold_store")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=15):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def get(conn, path):
    """(status, Content-Type, body) of GET path on the connection."""
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type"), r.read().decode()
    finally:
        conn.close()


def get_unix(data, path):
    return get(UnixHTTPConnection(os.path.join(data, "agent.sock")), path)


def get_tcp(port, path):
    return get(http.client.HTTPConnection("127.0.0.1", port, timeout=15), path)


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$')


def parse_prometheus(text):
    """{name: value} of Prometheus's text format, failing on a line that breaks it: every
    sample has a HELP and a TYPE before it, counters end in _total."""
    types, helps, values = {}, set(), {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helps.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind in ("counter", "gauge"), line
            assert kind != "counter" or name.endswith("_total"), line
            types[name] = kind
        else:
            m = SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            name = m.group(1)
            assert name in types and name in helps, f"{name} has no TYPE or HELP"
            values[name] = float(m.group(3))
    return values


def start_agent(d, *extra):
    ring, data, log = (os.path.join(d, n) for n in ("ring", "data", "agent.log"))
    agent = pyutil.start([pyutil.AGENT, "--data", data, "--ring-dir", ring, "-i", "5",
                          "--system-metrics-interval", "0", *extra], log,
                         env=pyutil.agent_env())
    pyutil.wait_for(lambda: os.path.exists(os.path.join(data, "agent.sock")), 30,
                    lambda: "the agent's socket\n" + pyutil.tail_logs([log]))
    return agent, ring, data, log


def points(data, run, key="train/loss"):
    """Points of the run's metric in the store; -1 before the run is there."""
    p = pyutil.cli(data, "metrics", run, key, "--format", "csv", check=False)
    if p.returncode != 0:
        return -1
    return len([r for r in p.stdout.splitlines() if r.strip()]) - 1


def test_status_and_prometheus_from_a_running_agent():
    port = pyutil.free_port()
    with pyutil.scratch("sidetrack-health-") as d:
        agent, ring, data, log = start_agent(d, "--metrics-listen", f"127.0.0.1:{port}")
        try:
            assert oct(os.stat(os.path.join(data, "agent.sock")).st_mode & 0o777) == "0o666"
            run = pyutil.train(ring, 3000, "health", "ok")
            pyutil.wait_for(lambda: points(data, run) == 3000, 30, "every point stored")

            code, ctype, body = get_unix(data, "/status")
            assert code == 200 and ctype == "application/json"
            doc = json.loads(body)
            assert doc["state"] == "running" and doc["pid"] == agent.pid
            assert doc["loop_answering"] == 1 and doc["records_since_start"] >= 3000 * 4

            # The same figures on the socket and on TCP; a well-formed exposition.
            for text in (get_unix(data, "/metrics")[2], get_tcp(port, "/metrics")[2]):
                v = parse_prometheus(text)
                assert v["sidetrack_agent_records_total"] >= 3000 * 4
                assert v["sidetrack_agent_dropped_points_total"] == 0
                assert v["sidetrack_agent_loop_answering"] == 1
                assert v["sidetrack_agent_store_used_bytes"] > 0
                assert v["sidetrack_agent_last_commit_timestamp_seconds"] > 1.7e9
                assert "sidetrack_agent_sync_backlog_ops" not in v  # no --server
            code, ctype, _ = get_tcp(port, "/metrics")
            assert ctype.startswith("text/plain; version=0.0.4")
            assert get_tcp(port, "/nothing")[0] == 404

            p = pyutil.cli(data, "status", "--json")
            st = json.loads(p.stdout)
            assert st["healthy"] and st["agent"]["source"] == "socket", p.stdout
            assert st["agent"]["loop_answering"] is True
        finally:
            code = pyutil.stop(agent)
        assert code == 0, pyutil.tail_logs([log])
        # Stopped: the socket is gone, and the CLI reads the file the agent left.
        assert not os.path.exists(os.path.join(data, "agent.sock"))
        p = pyutil.cli(data, "status", "--json", check=False)
        st = json.loads(p.stdout)
        assert p.returncode == 1 and st["agent"]["source"] == "file"
        assert st["agent"]["running"] is False and st["agent"]["stopped_cleanly"] is True


def test_a_stuck_drain_loop_is_reported_and_nothing_is_lost():
    port = pyutil.free_port()
    with pyutil.scratch("sidetrack-health-") as d:
        agent, ring, data, log = start_agent(d, "--metrics-listen", f"127.0.0.1:{port}")
        holder = None
        try:
            holder = subprocess.Popen([HOLD, data], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)
            assert holder.stdout.readline().strip() == "held"
            # Records arrive and wait in the ring: the agent's commit blocks on the lock.
            run = pyutil.train(ring, 20000, "health", "stuck")

            def stuck():
                return json.loads(get_unix(data, "/status")[2])["loop_answering"] == 0
            pyutil.wait_for(stuck, 30, "the agent to report its loop stuck", interval=0.2)
            v = parse_prometheus(get_tcp(port, "/metrics")[2])
            assert v["sidetrack_agent_loop_answering"] == 0
            p = pyutil.cli(data, "status", check=False)
            assert p.returncode == 1, p.stdout
            assert "drain loop has not answered" in p.stdout, p.stdout

            holder.stdin.close()  # let go: the agent catches up
            assert holder.wait(30) == 0
            holder = None
            pyutil.wait_for(lambda: points(data, run) == 20000, 60,
                            lambda: "every point stored\n" + pyutil.tail_logs([log]))
            doc = json.loads(get_unix(data, "/status")[2])
            assert doc["loop_answering"] == 1
            assert pyutil.cli(data, "status").returncode == 0
        finally:
            if holder:
                holder.stdin.close()
                holder.wait(30)
            code = pyutil.stop(agent)
        assert code == 0, pyutil.tail_logs([log])


def test_metrics_listen_mistakes_stop_the_start():
    with pyutil.scratch("sidetrack-health-") as d:
        base = [pyutil.AGENT, "--data", os.path.join(d, "data"), "--ring-dir",
                os.path.join(d, "ring"), "--system-metrics-interval", "0"]
        p = subprocess.run(base + ["--metrics-listen", "somehost"], capture_output=True,
                           text=True, timeout=30, env=pyutil.agent_env())
        assert p.returncode == 2
        assert "metrics-listen: 'somehost' is not HOST:PORT" in p.stderr, p.stderr
        # A port in use: said, exit 1, and no socket left behind.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            taken = s.getsockname()[1]
            p = subprocess.run(base + ["--metrics-listen", f"127.0.0.1:{taken}"],
                               capture_output=True, text=True, timeout=30,
                               env=pyutil.agent_env())
        assert p.returncode == 1
        assert f"cannot listen for Prometheus on 127.0.0.1:{taken}: Address already in use" \
            in p.stderr, p.stderr
        assert not os.path.exists(os.path.join(d, "data", "agent.sock"))


def test_sync_backlog_and_its_age_while_the_server_is_down():
    with pyutil.scratch("sidetrack-health-") as d:
        c = Cluster(d)
        try:
            c.add_agent("gpu1")
            c.start_agent("gpu1")
            data = c.agents["gpu1"]["data"]
            pyutil.wait_for(lambda: os.path.exists(os.path.join(data, "agent.sock")), 30,
                            c.logs)
            c.train("gpu1", 1000, "offline")

            def figures():
                return parse_prometheus(get_unix(data, "/metrics")[2])
            # (the byte estimate is worked out once a second)
            pyutil.wait_for(lambda: figures()["sidetrack_agent_sync_backlog_age_seconds"] > 0.5
                            and figures()["sidetrack_agent_sync_backlog_bytes"] > 0,
                            30, "the backlog to age")
            v = figures()
            assert v["sidetrack_agent_sync_connected"] == 0
            assert v["sidetrack_agent_sync_backlog_ops"] > 0
            assert v["sidetrack_agent_sync_backlog_bytes"] > 1000 * 4 * 8
            assert v["sidetrack_agent_sync_last_ack_timestamp_seconds"] == 0

            c.start_server()
            pyutil.wait_for(lambda: c.caught_up("gpu1"), 60, c.logs)
            v = figures()
            assert v["sidetrack_agent_sync_connected"] == 1
            assert v["sidetrack_agent_sync_backlog_ops"] == 0
            assert v["sidetrack_agent_sync_backlog_age_seconds"] == 0
            assert v["sidetrack_agent_sync_points_total"] >= 1000 * 4
        finally:
            c.stop_all()


def test_sidetrack_wait_returns_once_everything_is_stored():
    with pyutil.scratch("sidetrack-health-") as d:
        agent, ring, data, log = start_agent(d)
        try:
            run = pyutil.train(ring, 50000, "wait", "w")
            pyutil.cli(data, "wait", "--timeout", "60")
            assert points(data, run) == 50000  # no polling: wait said it is all there
        finally:
            code = pyutil.stop(agent)
        assert code == 0, pyutil.tail_logs([log])
        # No agent: what is logged waits in the ring, and wait says so at its timeout.
        run = pyutil.train(ring, 100, "wait", "orphan")
        p = pyutil.cli(data, "wait", "--timeout", "0.3", check=False)
        assert p.returncode == 1
        assert "records still wait in 1 lane" in p.stderr and "is sidetrackd running?" \
            in p.stderr, p.stderr
        p = pyutil.cli(data, "wait", "--timeout", "soon", check=False)
        assert p.returncode == 2 and "--timeout takes seconds" in p.stderr, p.stderr
