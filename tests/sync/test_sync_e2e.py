"""Replication end to end, on loopback, every process started here and some killed with -9:
two agents and one server; the server's store must end up equal to the union of the agents'
stores (same runs, params, tags, every metric point exactly once, in order), whatever died
in the middle. Run by meson (suite sync) with SIDETRACK_BUILD_DIR set."""
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pyutil import free_port, wait_for  # noqa: E402

BUILD = os.path.abspath(os.environ.get("SIDETRACK_BUILD_DIR", "build"))
AGENT = os.path.join(BUILD, "agent", "sidetrackd")
SERVER = os.path.join(BUILD, "server", "sidetrack-server")
CLI = os.path.join(BUILD, "client", "cli", "sidetrack")
TRAIN = os.path.join(BUILD, "examples", "sidetrack-example-train")


def cli(data, *args, check=True):
    p = subprocess.run([CLI, "-d", data, *args], capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"sidetrack {' '.join(args)}: {p.stderr}")
    return p


class Cluster:
    def __init__(self, root):
        self.root = root
        self.port = free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.server_data = os.path.join(root, "server")
        os.makedirs(os.path.join(self.server_data, "agents.d"))
        # The server's key pair before anything starts: agents may start first.
        subprocess.run([CLI, "keys", "gen", "server", "--dir", self.server_data], check=True,
                       capture_output=True)
        self.server = None
        self.agents = {}

    def start_server(self):
        self.server = subprocess.Popen([SERVER, "-d", self.server_data, "-z", self.endpoint],
                                       stderr=open(os.path.join(self.root, "server.log"), "a"))
        def listening():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_for(listening, 10, "the server to listen")
        return self.server

    def kill_server(self, sig=signal.SIGKILL):
        self.server.send_signal(sig)
        self.server.wait(30)

    def add_agent(self, name, allowed=True):
        d = os.path.join(self.root, name)
        os.makedirs(os.path.join(d, "ring"))
        subprocess.run([CLI, "keys", "gen", name, "--dir", d], check=True, capture_output=True)
        if allowed:
            shutil.copy(os.path.join(d, name + ".pub"),
                        os.path.join(self.server_data, "agents.d", name + ".pub"))
        self.agents[name] = {"dir": d, "data": os.path.join(d, "data"),
                             "ring": os.path.join(d, "ring"), "proc": None}
        return self.agents[name]

    def start_agent(self, name):
        a = self.agents[name]
        a["proc"] = subprocess.Popen(
            [AGENT, "-d", a["data"], "-r", a["ring"], "-s", self.endpoint,
             "--server-key", os.path.join(self.server_data, "server.pub"),
             "--key", os.path.join(a["dir"], name + ".key"), "--sync-interval", "100"],
            stderr=open(os.path.join(a["dir"], "agent.log"), "a"))
        return a["proc"]

    def train(self, name, steps, run_name, artifact=None):
        a = self.agents[name]
        env = dict(os.environ, SIDETRACK_RING_DIR=a["ring"], SIDETRACK_LANE_MB="64")
        p = subprocess.run([TRAIN, "--steps", str(steps), "--experiment", "sync-test",
                            "--run-name", run_name] + (["--artifact", artifact] if artifact
                                                       else []),
                           env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        return p.stdout.strip()

    def stop_all(self):
        """SIGTERM to everything still running: each must stop cleanly (exit 0; under
        AddressSanitizer that includes no leak)."""
        bad = []
        procs = [(n, a["proc"]) for n, a in self.agents.items()] + [("server", self.server)]
        for name, p in procs:
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                if p.wait(60) != 0:
                    bad.append(f"{name} exited {p.returncode}")
        assert not bad, ", ".join(bad) + "\n" + self.logs()

    def logs(self):
        out = []
        for path in [os.path.join(self.root, "server.log")] + [
                os.path.join(a["dir"], "agent.log") for a in self.agents.values()]:
            if os.path.exists(path):
                out.append(f"--- {path}\n" + open(path).read()[-4000:])
        return "\n".join(out)


def snapshot(data):
    """Everything a store holds that replication must carry, comparable across stores."""
    runs = json.loads(cli(data, "runs", "list", "--json").stdout)
    out = {}
    for r in runs:
        rid = r["run_id"]
        show = json.loads(cli(data, "runs", "show", rid, "--json").stdout)
        tags = {k: v for k, v in show["tags"].items() if not k.startswith("sidetrack.origin.")}
        metrics = {}
        for m in show["metrics"]:
            pts = json.loads(cli(data, "metrics", rid, m["key"], "--format", "json").stdout)
            metrics[m["key"]] = [(p["step"], p["timestamp"], p["value"]) for p in pts]
        for a in show["artifacts"]:  # the content itself, not only the reference
            out_file = os.path.join(tempfile.gettempdir(), f"st-sync-{os.getpid()}.blob")
            cli(data, "artifacts", rid, "--get", a["path"], "--out", out_file)
            digest = hashlib.sha256(open(out_file, "rb").read()).hexdigest()
            os.unlink(out_file)
            assert digest == a["sha256"], (data, rid, a["path"])
        info = show["info"]
        out[rid] = {"name": info["run_name"], "experiment": info["experiment"],
                    "status": info["status"], "start": info["start_time"],
                    "end": info["end_time"], "params": show["params"], "tags": tags,
                    "metrics": metrics,
                    "artifacts": sorted((a["path"], a["sha256"]) for a in show["artifacts"])}
    return out


def union(*snaps):
    u = {}
    for s in snaps:
        assert not (set(u) & set(s)), "two agents hold the same run id"
        u.update(s)
    return u


def agent_caught_up(cluster, name):
    p = cli(cluster.agents[name]["data"], "sync", "status", "--json", check=False)
    if not p.stdout:
        return False
    st = json.loads(p.stdout)
    return st["connected"] and st["backlog_ops"] == 0


@pytest.fixture
def cluster():
    root = tempfile.mkdtemp(prefix="sidetrack-sync-")
    c = Cluster(root)
    yield c
    try:
        c.stop_all()
    finally:
        if os.environ.get("SIDETRACK_KEEP_SCRATCH"):
            print("scratch kept in", root)
        else:
            shutil.rmtree(root, ignore_errors=True)


def converge_and_compare(c, names, timeout=120):
    for n in names:
        wait_for(lambda n=n: agent_caught_up(c, n), timeout, f"agent {n} to catch up\n" + c.logs())
    snaps = [snapshot(c.agents[n]["data"]) for n in names]
    server = snapshot(c.server_data)
    want = union(*snaps)
    assert set(server) == set(want), c.logs()
    for rid in want:
        for field in ("name", "experiment", "status", "start", "end", "params", "tags",
                      "artifacts"):
            assert server[rid][field] == want[rid][field], (rid, field)
        assert server[rid]["metrics"].keys() == want[rid]["metrics"].keys()
        for k, pts in want[rid]["metrics"].items():
            got = server[rid]["metrics"][k]
            assert len(got) == len(pts), (rid, k, len(got), len(pts))  # no gap, no duplicate
            assert got == pts, (rid, k)
    return want


def test_two_agents_replicate_exactly_once(cluster):
    c = cluster
    c.start_server()
    for n in ("a1", "a2"):
        c.add_agent(n)
        c.start_agent(n)
    for i in range(2):
        c.train("a1", 20000, f"a1-run{i}")
        c.train("a2", 15000, f"a2-run{i}")
    want = converge_and_compare(c, ["a1", "a2"])
    assert len(want) == 4
    # Each run on the server says where it came from.
    some = next(iter(want))
    tags = json.loads(cli(c.server_data, "runs", "show", some, "--json").stdout)["tags"]
    assert "sidetrack.origin.agent" in tags and "sidetrack.origin.host" in tags


def test_server_killed_mid_sync_and_restarted(cluster):
    c = cluster
    c.start_server()
    c.add_agent("a1")
    c.start_agent("a1")
    c.train("a1", 200000, "big-before")
    time.sleep(0.3)                # let a sync be in flight
    c.kill_server()                # -9 in the middle of applying or acknowledging
    c.train("a1", 50000, "while-down")
    c.start_server()
    converge_and_compare(c, ["a1"])


def test_agent_killed_mid_sync(cluster):
    c = cluster
    c.start_server()
    c.add_agent("a1")
    p = c.start_agent("a1")
    c.train("a1", 200000, "before-kill")
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL)
    p.wait(30)
    c.train("a1", 30000, "agent-down")  # waits in the ring
    c.start_agent("a1")
    converge_and_compare(c, ["a1"])


