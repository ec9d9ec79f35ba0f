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
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
from pyutil import AGENT, SERVER, cli, make_pki, sidetrack, wait_for  # noqa: E402
from cluster import Nodes, converge_and_compare, running  # noqa: E402

SYNC_PATH = "/api/sidetrack/v1/sync"


class Https(Nodes):
    """A server with a certificate signed by a CA made here (`ca`), and a second CA that
    signed nothing of it (`other_ca`); agents with bearer tokens."""
    experiment = "https-test"

    def __init__(self, root):
        super().__init__(root)
        pki_dir = os.path.join(root, "pki")
        os.makedirs(pki_dir)
        pki = make_pki(pki_dir)
        self.ca, self.other_ca, self.cert, self.key = pki.ca, pki.other_ca, pki.cert, pki.key
        self.url = f"https://127.0.0.1:{self.port}"
        self.tokens = os.path.join(self.server_data, "tokens.d")
        os.makedirs(self.tokens)

    def start_server(self, tls=True):
        return self._start_server(
            [SERVER, "--data", self.server_data, "--zmq", "off",
             "--http", f"127.0.0.1:{self.port}", "--tokens", self.tokens] +
            (["--tls-cert", self.cert, "--tls-key", self.key] if tls else []))

    def token(self, name, on_server=True):
        """`sidetrack keys token NAME`: the file the agent reads, and (when on_server) the same
        file in the server's tokens directory. Made before the server starts where the test
        wants no refusal: a token added later is seen at the server's next look at the
        directory, and a refused agent retries seconds later."""
        d = os.path.join(self.root, "tokens-" + name)
        os.makedirs(d, exist_ok=True)
        sidetrack("keys", "token", name, "--dir", d, check=True)
        path = os.path.join(d, name + ".token")
        if on_server:
            shutil.copy(path, os.path.join(self.tokens, name + ".token"))
            os.chmod(os.path.join(self.tokens, name + ".token"), 0o600)
        return path

    def add_agent(self, name):
        return self._new_agent(name)

    def agent_args(self, name, token, ca):
        a = self.agents[name]
        args = [AGENT, "-d", a["data"], "-r", a["ring"], "-s", self.url, "--sync-interval", "100"]
        if token:
            args += ["--server-token", token]
        if ca:
            args += ["--ca", ca]
        return args

    def start_agent(self, name, token, ca=None):
        return self._start_agent(name, self.agent_args(name, token, ca or self.ca))

    def serve_one(self, name="a1", ca=None):
        """The usual start: NAME's token known to the server, the server, then the agent
        trusting `ca` (the server's CA by default). (token file, agent process)."""
        tok = self.token(name)
        self.start_server()
        self.add_agent(name)
        return tok, self.start_agent(name, tok, ca)


@pytest.fixture
def h():
    with running(Https, "sidetrack-https-") as c:
        yield c


# The server's store equals the agent's: same runs, every point once, in order.
FIELDS = ("name", "experiment", "status", "params", "tags")


def refusal(h, words, what):
    """a1's sync status once its last error holds `words`."""
    def refused():
        st = h.sync_status("a1")
        return st if words in st.get("last_error", "") else None
    return wait_for(refused, 20, lambda: what + "\n" + h.logs())


def server_runs(h):
    return json.loads(cli(h.server_data, "runs", "list", "--json").stdout)


def test_replicates_over_https_exactly_once(h):
    h.serve_one()
    h.train("a1", 20000, "first")
    h.train("a1", 10000, "second")
    want = converge_and_compare(h, ["a1"], fields=FIELDS)
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
    st = refusal(h, "refused the token in " + stranger, "the refusal to show")
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
    converge_and_compare(h, ["a1"], fields=FIELDS)
    assert h.sync_status("a1")["transport"] == "http"


def test_plain_http_only_on_loopback(h):
    h.add_agent("a1")
    tok = h.token("a1")
    a = h.agents["a1"]
    p = subprocess.run([AGENT, "-d", a["data"], "-r", a["ring"], "-s", "http://192.0.2.1:5000",
                        "--server-token", tok], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "in the clear" in p.stderr, p.stderr


def test_server_certificate_from_another_ca_is_refused(h):
    h.serve_one(ca=h.other_ca)
    h.train("a1", 1000, "untrusted")
    st = refusal(h, "certificate", "the certificate's refusal to show")
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
    wait_for(lambda: h.caught_up("a1"), 30, lambda: "a1 to catch up\n" + h.logs())
    p.send_signal(signal.SIGTERM)
    assert p.wait(30) == 0
    h.start_agent("a1", other)
    h.train("a1", 1000, "not-mine")
    refusal(h, "HTTP 403", "the 403 to show")
    assert [r["run_name"] for r in server_runs(h)] == ["mine"]


def test_server_killed_mid_sync_and_restarted(h):
    h.serve_one()
    h.train("a1", 200000, "big-before")
    time.sleep(0.3)  # let a sync be in flight
    h.kill_server()  # -9 in the middle of applying or answering
    h.train("a1", 50000, "while-down")
    h.start_server()
    converge_and_compare(h, ["a1"], fields=FIELDS)


def test_agent_killed_mid_sync_and_restarted(h):
    tok, p = h.serve_one()
    h.train("a1", 200000, "before-kill")
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL)
    p.wait(30)
    h.train("a1", 30000, "agent-down")  # waits in the ring
    h.start_agent("a1", tok)
    converge_and_compare(h, ["a1"], fields=FIELDS)
