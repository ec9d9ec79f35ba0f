"""Replication over HTTPS end to end, on loopback: an agent (sidetrackd --server https://...)
and a sidetrack-server serving POST /api/sidetrack/v1/sync with a certificate from a CA made
here. The server's store must hold every op exactly once whatever died in the middle; a wrong,
missing or unreadable-by-policy token and an untrusted certificate are refused with a reason
the user can read in `sidetrack sync status`. Run by meson (suite sync) with
SIDETRACK_BUILD_DIR set."""
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
from pyutil import free_port, wait_for  # noqa: E402
from test_sync_e2e import AGENT, CLI, SERVER, TRAIN, cli, snapshot  # noqa: E402

SYNC_PATH = "/api/sidetrack/v1/sync"


def openssl(*args, cwd):
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.pem", cwd=d)
    return os.path.join(d, f"{name}.pem")


def make_server_cert(d, ca):
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr", cwd=d)
    openssl("x509", "-req", "-in", "server.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-set_serial", "7", "-days", "2", "-extfile", "server.ext", "-out", "server.pem",
            cwd=d)
    return os.path.join(d, "server.pem"), os.path.join(d, "server.key")


class Https:
    """A server with a certificate signed by `ca`; a second CA that signed nothing of it."""

    def __init__(self, root):
        self.root = root
        self.pki = os.path.join(root, "pki")
        os.makedirs(self.pki)
        self.ca = make_ca(self.pki, "ca")
        self.other_ca = make_ca(self.pki, "otherca")
        self.cert, self.key = make_server_cert(self.pki, "ca")
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.server_data = os.path.join(root, "server")
        self.tokens = os.path.join(self.server_data, "tokens.d")
        os.makedirs(self.tokens)
        self.server = None
        self.agents = {}

    def start_server(self, tls=True):
        self.server = subprocess.Popen(
            [SERVER, "--data", self.server_data, "--zmq", "off",
             "--http", f"127.0.0.1:{self.port}", "--tokens", self.tokens] +
            (["--tls-cert", self.cert, "--tls-key", self.key] if tls else []),
            stderr=open(os.path.join(self.root, "server.log"), "a"))

        def listening():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_for(listening, 10, "the server to listen\n" + self.logs())
        return self.server

    def kill_server(self):
        self.server.send_signal(signal.SIGKILL)
        self.server.wait(30)

    def token(self, name, on_server=True):
        """`sidetrack keys token NAME`: the file the agent reads, and (when on_server) the same
        file in the server's tokens directory. Made before the server starts where the test
        wants no refusal: a token added later is seen at the server's next look at the
        directory, and a refused agent retries seconds later."""
        d = os.path.join(self.root, "tokens-" + name)
        os.makedirs(d, exist_ok=True)
        subprocess.run([CLI, "keys", "token", name, "--dir", d], check=True, capture_output=True)
        path = os.path.join(d, name + ".token")
        if on_server:
            shutil.copy(path, os.path.join(self.tokens, name + ".token"))
            os.chmod(os.path.join(self.tokens, name + ".token"), 0o600)
        return path

    def add_agent(self, name):
        d = os.path.join(self.root, name)
        os.makedirs(os.path.join(d, "ring"))
        self.agents[name] = {"dir": d, "data": os.path.join(d, "data"),
                             "ring": os.path.join(d, "ring"), "proc": None}
        return self.agents[name]

    def agent_args(self, name, token, ca):
        a = self.agents[name]
        args = [AGENT, "-d", a["data"], "-r", a["ring"], "-s", self.url, "--sync-interval", "100"]
        if token:
            args += ["--server-token", token]
        if ca:
            args += ["--ca", ca]
        return args

    def start_agent(self, name, token, ca=None):
        a = self.agents[name]
        a["proc"] = subprocess.Popen(self.agent_args(name, token, ca or self.ca),
                                     stderr=open(os.path.join(a["dir"], "agent.log"), "a"))
        return a["proc"]

    def train(self, name, steps, run_name):
        a = self.agents[name]
        env = dict(os.environ, SIDETRACK_RING_DIR=a["ring"], SIDETRACK_LANE_MB="64")
        p = subprocess.run([TRAIN, "--steps", str(steps), "--experiment", "https-test",
                            "--run-name", run_name], env=env, capture_output=True, text=True,
                           timeout=300)
        assert p.returncode == 0, p.stderr
        return p.stdout.strip()

    def sync_status(self, name):
        p = cli(self.agents[name]["data"], "sync", "status", "--json", check=False)
        return json.loads(p.stdout) if p.stdout else {}

    def stop_all(self):
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


@pytest.fixture
def h():
    root = tempfile.mkdtemp(prefix="sidetrack-https-")
    c = Https(root)
    yield c
    try:
        c.stop_all()
    finally:
        if os.environ.get("SIDETRACK_KEEP_SCRATCH"):
            print("scratch kept in", root)
        else:
            shutil.rmtree(root, ignore_errors=True)


def caught_up(h, name):
    st = h.sync_status(name)
    return st.get("connected") and st.get("backlog_ops") == 0


def converge_and_compare(h, name, timeout=120):
    """The server's store equals the agent's: same runs, every point once, in order."""
    wait_for(lambda: caught_up(h, name), timeout, f"agent {name} to catch up\n" + h.logs())
    want = snapshot(h.agents[name]["data"])
    got = snapshot(h.server_data)
    assert set(got) == set(want), h.logs()
    for rid, run in want.items():
        for field in ("name", "experiment", "status", "params", "tags"):
            assert got[rid][field] == run[field], (rid, field)
        assert got[rid]["metrics"].keys() == run["metrics"].keys()
        for k, pts in run["metrics"].items():
            assert len(got[rid]["metrics"][k]) == len(pts), (rid, k)  # no gap, no duplicate
            assert got[rid]["metrics"][k] == pts, (rid, k)
    return want