def test_server_unreachable_during_heavy_logging(cluster):
    c = cluster
    c.add_agent("a1")
    c.add_agent("a2")
    c.start_agent("a1")
    c.start_agent("a2")
    for i in range(3):          # no server yet: the agents keep logging and back off
        c.train("a1", 50000, f"offline-{i}")
        c.train("a2", 50000, f"offline-{i}")
    time.sleep(1.0)
    c.start_server()
    converge_and_compare(c, ["a1", "a2"])


def test_unauthorised_agent_is_refused(cluster):
    c = cluster
    c.start_server()
    c.add_agent("intruder", allowed=False)
    c.start_agent("intruder")
    c.train("intruder", 1000, "should-not-arrive")

    def waiting():
        p = cli(c.agents["intruder"]["data"], "sync", "status", "--json", check=False)
        st = json.loads(p.stdout) if p.stdout else {}
        # 1,000 steps of 4 metrics wait, in ops and in bytes (worked out once a second)
        return st if st.get("backlog_bytes", 0) > 1000 * 4 * 24 else None
    st = wait_for(waiting, 15, "the intruder's backlog to show")
    assert not st["connected"] and st["backlog_ops"] > 0
    time.sleep(1)  # more tries to get in
    assert json.loads(cli(c.server_data, "runs", "list", "--json").stdout) == []
    assert subprocess.run([CLI, "-d", c.agents["intruder"]["data"], "sync", "status"],
                          capture_output=True).returncode == 1  # not connected: unhealthy
    log = open(os.path.join(c.root, "server.log")).read()
    assert "refused a connection" in log


