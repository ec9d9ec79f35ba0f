"""Replication end to end, on loopback, every process started here and some killed with -9:
two agents and one server; the server's store must end up equal to the union of the agents'
stores (same runs, params, tags, every metric point exactly once, in order), whatever died
in the middle. Run by meson (suite sync) with SIDETRACK_BUILD_DIR set."""
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
from pyutil import built, cli, wait_for  # noqa: E402
from cluster import Cluster, converge_and_compare, running  # noqa: E402


@pytest.fixture
def cluster():
    with running(Cluster, "sidetrack-sync-") as c:
        yield c


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
        st = c.sync_status("intruder")
        # 1,000 steps of 4 metrics wait, in ops and in bytes (worked out once a second)
        return st if st.get("backlog_bytes", 0) > 1000 * 4 * 24 else None
    st = wait_for(waiting, 15, "the intruder's backlog to show")
    assert not st["connected"] and st["backlog_ops"] > 0
    time.sleep(1)  # more tries to get in
    assert json.loads(cli(c.server_data, "runs", "list", "--json").stdout) == []
    assert cli(c.agents["intruder"]["data"], "sync", "status",
               check=False).returncode == 1  # not connected: unhealthy
    log = open(c.server_log).read()
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
    p = subprocess.run([built("tests", "sync", "replay_client"), c.endpoint,
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
    log = open(c.server_log).read()
    assert "resuming an artifact upload at byte" in log, log[-3000:]