def server_runs(h):
    return json.loads(cli(h.server_data, "runs", "list", "--json").stdout)


def test_replicates_over_https_exactly_once(h):
    tok = h.token("a1")
    h.start_server()
    h.add_agent("a1")
    h.start_agent("a1", tok)
    h.train("a1", 20000, "first")
    h.train("a1", 10000, "second")
    want = converge_and_compare(h, "a1")
    assert len(want) == 2
    st = h.sync_status("a1")
    assert st["server"] == h.url and st["transport"] == "https", st
    text = cli(h.agents["a1"]["data"], "sync", "status").stdout
    assert f"{h.url} (https, connected)" in text, text
    status = cli(h.agents["a1"]["data"], "status").stdout
    assert h.url in status and "https" in status, status


def test_wrong_token_is_refused_and_nothing_applied(h):
    h.token("a1")  # the server knows a1's token, not this one
    stranger = h.token("stranger", on_server=False)
    h.start_server()
    h.add_agent("a1")
    h.start_agent("a1", stranger)
    h.train("a1", 1000, "refused")

    def refused():
        st = h.sync_status("a1")
        return st if "refused the token in " + stranger in st.get("last_error", "") else None
    st = wait_for(refused, 20, "the refusal to show\n" + h.logs())
    assert not st["connected"] and st["backlog_ops"] > 0, st
    assert "refused the token" in open(os.path.join(h.agents["a1"]["dir"], "agent.log")).read()
    assert server_runs(h) == []


def test_missing_token_is_refused(h):
    h.start_server()
    h.add_agent("a1")
    # The agent does not start without one...
    p = subprocess.run(h.agent_args("a1", None, h.ca), capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "--server-token" in p.stderr, p.stderr
    # ...and the server answers a request without one with 401 and nothing applied.
    ctx = ssl.create_default_context(cafile=h.ca)
    req = urllib.request.Request(h.url + SYNC_PATH, data=b"\x81\xa1t\x01", method="POST",
                                 headers={"Content-Type": "application/x-sidetrack-frame"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, context=ctx, timeout=10)
    assert e.value.code == 401
    assert json.loads(e.value.read())["error_code"] == "UNAUTHENTICATED"
    assert server_runs(h) == []


def test_token_readable_by_others_is_refused_at_start(h):
    h.add_agent("a1")
    tok = h.token("a1")
    os.chmod(tok, 0o644)
    p = subprocess.run(h.agent_args("a1", tok, h.ca), capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "chmod 600" in p.stderr, p.stderr


def test_plain_http_on_loopback_replicates(h):
    tok = h.token("a1")
    h.start_server(tls=False)
    h.url = f"http://127.0.0.1:{h.port}"
    h.add_agent("a1")
    h.start_agent("a1", tok)
    h.train("a1", 1000, "plain")
    converge_and_compare(h, "a1")
    assert h.sync_status("a1")["transport"] == "http"


def test_plain_http_only_on_loopback(h):
    h.add_agent("a1")
    tok = h.token("a1")
    a = h.agents["a1"]
    p = subprocess.run([AGENT, "-d", a["data"], "-r", a["ring"], "-s", "http://192.0.2.1:5000",
                        "--server-token", tok], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "in the clear" in p.stderr, p.stderr


def test_server_certificate_from_another_ca_is_refused(h):
    tok = h.token("a1")
    h.start_server()
    h.add_agent("a1")
    h.start_agent("a1", tok, ca=h.other_ca)
    h.train("a1", 1000, "untrusted")

    def refused():
        st = h.sync_status("a1")
        return st if "certificate" in st.get("last_error", "") else None
    st = wait_for(refused, 20, "the certificate's refusal to show\n" + h.logs())
    assert not st["connected"], st
    assert server_runs(h) == []


def test_token_of_another_agent_is_forbidden(h):
    """The server binds an agent id to the token of its first HELLO: the same agent (same
    store) with another valid token gets 403, and that says so."""
    mine, other = h.token("a1"), h.token("other")
    h.start_server()
    h.add_agent("a1")
    p = h.start_agent("a1", mine)
    h.train("a1", 1000, "mine")
    wait_for(lambda: caught_up(h, "a1"), 30, "a1 to catch up\n" + h.logs())
    p.send_signal(signal.SIGTERM)
    assert p.wait(30) == 0
    h.start_agent("a1", other)
    h.train("a1", 1000, "not-mine")

    def refused():
        st = h.sync_status("a1")
        return st if "HTTP 403" in st.get("last_error", "") else None
    wait_for(refused, 20, "the 403 to show\n" + h.logs())
    assert [r["run_name"] for r in server_runs(h)] == ["mine"]


def test_server_killed_mid_sync_and_restarted(h):
    tok = h.token("a1")
    h.start_server()
    h.add_agent("a1")
    h.start_agent("a1", tok)
    h.train("a1", 200000, "big-before")
    time.sleep(0.3)  # let a sync be in flight
    h.kill_server()  # -9 in the middle of applying or answering
    h.train("a1", 50000, "while-down")
    h.start_server()
    converge_and_compare(h, "a1")


def test_agent_killed_mid_sync_and_restarted(h):
    tok = h.token("a1")
    h.start_server()
    h.add_agent("a1")
    p = h.start_agent("a1", tok)
    h.train("a1", 200000, "before-kill")
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL)
    p.wait(30)
    h.train("a1", 30000, "agent-down")  # waits in the ring
    h.start_agent("a1", tok)
    converge_and_compare(h, "a1")