def test_garbage_on_the_port_never_crashes_the_server(cluster):
    c = cluster
    srv = c.start_server()
    rnd = os.urandom
    for i in range(50):
        with socket.create_connection(("127.0.0.1", c.port), timeout=5) as s:
            try:
                s.sendall(rnd(1 + (i * 97) % 4000))
                s.settimeout(0.2)
                s.recv(100)
            except OSError:
                pass
    # A ZMTP greeting followed by nonsense, then a truncated one.
    for payload in (b"\xff" + b"\x00" * 8 + b"\x7f\x03\x00" + b"NULL" + b"\x00" * 16 + rnd(200),
                    b"\xff\x00\x00"):
        with socket.create_connection(("127.0.0.1", c.port), timeout=5) as s:
            try:
                s.sendall(payload)
                s.settimeout(0.2)
                s.recv(100)
            except OSError:
                pass
    time.sleep(0.5)
    assert srv.poll() is None, "the server died\n" + c.logs()
    # And it still serves a real agent.
    c.add_agent("a1")
    c.start_agent("a1")
    c.train("a1", 1000, "after-garbage")
    converge_and_compare(c, ["a1"])


def test_replayed_truncated_and_garbled_batches(cluster):
    """An authenticated agent that replays, truncates, garbles and skips: every frame gets an
    answer, nothing crashes, and the store holds each op exactly once."""
    c = cluster
    srv = c.start_server()
    a = c.add_agent("evil")
    run_id = "ab" * 16
    p = subprocess.run([os.path.join(BUILD, "tests", "sync", "replay_client"), c.endpoint,
                        os.path.join(c.server_data, "server.pub"),
                        os.path.join(a["dir"], "evil.key"), run_id],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr + c.logs()
    assert srv.poll() is None
    tags = json.loads(cli(c.server_data, "runs", "show", run_id, "--json").stdout)["tags"]
    got = sorted(k for k in tags if k.startswith("replay_"))
    assert got == [f"replay_{i}" for i in range(1, 6)], got


def blob_files(data):
    root = os.path.join(data, "artifacts")
    return sorted(f for d, _, fs in os.walk(root) if "incoming" not in d for f in fs)


def test_artifact_content_once_and_resumed(cluster):
    """Artifact content reaches the server, is stored once however many runs name it, and an
    upload cut by a -9 of the server resumes where it stood."""
    c = cluster
    big = os.path.join(c.root, "weights.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(24 << 20))  # 24 chunks
    c.start_server()
    c.add_agent("a1")
    c.start_agent("a1")
    c.train("a1", 1000, "ckpt-1", artifact=big)
    incoming = os.path.join(c.server_data, "artifacts", "incoming")
    # Kill the server once part of the upload is there.
    wait_for(lambda: os.path.isdir(incoming) and any(
        os.path.getsize(os.path.join(incoming, f)) > 0 for f in os.listdir(incoming)),
        60, "an upload to start")
    c.kill_server()
    c.start_server()
    c.train("a1", 1000, "ckpt-2", artifact=big)  # the same content again
    want = converge_and_compare(c, ["a1"])
    assert len(want) == 2
    big_sha = hashlib.sha256(open(big, "rb").read()).hexdigest()
    assert blob_files(c.server_data).count(big_sha) == 1, blob_files(c.server_data)
    log = open(os.path.join(c.root, "server.log")).read()
    assert "resuming an artifact upload at byte" in log, log[-3000:]
